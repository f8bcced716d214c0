//! Validates manifests against the generated CRD schemas, the way the API server would:
//! structural checks (types, required fields, enums, bounds, unknown fields), then the
//! `x-kubernetes-validations` CEL rules evaluated by kube's CEL engine (`kube-cel`, with
//! schema defaults applied first, as the API server defaults before validating).
//!
//! Used by the schema tests (valid examples accepted, invalid manifests rejected with the
//! CRD's messages) and usable as a pre-flight check. The real API server (issue 8's e2e)
//! remains the authority; this mirrors it so regressions show up in unit tests.

use std::fmt;

use kube::core::cel::Validator;
use serde_json::Value;

use crate::crd;

/// One reason a manifest is invalid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// JSON path of the offending field, e.g. `spec.validators`.
    pub field: String,
    /// Why, in the CRD's words where a CEL rule failed.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

fn violation(field: &str, message: impl Into<String>) -> Violation {
    Violation {
        field: field.to_string(),
        message: message.into(),
    }
}

/// The openAPIV3Schema of the CRD serving `apiVersion`/`kind`, if any.
pub fn schema_for(api_version: &str, kind: &str) -> Option<Value> {
    crd::all().into_iter().find_map(|(_, c)| {
        let group_ok = api_version.split_once('/').is_some_and(|(g, v)| {
            g == c.spec.group && c.spec.versions.iter().any(|ver| ver.name == v)
        });
        (group_ok && c.spec.names.kind == kind).then(|| {
            serde_json::to_value(
                c.spec.versions[0]
                    .schema
                    .as_ref()?
                    .open_api_v3_schema
                    .as_ref()?,
            )
            .ok()
        })?
    })
}

/// Checks one manifest (as created, or as an update of `old`).
pub fn check(manifest: &Value, old: Option<&Value>) -> Result<(), Vec<Violation>> {
    let api_version = manifest
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = manifest
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(schema) = schema_for(api_version, kind) else {
        return Err(vec![violation(
            "",
            format!("no dualchain.dev CRD serves apiVersion {api_version:?} kind {kind:?}"),
        )]);
    };
    let mut errors = Vec::new();
    check_metadata(manifest.get("metadata"), &mut errors);
    walk(&schema, manifest, "", &mut errors);
    if errors.is_empty()
        && let Err(cel) = Validator::new().validate(&schema, manifest, old)
    {
        for e in cel.iter() {
            errors.push(violation(&e.field_path, e.message.clone()));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Checks every document of a YAML stream; returns one result per document.
pub fn check_yaml(text: &str) -> Result<Vec<Result<(), Vec<Violation>>>, String> {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(text).map_err(|e| format!("not YAML: {e}"))?;
    Ok(docs
        .iter()
        .filter(|d| !d.is_null())
        .map(|d| check(d, None))
        .collect())
}

fn check_metadata(metadata: Option<&Value>, errors: &mut Vec<Violation>) {
    let Some(name) = metadata.and_then(|m| m.get("name")).and_then(Value::as_str) else {
        errors.push(violation(
            "metadata.name",
            "Required value: name is required",
        ));
        return;
    };
    let valid = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !valid {
        errors.push(violation(
            "metadata.name",
            format!("Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'"),
        ));
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn walk(schema: &Value, value: &Value, path: &str, errors: &mut Vec<Violation>) {
    if value.is_null() {
        if schema.get("nullable").and_then(Value::as_bool) != Some(true) {
            errors.push(violation(path, "Invalid value: \"null\": must not be null"));
        }
        return;
    }
    if schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true)
    {
        if !matches!(type_name(value), "integer" | "string") {
            errors.push(violation(
                path,
                format!(
                    "Invalid value: {:?}: must be an integer or a string",
                    type_name(value)
                ),
            ));
        }
        return;
    }
    if let Some(expected) = schema.get("type").and_then(Value::as_str) {
        let actual = type_name(value);
        let ok = actual == expected || (expected == "number" && actual == "integer");
        if !ok {
            errors.push(violation(
                path,
                format!("Invalid value: \"{actual}\": {path} in body must be of type {expected}"),
            ));
            return;
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        let supported: Vec<String> = options.iter().map(|o| o.to_string()).collect();
        errors.push(violation(
            path,
            format!(
                "Unsupported value: {value}: supported values: {}",
                supported.join(", ")
            ),
        ));
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
            && n < min
        {
            errors.push(violation(path, format!("Invalid value: {value}: {path} in body should be greater than or equal to {min}")));
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
            && n > max
        {
            errors.push(violation(
                path,
                format!(
                    "Invalid value: {value}: {path} in body should be less than or equal to {max}"
                ),
            ));
        }
    }
    if let (Some(text), Some(max)) = (
        value.as_str(),
        schema.get("maxLength").and_then(Value::as_u64),
    ) && text.chars().count() as u64 > max
    {
        errors.push(violation(
            path,
            format!("Too long: may not be more than {max} bytes"),
        ));
    }
    if let (Some(items), Some(max)) = (
        value.as_array(),
        schema.get("maxItems").and_then(Value::as_u64),
    ) && items.len() as u64 > max
    {
        errors.push(violation(
            path,
            format!("Too many: {}: must have at most {max} items", items.len()),
        ));
    }
    match value {
        Value::Object(map) => {
            if let Some(required) = schema.get("required").and_then(Value::as_array) {
                for field in required.iter().filter_map(Value::as_str) {
                    if !map.contains_key(field) {
                        errors.push(violation(&join(path, field), "Required value"));
                    }
                }
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            let preserve = schema
                .get("x-kubernetes-preserve-unknown-fields")
                .and_then(Value::as_bool)
                == Some(true);
            for (key, child) in map {
                let child_path = join(path, key);
                if path.is_empty() && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue; // Type and object metadata are validated by the API server itself.
                }
                match (properties.and_then(|p| p.get(key)), additional) {
                    (Some(child_schema), _) => walk(child_schema, child, &child_path, errors),
                    (None, Some(a)) if a.is_object() => walk(a, child, &child_path, errors),
                    (None, Some(Value::Bool(true))) => {}
                    _ if preserve => {}
                    _ => errors.push(violation(
                        &child_path,
                        format!("unknown field \"{child_path}\""),
                    )),
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    walk(item_schema, item, &format!("{path}[{i}]"), errors);
                }
            }
        }
        _ => {}
    }
}
