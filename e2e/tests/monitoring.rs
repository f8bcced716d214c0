//! The chart's monitoring for validators: the alert rules pass `promtool` (the rule
//! file checks, and every alert fires on the series that should raise it and stays
//! quiet on healthy ones: `helm/dualchain/rules/validators.test.yaml`), and `helm
//! template` ships exactly those rules and both dashboards. (The labels the rules
//! group by come from each network's ServiceMonitor: the operator's snapshot test.) Needs no cluster, only the tools
//! `e2e/setup.sh` builds (`promtool`, `helm`); `e2e/run.sh` runs this binary.

use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result, ensure};
use dualchain_e2e::repo_root;
use serde_json::Value;

/// Runs `program args` in `dir` and returns its stdout; fails with its output.
fn run(program: &str, args: &[&str], dir: &Path) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .with_context(|| format!("running {program} (built by e2e/setup.sh)"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        out.status.success(),
        "{program} {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(stdout)
}

#[test]
#[ignore = "needs promtool: run e2e/run.sh"]
fn the_validator_alerts_pass_promtool_and_their_unit_tests() -> Result<()> {
    let rules = repo_root().join("helm/dualchain/rules");
    let checked = run("promtool", &["check", "rules", "validators.yaml"], &rules)?;
    ensure!(checked.contains("SUCCESS: 11 rules found"), "{checked}");
    let tested = run(
        "promtool",
        &["test", "rules", "validators.test.yaml"],
        &rules,
    )?;
    ensure!(tested.contains("SUCCESS"), "{tested}");
    Ok(())
}

#[test]
#[ignore = "needs helm: run e2e/run.sh"]
fn the_chart_ships_the_tested_rules_and_both_dashboards() -> Result<()> {
    let chart = repo_root().join("helm/dualchain");
    let rendered = run(
        "helm",
        &[
            "template",
            "mon",
            ".",
            "--namespace",
            "chains",
            // Offline, helm would assume Kubernetes v1.20, older than the chart allows.
            "--kube-version",
            "1.36.1",
            "--set",
            "validatorMonitoring.prometheusRule.enabled=true",
            "--set",
            "grafanaDashboard.enabled=true",
        ],
        &chart,
    )?;
    let docs: Vec<Value> = rendered
        .split("\n---")
        .filter(|doc| doc.contains("kind:"))
        .map(serde_saphyr::from_str)
        .collect::<Result<_, _>>()?;
    let kind = |k: &str| {
        docs.iter()
            .find(|d| d["kind"] == k)
            .with_context(|| format!("no {k} rendered"))
    };

    let rule = kind("PrometheusRule")?;
    let file = std::fs::read_to_string(chart.join("rules/validators.yaml"))?;
    let tested: Value = serde_saphyr::from_str(&file)?;
    ensure!(
        rule["spec"] == tested,
        "the PrometheusRule is not rules/validators.yaml"
    );

    let dashboards = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["data"]["dualchain-validators.json"].is_string())
        .context("no ConfigMap with the validator dashboard")?;
    for key in ["dualchain-operator.json", "dualchain-validators.json"] {
        let json = dashboards["data"][key].as_str().context(key)?;
        let dashboard: Value = serde_json::from_str(json).with_context(|| key.to_string())?;
        ensure!(!dashboard["panels"].as_array().context("panels")?.is_empty());
    }
    Ok(())
}
