//! The validator binary links neither the Kubernetes client nor the plotting stack:
//! those belong to `dualchain-tools` (devnet reports, the loadgen's ConfigMap sink).
//!
//! Walks the resolved dependency graph of `cargo metadata` from `dualchain-node`
//! along normal (non-dev, non-build) edges — what `cargo tree -p dualchain-node -e
//! normal` shows.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::Command;

const FORBIDDEN: [&str; 3] = ["kube", "k8s-openapi", "plotters"];

/// This package's directory. Read at run time (cargo sets it for `cargo test`): the
/// compile-time value names whichever clone built the cached binary, and CI builds
/// every clone into one shared target directory.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

fn metadata() -> serde_json::Value {
    let manifest = manifest_dir().join("Cargo.toml");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(&manifest)
        .output()
        .expect("running cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata JSON")
}

/// Names of the packages reachable from `root` along normal dependency edges.
fn normal_closure(meta: &serde_json::Value, root: &str) -> BTreeSet<String> {
    let names: HashMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let nodes: HashMap<&str, &serde_json::Value> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    let start = names
        .iter()
        .find(|(_, name)| **name == root)
        .map(|(id, _)| *id)
        .unwrap_or_else(|| panic!("{root} is not in the workspace"));
    let mut seen = BTreeSet::new();
    let mut stack = vec![start];
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        for dep in nodes[id]["deps"].as_array().unwrap() {
            let normal = dep["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"].is_null());
            if normal {
                stack.push(dep["pkg"].as_str().unwrap());
            }
        }
    }
    seen.into_iter().map(|id| names[id].to_string()).collect()
}

#[test]
fn the_validator_binary_links_neither_kube_nor_plotters() {
    let meta = metadata();
    let node = normal_closure(&meta, "dualchain-node");
    let linked: Vec<&str> = FORBIDDEN
        .iter()
        .copied()
        .filter(|name| node.contains(*name))
        .collect();
    assert!(
        linked.is_empty(),
        "dualchain-node's normal dependencies include {linked:?}; they belong in dualchain-tools"
    );
    for absent in ["dualchain-loadgen", "dualchain-testkit", "dualchain-tools"] {
        assert!(!node.contains(absent), "dualchain-node depends on {absent}");
    }
    // The walk itself sees what it should: the tools do link them.
    let tools = normal_closure(&meta, "dualchain-tools");
    for name in FORBIDDEN {
        assert!(tools.contains(name), "dualchain-tools should reach {name}");
    }
    assert!(node.contains("dualchain-core") && node.contains("tokio"));
}
