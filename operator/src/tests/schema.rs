//! Schema tests: the generated CRDs are checked in and current, their rules are present,
//! the examples are valid, and invalid manifests are rejected with readable messages.

use std::path::PathBuf;

use serde_json::json;

use crate::crd;
use crate::schema_check;

/// This package's directory. Read at run time (cargo sets it for `cargo test`): the
/// compile-time value names whichever clone built the cached binary, and CI builds
/// every clone into one shared target directory.
pub(super) fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

pub(super) fn repo_root() -> PathBuf {
    manifest_dir().parent().unwrap().to_path_buf()
}

#[test]
fn checked_in_crds_are_up_to_date() {
    for dir in ["crds", "helm/dualchain/crds"] {
        if std::env::var_os("DUALCHAIN_UPDATE_CRDS").is_some() {
            crd::write_dir(&repo_root().join(dir)).unwrap();
        }
        for (file, c) in crd::all() {
            let path = repo_root().join(dir).join(&file);
            let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                on_disk == crd::render(&c).unwrap(),
                "{} is out of date; regenerate with `dualchain-operator crd --out-dir crds --out-dir helm/dualchain/crds` or DUALCHAIN_UPDATE_CRDS=1 cargo test -p dualchain-operator",
                path.display()
            );
        }
    }
}

#[test]
fn crds_carry_names_columns_status_and_rules() {
    // YAML for layout, JSON for long rules (YAML folds long strings).
    let json: Vec<String> = crd::all()
        .iter()
        .map(|(_, c)| serde_json::to_string(c).unwrap())
        .collect();
    let all = format!("{}{}", crd::render_all().unwrap(), json.join(""));
    for needle in [
        "shortNames:\n    - dcn",
        "shortNames:\n    - bench",
        "status: {}",
        "x-kubernetes-validations",
        "self >= 1 && self <= 200",
        "validators must be between 1 and 200",
        "self.delta.blockTimeMs == 0 || self.alpha.blockTimeMs % self.delta.blockTimeMs == 0",
        "self >= 3 && self <= 100",
        "ttlSecondsAfterFinished must be 0 or more",
        "self == oldSelf",
        "jsonPath: .status.alpha.height",
        "jsonPath: .status.results.averageTps",
        "jsonPath: .status.result",
        "default: 15000",
        "default: 3000",
    ] {
        assert!(all.contains(needle), "CRD YAML lacks {needle:?}");
    }
}

/// Every field of both CRDs has a description (so `kubectl explain` reads well).
#[test]
fn every_field_is_described() {
    fn walk(schema: &serde_json::Value, path: &str, missing: &mut Vec<String>) {
        if let Some(props) = schema.get("properties").and_then(|p| p.as_object()) {
            for (k, v) in props {
                let p = format!("{path}.{k}");
                let top =
                    path.is_empty() && matches!(k.as_str(), "apiVersion" | "kind" | "metadata");
                if !top && v.get("description").is_none() {
                    missing.push(p.clone());
                }
                walk(v, &p, missing);
            }
        }
        if let Some(items) = schema.get("items") {
            walk(items, &format!("{path}[]"), missing);
        }
        if let Some(extra) = schema.get("additionalProperties").filter(|a| a.is_object()) {
            walk(extra, &format!("{path}{{}}"), missing);
        }
    }
    for (name, c) in crd::all() {
        let schema = serde_json::to_value(
            c.spec.versions[0]
                .schema
                .as_ref()
                .unwrap()
                .open_api_v3_schema
                .as_ref()
                .unwrap(),
        )
        .unwrap();
        let mut missing = Vec::new();
        walk(&schema, "", &mut missing);
        assert!(
            missing.is_empty(),
            "{name}: fields without description: {missing:?}"
        );
    }
}

#[test]
fn examples_are_valid() {
    let dir = repo_root().join("helm/dualchain/examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for result in schema_check::check_yaml(&text).unwrap() {
            assert!(result.is_ok(), "{}: {:?}", path.display(), result);
            seen += 1;
        }
    }
    assert!(seen >= 2);
}

/// Each file under `tests/invalid/` holds one manifest and a `# expect: <text>` line;
/// the manifest must be rejected with a message containing that text.
#[test]
fn invalid_manifests_are_rejected_with_readable_messages() {
    let dir = manifest_dir().join("tests/invalid");
    let mut checked = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let text = std::fs::read_to_string(&path).unwrap();
        let expect = text
            .lines()
            .find_map(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} has no `# expect:` line", path.display()));
        let results = schema_check::check_yaml(&text).unwrap();
        assert_eq!(results.len(), 1, "{}", path.display());
        let errors = results[0]
            .clone()
            .expect_err(&format!("{} was accepted", path.display()));
        let joined = errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            joined.contains(expect),
            "{}: expected {expect:?} in:\n{joined}",
            path.display()
        );
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} invalid manifests");
}

#[test]
fn transition_rules_make_genesis_immutable_and_leave_the_size_free() {
    let base = json!({"apiVersion": "dualchain.dev/v1alpha1", "kind": "DualChainNetwork",
        "metadata": {"name": "n"}, "spec": {"validators": 4}});
    assert!(schema_check::check(&base, None).is_ok());
    // The set follows `validators` through join and leave requests at a boundary.
    for size in [7, 1, 200] {
        let mut resized = base.clone();
        resized["spec"]["validators"] = json!(size);
        assert!(schema_check::check(&resized, Some(&base)).is_ok(), "{size}");
    }
    let mut too_big = base.clone();
    too_big["spec"]["validators"] = json!(201);
    assert!(schema_check::check(&too_big, Some(&base)).is_err());
    let mut regenesis = base.clone();
    regenesis["spec"]["genesis"] = json!({"accounts": 7});
    let errors = schema_check::check(&regenesis, Some(&base)).unwrap_err();
    assert!(
        errors
            .iter()
            .any(|e| e.message.contains("genesis cannot change")),
        "{errors:?}"
    );
    // Other changes are allowed.
    let mut reimaged = base.clone();
    reimaged["spec"]["image"] = json!("dualchain:0.2.0");
    assert!(schema_check::check(&reimaged, Some(&base)).is_ok());
}
