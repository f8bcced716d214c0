//! `DualChainNetwork` (`dcn`): one dualchain network of N validators.
//!
//! Rules enforced by the API server through the generated schema (and evaluated by the
//! schema tests with the same CEL engine kube uses client-side):
//! - `validators` is 1..=200; the genesis fixes the first set, later changes go
//!   through validators' join and leave requests on Alpha and take effect at an epoch
//!   boundary (growing needs a funded genesis account to stake the newcomers);
//! - block times are > 0 and Delta's divides Alpha's (whole Delta blocks per Alpha block);
//! - the `genesis` section is immutable once created (changing it would fork the network);
//! - quantities and durations are well-formed.
//!
//! Everything else (image, resources, node settings) may change: the operator rolls the
//! validators one at a time while keeping a quorum ready.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{ChainProgress, ChainResources, Condition, ResourceAmounts};

/// Desired state of a dualchain network.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "dualchain.dev",
    version = "v1alpha1",
    kind = "DualChainNetwork",
    plural = "dualchainnetworks",
    shortname = "dcn",
    namespaced,
    status = "DualChainNetworkStatus",
    derive = "PartialEq",
    doc = "A dualchain network: N validators, each a pod running the Alpha and Delta chains.",
    validation = Rule::new("self.metadata.name.size() <= 52").message("a DualChainNetwork name must be at most 52 characters (it prefixes pod and Service names)"),
    validation = Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')").message("a DualChainNetwork name must be a DNS-1035 label: lower-case letters, digits and '-', starting with a letter and ending with a letter or digit (it prefixes Service names)"),
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase","description":"Lifecycle phase"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.ready","description":"Ready validators / desired validators"}"#,
    printcolumn = r#"{"name":"Set","type":"integer","jsonPath":".status.validatorSet.size","description":"Validators in the set Alpha runs"}"#,
    printcolumn = r#"{"name":"Epoch","type":"integer","jsonPath":".status.validatorSet.epoch","description":"The epoch Alpha runs"}"#,
    printcolumn = r#"{"name":"Alpha","type":"integer","jsonPath":".status.alpha.height","description":"Alpha chain height"}"#,
    printcolumn = r#"{"name":"Delta","type":"integer","jsonPath":".status.delta.height","description":"Delta chain height"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct DualChainNetworkSpec {
    /// Number of validators (1 to 200). Fewer than 4 tolerate no faulty validator
    /// (status.faultTolerance says how many may fail). The genesis holds the first set;
    /// a change takes effect at the next epoch boundary (`epochLengthAlphaBlocks`).
    /// Growing creates the new validators' keys and pods, and the operator sends each
    /// one's join request with an sAX lock of `genesis.stake` from a funded genesis
    /// account as its stake (so it needs `genesis.accounts` ≥ 1 and `genesis.sax` ≥
    /// `genesis.stake`). Shrinking sends the highest ordinals' leave requests and
    /// removes their pods only once the boundary took them out of the set on both
    /// chains. The operator keeps validators `0..validators` in the set: one that left
    /// by itself is asked back in. `status.validatorSet` shows the set as Alpha runs
    /// it, the Reconfiguring condition each step.
    #[serde(default = "default_validators")]
    #[x_kube(
        validation = Rule::new("self >= 1 && self <= 200").message("validators must be between 1 and 200")
    )]
    pub validators: u32,
    /// Everything about the network except its size (shared with BenchmarkCluster.spec.network).
    #[serde(flatten)]
    pub template: NetworkTemplate,
}

/// A network's settings except its size; BenchmarkCluster embeds this as `spec.network`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    validation = Rule::new("self.delta.blockTimeMs == 0 || self.alpha.blockTimeMs % self.delta.blockTimeMs == 0").message("delta.blockTimeMs must divide alpha.blockTimeMs, so that a whole number of Delta blocks fits in each Alpha block")
)]
#[serde(rename_all = "camelCase")]
pub struct NetworkTemplate {
    /// Container image holding the `dualchain` binary; both chain containers use it.
    /// Changing it rolls the validators one at a time, keeping a quorum ready.
    #[serde(default = "default_image")]
    #[schemars(length(max = 512))]
    #[x_kube(validation = Rule::new("self.size() > 0").message("image must not be empty"))]
    pub image: String,
    /// When kubelet pulls the image.
    #[serde(default)]
    pub image_pull_policy: PullPolicy,
    /// Alpha chain (record state, 15 s blocks by default): block time, consensus, resources.
    #[serde(default)]
    pub alpha: AlphaChainSpec,
    /// Delta chain (account state, 3 s blocks by default): block time, consensus, resources.
    #[serde(default)]
    pub delta: DeltaChainSpec,
    /// Epoch length in Alpha blocks. At each boundary Alpha fixes the next epoch's
    /// validator set (the joins and leaves it holds: a DualChainNetwork's `validators`
    /// change goes through them) and Delta takes it from its attestation.
    #[serde(default = "default_epoch_length")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 1000000000").message("epochLengthAlphaBlocks must be between 1 and 1000000000"))]
    pub epoch_length_alpha_blocks: u64,
    /// Genesis accounts and balances. Fixed at creation: changing genesis would fork the network.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == oldSelf").message("genesis cannot change after creation: it would fork the network"))]
    pub genesis: GenesisSettings,
    /// Persistent volume of each validator (one volume, both chains' databases).
    #[serde(default)]
    pub storage: StorageSpec,
    /// Node settings rendered into the config ConfigMap; changing them rolls the validators.
    #[serde(default)]
    pub node: NodeSettings,
    /// Prometheus Operator ServiceMonitor (created only when enabled; needs its CRD installed).
    #[serde(default)]
    pub service_monitor: ServiceMonitorSpec,
    /// Node labels the validator pods must match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
}

/// Image pull policy of the validator containers.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum PullPolicy {
    /// Always pull.
    Always,
    /// Pull only when the image is not on the node.
    #[default]
    IfNotPresent,
    /// Never pull (the image must be preloaded, as in kind).
    Never,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// Consensus engine of a chain (written into the genesis; each chain may run either).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Consensus {
    /// DAG-based BFT, Mysticeti's commit rule: deterministic finality (the default).
    #[default]
    DagBft,
    /// Leader slots decided by Snowball sampling of peers: probabilistic finality.
    Avalanche,
}

impl From<Consensus> for dualchain_core::types::ConsensusEngine {
    fn from(c: Consensus) -> Self {
        match c {
            Consensus::DagBft => dualchain_core::types::ConsensusEngine::DagBft,
            Consensus::Avalanche => dualchain_core::types::ConsensusEngine::Avalanche,
        }
    }
}

/// One spec type per chain, because their defaults differ (block time and resources)
/// and schema defaults are per type.
macro_rules! chain_spec {
    ($name:ident, $chain:literal, $block_ms:expr, $req_cpu:literal, $req_mem:literal, $lim_cpu:literal, $lim_mem:literal) => {
        #[doc = concat!("Settings of the ", $chain, " chain.")]
        #[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            #[doc = concat!("Target block time of ", $chain, " in milliseconds (greater than 0).")]
            #[serde(default = "default_block_time")]
            #[x_kube(validation = Rule::new("self > 0 && self <= 3600000").message("blockTimeMs must be between 1 and 3600000 (one hour)"))]
            pub block_time_ms: u64,
            /// Consensus engine: `dag-bft` (the only engine this version runs).
            #[serde(default)]
            pub consensus: Consensus,
            #[doc = concat!("CPU and memory of the `", $chain, "` container.")]
            #[serde(default = "default_resources")]
            pub resources: ChainResources,
        }

        impl Default for $name {
            fn default() -> Self {
                Self {
                    block_time_ms: default_block_time(),
                    consensus: Consensus::default(),
                    resources: default_resources(),
                }
            }
        }

        fn default_block_time() -> u64 {
            $block_ms
        }

        fn default_resources() -> ChainResources {
            ChainResources {
                requests: ResourceAmounts {
                    cpu: $req_cpu.into(),
                    memory: $req_mem.into(),
                },
                limits: ResourceAmounts {
                    cpu: $lim_cpu.into(),
                    memory: $lim_mem.into(),
                },
            }
        }
    };
}

mod alpha_spec {
    use super::*;
    chain_spec!(AlphaChainSpec, "Alpha", 15_000, "250m", "512Mi", "2", "2Gi");
}
mod delta_spec {
    use super::*;
    chain_spec!(DeltaChainSpec, "Delta", 3_000, "500m", "1Gi", "4", "4Gi");
}
pub use alpha_spec::AlphaChainSpec;
pub use delta_spec::DeltaChainSpec;

/// Genesis accounts and balances (the validator set comes from the generated keys).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GenesisSettings {
    /// Number of funded accounts (0 to 5000; the genesis must fit a 1 MiB ConfigMap:
    /// about 4,000 with one asset and sAX, more without sAX; a genesis that does not
    /// fit is refused, naming what to lower).
    /// Their ML-DSA-44 keys go to the `<network>-accounts` Secret for load generators.
    #[serde(default = "default_accounts")]
    #[x_kube(validation = Rule::new("self <= 5000").message("genesis.accounts must be at most 5000 (the genesis must fit in a 1 MiB ConfigMap)"))]
    pub accounts: u32,
    /// Derive account keys from this public seed (reproducible benchmarks: anyone who
    /// knows it holds the keys); when unset, from a secret 256-bit random seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts_seed: Option<u64>,
    /// Initial balance of every account in each funded asset.
    #[serde(default = "default_balance")]
    pub balance: u64,
    /// sAX (Alpha's native asset, lockable for stake and voting weight on Delta) of
    /// every account; 0 allocates none (then nobody can lock or vote).
    #[serde(default = "default_sax")]
    pub sax: u64,
    /// Fund assets 0..assets (asset 0 is the native fee asset); 1 to 16.
    #[serde(default = "default_assets")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 16").message("genesis.assets must be between 1 and 16"))]
    pub assets: u32,
    /// Stake of every genesis validator (equal stakes; greater than 0), and the sAX the
    /// operator locks from a genesis account as the stake of each validator it adds
    /// when `validators` grows (so `sax` must be at least this to grow).
    #[serde(default = "default_stake")]
    #[x_kube(validation = Rule::new("self > 0").message("genesis.stake must be greater than 0"))]
    pub stake: u64,
    /// Benchmark mode: accept unsigned transactions. Reports of such networks say "unsigned".
    #[serde(default)]
    pub allow_unsigned_transactions: bool,
}

impl Default for GenesisSettings {
    fn default() -> Self {
        Self {
            accounts: default_accounts(),
            accounts_seed: None,
            balance: default_balance(),
            sax: default_sax(),
            assets: default_assets(),
            stake: default_stake(),
            allow_unsigned_transactions: false,
        }
    }
}

/// What happens to a PVC when its pod is deleted for good.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RetentionPolicy {
    /// Keep the volume (its data survives).
    Retain,
    /// Delete the volume with the pod.
    Delete,
}

impl RetentionPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            RetentionPolicy::Retain => "Retain",
            RetentionPolicy::Delete => "Delete",
        }
    }
}

/// Persistent storage of each validator.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Volume size, a Kubernetes quantity such as `10Gi`.
    #[serde(default = "default_storage_size")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("self.matches('^[0-9]+(\\\\.[0-9]+)?(k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$')").message("storage.size must be a Kubernetes quantity such as 10Gi"))]
    pub size: String,
    /// StorageClass of the volumes; the cluster default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// PVC retention when the network is deleted.
    #[serde(default = "retention_delete")]
    pub when_deleted: RetentionPolicy,
    /// PVC retention when validators are removed by scaling down.
    #[serde(default = "retention_retain")]
    pub when_scaled: RetentionPolicy,
}

impl Default for StorageSpec {
    fn default() -> Self {
        Self {
            size: default_storage_size(),
            storage_class_name: None,
            when_deleted: retention_delete(),
            when_scaled: retention_retain(),
        }
    }
}

/// Log output format of the node.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line (for log pipelines).
    #[default]
    Json,
    /// Human-readable text.
    Text,
}

/// When the node's database syncs writes to disk.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum SyncPolicy {
    /// fsync the write-ahead log for every sealed block (durable; the default).
    #[default]
    EveryBatch,
    /// Leave flushing to the OS (faster, loses recent blocks on power loss).
    OsBuffered,
}

/// Node settings, written to the `<network>-config` ConfigMap as `config.json`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeSettings {
    /// `tracing` filter, e.g. `info` or `info,dualchain_consensus=debug`.
    #[serde(default = "default_log_level")]
    #[schemars(length(max = 256))]
    #[x_kube(validation = Rule::new("self.size() > 0 && self.size() <= 256").message("node.logLevel must be 1 to 256 characters"))]
    pub log_level: String,
    /// Log format.
    #[serde(default)]
    pub log_format: LogFormat,
    /// Take a state snapshot every this many blocks (0 disables automatic snapshots).
    #[serde(default = "default_snapshot_interval")]
    pub snapshot_interval_blocks: u64,
    /// Database sync policy.
    #[serde(default)]
    pub sync_policy: SyncPolicy,
    /// Mempool capacity per chain in transactions (at least 1).
    #[serde(default = "default_mempool")]
    #[x_kube(validation = Rule::new("self >= 1").message("node.mempoolCapacity must be at least 1"))]
    pub mempool_capacity: u64,
}

impl Default for NodeSettings {
    fn default() -> Self {
        Self {
            log_level: default_log_level(),
            log_format: LogFormat::default(),
            snapshot_interval_blocks: default_snapshot_interval(),
            sync_policy: SyncPolicy::default(),
            mempool_capacity: default_mempool(),
        }
    }
}

/// Prometheus Operator integration.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ServiceMonitorSpec {
    /// Create a `monitoring.coreos.com/v1` ServiceMonitor for the validators' metrics.
    #[serde(default)]
    pub enabled: bool,
    /// Scrape interval, e.g. `30s` or `1m`; Prometheus' default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    #[x_kube(validation = Rule::new("self.matches('^[0-9]+(ms|s|m|h)$')").message("serviceMonitor.interval must be a duration such as 30s or 1m"))]
    pub interval: Option<String>,
    /// Extra labels on the ServiceMonitor (e.g. the `release` label Prometheus selects on).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl Default for NetworkTemplate {
    fn default() -> Self {
        Self {
            image: default_image(),
            image_pull_policy: PullPolicy::default(),
            alpha: AlphaChainSpec::default(),
            delta: DeltaChainSpec::default(),
            epoch_length_alpha_blocks: default_epoch_length(),
            genesis: GenesisSettings::default(),
            storage: StorageSpec::default(),
            node: NodeSettings::default(),
            service_monitor: ServiceMonitorSpec::default(),
            node_selector: BTreeMap::new(),
        }
    }
}

impl Default for DualChainNetworkSpec {
    fn default() -> Self {
        Self {
            validators: default_validators(),
            template: NetworkTemplate::default(),
        }
    }
}

/// Observed state of a network, written by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DualChainNetworkStatus {
    /// `Pending`, `Provisioning`, `Running`, `Degraded` or `Failed`.
    #[serde(default)]
    pub phase: String,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Desired number of validators.
    #[serde(default)]
    pub validators: u32,
    /// Validator pods that are Ready (both chain containers pass their gRPC readiness probe).
    #[serde(default)]
    pub ready_validators: u32,
    /// `ready/desired`, for `kubectl get`.
    #[serde(default)]
    pub ready: String,
    /// How many validators may fail without stopping the network, ⌊(n-1)/3⌋ (0 below 4 validators).
    #[serde(default)]
    pub fault_tolerance: u32,
    /// Validators needed for a certificate (n - f).
    #[serde(default)]
    pub quorum: u32,
    /// Ready, Progressing, Degraded, FaultTolerant and, once a validator answered the
    /// status probe, Reconfiguring (validators that left the set, set changes pending
    /// for the next boundary, or an epoch transition in progress) and Recovering
    /// (validators filling an empty volume from a peer's snapshot, or catching up by
    /// block sync).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Alpha chain progress read from the validators' gRPC status.
    #[serde(default)]
    pub alpha: ChainProgress,
    /// Delta chain progress read from the validators' gRPC status.
    #[serde(default)]
    pub delta: ChainProgress,
    /// BLAKE3 digest of the genesis (hex), the network's identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub genesis_hash: Option<String>,
    /// Digest of the validators' pod templates; a change means they are being rolled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_hash: Option<String>,
    /// Partition of the current roll: validators with a lower index still run the old template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_partition: Option<u32>,
    /// Validators whose status endpoint did not answer at the last probe (at most 20 listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreachable_validators: Vec<String>,
    /// The validator set as Alpha runs it, read from a member at the last probe
    /// (absent until one answered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validator_set: Option<ValidatorSetStatus>,
    /// The operator's own set-change requests still in progress (one per validator
    /// joining or leaving because `validators` changed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set_changes: Vec<SetChangeProgress>,
}

/// The validator set of Alpha's current epoch and the changes pending for its next
/// boundary. Validators are named by pod when they are this network's, else by the
/// first 16 hex digits of their key id.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidatorSetStatus {
    /// The epoch Alpha runs.
    pub epoch: u64,
    /// Validators in its set.
    pub size: u32,
    /// The members (at most 200, the set's limit).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
    /// Joins Alpha holds for the next boundary.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub joining: Vec<String>,
    /// Leaves Alpha holds for the next boundary.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leaving: Vec<String>,
}

/// One set-change request the operator is carrying out, and where it stands: the
/// operator's memory across reconciles (a lock is made once, a request is signed for
/// one epoch and sent again in the next if that one ended without it).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetChangeProgress {
    /// The validator's pod.
    pub validator: String,
    /// `Join` or `Leave`.
    pub change: String,
    /// A join's stake: the sAX lock the operator made for it (hex id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<String>,
    /// Alpha's epoch when the lock was sent (a lock still absent an epoch later is sent again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_sent_in_epoch: Option<u64>,
    /// The epoch the last request was signed for (it is valid only in that epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_for_epoch: Option<u64>,
    /// Where it stands, or why the last step failed.
    #[serde(default)]
    pub state: String,
}

fn default_validators() -> u32 {
    4
}
fn default_image() -> String {
    crate::DEFAULT_IMAGE.to_string()
}
fn default_epoch_length() -> u64 {
    240
}
fn default_accounts() -> u32 {
    100
}
fn default_balance() -> u64 {
    1_000_000_000_000
}
fn default_sax() -> u64 {
    1_000_000
}
fn default_assets() -> u32 {
    1
}
fn default_stake() -> u64 {
    100
}
fn default_storage_size() -> String {
    "10Gi".into()
}
fn retention_delete() -> RetentionPolicy {
    RetentionPolicy::Delete
}
fn retention_retain() -> RetentionPolicy {
    RetentionPolicy::Retain
}
fn default_log_level() -> String {
    "info".into()
}
fn default_snapshot_interval() -> u64 {
    1000
}
fn default_mempool() -> u64 {
    100_000
}
