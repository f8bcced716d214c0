//! `dualchain bench pipeline`: where a transaction's CPU goes, stage by stage, on the
//! validator's own code, and the throughput ceiling that implies for a local network.
//!
//! # What runs
//! One seeded block of transfers (`dualchain_execution::workload`, signed with
//! ML-DSA-44 or unsigned) goes through every stage of a validator's path, in this
//! process, with the node's own types and defaults:
//!
//! | stage | what | times per transaction, network-wide |
//! |---|---|---|
//! | `decode` | canonical decoding of the submitted bytes | 1 (the validator it was submitted to) |
//! | `signature` | the signature verdict (cached per validator) | N (at admission, or when a peer's vertex is executed) |
//! | `mempool` | admission into the mempool and the proposer's batch | 1 |
//! | `vertex_build` | vertex content, ML-DSA-87 signature, encoding | 1 |
//! | `transport` | one vertex over QUIC on loopback, both ends (framing, encryption, dedup) | N − 1 (one per peer) |
//! | `vertex_receive` | vertex decoding and its signature check | N − 1 |
//! | `execution` | the executor (the node's configuration and thread pool) | N |
//! | `commit` | Merkle update and the block's RocksDB batch | N |
//! | `certificate` | a vote signed, N − 1 votes checked, per block | N (per block) |
//!
//! A stage's figure is its CPU (user + system of the whole process, every thread,
//! from `getrusage`) per run, divided by the block's transactions, times its count in
//! the table, divided by N: the CPU **one validator** spends per transaction of the
//! network on average. The ceiling for N validators sharing this machine's cores is
//! then `cores / (N × total)`.
//!
//! `total_us_per_tx` is measured separately, as a whole: every stage of a run, each
//! as often as the table says, under one CPU reading. The report says whether the
//! stages add up to it within 10 % (`stages_agree`), which is what says the
//! per-stage readings miss nothing. The median of `--rounds` runs counts, for each stage and for the whole,
//! after a warm-up round that counts for nothing.
//!
//! What is left out, and why: consensus bookkeeping (DAG insertion, the commit rule,
//! vertex persistence in the consensus column) and the gRPC submission layer are not
//! in the table; the figure is a floor of the real cost, and the devnet's
//! `ceiling_fraction` shows how far the whole system is from it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use dualchain_core::crypto::{NetworkId, SigningDomain, ValidatorKeypair, ValidatorSignature};
use dualchain_core::encoding::Canonical;
use dualchain_core::types::vertex_limits::{MAX_VERTEX_PAYLOAD_BYTES, MAX_VERTEX_TXS};
use dualchain_core::types::{
    BlockCertificate, BlockHeader, ChainId, SignedTransaction, UnsignedVertex, ValidatorSet,
    Vertex, VertexRef,
};
use dualchain_core::{Digest, HashDomain};
use dualchain_execution::merge::{SealParams, seal_and_commit};
use dualchain_execution::workload::{GenesisState, Workload, WorkloadSpec};
use dualchain_execution::{BlockOutcome, Executor, ExecutorConfig, SignatureVerifier, Verdict};
use dualchain_mempool::{AdmissionTime, Mempool, MempoolConfig};
use dualchain_net::Loopback;
use dualchain_storage::WriteBatch;
use dualchain_store::{RocksEngine, StoreOptions};
use serde::Serialize;

/// Largest block the benchmark builds.
const MAX_TXS: usize = 200_000;
/// Stages may disagree with the whole by this share and still agree.
const AGREEMENT: f64 = 0.10;

/// Arguments of `dualchain bench pipeline`.
#[derive(Clone, Debug, clap::Args)]
pub struct PipelineArgs {
    /// Transactions in the block (and per run).
    #[arg(long, default_value_t = 6_000)]
    pub txs: usize,
    /// Funded accounts the transfers go between (0 = 2 × txs + 1: every transaction
    /// touches two accounts no other touches, the most state per transaction). A
    /// devnet's load spends from `--accounts` (1,000) accounts, so its blocks change
    /// far fewer accounts than they hold transactions.
    #[arg(long, default_value_t = 0)]
    pub accounts: usize,
    /// Transactions per vertex (the proposer's batch).
    #[arg(long, default_value_t = 1_000)]
    pub vertex_txs: usize,
    /// Validators N of the network the ceiling is for.
    #[arg(long, default_value_t = 4)]
    pub validators: usize,
    /// Sign transactions with ML-DSA-44 (otherwise the unsigned benchmark mode).
    #[arg(long)]
    pub signed: bool,
    /// Runs of each kind (per stage, and whole); the median counts.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Cores the ceiling divides (default: this machine's).
    #[arg(long)]
    pub cores: Option<usize>,
    /// Seed of the workload.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

impl Default for PipelineArgs {
    fn default() -> Self {
        Self {
            txs: 6_000,
            accounts: 0,
            vertex_txs: 1_000,
            validators: 4,
            signed: false,
            rounds: 3,
            cores: None,
            seed: 1,
            json: false,
        }
    }
}

/// The stages, in path order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Decode,
    Signature,
    Mempool,
    VertexBuild,
    Transport,
    VertexReceive,
    Execution,
    Commit,
    Certificate,
}

impl Stage {
    const ALL: [Stage; 9] = [
        Stage::Decode,
        Stage::Signature,
        Stage::Mempool,
        Stage::VertexBuild,
        Stage::Transport,
        Stage::VertexReceive,
        Stage::Execution,
        Stage::Commit,
        Stage::Certificate,
    ];

    fn name(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Signature => "signature",
            Stage::Mempool => "mempool",
            Stage::VertexBuild => "vertex_build",
            Stage::Transport => "transport",
            Stage::VertexReceive => "vertex_receive",
            Stage::Execution => "execution",
            Stage::Commit => "commit",
            Stage::Certificate => "certificate",
        }
    }

    /// How often the network runs this stage per transaction, with `n` validators.
    fn count(self, n: usize) -> usize {
        match self {
            Stage::Decode | Stage::Mempool | Stage::VertexBuild => 1,
            Stage::Transport | Stage::VertexReceive => n - 1,
            Stage::Signature | Stage::Execution | Stage::Commit | Stage::Certificate => n,
        }
    }
}

/// One stage's figures.
#[derive(Clone, Debug, Serialize)]
pub struct StageFigures {
    pub name: &'static str,
    /// CPU per transaction of one run of the stage, µs.
    pub unit_us: f64,
    /// Runs per transaction, network-wide.
    pub count: usize,
    /// `unit_us × count / N`: what one validator spends per network transaction.
    pub us_per_tx: f64,
}

/// The report of `bench pipeline`.
#[derive(Clone, Debug, Serialize)]
pub struct PipelineReport {
    /// `signed` or `unsigned`.
    pub signatures: &'static str,
    pub txs: usize,
    pub accounts: usize,
    pub vertex_txs: usize,
    pub validators: usize,
    pub cores: usize,
    pub rounds: usize,
    /// Stage name → CPU-µs per transaction per validator, in path order.
    pub stages: serde_json::Map<String, serde_json::Value>,
    pub stage_detail: Vec<StageFigures>,
    /// The sum of `stages`.
    pub stages_sum_us_per_tx: f64,
    /// The whole path measured under one CPU reading, per transaction per validator.
    pub total_us_per_tx: f64,
    /// `stages_sum_us_per_tx / total_us_per_tx`.
    pub stages_over_total: f64,
    /// The stages add up to the whole within 10 %.
    pub stages_agree: bool,
    /// `cores / (N × total)`: transactions per second N validators on this machine
    /// could at most commit.
    pub ceiling_tps: f64,
    /// The same for 4 validators (from the stage figures when `validators` is not 4).
    pub ceiling_tps_4_validators: f64,
    /// Of `commit` per run: the Merkle update alone (the same changes on a copy of
    /// the tree), µs per transaction; the rest is the commit's other work (state
    /// changes, receipts root, proofs, the RocksDB batch, the cache update).
    pub commit_merkle_unit_us: f64,
    /// Accounts the benchmark's block changes: the state its commit writes.
    pub accounts_changed: usize,
}

/// CPU of this process so far (user + system, all threads).
fn process_cpu() -> Duration {
    // SAFETY: getrusage fills the zeroed struct it is given and reads nothing else.
    let (rc, usage) = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        (libc::getrusage(libc::RUSAGE_SELF, &mut usage), usage)
    };
    // It fails only for a bad `who` or pointer, neither possible here; a zero
    // reading would pass for a free stage.
    assert_eq!(rc, 0, "getrusage(RUSAGE_SELF) failed");
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// What every run starts from: the workload and the network's keys.
struct Fixture {
    workload: Workload,
    /// Canonical bytes of every transaction, as submitted.
    submitted: Vec<Vec<u8>>,
    network: NetworkId,
    keys: Vec<ValidatorKeypair>,
    validators: ValidatorSet,
    vertex_txs: usize,
    dir: tempfile::TempDir,
}

/// One validator's own state in a run: its store, verdict cache and executor.
struct Node {
    state: GenesisState<Arc<RocksEngine>>,
    /// Its verdict cache is [`Executor::verifier`].
    executor: Executor,
    outcome: Option<BlockOutcome>,
    header: Option<BlockHeader>,
}

/// The state of one run between stages.
struct Run {
    /// The validators that execute and commit (N for a whole run, one for a
    /// stage-by-stage run).
    nodes: Vec<Node>,
    pool: Mempool,
    decoded: Vec<SignedTransaction>,
    batches: Vec<Vec<SignedTransaction>>,
    /// The proposer's signed vertices, and their encodings.
    built: Vec<Vertex>,
    vertices: Vec<Bytes>,
    received: Vec<Vertex>,
    /// The other validators' votes on the block (made before the measurement).
    peer_votes: Vec<(usize, ValidatorSignature)>,
    loopback: Loopback,
    runtime: Arc<tokio::runtime::Runtime>,
    /// Where this run's stores are, removed with the run.
    dir: PathBuf,
}

impl Drop for Run {
    fn drop(&mut self) {
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Fixture {
    fn new(args: &PipelineArgs) -> anyhow::Result<Self> {
        let workload = Workload::generate(&WorkloadSpec {
            txs: args.txs,
            accounts: accounts(args),
            conflict: 0.0,
            seed: args.seed,
            signed: args.signed,
        });
        let submitted = workload
            .txs
            .iter()
            .map(Canonical::to_canonical_bytes)
            .collect();
        let keys: Vec<ValidatorKeypair> = (0..args.validators)
            .map(|i| ValidatorKeypair::from_seed(&[i as u8 + 1; 32]))
            .collect();
        let validators = ValidatorSet::new(0, keys.iter().map(|k| (k.public().clone(), 1)))
            .context("building the benchmark's validator set")?;
        Ok(Self {
            network: workload.genesis.network_id(),
            workload,
            submitted,
            keys,
            validators,
            vertex_txs: args.vertex_txs,
            dir: tempfile::tempdir().context("creating a directory for the stores")?,
        })
    }

    /// A fresh run with `nodes` validators: new RocksDB stores at genesis, cold
    /// verdict caches, a new mempool, a connected transport pair.
    fn start(
        &self,
        index: usize,
        nodes: usize,
        runtime: &Arc<tokio::runtime::Runtime>,
    ) -> anyhow::Result<Run> {
        let dir = self.dir.path().join(format!("run-{index}"));
        let nodes = (0..nodes)
            .map(|i| self.node(&dir.join(format!("validator-{i}"))))
            .collect::<anyhow::Result<_>>()?;
        let txs = self.workload.txs.len().max(1);
        let pool = Mempool::new(
            ChainId::Delta,
            MempoolConfig {
                max_txs: txs * 2,
                max_per_sender: txs * 2,
                ..MempoolConfig::default()
            },
        )
        .context("building the mempool")?;
        let loopback = runtime
            .block_on(Loopback::connect())
            .context("connecting the transport pair")?;
        Ok(Run {
            nodes,
            pool,
            decoded: Vec::new(),
            batches: Vec::new(),
            built: Vec::new(),
            vertices: Vec::new(),
            received: Vec::new(),
            peer_votes: Vec::new(),
            loopback,
            runtime: runtime.clone(),
            dir,
        })
    }

    fn node(&self, path: &std::path::Path) -> anyhow::Result<Node> {
        let engine = Arc::new(
            RocksEngine::open(path, &StoreOptions::default())
                .with_context(|| format!("opening a store in {}", path.display()))?,
        );
        let state = GenesisState::build_on(engine, &self.workload.genesis)
            .context("writing the genesis state")?;
        let verifier = Arc::new(SignatureVerifier::for_genesis(&self.workload.genesis));
        let executor = Executor::new(ChainId::Delta, ExecutorConfig::default(), verifier)
            .context("building the executor")?;
        Ok(Node {
            state,
            executor,
            outcome: None,
            header: None,
        })
    }
}

impl Run {
    /// Runs `stage` `times` times over (see [`Stage::count`]); what it needs from the
    /// stages before it must be done.
    fn stage(&mut self, fx: &Fixture, stage: Stage, times: usize) -> anyhow::Result<()> {
        match stage {
            Stage::Decode => self.decode(fx),
            Stage::Signature => self.signatures(times),
            Stage::Mempool => self.mempool(fx),
            Stage::VertexBuild => self.build_vertices(fx),
            Stage::Transport => self.transport(times),
            Stage::VertexReceive => self.receive(fx, times),
            Stage::Execution => self.execute(times),
            Stage::Commit => self.commit(times),
            Stage::Certificate => self.certify(fx, times),
        }
    }

    /// Work a stage needs that is not part of it (the other validators' votes).
    fn prepare(&mut self, fx: &Fixture, stage: Stage) -> anyhow::Result<()> {
        if stage == Stage::Certificate {
            let header = self.header()?.clone();
            self.peer_votes = (1..fx.keys.len())
                .map(|i| (i, BlockCertificate::vote(&fx.keys[i], &header, fx.network)))
                .collect();
        }
        Ok(())
    }

    fn header(&self) -> anyhow::Result<&BlockHeader> {
        self.nodes
            .first()
            .and_then(|n| n.header.as_ref())
            .context("no block committed")
    }

    fn decode(&mut self, fx: &Fixture) -> anyhow::Result<()> {
        self.decoded = fx
            .submitted
            .iter()
            .map(|bytes| SignedTransaction::from_canonical_bytes(bytes))
            .collect::<Result<_, _>>()
            .context("decoding a generated transaction")?;
        Ok(())
    }

    /// Signature verdicts on `times` validators' cold caches (each then warm for its
    /// execution, as a node's is).
    fn signatures(&mut self, times: usize) -> anyhow::Result<()> {
        for node in self.nodes.iter().take(times) {
            let invalid = self
                .decoded
                .iter()
                .filter(|tx| node.executor.verifier().verdict(tx) != Verdict::Valid)
                .count();
            anyhow::ensure!(
                invalid == 0,
                "{invalid} generated transactions failed verification"
            );
        }
        Ok(())
    }

    fn mempool(&mut self, fx: &Fixture) -> anyhow::Result<()> {
        for tx in &self.decoded {
            self.pool
                .admit(tx.clone(), Verdict::Valid, AdmissionTime(0))
                .map_err(|r| {
                    anyhow::anyhow!("the mempool refused a generated transaction: {r:?}")
                })?;
        }
        self.batches.clear();
        while !self.pool.is_empty() {
            let batch = self
                .pool
                .take_batch(fx.vertex_txs, MAX_VERTEX_PAYLOAD_BYTES);
            anyhow::ensure!(
                !batch.is_empty(),
                "the mempool holds transactions it does not hand out"
            );
            self.batches
                .push(batch.envelopes.into_iter().map(|e| e.tx).collect());
        }
        Ok(())
    }

    fn build_vertices(&mut self, fx: &Fixture) -> anyhow::Result<()> {
        let parents: Vec<VertexRef> = (0..fx.keys.len())
            .map(|author| VertexRef {
                author: author as u16,
                digest: HashDomain::Vertex.hash(&(author as u64).to_le_bytes()),
            })
            .collect();
        self.built = self
            .batches
            .iter()
            .enumerate()
            .map(|(round, transactions)| {
                UnsignedVertex {
                    chain: ChainId::Delta,
                    epoch: 0,
                    round: round as u64 + 1,
                    author: 0,
                    parents: parents.clone(),
                    transactions: transactions.clone(),
                    timestamp_ms: 1_700_000_000_000 + round as u64,
                }
                .sign(&fx.keys[0], fx.network)
            })
            .collect();
        self.vertices = self
            .built
            .iter()
            .map(|v| Bytes::from(v.to_canonical_bytes()))
            .collect();
        Ok(())
    }

    /// Carries every vertex to `times` peers: distinct copies (the last byte differs;
    /// the receiver drops repeats and looks no further).
    fn transport(&mut self, times: usize) -> anyhow::Result<()> {
        if times == 0 {
            return Ok(());
        }
        anyhow::ensure!(times < 256, "at most 255 distinct copies");
        let payloads: Vec<Bytes> = (0..times)
            .flat_map(|copy| {
                self.vertices.iter().map(move |v| {
                    if copy == 0 {
                        return v.clone();
                    }
                    let mut bytes = v.to_vec();
                    if let Some(last) = bytes.last_mut() {
                        *last ^= copy as u8;
                    }
                    Bytes::from(bytes)
                })
            })
            .collect();
        let runtime = self.runtime.clone();
        runtime
            .block_on(self.loopback.carry(&payloads))
            .context("carrying vertices over the transport")?;
        Ok(())
    }

    fn receive(&mut self, fx: &Fixture, times: usize) -> anyhow::Result<()> {
        for _ in 0..times {
            self.received = self
                .vertices
                .iter()
                .map(|bytes| {
                    let vertex =
                        Vertex::from_canonical_bytes(bytes).context("decoding a vertex")?;
                    vertex
                        .verify(&fx.validators, fx.network)
                        .context("checking a vertex")?;
                    Ok(vertex)
                })
                .collect::<anyhow::Result<_>>()?;
            anyhow::ensure!(
                self.received
                    .iter()
                    .map(Vertex::digest)
                    .eq(self.built.iter().map(Vertex::digest)),
                "a vertex decoded differently from what was signed"
            );
        }
        Ok(())
    }

    /// The block in commit order: the vertices' transactions (every validator's
    /// copy is the same; a network of one receives none).
    fn block_txs(&self) -> Vec<SignedTransaction> {
        self.built
            .iter()
            .flat_map(|v| v.content().transactions.iter().cloned())
            .collect()
    }

    fn execute(&mut self, times: usize) -> anyhow::Result<()> {
        let txs = self.block_txs();
        for node in self.nodes.iter_mut().take(times) {
            let outcome = node
                .executor
                .execute_block_at(&node.state.cache, &txs, BLOCK_TIME_MS)
                .context("executing the block")?;
            anyhow::ensure!(
                outcome.failed_count() == 0,
                "{} generated transactions failed",
                outcome.failed_count()
            );
            node.outcome = Some(outcome);
        }
        Ok(())
    }

    fn commit(&mut self, times: usize) -> anyhow::Result<()> {
        let txs = self.block_txs();
        let vertices: Vec<Digest> = self.built.iter().map(Vertex::digest).collect();
        for node in self.nodes.iter_mut().take(times) {
            let outcome = node
                .outcome
                .as_ref()
                .context("the block was not executed")?;
            let block = seal_and_commit(
                &mut node.state.store,
                &node.state.cache,
                txs.clone(),
                outcome,
                SealParams {
                    epoch: 0,
                    slot: 1,
                    timestamp_ms: BLOCK_TIME_MS,
                    vertices: vertices.clone(),
                },
                WriteBatch::default(),
            )
            .context("committing the block")?;
            node.header = Some(block.header);
        }
        Ok(())
    }

    /// Per block, on `times` validators: its vote signed and the N − 1 others checked.
    fn certify(&mut self, fx: &Fixture, times: usize) -> anyhow::Result<()> {
        let header = self.header()?;
        let digest = header.digest();
        let context = SigningDomain::BlockVote.on(fx.network);
        for _ in 0..times {
            let _own = BlockCertificate::vote(&fx.keys[0], header, fx.network);
            for (i, vote) in &self.peer_votes {
                fx.keys[*i]
                    .public()
                    .verify(context, digest.as_bytes(), vote)
                    .context("checking a vote")?;
            }
        }
        Ok(())
    }

    /// Node 0 and its block's outcome.
    fn first_outcome(&self) -> anyhow::Result<(&Node, &BlockOutcome)> {
        let node = self.nodes.first().context("no validator")?;
        let outcome = node
            .outcome
            .as_ref()
            .context("the block was not executed")?;
        Ok((node, outcome))
    }

    /// Accounts node 0's block changed: the state the commit writes.
    fn accounts_changed(&self) -> anyhow::Result<usize> {
        Ok(self.first_outcome()?.1.account_updates.len())
    }

    /// CPU of the Merkle update alone for node 0's block (on a copy of the genesis
    /// tree, so nothing is written).
    fn merkle_cpu(&self) -> anyhow::Result<Duration> {
        let (node, outcome) = self.first_outcome()?;
        let mut commitment = node.state.commitment.clone();
        let started = process_cpu();
        commitment.apply(outcome);
        Ok(process_cpu().saturating_sub(started))
    }
}

/// The block's consensus timestamp (any fixed value: nothing here reads a clock).
const BLOCK_TIME_MS: u64 = 1_700_000_003_000;

/// The workload's accounts (see [`PipelineArgs::accounts`]).
fn accounts(args: &PipelineArgs) -> usize {
    match args.accounts {
        0 => args.txs.saturating_mul(2).saturating_add(1),
        n => n,
    }
}

fn validate(args: &PipelineArgs) -> anyhow::Result<()> {
    if args.txs == 0 || args.txs > MAX_TXS {
        bail!("--txs must be between 1 and {MAX_TXS}");
    }
    if args.vertex_txs == 0 || args.vertex_txs > MAX_VERTEX_TXS {
        bail!("--vertex-txs must be between 1 and {MAX_VERTEX_TXS}");
    }
    if !(1..=100).contains(&args.validators) {
        bail!("--validators must be between 1 and 100");
    }
    if args.accounts == 1 || args.accounts > 2 * MAX_TXS + 1 {
        bail!(
            "--accounts must be 0 (two per transaction) or between 2 and {}",
            2 * MAX_TXS + 1
        );
    }
    if args.rounds == 0 || args.rounds > 100 {
        bail!("--rounds must be between 1 and 100");
    }
    if args.cores == Some(0) {
        bail!("--cores must be at least 1");
    }
    Ok(())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// Runs the benchmark.
pub fn run_pipeline(args: &PipelineArgs) -> anyhow::Result<PipelineReport> {
    validate(args)?;
    let n = args.validators;
    let cores = args.cores.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let runtime = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("starting the transport's runtime")?,
    );
    let fx = Fixture::new(args)?;
    let txs = args.txs as f64;
    let mut units: Vec<Vec<f64>> = vec![Vec::new(); Stage::ALL.len()];
    let (mut wholes, mut merkle) = (Vec::new(), Vec::new());
    let mut accounts_changed = 0;
    // Round 0 warms up (first store, first connection, allocator, caches) and counts
    // for nothing.
    for round in 0..=args.rounds {
        let keep = round > 0;
        // Stage by stage, each once, on one validator.
        let mut run = fx.start(2 * round, 1, &runtime)?;
        for (k, &stage) in Stage::ALL.iter().enumerate() {
            run.prepare(&fx, stage)?;
            let started = process_cpu();
            run.stage(&fx, stage, 1)?;
            let cpu = process_cpu().saturating_sub(started);
            if keep {
                units[k].push(cpu.as_secs_f64() * 1e6 / txs);
            }
        }
        let merkle_cpu = run.merkle_cpu()?;
        accounts_changed = run.accounts_changed()?;
        if keep {
            merkle.push(merkle_cpu.as_secs_f64() * 1e6 / txs);
        }
        drop(run);
        // The whole, each stage as often as the network runs it, under one reading.
        let mut run = fx.start(2 * round + 1, n, &runtime)?;
        let mut cpu = Duration::ZERO;
        for &stage in &Stage::ALL {
            run.prepare(&fx, stage)?;
            let started = process_cpu();
            run.stage(&fx, stage, stage.count(n))?;
            cpu += process_cpu().saturating_sub(started);
        }
        if keep {
            wholes.push(cpu.as_secs_f64() * 1e6 / (txs * n as f64));
        }
    }
    let mut report = report(args, cores, &units, median(wholes), median(merkle));
    report.accounts_changed = accounts_changed;
    Ok(report)
}

/// The report from the median unit costs and the median whole.
fn report(
    args: &PipelineArgs,
    cores: usize,
    units: &[Vec<f64>],
    total_us_per_tx: f64,
    merkle_unit_us: f64,
) -> PipelineReport {
    let n = args.validators;
    let stage_detail: Vec<StageFigures> = Stage::ALL
        .iter()
        .zip(units)
        .map(|(stage, runs)| {
            let unit_us = median(runs.clone());
            StageFigures {
                name: stage.name(),
                unit_us,
                count: stage.count(n),
                us_per_tx: unit_us * stage.count(n) as f64 / n as f64,
            }
        })
        .collect();
    let stages_sum_us_per_tx: f64 = stage_detail.iter().map(|s| s.us_per_tx).sum();
    let ceiling = |validators: usize, us_per_tx: f64| {
        if us_per_tx > 0.0 {
            cores as f64 * 1e6 / (validators as f64 * us_per_tx)
        } else {
            0.0
        }
    };
    // For another N than the one measured, the 4-validator figure comes from the
    // stage units (the whole was measured for N only).
    let four_us_per_tx = if n == 4 {
        total_us_per_tx
    } else {
        stage_detail
            .iter()
            .zip(Stage::ALL)
            .map(|(s, stage)| s.unit_us * stage.count(4) as f64 / 4.0)
            .sum()
    };
    let stages_over_total = if total_us_per_tx > 0.0 {
        stages_sum_us_per_tx / total_us_per_tx
    } else {
        0.0
    };
    PipelineReport {
        signatures: if args.signed { "signed" } else { "unsigned" },
        txs: args.txs,
        accounts: accounts(args),
        vertex_txs: args.vertex_txs,
        validators: n,
        cores,
        rounds: args.rounds,
        stages: stage_detail
            .iter()
            .map(|s| (s.name.to_owned(), serde_json::Value::from(s.us_per_tx)))
            .collect(),
        stage_detail,
        stages_sum_us_per_tx,
        total_us_per_tx,
        stages_over_total,
        stages_agree: (stages_over_total - 1.0).abs() <= AGREEMENT,
        ceiling_tps: ceiling(n, total_us_per_tx),
        ceiling_tps_4_validators: ceiling(4, four_us_per_tx),
        commit_merkle_unit_us: merkle_unit_us,
        accounts_changed: 0,
    }
}

/// The report as a table.
pub fn render(r: &PipelineReport) -> String {
    let mut out = format!(
        "## Pipeline: CPU per transaction, {} ({} transactions between {} accounts, {} per vertex, N = {}, {} cores, median of {})\n\n\
         | stage | CPU µs per run per tx | runs per tx (network) | CPU µs per tx per validator | share |\n\
         |---|---:|---:|---:|---:|\n",
        r.signatures, r.txs, r.accounts, r.vertex_txs, r.validators, r.cores, r.rounds
    );
    for s in &r.stage_detail {
        let share = if r.stages_sum_us_per_tx > 0.0 {
            s.us_per_tx / r.stages_sum_us_per_tx * 100.0
        } else {
            0.0
        };
        out.push_str(&format!(
            "| {} | {:.2} | {} | {:.2} | {share:.1} % |\n",
            s.name, s.unit_us, s.count, s.us_per_tx
        ));
    }
    out.push_str(&format!(
        "| **stages** | | | **{:.2}** | |\n\n\
         Whole path measured at once: {:.2} µs per transaction per validator (stages / whole = {:.3}: {}).\n\
         Of `commit`, the Merkle update alone: {:.2} µs per transaction.\n\
         Ceiling: {:.0} tx/s for {} validators on {} cores ({:.0} tx/s for 4).\n",
        r.stages_sum_us_per_tx,
        r.total_us_per_tx,
        r.stages_over_total,
        if r.stages_agree { "they agree within 10 %" } else { "they DISAGREE by more than 10 %" },
        r.commit_merkle_unit_us,
        r.ceiling_tps,
        r.validators,
        r.cores,
        r.ceiling_tps_4_validators,
    ));
    out
}

impl PipelineReport {
    /// The ceiling for `validators` validators from the stage figures (the whole was
    /// measured for [`PipelineReport::validators`] only), tx/s.
    pub fn ceiling_for(&self, validators: usize) -> f64 {
        if validators == self.validators {
            return self.ceiling_tps;
        }
        let per_tx: f64 = self
            .stage_detail
            .iter()
            .zip(Stage::ALL)
            .map(|(s, stage)| s.unit_us * stage.count(validators) as f64)
            .sum();
        if per_tx > 0.0 {
            self.cores as f64 * 1e6 / per_tx
        } else {
            0.0
        }
    }
}

/// Transactions per run of the devnet's ceiling measurement.
const DEVNET_CEILING_TXS: usize = 3_000;
/// Validators the devnet's ceiling measurement runs whole (its stores): beyond, the
/// ceiling comes from the stage figures.
const DEVNET_CEILING_MAX_VALIDATORS: usize = 8;

/// The accounts of the devnet's ceiling measurement: the load's own.
fn devnet_accounts(args: &dualchain_loadgen::cli::DevnetArgs) -> usize {
    args.accounts.clamp(2, 2 * DEVNET_CEILING_TXS + 1)
}

/// `dualchain devnet`, with the pipeline's ceiling measured first unless it is given
/// or refused (`--ceiling-tps`, `--no-ceiling`).
pub fn devnet_with_ceiling(mut args: dualchain_loadgen::cli::DevnetArgs) -> anyhow::Result<()> {
    if args.ceiling_tps.is_none() && !args.no_ceiling && args.validators > 0 {
        eprintln!(
            "devnet: measuring the pipeline's ceiling first (bench pipeline --txs {DEVNET_CEILING_TXS} --accounts {}{}; --no-ceiling skips it)",
            devnet_accounts(&args),
            if args.signed { " --signed" } else { "" }
        );
        let report = run_pipeline(&PipelineArgs {
            txs: DEVNET_CEILING_TXS,
            // The load's accounts: a block changes each once, however many it holds.
            accounts: devnet_accounts(&args),
            validators: args.validators.min(DEVNET_CEILING_MAX_VALIDATORS),
            signed: args.signed,
            rounds: 1,
            ..PipelineArgs::default()
        })
        .context("measuring the pipeline's ceiling (--no-ceiling skips it)")?;
        let ceiling = report.ceiling_for(args.validators);
        eprintln!(
            "devnet: ceiling {ceiling:.0} tx/s for {} validators on {} cores ({:.1} CPU-µs per transaction per validator)",
            args.validators, report.cores, report.total_us_per_tx
        );
        args.ceiling_tps = (ceiling > 0.0).then_some(ceiling);
    }
    dualchain_loadgen::cli::devnet_main(args)
}

/// `dualchain bench pipeline`.
pub fn main(args: PipelineArgs) -> anyhow::Result<()> {
    let report = run_pipeline(&args)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_the_network_size() {
        assert_eq!(Stage::Decode.count(4), 1);
        assert_eq!(Stage::Transport.count(4), 3);
        assert_eq!(Stage::Execution.count(4), 4);
        assert_eq!(Stage::Transport.count(1), 0);
    }

    #[test]
    fn bad_arguments_are_refused() {
        for bad in [
            PipelineArgs {
                txs: 0,
                ..PipelineArgs::default()
            },
            PipelineArgs {
                validators: 0,
                ..PipelineArgs::default()
            },
            PipelineArgs {
                vertex_txs: 0,
                ..PipelineArgs::default()
            },
            PipelineArgs {
                rounds: 0,
                ..PipelineArgs::default()
            },
            PipelineArgs {
                accounts: 1,
                ..PipelineArgs::default()
            },
            PipelineArgs {
                cores: Some(0),
                ..PipelineArgs::default()
            },
        ] {
            assert!(run_pipeline(&bad).is_err(), "{bad:?}");
        }
    }
}
