//! `dualchain run` configuration: flags, environment and a config file, merged.
//!
//! Precedence: a flag (or its `DUALCHAIN_*` environment variable, which clap reads
//! into the same field) beats the config file, which beats the built-in default.
//! The config file is TOML, or JSON when its name ends in `.json` (the operator
//! mounts `config.json`); keys are camelCase in both, and unknown keys are refused so
//! a typo does not silently fall back to a default.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use dualchain_api::{AdminCredential, AdminTls};
use dualchain_core::types::ChainId;
use dualchain_execution::ExecutionMode;
use dualchain_runtime::admission_gate::{DEFAULT_MAX_WAIT_MS, MAX_WAIT_RANGE_MS};
use dualchain_runtime::state_sync::Bootstrap;
use dualchain_storage::SyncPolicy;
use serde::Deserialize;

/// The largest accepted `--verify-budget-per-sec`.
pub const MAX_VERIFY_BUDGET_PER_SEC: u32 = 10_000_000;

/// Which chains this process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChainSelection {
    Alpha,
    Delta,
    Both,
}

impl ChainSelection {
    pub fn chains(self) -> Vec<ChainId> {
        match self {
            ChainSelection::Alpha => vec![ChainId::Alpha],
            ChainSelection::Delta => vec![ChainId::Delta],
            ChainSelection::Both => vec![ChainId::Alpha, ChainId::Delta],
        }
    }
}

/// How blocks reach the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SyncPolicyArg {
    /// fsync the write-ahead log with every block (no committed block is ever lost).
    EveryBatch,
    /// Leave flushing to the OS (faster; a machine crash may lose the newest blocks,
    /// which the node then re-fetches from its peers). What the validator signed
    /// (its last proposed round and vertex) is fsync'ed anyway.
    OsBuffered,
}

impl From<SyncPolicyArg> for SyncPolicy {
    fn from(value: SyncPolicyArg) -> Self {
        match value {
            SyncPolicyArg::EveryBatch => SyncPolicy::EveryBatch,
            SyncPolicyArg::OsBuffered => SyncPolicy::OsBuffered,
        }
    }
}

/// Execution mode of the block executor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionModeArg {
    Sequential,
    Parallel,
    Shadow,
}

impl From<ExecutionModeArg> for ExecutionMode {
    fn from(value: ExecutionModeArg) -> Self {
        match value {
            ExecutionModeArg::Sequential => ExecutionMode::Sequential,
            ExecutionModeArg::Parallel => ExecutionMode::Parallel,
            ExecutionModeArg::Shadow => ExecutionMode::Shadow,
        }
    }
}

/// `dualchain run`: one validator, one or both chains.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct RunArgs {
    /// Config file (TOML, or JSON if it ends in .json); flags and env override it.
    #[arg(long, value_name = "FILE", env = "DUALCHAIN_CONFIG")]
    pub config: Option<PathBuf>,
    /// Chains to run in this process [default: both].
    #[arg(long, value_enum, env = "DUALCHAIN_CHAIN")]
    pub chain: Option<ChainSelection>,
    /// Genesis file (JSON, from `dualchain genesis`).
    #[arg(long, value_name = "FILE", env = "DUALCHAIN_GENESIS")]
    pub genesis: Option<PathBuf>,
    /// This validator's key directory (from `dualchain keygen --kind validator`).
    #[arg(long, value_name = "DIR", env = "DUALCHAIN_KEY_DIR")]
    pub key_dir: Option<PathBuf>,
    /// Database directory: the chain's own directory with one chain, else DIR/alpha and DIR/delta.
    #[arg(long, value_name = "DIR", env = "DUALCHAIN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Peers file: `[{"index","name","host","alphaP2pPort","deltaP2pPort",...}]`.
    #[arg(long, value_name = "FILE", env = "DUALCHAIN_PEERS")]
    pub peers: Option<PathBuf>,
    /// File holding the bearer token `dualchain.v1.Admin` requires (without it or a digest
    /// file the node serves no admin API). Admin has its own listener, never the API port.
    #[arg(long, value_name = "FILE", env = "DUALCHAIN_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// File holding the BLAKE3 digest (64 hex digits) of the bearer token `dualchain.v1.Admin`
    /// requires: the node checks tokens without holding one. Excludes --admin-token-file.
    #[arg(long, value_name = "FILE", env = "DUALCHAIN_ADMIN_TOKEN_DIGEST_FILE")]
    pub admin_token_digest_file: Option<PathBuf>,
    /// Admin gRPC listen address of the single chain run by this process.
    #[arg(long, value_name = "ADDR", env = "DUALCHAIN_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,
    /// Alpha admin gRPC listen address, used when an admin credential is given [default:
    /// 127.0.0.1:<genesis alpha api port + 1, 3031>]; not a loopback address only with
    /// --admin-tls-cert/--admin-tls-key.
    #[arg(long, value_name = "ADDR", env = "DUALCHAIN_ALPHA_ADMIN_LISTEN")]
    pub alpha_admin_listen: Option<SocketAddr>,
    /// Delta admin gRPC listen address [default: 127.0.0.1:<genesis delta api port + 1, 4031>].
    #[arg(long, value_name = "ADDR", env = "DUALCHAIN_DELTA_ADMIN_LISTEN")]
    pub delta_admin_listen: Option<SocketAddr>,
    /// PEM certificate the admin listeners present (TLS); with --admin-tls-key.
    #[arg(long, value_name = "FILE", env = "DUALCHAIN_ADMIN_TLS_CERT")]
    pub admin_tls_cert: Option<PathBuf>,
    /// PEM private key of --admin-tls-cert (readable by its owner only).
    #[arg(long, value_name = "FILE", env = "DUALCHAIN_ADMIN_TLS_KEY")]
    pub admin_tls_key: Option<PathBuf>,
    /// QUIC listen address of the single chain run by this process.
    #[arg(long, value_name = "ADDR", env = "DUALCHAIN_P2P_LISTEN")]
    pub p2p_listen: Option<SocketAddr>,
    /// gRPC listen address of the single chain run by this process.
    #[arg(long, value_name = "ADDR", env = "DUALCHAIN_API_LISTEN")]
    pub api_listen: Option<SocketAddr>,
    /// Alpha QUIC listen address [default: 0.0.0.0:<genesis alpha p2p port, 4130>].
    #[arg(long, value_name = "ADDR", env = "DUALCHAIN_ALPHA_P2P_LISTEN")]
    pub alpha_p2p_listen: Option<SocketAddr>,
    /// Alpha gRPC listen address [default: 0.0.0.0:<genesis alpha api port, 3030>].
    #[arg(long, value_name = "ADDR", env = "DUALCHAIN_ALPHA_API_LISTEN")]
    pub alpha_api_listen: Option<SocketAddr>,
    /// Delta QUIC listen address [default: 0.0.0.0:<genesis delta p2p port, 4131>].
    #[arg(long, value_name = "ADDR", env = "DUALCHAIN_DELTA_P2P_LISTEN")]
    pub delta_p2p_listen: Option<SocketAddr>,
    /// Delta gRPC listen address [default: 0.0.0.0:<genesis delta api port, 4030>].
    #[arg(long, value_name = "ADDR", env = "DUALCHAIN_DELTA_API_LISTEN")]
    pub delta_api_listen: Option<SocketAddr>,
    /// Prometheus listen address [default: 0.0.0.0:9100 (9101 for a Delta-only process)].
    #[arg(long, value_name = "ADDR", env = "DUALCHAIN_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// gRPC endpoint of the other chain's process in the same pod (timing-drift health).
    #[arg(long, value_name = "URL", env = "DUALCHAIN_PEER_CHAIN_API")]
    pub peer_chain_api: Option<String>,
    /// Durability of block writes [default: everyBatch].
    #[arg(long, value_enum, env = "DUALCHAIN_SYNC_POLICY")]
    pub sync_policy: Option<SyncPolicyArg>,
    /// Mempool capacity per chain, in transactions [default: 500000].
    #[arg(long, value_name = "N", env = "DUALCHAIN_MEMPOOL_CAPACITY")]
    pub mempool_capacity: Option<usize>,
    /// Export a state snapshot every N blocks (0 = never) [default: 1000].
    #[arg(long, value_name = "N", env = "DUALCHAIN_SNAPSHOT_INTERVAL_BLOCKS")]
    pub snapshot_interval_blocks: Option<u64>,
    /// How a chain whose data directory is empty starts: `auto` (from a peer's
    /// snapshot when one is more than the consensus window ahead and the genesis is
    /// older than that window, else from genesis), `peers` (from a peer's snapshot,
    /// verified against a certificate of the epoch chain from genesis; the chain
    /// retries until one verifies), `genesis` (from genesis, catching up by block
    /// sync), or a snapshot FILE of the chain (verified the same way; repeat, or
    /// separate with commas, for both chains) [default: auto].
    #[arg(
        long,
        value_name = "auto|peers|genesis|FILE",
        env = "DUALCHAIN_BOOTSTRAP_FROM",
        value_delimiter = ','
    )]
    pub bootstrap_from: Vec<String>,
    /// Run with a validator key that is not in the genesis set: a validator joining a
    /// running network. Its chains follow by block sync (peers admit it once Alpha
    /// holds its join request, `dualchain validator join`) and it votes from the
    /// first epoch whose set holds it. Without it such a key is refused [default: false].
    #[arg(long, env = "DUALCHAIN_JOIN", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub join: Option<bool>,
    /// Block executor mode [default: parallel].
    #[arg(long, value_enum, env = "DUALCHAIN_EXECUTION_MODE")]
    pub execution_mode: Option<ExecutionModeArg>,
    /// Seconds of consensus rounds each chain keeps for its peers (10 to 86400); a
    /// chain further behind than this catches up by block sync [default: 600].
    #[arg(long, value_name = "SECS", env = "DUALCHAIN_CONSENSUS_WINDOW_SECS")]
    pub consensus_window_secs: Option<u64>,
    /// The longest a newly admitted transaction should wait to be ordered, in ms
    /// (100 to 60000): beyond what the chain drains in this time, submissions are
    /// refused OVERLOADED with a retry hint, before their signature is checked
    /// [default: 2000].
    #[arg(long, value_name = "MS", env = "DUALCHAIN_ADMISSION_MAX_WAIT_MS")]
    pub admission_max_wait_ms: Option<u64>,
    /// Transaction signatures each chain's API verifies per second at most (1 to
    /// 10000000); beyond it, submissions are refused OVERLOADED [default: measured
    /// at start, half of this machine's cores' worth of ML-DSA-44 verifications].
    #[arg(long, value_name = "N", env = "DUALCHAIN_VERIFY_BUDGET_PER_SEC")]
    pub verify_budget_per_sec: Option<u32>,
    /// Most gRPC connections each chain's API keeps open [default: 4096, fewer if the
    /// open-file limit leaves less; a configured value the limit cannot hold is refused].
    #[arg(long, value_name = "N", env = "DUALCHAIN_API_MAX_CONNECTIONS")]
    pub api_max_connections: Option<usize>,
    /// Most gRPC connections from one client address, per chain [default: 512].
    #[arg(long, value_name = "N", env = "DUALCHAIN_API_MAX_CONNECTIONS_PER_IP")]
    pub api_max_connections_per_ip: Option<usize>,
}

/// The config file. Every key is optional; `logLevel`/`logFormat` are read by `main`
/// before logging starts.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileConfig {
    pub chain: Option<ChainSelection>,
    pub genesis: Option<PathBuf>,
    pub key_dir: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub peers: Option<PathBuf>,
    pub admin_token_file: Option<PathBuf>,
    pub admin_token_digest_file: Option<PathBuf>,
    pub admin_listen: Option<SocketAddr>,
    pub alpha_admin_listen: Option<SocketAddr>,
    pub delta_admin_listen: Option<SocketAddr>,
    pub admin_tls_cert: Option<PathBuf>,
    pub admin_tls_key: Option<PathBuf>,
    pub p2p_listen: Option<SocketAddr>,
    pub api_listen: Option<SocketAddr>,
    pub alpha_p2p_listen: Option<SocketAddr>,
    pub alpha_api_listen: Option<SocketAddr>,
    pub delta_p2p_listen: Option<SocketAddr>,
    pub delta_api_listen: Option<SocketAddr>,
    pub metrics_listen: Option<SocketAddr>,
    pub peer_chain_api: Option<String>,
    pub sync_policy: Option<SyncPolicyArg>,
    pub mempool_capacity: Option<usize>,
    pub snapshot_interval_blocks: Option<u64>,
    pub bootstrap_from: Option<Vec<String>>,
    pub join: Option<bool>,
    pub execution_mode: Option<ExecutionModeArg>,
    pub consensus_window_secs: Option<u64>,
    pub admission_max_wait_ms: Option<u64>,
    pub verify_budget_per_sec: Option<u32>,
    pub api_max_connections: Option<usize>,
    pub api_max_connections_per_ip: Option<usize>,
    pub log_level: Option<String>,
    pub log_format: Option<String>,
}

impl FileConfig {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        let parsed = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(anyhow::Error::from)
        } else {
            toml::from_str(&text).map_err(anyhow::Error::from)
        };
        parsed.with_context(|| format!("invalid config file {}", path.display()))
    }
}

/// Where the node's `Admin` credential comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminCredentialFile {
    /// `--admin-token-file` / `adminTokenFile`: the token itself.
    Token(PathBuf),
    /// `--admin-token-digest-file` / `adminTokenDigestFile`: the BLAKE3 digest of the
    /// token's bytes, 64 hex digits (what the operator gives each validator).
    Digest(PathBuf),
}

/// Listen addresses of one chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainListen {
    pub p2p: Option<SocketAddr>,
    pub api: Option<SocketAddr>,
    /// The admin listener (used only with an admin credential).
    pub admin: Option<SocketAddr>,
}

/// The certificate and key files the admin listeners present.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminTlsFiles {
    pub certificate: PathBuf,
    pub private_key: PathBuf,
}

/// The merged configuration of `dualchain run`.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub chains: ChainSelection,
    pub genesis: PathBuf,
    pub key_dir: PathBuf,
    pub data_dir: PathBuf,
    pub peers: Option<PathBuf>,
    /// The `Admin` credential's source: `--admin-token-file` or
    /// `--admin-token-digest-file` (at most one), read by [`read_admin_token`].
    pub admin_credential: Option<AdminCredentialFile>,
    /// `--admin-tls-cert`/`--admin-tls-key`: the admin listeners speak TLS.
    pub admin_tls: Option<AdminTlsFiles>,
    pub alpha: ChainListen,
    pub delta: ChainListen,
    pub metrics_listen: SocketAddr,
    pub peer_chain_api: Option<String>,
    pub sync_policy: SyncPolicy,
    pub mempool_capacity: usize,
    pub snapshot_interval_blocks: u64,
    /// How each chain this process runs starts from an empty data directory.
    pub bootstrap: BTreeMap<ChainId, Bootstrap>,
    /// A key outside the genesis set is accepted (see `--join`).
    pub join: bool,
    pub execution_mode: ExecutionMode,
    /// Milliseconds of consensus rounds kept for peers (see `--consensus-window-secs`).
    pub consensus_window_ms: u64,
    /// See `--admission-max-wait-ms`.
    pub admission_max_wait_ms: u64,
    /// See `--verify-budget-per-sec` (`None`: measured at start).
    pub verify_budget_per_sec: Option<u32>,
    /// API connection caps as configured (`None`: fit to the open-file limit).
    pub api_max_connections: Option<usize>,
    pub api_max_connections_per_ip: Option<usize>,
}

/// `--bootstrap-from` values to each chain's [`Bootstrap`]: at most one keyword (for
/// the chains without a file) and at most one snapshot file per chain, each of a
/// chain this process runs (read from the file's header).
fn resolve_bootstrap(
    values: Vec<String>,
    chains: &[ChainId],
) -> anyhow::Result<BTreeMap<ChainId, Bootstrap>> {
    let mut keyword: Option<Bootstrap> = None;
    let mut files = BTreeMap::new();
    for value in values {
        let mode = match value.as_str() {
            "auto" => Bootstrap::Auto,
            "peers" => Bootstrap::Peers,
            "genesis" => Bootstrap::Genesis,
            "" => bail!("--bootstrap-from: an empty value (use auto, peers, genesis or a file)"),
            path => {
                let path = PathBuf::from(path);
                let info = dualchain_store::describe_snapshot(&path).with_context(|| {
                    format!(
                        "--bootstrap-from {}: not auto, peers or genesis, and not a readable snapshot file",
                        path.display()
                    )
                })?;
                let chain = ChainId::from_tag(info.chain)
                    .with_context(|| format!("{}: unknown chain {}", path.display(), info.chain))?;
                if !chains.contains(&chain) {
                    bail!(
                        "--bootstrap-from {}: a snapshot of the {chain} chain, which this process does not run",
                        path.display()
                    );
                }
                if files.insert(chain, Bootstrap::File(path)).is_some() {
                    bail!("--bootstrap-from: two snapshot files of the {chain} chain");
                }
                continue;
            }
        };
        if keyword.replace(mode).is_some() {
            bail!("--bootstrap-from: give at most one of auto, peers and genesis");
        }
    }
    let keyword = keyword.unwrap_or_default();
    Ok(chains
        .iter()
        .map(|&chain| {
            let mode = files.remove(&chain).unwrap_or_else(|| keyword.clone());
            (chain, mode)
        })
        .collect())
}

impl NodeConfig {
    /// Merges flags over the file over defaults and checks the result.
    pub fn resolve(args: RunArgs, file: FileConfig) -> anyhow::Result<Self> {
        let chains = args.chain.or(file.chain).unwrap_or(ChainSelection::Both);
        let required = |flag: Option<PathBuf>, from_file: Option<PathBuf>, name: &str| {
            flag.or(from_file)
                .with_context(|| format!("--{name} is required (flag, env or config file)"))
        };
        let p2p = args.p2p_listen.or(file.p2p_listen);
        let api = args.api_listen.or(file.api_listen);
        let admin = args.admin_listen.or(file.admin_listen);
        if chains == ChainSelection::Both && (p2p.is_some() || api.is_some() || admin.is_some()) {
            bail!(
                "--p2p-listen/--api-listen/--admin-listen name the single chain of a one-chain \
                 process; with --chain both use --alpha-p2p-listen, --delta-api-listen, ..."
            );
        }
        let consensus_window_secs = args
            .consensus_window_secs
            .or(file.consensus_window_secs)
            .unwrap_or(600);
        if !(10..=86_400).contains(&consensus_window_secs) {
            bail!(
                "consensusWindowSecs must be 10 to 86400 (seconds of consensus rounds kept for \
                 peers), not {consensus_window_secs}"
            );
        }
        let admission_max_wait_ms = args
            .admission_max_wait_ms
            .or(file.admission_max_wait_ms)
            .unwrap_or(DEFAULT_MAX_WAIT_MS);
        if !MAX_WAIT_RANGE_MS.contains(&admission_max_wait_ms) {
            bail!(
                "admissionMaxWaitMs must be {} to {} (milliseconds a new transaction may wait \
                 to be ordered), not {admission_max_wait_ms}",
                MAX_WAIT_RANGE_MS.start(),
                MAX_WAIT_RANGE_MS.end()
            );
        }
        let verify_budget_per_sec = args.verify_budget_per_sec.or(file.verify_budget_per_sec);
        if let Some(budget) = verify_budget_per_sec
            && !(1..=MAX_VERIFY_BUDGET_PER_SEC).contains(&budget)
        {
            bail!(
                "verifyBudgetPerSec must be 1 to {MAX_VERIFY_BUDGET_PER_SEC} (signature \
                 verifications per second per chain), not {budget}; leave it unset to measure \
                 this machine"
            );
        }
        let single = |chain: ChainSelection| ChainListen {
            p2p: if chains == chain { p2p } else { None },
            api: if chains == chain { api } else { None },
            admin: if chains == chain { admin } else { None },
        };
        let alpha_single = single(ChainSelection::Alpha);
        let delta_single = single(ChainSelection::Delta);
        let alpha = ChainListen {
            p2p: args
                .alpha_p2p_listen
                .or(file.alpha_p2p_listen)
                .or(alpha_single.p2p),
            api: args
                .alpha_api_listen
                .or(file.alpha_api_listen)
                .or(alpha_single.api),
            admin: args
                .alpha_admin_listen
                .or(file.alpha_admin_listen)
                .or(alpha_single.admin),
        };
        let delta = ChainListen {
            p2p: args
                .delta_p2p_listen
                .or(file.delta_p2p_listen)
                .or(delta_single.p2p),
            api: args
                .delta_api_listen
                .or(file.delta_api_listen)
                .or(delta_single.api),
            admin: args
                .delta_admin_listen
                .or(file.delta_admin_listen)
                .or(delta_single.admin),
        };
        let default_metrics_port = if chains == ChainSelection::Delta {
            9101
        } else {
            9100
        };
        let mempool_capacity = args
            .mempool_capacity
            .or(file.mempool_capacity)
            .unwrap_or(500_000);
        if mempool_capacity == 0 {
            bail!("mempool capacity must be at least 1 transaction");
        }
        let admin_credential = match (
            args.admin_token_file.or(file.admin_token_file),
            args.admin_token_digest_file
                .or(file.admin_token_digest_file),
        ) {
            (Some(_), Some(_)) => bail!(
                "--admin-token-file and --admin-token-digest-file (adminTokenFile, \
                 adminTokenDigestFile) exclude each other: give the node its admin token or \
                 the token's digest"
            ),
            (Some(token), None) => Some(AdminCredentialFile::Token(token)),
            (None, Some(digest)) => Some(AdminCredentialFile::Digest(digest)),
            (None, None) => None,
        };
        let admin_tls = match (
            args.admin_tls_cert.or(file.admin_tls_cert),
            args.admin_tls_key.or(file.admin_tls_key),
        ) {
            (Some(certificate), Some(private_key)) => Some(AdminTlsFiles {
                certificate,
                private_key,
            }),
            (None, None) => None,
            _ => bail!(
                "--admin-tls-cert and --admin-tls-key (adminTlsCert, adminTlsKey) come together: \
                 the admin listeners need both the certificate and its key"
            ),
        };
        let admin_listen_given = alpha.admin.is_some() || delta.admin.is_some();
        if admin_credential.is_none() && (admin_tls.is_some() || admin_listen_given) {
            bail!(
                "an admin listener or admin TLS is configured but no admin credential \
                 (--admin-token-file or --admin-token-digest-file): nobody could call it"
            );
        }
        for addr in [alpha.admin, delta.admin].into_iter().flatten() {
            if let Err(why) = dualchain_api::check_admin_placement(addr, admin_tls.is_some()) {
                bail!(
                    "{why}; give it --admin-tls-cert and --admin-tls-key (adminTlsCert, adminTlsKey)"
                );
            }
        }
        Ok(Self {
            chains,
            genesis: required(args.genesis, file.genesis, "genesis")?,
            key_dir: required(args.key_dir, file.key_dir, "key-dir")?,
            data_dir: required(args.data_dir, file.data_dir, "data-dir")?,
            peers: args.peers.or(file.peers),
            admin_credential,
            admin_tls,
            alpha,
            delta,
            metrics_listen: args
                .metrics_listen
                .or(file.metrics_listen)
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], default_metrics_port))),
            peer_chain_api: args.peer_chain_api.or(file.peer_chain_api),
            sync_policy: args
                .sync_policy
                .or(file.sync_policy)
                .unwrap_or(SyncPolicyArg::EveryBatch)
                .into(),
            mempool_capacity,
            snapshot_interval_blocks: args
                .snapshot_interval_blocks
                .or(file.snapshot_interval_blocks)
                .unwrap_or(1000),
            bootstrap: resolve_bootstrap(
                if args.bootstrap_from.is_empty() {
                    file.bootstrap_from.unwrap_or_default()
                } else {
                    args.bootstrap_from
                },
                &chains.chains(),
            )?,
            join: args.join.or(file.join).unwrap_or(false),
            execution_mode: args
                .execution_mode
                .or(file.execution_mode)
                .unwrap_or(ExecutionModeArg::Parallel)
                .into(),
            consensus_window_ms: consensus_window_secs * 1_000,
            admission_max_wait_ms,
            verify_budget_per_sec,
            api_max_connections: args.api_max_connections.or(file.api_max_connections),
            api_max_connections_per_ip: args
                .api_max_connections_per_ip
                .or(file.api_max_connections_per_ip),
        })
    }

    pub fn listen(&self, chain: ChainId) -> ChainListen {
        match chain {
            ChainId::Alpha => self.alpha,
            ChainId::Delta => self.delta,
        }
    }

    /// The database directory of `chain`.
    pub fn chain_data_dir(&self, chain: ChainId) -> PathBuf {
        match self.chains {
            ChainSelection::Both => self.data_dir.join(chain.to_string().to_lowercase()),
            _ => self.data_dir.clone(),
        }
    }
}

/// Reads the admin listeners' certificate and key (PEM). The key file, like a key
/// seed, must not be readable by other users; its bytes are never logged.
pub fn read_admin_tls(files: &AdminTlsFiles) -> anyhow::Result<AdminTls> {
    let certificate_pem = std::fs::read(&files.certificate).with_context(|| {
        format!(
            "reading the admin TLS certificate {}",
            files.certificate.display()
        )
    })?;
    let key = dualchain_core::keyfile::read_secret(&files.private_key)
        .context("reading the admin TLS key")?;
    Ok(AdminTls {
        certificate_pem,
        private_key_pem: key.as_bytes().to_vec(),
    })
}

/// Reads the node's `Admin` credential: a token file holds one line of at least 16
/// printable characters; a digest file one line of 64 hex digits (the BLAKE3 digest of
/// the token). Neither is ever logged.
pub fn read_admin_token(source: &AdminCredentialFile) -> anyhow::Result<AdminCredential> {
    match source {
        AdminCredentialFile::Token(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading admin token file {}", path.display()))?;
            let token = text.trim();
            if token.len() < 16 || !token.bytes().all(|b| b.is_ascii_graphic()) {
                bail!(
                    "admin token in {} must be at least 16 printable ASCII characters without spaces",
                    path.display()
                );
            }
            Ok(AdminCredential::Token(token.to_string()))
        }
        AdminCredentialFile::Digest(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading admin token digest file {}", path.display()))?;
            let mut digest = [0u8; 32];
            hex::decode_to_slice(text.trim(), &mut digest).map_err(|_| {
                anyhow::anyhow!(
                    "admin token digest in {} must be the token's BLAKE3 digest as 64 hex digits",
                    path.display()
                )
            })?;
            Ok(AdminCredential::Blake3Digest(digest))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base_args() -> RunArgs {
        RunArgs {
            genesis: Some("g.json".into()),
            key_dir: Some("k".into()),
            data_dir: Some("d".into()),
            ..RunArgs::default()
        }
    }

    #[test]
    fn flags_override_the_file_and_defaults_fill_the_rest() {
        let file: FileConfig = toml::from_str(
            "mempoolCapacity = 10\nsnapshotIntervalBlocks = 7\nsyncPolicy = \"osBuffered\"",
        )
        .unwrap();
        let mut args = base_args();
        args.mempool_capacity = Some(20);
        let cfg = NodeConfig::resolve(args, file).unwrap();
        assert_eq!(cfg.mempool_capacity, 20);
        assert_eq!(cfg.snapshot_interval_blocks, 7);
        assert_eq!(cfg.sync_policy, SyncPolicy::OsBuffered);
        assert_eq!(cfg.chains, ChainSelection::Both);
        assert_eq!(cfg.metrics_listen.port(), 9100);
        assert_eq!(
            cfg.chain_data_dir(ChainId::Delta),
            PathBuf::from("d").join("delta")
        );
    }

    #[test]
    fn bootstrap_takes_one_keyword_and_one_snapshot_file_per_chain() {
        let resolve = |values: &[&str]| {
            let mut args = base_args();
            args.bootstrap_from = values.iter().map(|v| v.to_string()).collect();
            NodeConfig::resolve(args, FileConfig::default())
        };
        let cfg = resolve(&[]).unwrap();
        assert_eq!(cfg.bootstrap[&ChainId::Alpha], Bootstrap::Auto);
        assert_eq!(cfg.bootstrap[&ChainId::Delta], Bootstrap::Auto);
        let cfg = resolve(&["peers"]).unwrap();
        assert_eq!(cfg.bootstrap[&ChainId::Delta], Bootstrap::Peers);

        // A Delta snapshot file: Delta from it, Alpha by the keyword.
        let dir = tempfile::tempdir().unwrap();
        let engine = dualchain_store::RocksEngine::open(
            dir.path().join("db"),
            &dualchain_store::StoreOptions::default(),
        )
        .unwrap();
        let mut batch = dualchain_storage::WriteBatch::new();
        dualchain_storage::meta::ChainHead {
            chain: ChainId::Delta.tag(),
            height: 3,
            block_digest: [1; 32],
            state_root: dualchain_store::state_root(&engine).unwrap(),
        }
        .put_into(&mut batch);
        dualchain_storage::KvEngine::write(&engine, batch).unwrap();
        let file = dir.path().join("delta.dcsnap");
        dualchain_store::export_snapshot(&engine, &file).unwrap();
        let file_arg = file.to_str().unwrap();
        let cfg = resolve(&["genesis", file_arg]).unwrap();
        assert_eq!(
            cfg.bootstrap[&ChainId::Delta],
            Bootstrap::File(file.clone())
        );
        assert_eq!(cfg.bootstrap[&ChainId::Alpha], Bootstrap::Genesis);

        for (values, expected) in [
            (
                vec!["peers", "genesis"],
                "at most one of auto, peers and genesis",
            ),
            (
                vec![file_arg, file_arg],
                "two snapshot files of the delta chain",
            ),
            (vec!["/nonexistent/snap"], "not a readable snapshot file"),
            (vec![""], "an empty value"),
        ] {
            let err = resolve(&values).unwrap_err();
            assert!(format!("{err:#}").contains(expected), "{values:?}: {err:#}");
        }
        let mut args = base_args();
        args.chain = Some(ChainSelection::Alpha);
        args.bootstrap_from = vec![file_arg.to_string()];
        let err = NodeConfig::resolve(args, FileConfig::default()).unwrap_err();
        assert!(
            err.to_string().contains("which this process does not run"),
            "{err}"
        );
    }

    #[test]
    fn admin_listeners_are_loopback_unless_tls_and_need_a_credential() {
        let with_token = || {
            let mut args = base_args();
            args.admin_token_digest_file = Some("digest".into());
            args
        };
        let cfg = NodeConfig::resolve(with_token(), FileConfig::default()).unwrap();
        assert_eq!(cfg.alpha.admin, None, "the default is chosen at start");
        assert_eq!(cfg.admin_tls, None);

        let file: FileConfig = toml::from_str(
            "alphaAdminListen = \"127.0.0.1:7001\"\ndeltaAdminListen = \"[::1]:7002\"",
        )
        .unwrap();
        let cfg = NodeConfig::resolve(with_token(), file).unwrap();
        assert_eq!(cfg.alpha.admin, Some("127.0.0.1:7001".parse().unwrap()));
        assert_eq!(cfg.delta.admin, Some("[::1]:7002".parse().unwrap()));

        let mut open = with_token();
        open.delta_admin_listen = Some("0.0.0.0:4031".parse().unwrap());
        let err = NodeConfig::resolve(open.clone(), FileConfig::default()).unwrap_err();
        assert!(err.to_string().contains("not a loopback address"), "{err}");
        open.admin_tls_cert = Some("tls.crt".into());
        open.admin_tls_key = Some("tls.key".into());
        let cfg = NodeConfig::resolve(open.clone(), FileConfig::default()).unwrap();
        assert_eq!(
            cfg.admin_tls,
            Some(AdminTlsFiles {
                certificate: "tls.crt".into(),
                private_key: "tls.key".into(),
            })
        );

        open.admin_tls_key = None;
        let err = NodeConfig::resolve(open, FileConfig::default()).unwrap_err();
        assert!(err.to_string().contains("come together"), "{err}");

        let mut no_credential = base_args();
        no_credential.alpha_admin_listen = Some("127.0.0.1:7001".parse().unwrap());
        let err = NodeConfig::resolve(no_credential, FileConfig::default()).unwrap_err();
        assert!(err.to_string().contains("no admin credential"), "{err}");

        let mut both = with_token();
        both.admin_listen = Some("127.0.0.1:7001".parse().unwrap());
        let err = NodeConfig::resolve(both, FileConfig::default()).unwrap_err();
        assert!(err.to_string().contains("--admin-listen"), "{err}");
    }

    #[test]
    fn the_admin_tls_key_must_be_private_to_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let files = AdminTlsFiles {
            certificate: dir.path().join("tls.crt"),
            private_key: dir.path().join("tls.key"),
        };
        std::fs::write(&files.certificate, "CERT").unwrap();
        std::fs::write(&files.private_key, "KEY-SECRET").unwrap();
        std::fs::set_permissions(&files.private_key, std::fs::Permissions::from_mode(0o644))
            .unwrap();
        let err = format!("{:#}", read_admin_tls(&files).unwrap_err());
        assert!(err.contains("admin TLS key"), "{err}");
        assert!(!err.contains("KEY-SECRET"), "{err}");
        std::fs::set_permissions(&files.private_key, std::fs::Permissions::from_mode(0o400))
            .unwrap();
        let tls = read_admin_tls(&files).unwrap();
        assert_eq!(tls.certificate_pem, b"CERT");
        assert_eq!(tls.private_key_pem, b"KEY-SECRET");
    }

    #[test]
    fn the_consensus_window_defaults_to_ten_minutes_and_is_bounded() {
        let cfg = NodeConfig::resolve(base_args(), FileConfig::default()).unwrap();
        assert_eq!(cfg.consensus_window_ms, 600_000);
        let file: FileConfig = toml::from_str("consensusWindowSecs = 30").unwrap();
        let cfg = NodeConfig::resolve(base_args(), file).unwrap();
        assert_eq!(cfg.consensus_window_ms, 30_000);
        for secs in [0, 9, 86_401] {
            let mut args = base_args();
            args.consensus_window_secs = Some(secs);
            let err = NodeConfig::resolve(args, FileConfig::default()).unwrap_err();
            assert!(err.to_string().contains("consensusWindowSecs"), "{err}");
        }
    }

    #[test]
    fn admission_limits_have_defaults_and_bounds() {
        let cfg = NodeConfig::resolve(base_args(), FileConfig::default()).unwrap();
        assert_eq!(cfg.admission_max_wait_ms, 2_000);
        assert_eq!(cfg.verify_budget_per_sec, None);
        let file: FileConfig =
            toml::from_str("admissionMaxWaitMs = 500\nverifyBudgetPerSec = 3000").unwrap();
        let cfg = NodeConfig::resolve(base_args(), file).unwrap();
        assert_eq!(cfg.admission_max_wait_ms, 500);
        assert_eq!(cfg.verify_budget_per_sec, Some(3_000));
        for ms in [0, 99, 60_001] {
            let mut args = base_args();
            args.admission_max_wait_ms = Some(ms);
            let err = NodeConfig::resolve(args, FileConfig::default()).unwrap_err();
            assert!(err.to_string().contains("admissionMaxWaitMs"), "{err}");
        }
        for budget in [0, MAX_VERIFY_BUDGET_PER_SEC + 1] {
            let mut args = base_args();
            args.verify_budget_per_sec = Some(budget);
            let err = NodeConfig::resolve(args, FileConfig::default()).unwrap_err();
            assert!(err.to_string().contains("verifyBudgetPerSec"), "{err}");
        }
    }

    #[test]
    fn operator_json_config_is_accepted_and_typos_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ok = dir.path().join("config.json");
        std::fs::write(
            &ok,
            r#"{"logLevel":"info","logFormat":"json","snapshotIntervalBlocks":100,"syncPolicy":"everyBatch","mempoolCapacity":1000}"#,
        )
        .unwrap();
        let file = FileConfig::load(&ok).unwrap();
        assert_eq!(file.mempool_capacity, Some(1000));
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "mempoolCapacty = 3").unwrap();
        let err = FileConfig::load(&bad).unwrap_err();
        assert!(format!("{err:#}").contains("mempoolCapacty"), "{err:#}");
    }

    #[test]
    fn single_chain_listen_flags_map_to_that_chain() {
        let mut args = base_args();
        args.chain = Some(ChainSelection::Delta);
        args.p2p_listen = Some("127.0.0.1:5000".parse().unwrap());
        let cfg = NodeConfig::resolve(args, FileConfig::default()).unwrap();
        assert_eq!(cfg.delta.p2p, Some("127.0.0.1:5000".parse().unwrap()));
        assert_eq!(cfg.alpha.p2p, None);
        assert_eq!(cfg.metrics_listen.port(), 9101);
        assert_eq!(cfg.chain_data_dir(ChainId::Delta), PathBuf::from("d"));

        let mut both = base_args();
        both.p2p_listen = Some("127.0.0.1:5000".parse().unwrap());
        assert!(NodeConfig::resolve(both, FileConfig::default()).is_err());
    }

    #[test]
    fn missing_required_paths_are_named() {
        let err = NodeConfig::resolve(RunArgs::default(), FileConfig::default()).unwrap_err();
        assert!(err.to_string().contains("--genesis"), "{err}");
    }

    #[test]
    fn admin_tokens_must_be_long_enough() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        let source = AdminCredentialFile::Token(p.clone());
        std::fs::write(&p, "short\n").unwrap();
        assert!(read_admin_token(&source).is_err());
        std::fs::write(&p, "0123456789abcdef0123\n").unwrap();
        assert_eq!(
            read_admin_token(&source).unwrap(),
            AdminCredential::Token("0123456789abcdef0123".into())
        );
    }

    #[test]
    fn an_admin_token_digest_file_configures_a_digest() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("digest");
        let token = "0123456789abcdef0123456789abcdef";
        let digest = AdminCredential::digest_of(token);
        std::fs::write(&p, format!("{}\n", hex::encode(digest))).unwrap();
        // From the flag...
        let mut args = base_args();
        args.admin_token_digest_file = Some(p.clone());
        let cfg = NodeConfig::resolve(args, FileConfig::default()).unwrap();
        let source = cfg.admin_credential.as_ref().unwrap();
        assert_eq!(*source, AdminCredentialFile::Digest(p.clone()));
        assert_eq!(
            read_admin_token(source).unwrap(),
            AdminCredential::Blake3Digest(digest)
        );
        // ...or from the config file's `adminTokenDigestFile`.
        let file: FileConfig = serde_json::from_str(&format!(
            r#"{{"adminTokenDigestFile": {:?}}}"#,
            p.to_str().unwrap()
        ))
        .unwrap();
        let cfg = NodeConfig::resolve(base_args(), file).unwrap();
        assert_eq!(
            cfg.admin_credential.as_ref(),
            Some(&AdminCredentialFile::Digest(p.clone()))
        );
        // Not a digest: refused with the file named, and the content not echoed.
        for bad in ["abcd", token, &format!("{}zz", &hex::encode(digest)[..62])] {
            std::fs::write(&p, bad).unwrap();
            let err = read_admin_token(&AdminCredentialFile::Digest(p.clone())).unwrap_err();
            let message = format!("{err:#}");
            assert!(message.contains("64 hex digits"), "{message}");
            assert!(!message.contains(bad), "{message}");
        }
    }

    #[test]
    fn a_token_and_a_digest_exclude_each_other() {
        let mut args = base_args();
        args.admin_token_file = Some("t".into());
        let file: FileConfig = toml::from_str("adminTokenDigestFile = \"d\"").unwrap();
        let err = NodeConfig::resolve(args, file).unwrap_err();
        assert!(err.to_string().contains("exclude each other"), "{err}");
        let mut args = base_args();
        args.admin_token_file = Some("t".into());
        let cfg = NodeConfig::resolve(args, FileConfig::default()).unwrap();
        assert_eq!(
            cfg.admin_credential.as_ref(),
            Some(&AdminCredentialFile::Token("t".into()))
        );
    }
}
