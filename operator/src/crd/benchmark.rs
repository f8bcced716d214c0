//! `BenchmarkCluster` (`bench`): a short-lived network, a load run, faults, a verdict.
//!
//! Lifecycle (status.phase): `Pending` → `Provisioning` (an owned DualChainNetwork) →
//! `Running` (the loadgen Job; faults applied through the validators' admin API) →
//! `Collecting` (the Job's JSON result) → `Succeeded` | `Failed` (with a reason); the
//! whole tree is deleted `ttlSecondsAfterFinished` after the end. With `schedule`, the
//! object is a recurring template instead (phase `Scheduled`): each cron tick creates a
//! child BenchmarkCluster run and only the last `historyLimit` finished runs are kept.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{ChainProgress, Condition};
use super::network::NetworkTemplate;

/// Desired benchmark: network size and settings, workload, faults and success criteria.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "dualchain.dev",
    version = "v1alpha1",
    kind = "BenchmarkCluster",
    plural = "benchmarkclusters",
    shortname = "bench",
    namespaced,
    status = "BenchmarkClusterStatus",
    derive = "PartialEq",
    doc = "A benchmark: a short-lived network, a load run with optional faults, and a verdict.",
    validation = Rule::new("self.metadata.name.size() <= 37").message("a BenchmarkCluster name must be at most 37 characters (runs and networks append suffixes)"),
    validation = Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')").message("a BenchmarkCluster name must be a DNS-1035 label: lower-case letters, digits and '-', starting with a letter and ending with a letter or digit (its networks' Services are named after it)"),
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase","description":"Lifecycle phase"}"#,
    printcolumn = r#"{"name":"Validators","type":"integer","jsonPath":".spec.validators","description":"Validators in the benchmark network"}"#,
    printcolumn = r#"{"name":"TPS","type":"number","jsonPath":".status.results.averageTps","description":"Average committed transactions per second"}"#,
    printcolumn = r#"{"name":"Result","type":"string","jsonPath":".status.result","description":"Passed or Failed against the success criteria"}"#,
    printcolumn = r#"{"name":"Last","type":"string","jsonPath":".status.history[0].result","description":"A schedule's last finished run: Passed or Failed"}"#,
    printcolumn = r#"{"name":"Last TPS","type":"number","jsonPath":".status.history[0].averageTps","description":"A schedule's last finished run: average committed TPS"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(
    validation = Rule::new("!has(self.faults) || self.faults.all(f, f.kind != 'kill' || !has(f.validators) || f.validators < self.validators)").message("a kill fault must leave at least one validator running (faults[].validators < validators)"),
    validation = Rule::new("!has(self.faults) || self.faults.all(a, self.faults.all(b, a == b || a.kind == 'kill' || b.kind == 'kill' || a.startSeconds + a.durationSeconds <= b.startSeconds || b.startSeconds + b.durationSeconds <= a.startSeconds))").message("partition, messageLoss, delay, bandwidth and clockSkew windows must not overlap in time: a validator holds one fault setting at a time")
)]
#[serde(rename_all = "camelCase")]
pub struct BenchmarkClusterSpec {
    /// Validators in the benchmark network (3 to 100).
    #[serde(default = "default_validators")]
    #[x_kube(validation = Rule::new("self >= 3 && self <= 100").message("validators must be between 3 and 100"))]
    pub validators: u32,
    /// Settings of the benchmark's network (a DualChainNetwork spec without `validators`).
    #[serde(default)]
    pub network: NetworkTemplate,
    /// Load to apply.
    #[serde(default)]
    pub workload: Workload,
    /// Faults injected while the load runs (at most 32).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("self.size() <= 32").message("at most 32 faults"))]
    pub faults: Vec<Fault>,
    /// Thresholds the run must meet to succeed.
    #[serde(default)]
    pub criteria: SuccessCriteria,
    /// Delete the benchmark (and its network, Job and ConfigMaps) this many seconds after it
    /// finished (0 = right away). Must be 0 or more.
    #[serde(default = "default_ttl")]
    #[x_kube(validation = Rule::new("self >= 0").message("ttlSecondsAfterFinished must be 0 or more"))]
    pub ttl_seconds_after_finished: i64,
    /// Fail the run when the network is not ready this many seconds after provisioning began.
    #[serde(default = "default_ready_deadline")]
    #[x_kube(validation = Rule::new("self > 0 && self <= 86400").message("readyDeadlineSeconds must be between 1 and 86400"))]
    pub ready_deadline_seconds: i64,
    /// Cron schedule (5 fields, UTC, e.g. `0 2 * * *` nightly). When set, this object only
    /// schedules runs: each tick creates a child BenchmarkCluster named `<name>-<unix time>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    #[x_kube(validation = Rule::new("self.matches('^\\\\s*(\\\\S+\\\\s+){4}\\\\S+\\\\s*$')").message("schedule must be a cron expression of 5 fields: minute hour day-of-month month day-of-week"))]
    pub schedule: Option<String>,
    /// Finished scheduled runs to keep (1 to 20); older ones are deleted. Their results
    /// stay in `status.history` (as many entries), which no TTL deletes.
    #[serde(default = "default_history")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 20").message("historyLimit must be between 1 and 20"))]
    pub history_limit: u32,
    /// The result `criteria.maxRegressionPercent` compares against. A schedule sets it
    /// on each run from the previous finished run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Baseline>,
}

/// A previous result a run is compared with.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Baseline {
    /// The run the figures come from.
    #[x_kube(validation = Rule::new("self.size() <= 253").message("baseline.run must be at most 253 characters"))]
    pub run: String,
    /// Its average committed TPS.
    #[x_kube(validation = Rule::new("self >= 0.0").message("baseline.averageTps must be 0 or more"))]
    pub average_tps: f64,
}

/// Shape of the generated load.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Constant rate.
    #[default]
    Steady,
    /// Alternating bursts and pauses at the same average rate.
    Bursty,
    /// Conflicting, invalid and oversized transactions mixed into the load.
    Adversarial,
}

impl Profile {
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Steady => "steady",
            Profile::Bursty => "bursty",
            Profile::Adversarial => "adversarial",
        }
    }
}

/// The load generator's settings (`dualchain loadgen` arguments).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    validation = Rule::new("has(self.tps) != self.maxLoad").message("set exactly one of workload.tps and workload.maxLoad")
)]
#[serde(rename_all = "camelCase")]
pub struct Workload {
    /// Load profile.
    #[serde(default)]
    pub profile: Profile,
    /// Target transactions per second (1 to 10,000,000); omit with `maxLoad: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 10000000").message("workload.tps must be between 1 and 10000000"))]
    pub tps: Option<u64>,
    /// Drive the network as fast as it accepts transactions instead of a fixed rate.
    #[serde(default)]
    pub max_load: bool,
    /// Length of the load run in seconds (10 to 86400).
    #[serde(default = "default_duration")]
    #[x_kube(validation = Rule::new("self >= 10 && self <= 86400").message("workload.durationSeconds must be between 10 and 86400"))]
    pub duration_seconds: u32,
    /// Accounts the load uses (1 to 5000); the benchmark's genesis funds exactly this many.
    #[serde(default = "default_workload_accounts")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 5000").message("workload.accounts must be between 1 and 5000"))]
    pub accounts: u32,
    /// Sign transactions with ML-DSA-44 (true) or send unsigned benchmark transactions
    /// (false; the network is created with unsigned transactions allowed and the report says so).
    #[serde(default = "default_true")]
    pub signed: bool,
}

impl Default for Workload {
    fn default() -> Self {
        Self {
            profile: Profile::Steady,
            tps: Some(default_tps()),
            max_load: false,
            duration_seconds: default_duration(),
            accounts: default_workload_accounts(),
            signed: true,
        }
    }
}

/// Kind of injected fault.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum FaultKind {
    /// Kill `validators` validators at the window's start: their pods are deleted with
    /// no grace period (SIGKILL to both chains), their StatefulSets recreate them, and their
    /// restart is part of the measurement. The window is their time to come back: a
    /// killed validator not Ready again at its end fails the fault (and the run).
    Kill,
    /// Split the validators into `groups` groups that cannot talk to each other.
    Partition,
    /// Drop each outbound p2p message with `dropProbability`.
    MessageLoss,
    /// Add `delayMs` (plus up to `jitterMs`) to every outbound p2p message.
    Delay,
    /// Limit every p2p link of the affected validators to `bytesPerSecond` outbound
    /// (messages are delayed by a token bucket per link, never dropped).
    Bandwidth,
    /// Set the affected validators' wall clocks `skewMs` off (negative: behind): the
    /// time their chains stamp vertices with and judge ages by.
    ClockSkew,
}

/// One fault window, relative to the start of the load.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    validation = Rule::new("self.kind != 'kill' || (has(self.validators) && self.validators >= 1)").message("a kill fault needs validators >= 1"),
    validation = Rule::new("self.kind != 'partition' || (has(self.groups) && self.groups >= 2)").message("a partition fault needs groups >= 2"),
    validation = Rule::new("self.kind != 'messageLoss' || (has(self.dropProbability) && self.dropProbability > 0.0 && self.dropProbability <= 1.0)").message("a messageLoss fault needs dropProbability in (0, 1]"),
    validation = Rule::new("self.kind != 'delay' || (has(self.delayMs) && self.delayMs >= 1)").message("a delay fault needs delayMs >= 1"),
    validation = Rule::new("self.kind != 'bandwidth' || (has(self.bytesPerSecond) && self.bytesPerSecond >= 1024)").message("a bandwidth fault needs bytesPerSecond >= 1024"),
    validation = Rule::new("self.kind != 'clockSkew' || (has(self.skewMs) && self.skewMs != 0)").message("a clockSkew fault needs a non-zero skewMs")
)]
#[serde(rename_all = "camelCase")]
pub struct Fault {
    /// What to inject.
    pub kind: FaultKind,
    /// Seconds after the load starts when the fault begins.
    #[serde(default)]
    pub start_seconds: u32,
    /// How long the fault lasts in seconds (1 to 3600); the nodes also clear it by themselves then.
    #[serde(default = "default_fault_duration")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 3600").message("fault durationSeconds must be between 1 and 3600"))]
    pub duration_seconds: u32,
    /// kill: validators killed (the highest ordinals); messageLoss/delay/bandwidth/clockSkew: validators affected (all when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validators: Option<u32>,
    /// partition: number of groups (2 or more); validators are dealt round-robin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<u32>,
    /// messageLoss: probability in (0, 1] that a message is dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_probability: Option<f64>,
    /// delay: fixed added delay in milliseconds (1 to 60000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self <= 60000").message("delayMs must be at most 60000"))]
    pub delay_ms: Option<u32>,
    /// delay: extra random delay up to this many milliseconds (at most 60000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self <= 60000").message("jitterMs must be at most 60000"))]
    pub jitter_ms: Option<u32>,
    /// bandwidth: outbound bytes per second on each p2p link (1024 or more).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_second: Option<u64>,
    /// clockSkew: milliseconds the clocks are set off, -3600000 to 3600000 (negative: behind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= -3600000 && self <= 3600000").message("skewMs must be within an hour either way (-3600000 to 3600000)"))]
    pub skew_ms: Option<i64>,
}

/// Thresholds; a criterion left unset is not checked.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SuccessCriteria {
    /// Minimum average committed TPS over the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0.0").message("minAverageTps must be 0 or more"))]
    pub min_average_tps: Option<f64>,
    /// Maximum median submit-to-finality latency, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_finality_p50_ms: Option<u64>,
    /// Maximum 95th percentile submit-to-finality latency, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_finality_p95_ms: Option<u64>,
    /// Maximum 99th percentile submit-to-finality latency, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_finality_p99_ms: Option<u64>,
    /// Fail if any validator container restarted during the run.
    #[serde(default = "default_true")]
    pub no_validator_restarts: bool,
    /// Fail unless both chains finalized new blocks during the run.
    #[serde(default = "default_true")]
    pub require_chain_progress: bool,
    /// Fail when the average TPS falls more than this many percent below the baseline
    /// (`spec.baseline`; a scheduled run's is the previous finished run of its schedule).
    /// A run without a baseline (the first night) passes this criterion and says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self > 0.0 && self < 100.0").message("maxRegressionPercent must be more than 0 and less than 100"))]
    pub max_regression_percent: Option<f64>,
}

impl Default for SuccessCriteria {
    fn default() -> Self {
        Self {
            min_average_tps: None,
            max_finality_p50_ms: None,
            max_finality_p95_ms: None,
            max_finality_p99_ms: None,
            no_validator_restarts: true,
            require_chain_progress: true,
            max_regression_percent: None,
        }
    }
}

impl Default for BenchmarkClusterSpec {
    fn default() -> Self {
        Self {
            validators: default_validators(),
            network: NetworkTemplate::default(),
            workload: Workload::default(),
            faults: Vec::new(),
            criteria: SuccessCriteria::default(),
            ttl_seconds_after_finished: default_ttl(),
            ready_deadline_seconds: default_ready_deadline(),
            schedule: None,
            history_limit: default_history(),
            baseline: None,
        }
    }
}

/// Observed state of a benchmark.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BenchmarkClusterStatus {
    /// `Pending`, `Provisioning`, `Running`, `Collecting`, `Succeeded`, `Failed`, or
    /// `Scheduled` for a recurring template.
    #[serde(default)]
    pub phase: String,
    /// Why the run failed or what it waits for (one CamelCase word).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable explanation of the phase or failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `Passed` or `Failed` once the run finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Progressing, Degraded and Complete.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Name of the owned DualChainNetwork.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_name: Option<String>,
    /// Name of the loadgen Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    /// When provisioning began (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_started_at: Option<String>,
    /// When the load started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_started_at: Option<String>,
    /// When the run finished (RFC 3339); the TTL counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Validator container restarts counted when the load started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_restarts: Option<u32>,
    /// Chain progress when the load started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_alpha: Option<ChainProgress>,
    /// Chain progress when the load started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_delta: Option<ChainProgress>,
    /// Measured results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results: Option<BenchmarkResults>,
    /// Verdict per success criterion.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub criteria: Vec<CriterionResult>,
    /// State of each fault window, in spec order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<FaultStatus>,
    /// ConfigMap holding the full JSON report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_config_map: Option<String>,
    /// Scheduled template: when the last run was created (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<String>,
    /// Scheduled template: when the next run will be created (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_schedule_time: Option<String>,
    /// Scheduled template: the kept runs, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<RunRecord>,
    /// Scheduled template: its finished runs' results, newest first, at most
    /// `historyLimit`, kept after the runs themselves are deleted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HistoryEntry>,
}

/// One finished scheduled run, as its schedule remembers it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// The run's name (`<schedule>-<unix time of its tick>`).
    pub run: String,
    /// `Passed` or `Failed`.
    pub result: String,
    /// Why it failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When its verdict was reached (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Seconds from provisioning to the verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<i64>,
    /// The validator image the run's network ran.
    pub image: String,
    /// The kinds of the faults injected, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<String>,
    /// Average committed TPS (absent when the run failed before measuring).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_tps: Option<f64>,
    /// Median submit-to-finality latency, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finality_p50_ms: Option<u64>,
    /// 95th percentile submit-to-finality latency, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finality_p95_ms: Option<u64>,
    /// 99th percentile submit-to-finality latency, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finality_p99_ms: Option<u64>,
    /// Percent change of the average TPS against the run's baseline (negative: slower).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tps_change_percent: Option<f64>,
}

/// Numbers measured by the load generator and the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BenchmarkResults {
    /// Committed transactions per second, averaged over the run.
    pub average_tps: f64,
    /// Transactions submitted.
    pub submitted: u64,
    /// Transactions committed (finalized).
    pub committed: u64,
    /// Transactions refused at submission.
    pub rejected: u64,
    /// Median submit-to-finality latency, milliseconds.
    pub finality_p50_ms: u64,
    /// 95th percentile submit-to-finality latency, milliseconds.
    pub finality_p95_ms: u64,
    /// 99th percentile submit-to-finality latency, milliseconds.
    pub finality_p99_ms: u64,
    /// Whether transactions were signed (false means an "unsigned" benchmark).
    pub signed: bool,
    /// Alpha progress at the end of the run.
    pub alpha: ChainProgress,
    /// Delta progress at the end of the run.
    pub delta: ChainProgress,
    /// Validator container restarts during the run.
    pub validator_restarts: u32,
}

/// Outcome of one success criterion.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CriterionResult {
    /// Criterion name, e.g. `minAverageTps`.
    pub name: String,
    /// Whether the run met it.
    pub passed: bool,
    /// The measured value, as text.
    pub observed: String,
    /// The threshold, as text.
    pub threshold: String,
}

/// Progress of one fault window.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FaultStatus {
    /// Index in spec.faults.
    pub index: u32,
    /// `Pending`, `Active`, `Done`, `Failed` or `Missed` (its window passed unapplied).
    pub state: String,
    /// Which validators were affected, or why applying the fault failed.
    #[serde(default)]
    pub message: String,
}

/// One run created by a scheduled benchmark.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    /// Name of the child BenchmarkCluster.
    pub name: String,
    /// Its phase when last seen.
    pub phase: String,
    /// `Passed` or `Failed` once finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// Average TPS once finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_tps: Option<f64>,
}

fn default_validators() -> u32 {
    4
}
fn default_ttl() -> i64 {
    3600
}
fn default_ready_deadline() -> i64 {
    900
}
fn default_history() -> u32 {
    3
}
fn default_tps() -> u64 {
    1000
}
fn default_duration() -> u32 {
    300
}
fn default_workload_accounts() -> u32 {
    1000
}
fn default_fault_duration() -> u32 {
    30
}
fn default_true() -> bool {
    true
}
