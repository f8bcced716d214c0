//! Publishing a load result where the Kubernetes operator reads it.
//!
//! The operator's loadgen contract (`operator/README.md`, "Loadgen contract"):
//! `--result-configmap NS/NAME` merge-PATCHes key `result.json` of that ConfigMap, and
//! the run's plots as `binaryData` (`PLOT_KEYS`, PNG)
//! (`PATCH /api/v1/namespaces/NS/configmaps/NAME`, `application/merge-patch+json`),
//! authenticated with the pod's service-account token; if that fails, the same JSON
//! goes to `/dev/termination-log` (at most 4 KiB; the contract fields only if the full
//! document is larger; no plots), where the operator reads the pod's termination message.

use std::path::Path;

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};

/// Where the termination message of a container is read from.
pub const TERMINATION_LOG: &str = "/dev/termination-log";
use dualchain_contract::loadgen::is_plot;
/// The contract's limits and key, shared with the operator's parser.
pub use dualchain_contract::loadgen::{MAX_RESULT_BYTES, RESULT_KEY, TERMINATION_LOG_MAX_BYTES};
use k8s_openapi::ByteString;

use crate::report::Plot;

/// A `NS/NAME` ConfigMap reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigMapRef {
    pub namespace: String,
    pub name: String,
}

impl std::str::FromStr for ConfigMapRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (namespace, name) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not NAMESPACE/NAME"))?;
        let valid = |part: &str| {
            !part.is_empty()
                && part.len() <= 253
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        };
        if !valid(namespace) || !valid(name) {
            return Err(format!(
                "{s:?}: namespace and name must be non-empty lowercase DNS names"
            ));
        }
        Ok(Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }
}

/// The merge-patch body that sets `data["result.json"]` and the plots that pass the
/// contract's check (known key, PNG, within `MAX_PLOT_BYTES`) as `binaryData`.
pub fn patch_body(result_json: &str, plots: &[Plot]) -> serde_json::Value {
    let binary: serde_json::Map<String, serde_json::Value> = plots
        .iter()
        .filter(|p| is_plot(p.key, &p.png))
        .map(|p| {
            let encoded =
                serde_json::to_value(ByteString(p.png.clone())).expect("bytes serialize as base64");
            (p.key.to_owned(), encoded)
        })
        .collect();
    if binary.is_empty() {
        return serde_json::json!({ "data": { RESULT_KEY: result_json } });
    }
    serde_json::json!({ "data": { RESULT_KEY: result_json }, "binaryData": binary })
}

/// Picks the document to publish: the full one if it fits `limit`, else the compact one.
pub fn fit(full: &str, compact: &str, limit: usize) -> anyhow::Result<String> {
    if full.len() <= limit {
        Ok(full.to_owned())
    } else if compact.len() <= limit {
        Ok(compact.to_owned())
    } else {
        bail!("even the compact result is larger than {limit} bytes")
    }
}

/// PATCHes the ConfigMap with the in-cluster service-account credentials.
pub async fn patch_configmap(
    target: &ConfigMapRef,
    result_json: &str,
    plots: &[Plot],
) -> anyhow::Result<()> {
    // The binary links both rustls providers (QUIC uses aws-lc-rs, kube enables ring);
    // rustls then needs a process default. Installing it twice is harmless.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let client = kube::Client::try_default()
        .await
        .context("no Kubernetes credentials (in-cluster service account or kubeconfig)")?;
    let api: Api<ConfigMap> = Api::namespaced(client, &target.namespace);
    api.patch(
        &target.name,
        &PatchParams::default(),
        &Patch::Merge(patch_body(result_json, plots)),
    )
    .await
    .with_context(|| {
        format!(
            "PATCH configmap {}/{} ({RESULT_KEY})",
            target.namespace, target.name
        )
    })?;
    Ok(())
}

/// Writes the termination-log fallback to `path` (normally [`TERMINATION_LOG`]).
pub fn write_termination_log(path: &Path, full: &str, compact: &str) -> anyhow::Result<()> {
    let text = fit(full, compact, TERMINATION_LOG_MAX_BYTES)?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Publishes the result: ConfigMap first, termination log as the fallback. Errors of
/// both are reported together; the run itself is not failed by a publishing error.
pub async fn publish(
    target: &ConfigMapRef,
    full: &str,
    compact: &str,
    plots: &[Plot],
    termination_log: &Path,
) -> anyhow::Result<&'static str> {
    let document = fit(full, compact, MAX_RESULT_BYTES)?;
    match patch_configmap(target, &document, plots).await {
        Ok(()) => Ok("configmap"),
        Err(patch_error) => {
            tracing::warn!(
                error = format!("{patch_error:#}"),
                "ConfigMap PATCH failed; writing the termination log instead"
            );
            write_termination_log(termination_log, full, compact)
                .map(|()| "termination-log")
                .map_err(|e| anyhow::anyhow!("{patch_error:#}; fallback failed too: {e:#}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configmap_refs_parse_and_reject_junk() {
        let r: ConfigMapRef = "bench/run-1-result".parse().unwrap();
        assert_eq!(r.namespace, "bench");
        assert_eq!(r.name, "run-1-result");
        for bad in ["noslash", "/x", "x/", "Bad/x", "a/b c"] {
            assert!(bad.parse::<ConfigMapRef>().is_err(), "{bad}");
        }
    }

    #[test]
    fn patch_body_is_a_merge_patch_of_result_json() {
        let body = patch_body(r#"{"average_tps":1.0}"#, &[]);
        assert_eq!(body["data"]["result.json"], r#"{"average_tps":1.0}"#);
        assert!(body.get("binaryData").is_none());
    }

    #[test]
    fn plots_go_into_binary_data_base64_and_others_do_not() {
        let png = [&dualchain_contract::loadgen::PNG_SIGNATURE[..], b"pixels"].concat();
        let plots = [
            Plot {
                key: "tps.png",
                png: png.clone(),
            },
            Plot {
                key: "finality_cdf.png",
                png: b"not a png".to_vec(),
            },
        ];
        let body = patch_body("{}", &plots);
        let binary = body["binaryData"].as_object().unwrap();
        assert_eq!(binary.len(), 1, "{binary:?}");
        let decoded: ByteString = serde_json::from_value(binary["tps.png"].clone()).unwrap();
        assert_eq!(decoded.0, png);
    }

    #[test]
    fn termination_log_falls_back_to_the_compact_document() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("termination-log");
        let full = "x".repeat(5000);
        write_termination_log(&path, &full, "{\"small\":1}").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"small\":1}");
        write_termination_log(&path, "{}", "{\"small\":1}").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{}");
        assert!(fit(&full, &full, 10).is_err());
    }

    #[tokio::test]
    async fn publish_without_a_cluster_writes_the_termination_log() {
        let no_cluster = std::env::var_os("KUBERNETES_SERVICE_HOST").is_none()
            && std::env::var_os("KUBECONFIG").is_none()
            && std::env::var_os("HOME")
                .is_none_or(|h| !Path::new(&h).join(".kube/config").exists());
        if !no_cluster {
            eprintln!("skipped: this machine has Kubernetes credentials");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("termination-log");
        let target: ConfigMapRef = "ns/result".parse().unwrap();
        let via = publish(&target, "{\"a\":1}", "{}", &[], &path)
            .await
            .unwrap();
        assert_eq!(via, "termination-log");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"a\":1}");
    }
}
