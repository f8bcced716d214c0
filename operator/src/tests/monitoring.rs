//! The chart's validator alerts and dashboards name only metrics a validator exports:
//! a renamed metric would otherwise leave an alert that can never fire and a panel
//! that stays empty. (promtool checks the rules' behaviour: `e2e/tests/monitoring.rs`.)

use std::collections::BTreeSet;
use std::path::Path;

use super::schema::repo_root;

/// Every `dualchain_…` name in `text` (a histogram's `_bucket`, `_sum` and `_count`
/// series reduced to the histogram).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut at = 0;
    while let Some(found) = text[at..].find("dualchain_") {
        let start = at + found;
        let preceded =
            start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let end = text[start..]
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .map_or(text.len(), |n| start + n);
        if !preceded {
            let name = &text[start..end];
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(name);
            names.insert(base.to_string());
        }
        at = end;
    }
    names
}

/// The metric names the validator's sources register (string literals).
fn exported(dir: &Path, names: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            exported(&path, names);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            for literal in text.split('"').skip(1).step_by(2) {
                if literal.starts_with("dualchain_")
                    && literal
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                {
                    names.insert(literal.to_string());
                }
            }
        }
    }
}

#[test]
fn validator_alerts_and_dashboards_use_only_exported_metrics() {
    let root = repo_root();
    let mut known = BTreeSet::new();
    exported(&root.join("validator"), &mut known);
    assert!(known.contains("dualchain_chain_height"), "{known:?}");
    let chart = root.join("helm/dualchain");
    let mut used = BTreeSet::new();
    for file in ["rules/validators.yaml", "dashboards/validators.json"] {
        let text = std::fs::read_to_string(chart.join(file)).unwrap();
        let names = metric_names(&text);
        assert!(names.len() >= 5, "{file} names only {names:?}");
        used.extend(names);
    }
    let unknown: Vec<_> = used.difference(&known).collect();
    assert!(
        unknown.is_empty(),
        "alerts or dashboards name metrics no validator exports: {unknown:?}"
    );
}

#[test]
fn metric_names_are_read_whole_and_histograms_by_their_name() {
    let names = metric_names(
        "rate(dualchain_commit_latency_seconds_bucket[5m]) / x_dualchain_no + dualchain_chain_height{chain=\"a\"}",
    );
    let expected: BTreeSet<String> = ["dualchain_commit_latency_seconds", "dualchain_chain_height"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(names, expected);
}
