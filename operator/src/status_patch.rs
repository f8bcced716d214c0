//! Status updates as JSON merge patches that also remove what the new status dropped.
//!
//! The reconcilers compute the whole status every time, and optional fields are left out
//! when unset (`rolloutPartition` once a roll finished, `reason` once a benchmark moves
//! on). A merge patch of just the new status would keep such a field's old value on the
//! server, so a finished roll would still show its last partition. The patch built here
//! sets every key that disappeared to `null`, so applying it to the stored status yields
//! exactly the new one.

use serde::Serialize;
use serde_json::{Map, Value};

/// `{"status": <merge patch turning `stored` into `new`>}`.
pub fn status_patch<S: Serialize>(stored: Option<&S>, new: &S) -> serde_json::Result<Value> {
    let new = serde_json::to_value(new)?;
    let patch = match stored {
        Some(stored) => merge_diff(&serde_json::to_value(stored)?, new),
        None => new,
    };
    Ok(serde_json::json!({ "status": patch }))
}

/// RFC 7396 patch from `old` to `new`: objects recurse, keys missing from `new` become
/// `null`, anything else is replaced by its new value.
fn merge_diff(old: &Value, new: Value) -> Value {
    match (old, new) {
        (Value::Object(old), Value::Object(new)) => {
            let mut patch = Map::new();
            for key in old.keys() {
                if !new.contains_key(key) {
                    patch.insert(key.clone(), Value::Null);
                }
            }
            for (key, value) in new {
                let value = match old.get(&key) {
                    Some(previous) => merge_diff(previous, value),
                    None => value,
                };
                patch.insert(key, value);
            }
            Value::Object(patch)
        }
        (_, new) => new,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// RFC 7396 application, to check the patch against.
    fn apply(target: &Value, patch: &Value) -> Value {
        match patch {
            Value::Object(patch) => {
                let mut out = match target {
                    Value::Object(t) => t.clone(),
                    _ => Map::new(),
                };
                for (key, value) in patch {
                    if value.is_null() {
                        out.remove(key);
                    } else {
                        let merged = apply(out.get(key).unwrap_or(&Value::Null), value);
                        out.insert(key.clone(), merged);
                    }
                }
                Value::Object(out)
            }
            other => other.clone(),
        }
    }

    #[test]
    fn a_dropped_optional_field_is_nulled() {
        let old =
            json!({"phase": "Running", "rolloutPartition": 1, "alpha": {"height": 3, "epoch": 1}});
        let new = json!({"phase": "Running", "alpha": {"height": 4}});
        let patch = status_patch(Some(&old), &new).unwrap();
        assert_eq!(
            patch,
            json!({"status": {"phase": "Running", "rolloutPartition": null, "alpha": {"height": 4, "epoch": null}}})
        );
        assert_eq!(apply(&old, &patch["status"]), new);
    }

    #[test]
    fn without_a_stored_status_the_patch_is_the_status() {
        let new = json!({"phase": "Pending"});
        assert_eq!(status_patch(None, &new).unwrap(), json!({"status": new}));
    }

    /// JSON without nulls (statuses never serialize null) and with small key sets, so
    /// objects overlap often.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "[a-z]{0,3}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                prop::collection::btree_map("[a-d]", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn applying_the_patch_to_the_stored_status_gives_the_new_one(
            old in prop::collection::btree_map("[a-d]", json_value(), 0..4),
            new in prop::collection::btree_map("[a-d]", json_value(), 0..4),
        ) {
            let old = Value::Object(old.into_iter().collect());
            let new = Value::Object(new.into_iter().collect());
            let patch = status_patch(Some(&old), &new).unwrap();
            prop_assert_eq!(apply(&old, &patch["status"]), new);
        }
    }
}
