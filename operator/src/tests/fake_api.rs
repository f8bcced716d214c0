//! A mocked Kubernetes API server on a `tower-test` mock service (the `ApiServerVerifier`
//! idea of controller-rs), generalised into a tiny in-memory object store so reconcile
//! tests can run several reconciles and assert on the resulting objects and requests.
//!
//! It implements what the reconcilers use: get, list (label selectors `k=v,...`), create
//! (409 if present), server-side apply and merge patches (apply replaces the given
//! top-level fields; `/status` merges into status), replace (409 on a stale
//! resourceVersion) and delete. Every request is logged for assertions.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http::{Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};

/// One logged request.
#[derive(Clone, Debug)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub content_type: String,
}

#[derive(Default)]
struct State {
    objects: BTreeMap<String, Value>,
    log: Vec<Logged>,
    version: u64,
}

/// Handle on the fake server's state.
#[derive(Clone, Default)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
}

/// `(collection path, name, subresource)` of a request path.
fn split(path: &str) -> (String, Option<String>, Option<String>) {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    // api/v1/... has 2 prefix segments, apis/g/v/... has 3.
    let prefix = if parts.first() == Some(&"api") { 2 } else { 3 };
    let rest = &parts[prefix.min(parts.len())..];
    // namespaces/<ns>/<resource>[/<name>[/<sub>]]
    let (scope_len, resource_idx) = if rest.first() == Some(&"namespaces") && rest.len() >= 3 {
        (3, 2)
    } else {
        (1, 0)
    };
    let _ = resource_idx;
    let collection = parts[..prefix + scope_len.min(rest.len())].join("/");
    let name = rest.get(scope_len).map(|s| s.to_string());
    let sub = rest.get(scope_len + 1).map(|s| s.to_string());
    (collection, name, sub)
}

fn status_body(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

fn labels_match(obj: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let (k, v) = term.split_once('=').unwrap_or((term, ""));
        obj["metadata"]["labels"][k].as_str() == Some(v)
    })
}

fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl FakeApi {
    /// A client whose requests this fake serves, and the fake.
    pub fn start() -> (Client, FakeApi) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let fake = FakeApi::default();
        let server = fake.clone();
        tokio::spawn(async move {
            while let Some((request, send)) = handle.next_request().await {
                let response = server.serve(request).await;
                send.send_response(response);
            }
        });
        (Client::new(service, "default"), fake)
    }

    fn key(collection: &str, name: &str) -> String {
        format!("{collection}/{name}")
    }

    async fn serve(&self, request: Request<Body>) -> Response<Body> {
        let method = request.method().to_string();
        let path = request.uri().path().to_string();
        let query = request.uri().query().unwrap_or_default().to_string();
        let content_type = request
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = request
            .into_body()
            .collect_bytes()
            .await
            .unwrap_or_default();
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let (code, value) = self.handle(&method, &path, &query, &content_type, body);
        Response::builder()
            .status(StatusCode::from_u16(code).unwrap())
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&value).unwrap()))
            .unwrap()
    }

    fn handle(
        &self,
        method: &str,
        path: &str,
        query: &str,
        content_type: &str,
        body: Value,
    ) -> (u16, Value) {
        let mut state = self.state.lock().unwrap();
        state.log.push(Logged {
            method: method.into(),
            path: path.into(),
            content_type: content_type.into(),
        });
        let (collection, name, sub) = split(path);
        state.version += 1;
        let version = state.version.to_string();
        match (method, name) {
            ("GET", None) => {
                let selector = query_param(query, "labelSelector").unwrap_or_default();
                let prefix = format!("{collection}/");
                let items: Vec<Value> = state
                    .objects
                    .iter()
                    .filter(|(k, v)| {
                        k.starts_with(&prefix)
                            && !k[prefix.len()..].contains('/')
                            && labels_match(v, &selector)
                    })
                    .map(|(_, v)| v.clone())
                    .collect();
                (
                    200,
                    json!({"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": version}, "items": items}),
                )
            }
            ("GET", Some(name)) => match state.objects.get(&Self::key(&collection, &name)) {
                Some(v) => (200, v.clone()),
                None => (
                    404,
                    status_body(404, "NotFound", &format!("{name} not found")),
                ),
            },
            ("POST", _) => {
                let name = body["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let key = Self::key(&collection, &name);
                if state.objects.contains_key(&key) {
                    return (
                        409,
                        status_body(409, "AlreadyExists", &format!("{name} already exists")),
                    );
                }
                let mut obj = body;
                stamp_new(&mut obj, &name, &version);
                state.objects.insert(key, obj.clone());
                (201, obj)
            }
            ("PATCH", Some(name)) => {
                let key = Self::key(&collection, &name);
                let existing = state.objects.get(&key).cloned();
                let obj = match (existing, sub.as_deref()) {
                    (None, Some(_)) => {
                        return (
                            404,
                            status_body(404, "NotFound", &format!("{name} not found")),
                        );
                    }
                    (None, None) if content_type.contains("apply-patch") => {
                        let mut obj = body;
                        stamp_new(&mut obj, &name, &version);
                        obj
                    }
                    (None, None) => {
                        return (
                            404,
                            status_body(404, "NotFound", &format!("{name} not found")),
                        );
                    }
                    (Some(mut obj), Some("status")) => {
                        if let Some(status) = body.get("status") {
                            merge(
                                obj.as_object_mut()
                                    .unwrap()
                                    .entry("status")
                                    .or_insert(json!({})),
                                status,
                            );
                        }
                        obj["metadata"]["resourceVersion"] = json!(version);
                        obj
                    }
                    (Some(mut obj), _) => {
                        let before_spec = obj.get("spec").cloned();
                        if content_type.contains("apply-patch") {
                            for (k, v) in body.as_object().cloned().unwrap_or_default() {
                                match k.as_str() {
                                    "metadata" => {
                                        for field in ["labels", "annotations", "ownerReferences"] {
                                            if let Some(v) = v.get(field) {
                                                obj["metadata"][field] = v.clone();
                                            }
                                        }
                                    }
                                    "status" => {}
                                    _ => {
                                        obj[k.as_str()] = v;
                                    }
                                }
                            }
                        } else {
                            merge(&mut obj, &body);
                        }
                        if obj.get("spec").cloned() != before_spec {
                            let g = obj["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
                            obj["metadata"]["generation"] = json!(g);
                        }
                        obj["metadata"]["resourceVersion"] = json!(version);
                        obj
                    }
                };
                state.objects.insert(key, obj.clone());
                (200, obj)
            }
            ("PUT", Some(name)) => {
                let key = Self::key(&collection, &name);
                let Some(existing) = state.objects.get(&key) else {
                    return (
                        404,
                        status_body(404, "NotFound", &format!("{name} not found")),
                    );
                };
                let sent = body["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default();
                if !sent.is_empty()
                    && existing["metadata"]["resourceVersion"].as_str() != Some(sent)
                {
                    return (
                        409,
                        status_body(409, "Conflict", "the object has been modified"),
                    );
                }
                let mut obj = body;
                obj["metadata"]["resourceVersion"] = json!(version);
                state.objects.insert(key, obj.clone());
                (200, obj)
            }
            ("DELETE", Some(name)) => match state.objects.remove(&Self::key(&collection, &name)) {
                Some(obj) => (200, obj),
                None => (
                    404,
                    status_body(404, "NotFound", &format!("{name} not found")),
                ),
            },
            _ => (
                405,
                status_body(405, "MethodNotAllowed", "not supported by the fake"),
            ),
        }
    }

    /// Collection path of a namespaced resource, e.g. `("apps/v1", "ns", "statefulsets")`.
    pub fn collection(group_version: &str, namespace: &str, resource: &str) -> String {
        let prefix = if group_version == "v1" {
            "api/v1".to_string()
        } else {
            format!("apis/{group_version}")
        };
        format!("{prefix}/namespaces/{namespace}/{resource}")
    }

    pub fn get(
        &self,
        group_version: &str,
        namespace: &str,
        resource: &str,
        name: &str,
    ) -> Option<Value> {
        let key = Self::key(&Self::collection(group_version, namespace, resource), name);
        self.state.lock().unwrap().objects.get(&key).cloned()
    }

    pub fn list(&self, group_version: &str, namespace: &str, resource: &str) -> Vec<Value> {
        let prefix = format!("{}/", Self::collection(group_version, namespace, resource));
        self.state
            .lock()
            .unwrap()
            .objects
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Inserts or replaces an object (as another controller or a user would).
    pub fn put(&self, group_version: &str, namespace: &str, resource: &str, mut obj: Value) {
        let name = obj["metadata"]["name"].as_str().unwrap().to_string();
        let mut state = self.state.lock().unwrap();
        state.version += 1;
        let version = state.version.to_string();
        if obj["metadata"]["uid"].is_null() {
            stamp_new(&mut obj, &name, &version);
        }
        obj["metadata"]["resourceVersion"] = json!(version);
        let key = Self::key(&Self::collection(group_version, namespace, resource), &name);
        state.objects.insert(key, obj);
    }

    /// Removes a stored object (as a deletion by someone else would).
    pub fn remove(&self, group_version: &str, namespace: &str, resource: &str, name: &str) {
        let key = Self::key(&Self::collection(group_version, namespace, resource), name);
        self.state.lock().unwrap().objects.remove(&key);
    }

    /// Merges `patch` into a stored object (e.g. to set a status).
    pub fn patch(
        &self,
        group_version: &str,
        namespace: &str,
        resource: &str,
        name: &str,
        patch: Value,
    ) {
        let key = Self::key(&Self::collection(group_version, namespace, resource), name);
        let mut state = self.state.lock().unwrap();
        let obj = state
            .objects
            .get_mut(&key)
            .unwrap_or_else(|| panic!("{key} not stored"));
        merge(obj, &patch);
    }

    pub fn log(&self) -> Vec<Logged> {
        self.state.lock().unwrap().log.clone()
    }

    pub fn clear_log(&self) {
        self.state.lock().unwrap().log.clear();
    }

    /// GET requests on a whole collection of `resource` (list or watch), which the
    /// operator's RBAC does not allow for Secrets.
    pub fn collection_reads(&self, resource: &str) -> usize {
        self.log()
            .iter()
            .filter(|l| {
                l.method == "GET"
                    && l.path.trim_end_matches('/').rsplit('/').next() == Some(resource)
            })
            .count()
    }

    /// Requests with this method whose path contains `fragment`.
    pub fn count(&self, method: &str, fragment: &str) -> usize {
        self.log()
            .iter()
            .filter(|l| l.method == method && l.path.contains(fragment))
            .count()
    }
}

fn stamp_new(obj: &mut Value, name: &str, version: &str) {
    obj["metadata"]["name"] = json!(name);
    obj["metadata"]["uid"] = json!(format!("uid-{name}"));
    obj["metadata"]["resourceVersion"] = json!(version);
    obj["metadata"]["generation"] = json!(1);
    obj["metadata"]["creationTimestamp"] = json!("2026-11-21T08:00:00Z");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_paths() {
        assert_eq!(
            split("/api/v1/namespaces/ns/secrets/a"),
            (
                "api/v1/namespaces/ns/secrets".into(),
                Some("a".into()),
                None
            )
        );
        assert_eq!(
            split("/apis/dualchain.dev/v1alpha1/namespaces/ns/dualchainnetworks/n/status"),
            (
                "apis/dualchain.dev/v1alpha1/namespaces/ns/dualchainnetworks".into(),
                Some("n".into()),
                Some("status".into())
            )
        );
        assert_eq!(split("/apis/apps/v1/namespaces/ns/statefulsets").1, None);
        assert_eq!(percent_decode("a%3Db%2Cc%3Dd"), "a=b,c=d");
    }
}
