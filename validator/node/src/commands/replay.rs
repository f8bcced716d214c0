//! `dualchain replay`: re-execute a chain's certified history from genesis and check
//! every block's state root and receipts root.
//!
//! Sources: a (stopped) node's chain database (`--db`), a running node's API
//! (`--from-peer`, blocks and certificates over `GetBlock`), or a synthetic history
//! written first (`--synthetic N`). Blocks stream from a reader thread through a
//! bounded channel into one [`BlockReplayer`], which verifies each certificate that
//! comes with a block against its epoch's set and commits nothing it could not
//! reproduce. The replay goes into a database of its own (`--into`, else a
//! temporary directory removed afterwards); the source is only read.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use dualchain_core::Digest;
use dualchain_core::chain_store::ChainStore;
use dualchain_core::encoding::Canonical;
use dualchain_core::types::{Block, BlockBody, BlockCertificate, BlockHeader, ChainId, Genesis};
use dualchain_execution::ExecutionMode;
use dualchain_proto::NodeClient;
use dualchain_proto::v1 as pb;
use dualchain_runtime::replay::{BlockReplayer, ReplayError};
use dualchain_runtime::synthetic::{HistoryInfo, SyntheticSpec, write_history};
use dualchain_storage::SyncPolicy;
use dualchain_store::{RocksEngine, StoreOptions};

/// Blocks read ahead of the replay.
const READ_AHEAD: usize = 256;
/// The largest `GetBlock` answer taken from a peer (a block body is at most 32 MiB).
const MAX_PEER_MESSAGE_BYTES: usize = 64 << 20;
/// How long one `GetBlock` may take.
const PEER_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["db", "from_peer", "synthetic"])))]
pub struct Args {
    /// A stopped node's database of one chain: the chain's data directory (its `db`
    /// inside is used) or the database directory itself.
    #[arg(long, value_name = "DIR")]
    db: Option<PathBuf>,
    /// A running node's gRPC API of the chain to replay (e.g. http://127.0.0.1:4030).
    #[arg(long, value_name = "URL")]
    from_peer: Option<String>,
    /// Write a synthetic certified history of N blocks first, then replay it.
    #[arg(long, value_name = "N")]
    synthetic: Option<u64>,
    /// The network's genesis file (with --db and --from-peer).
    #[arg(long, value_name = "FILE", required_unless_present = "synthetic")]
    genesis: Option<PathBuf>,
    /// Chain to replay [default: a --db's own chain, the chain a --from-peer endpoint
    /// serves, delta for --synthetic].
    #[arg(long, value_enum)]
    chain: Option<ChainArg>,
    /// Database the replay writes (kept); it must be empty or absent [default: a
    /// temporary directory, removed afterwards].
    #[arg(long, value_name = "DIR")]
    into: Option<PathBuf>,
    /// Execution mode of the replay (both give the same roots).
    #[arg(long, value_enum, default_value = "parallel")]
    execution: ExecutionArg,
    /// Print one JSON object (blocks, roots_match, seconds, …) instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    synthetic_spec: SyntheticArgs,
}

/// How the synthetic history is made (with --synthetic).
#[derive(clap::Args, Debug)]
struct SyntheticArgs {
    /// Unsigned transfers per synthetic block (Delta only).
    #[arg(long, default_value_t = 0)]
    txs_per_block: usize,
    /// Funded accounts of the synthetic network.
    #[arg(long, default_value_t = 1_000)]
    accounts: usize,
    /// Validators of the synthetic network (a quorum of them signs certificates).
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// A certificate every this many blocks (and on the last one).
    #[arg(long, default_value_t = 1_000)]
    certify_every: u64,
    /// Epoch length in Alpha blocks (an Alpha history crosses a boundary each time).
    #[arg(long, default_value_t = 100)]
    epoch_length: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Keep the synthetic history in this directory (must be empty or absent)
    /// [default: a temporary directory, removed afterwards].
    #[arg(long, value_name = "DIR")]
    history: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum ChainArg {
    Alpha,
    Delta,
}

impl From<ChainArg> for ChainId {
    fn from(chain: ChainArg) -> Self {
        match chain {
            ChainArg::Alpha => ChainId::Alpha,
            ChainArg::Delta => ChainId::Delta,
        }
    }
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum ExecutionArg {
    Parallel,
    Sequential,
}

/// One block from the source, or why the source failed.
type Item = anyhow::Result<(Block, Option<BlockCertificate>)>;

/// A directory removed when dropped, unless it was given by the user.
struct WorkDir {
    path: PathBuf,
    remove: bool,
}

impl WorkDir {
    fn new(given: Option<PathBuf>, what: &str) -> anyhow::Result<Self> {
        let (path, remove) = match given {
            Some(path) => (path, false),
            None => {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos();
                let name = format!("dualchain-{what}-{}-{nanos}", std::process::id());
                (std::env::temp_dir().join(name), true)
            }
        };
        let empty = match std::fs::read_dir(&path) {
            Ok(mut entries) => entries.next().is_none(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        ensure!(
            empty,
            "{} is not empty: the {what} database must be new",
            path.display()
        );
        Ok(Self { path, remove })
    }

    fn open(&self) -> anyhow::Result<Arc<RocksEngine>> {
        let options = StoreOptions {
            sync: SyncPolicy::OsBuffered,
            ..StoreOptions::default()
        };
        let engine = RocksEngine::open(&self.path, &options)
            .with_context(|| format!("opening {}", self.path.display()))?;
        Ok(Arc::new(engine))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Where the blocks come from, ready to stream.
struct Source {
    kind: &'static str,
    chain: ChainId,
    genesis: Genesis,
    /// Height of the source's head, and its state root.
    head: u64,
    head_root: Digest,
    blocks: Receiver<Item>,
    generated: Option<HistoryInfo>,
    /// Keeps a temporary history directory alive until the replay ends.
    _history: Option<WorkDir>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mode = match args.execution {
        ExecutionArg::Parallel => ExecutionMode::Parallel,
        ExecutionArg::Sequential => ExecutionMode::Sequential,
    };
    let into = WorkDir::new(args.into.clone(), "replay")?;
    let source = open_source(&args)?;
    let engine = into.open()?;
    let mut replayer = BlockReplayer::open(engine, source.chain, &source.genesis, mode)?;
    ensure!(replayer.height() == 0, "the replay database is not empty");

    let started = Instant::now();
    let mut transactions = 0u64;
    let mut certificates = 0u64;
    let mut failure: Option<ReplayError> = None;
    for item in source.blocks.iter() {
        let (block, certificate) = item?;
        match replayer.apply(&block, certificate.as_ref()) {
            Ok(applied) => {
                transactions += applied.transactions as u64;
                certificates += u64::from(applied.certified);
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let blocks = replayer.height();
    let complete = failure.is_none() && blocks == source.head;
    let roots_match = complete && replayer.state_root() == source.head_root;
    let report = serde_json::json!({
        "source": source.kind,
        "chain": source.chain.to_string().to_lowercase(),
        "blocks": blocks,
        "source_head": source.head,
        "transactions": transactions,
        "certificates_verified": certificates,
        "certified_through": replayer.certified_through(),
        "epoch": replayer.epoch(),
        "roots_match": roots_match,
        "state_root": replayer.state_root().to_string(),
        "source_state_root": source.head_root.to_string(),
        "seconds": seconds,
        "blocks_per_second": blocks as f64 / seconds.max(1e-9),
        "transactions_per_second": transactions as f64 / seconds.max(1e-9),
        "generate_seconds": source.generated.as_ref().map(|g| g.seconds),
        "first_mismatch_height": failure.as_ref().and_then(ReplayError::height),
        "error": failure.as_ref().map(|e| e.to_string()),
    });
    if args.json {
        println!("{report}");
    } else {
        print_text(&report, failure.as_ref(), complete);
    }
    match failure {
        Some(e) => bail!("the replay stopped at a block it could not reproduce: {e}"),
        None if !complete => bail!(
            "the source ended at height {blocks}, before its head {}",
            source.head
        ),
        None if !roots_match => bail!("the replayed state root differs from the source's"),
        None => Ok(()),
    }
}

fn print_text(report: &serde_json::Value, failure: Option<&ReplayError>, complete: bool) {
    let n = |key: &str| report[key].as_u64().unwrap_or(0);
    let f = |key: &str| report[key].as_f64().unwrap_or(0.0);
    println!(
        "replayed {} of {} {} blocks ({} transactions) from {} in {:.1} s: {:.0} blocks/s, {:.0} tx/s",
        n("blocks"),
        n("source_head"),
        report["chain"].as_str().unwrap_or(""),
        n("transactions"),
        report["source"].as_str().unwrap_or(""),
        f("seconds"),
        f("blocks_per_second"),
        f("transactions_per_second"),
    );
    println!(
        "certificates verified: {}; certified through height {}; epoch now {}",
        n("certificates_verified"),
        n("certified_through"),
        n("epoch")
    );
    match failure {
        Some(e) => println!("FAILED: {e}"),
        None if !complete => println!("FAILED: the source ended before its head"),
        None if report["roots_match"].as_bool() == Some(true) => {
            println!(
                "roots match: {}",
                report["state_root"].as_str().unwrap_or("")
            );
        }
        None => println!(
            "FAILED: the replayed state root {} differs from the source's {}",
            report["state_root"].as_str().unwrap_or(""),
            report["source_state_root"].as_str().unwrap_or("")
        ),
    }
    if n("certified_through") < n("blocks") {
        println!(
            "note: blocks {}..={} carry no certificate here (re-executed and root-checked, not vouched for)",
            n("certified_through") + 1,
            n("blocks")
        );
    }
}

fn read_genesis(path: &Path) -> anyhow::Result<Genesis> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let genesis =
        Genesis::from_json(&text).with_context(|| format!("parsing {}", path.display()))?;
    genesis
        .validate()
        .with_context(|| format!("{} is invalid", path.display()))?;
    Ok(genesis)
}

fn open_source(args: &Args) -> anyhow::Result<Source> {
    if let Some(n) = args.synthetic {
        return synthetic_source(args, n);
    }
    let genesis = read_genesis(args.genesis.as_deref().expect("clap requires it"))?;
    if let Some(db) = &args.db {
        return db_source(db, args.chain.map(ChainId::from), genesis);
    }
    let url = args.from_peer.clone().expect("clap requires a source");
    peer_source(url, args.chain.map(ChainId::from), genesis)
}

fn synthetic_source(args: &Args, blocks: u64) -> anyhow::Result<Source> {
    let s = &args.synthetic_spec;
    let spec = SyntheticSpec {
        chain: args.chain.map_or(ChainId::Delta, ChainId::from),
        blocks,
        txs_per_block: s.txs_per_block,
        accounts: s.accounts,
        validators: s.validators,
        certify_every: s.certify_every,
        epoch_length_alpha_blocks: s.epoch_length,
        seed: s.seed,
    };
    spec.check()?;
    let network = spec.network();
    let dir = WorkDir::new(s.history.clone(), "history")?;
    let every = (blocks / 10).max(1);
    let info = write_history(&spec, &network, dir.open()?, |h| {
        if !args.json && h % every == 0 {
            eprintln!("generated {h} of {blocks} blocks");
        }
    })?;
    let mut source = db_source(&dir.path, Some(spec.chain), network.genesis)?;
    source.kind = "synthetic";
    source.generated = Some(info);
    source._history = Some(dir);
    Ok(source)
}

fn db_source(db: &Path, chain: Option<ChainId>, genesis: Genesis) -> anyhow::Result<Source> {
    let options = StoreOptions {
        create_if_missing: false,
        ..StoreOptions::default()
    };
    let db = &super::database_dir(db);
    let engine = RocksEngine::open(db, &options)
        .with_context(|| format!("opening database {}", db.display()))?;
    let head = dualchain_storage::meta::read_head(&engine)?
        .with_context(|| format!("{} holds no chain", db.display()))?;
    let found = ChainId::from_tag(head.chain)
        .with_context(|| format!("{} names an unknown chain", db.display()))?;
    if let Some(chain) = chain {
        ensure!(
            chain == found,
            "{} is a {found} database, not {chain}",
            db.display()
        );
    }
    let store = ChainStore::open(engine, found)?;
    let reader = store.reader();
    let (tx, rx) = sync_channel(READ_AHEAD);
    let height = head.height;
    std::thread::Builder::new()
        .name("replay-read".into())
        .spawn(move || {
            for h in 1..=height {
                let item = (|| {
                    let block = reader
                        .get_block(h)?
                        .with_context(|| format!("the database has no block {h}"))?;
                    Ok((block, reader.get_certificate(h)?))
                })();
                let failed = item.is_err();
                if tx.send(item).is_err() || failed {
                    return;
                }
            }
        })?;
    Ok(Source {
        kind: "db",
        chain: found,
        genesis,
        head: head.height,
        head_root: Digest(head.state_root),
        blocks: rx,
        generated: None,
        _history: None,
    })
}

fn peer_source(url: String, chain: Option<ChainId>, genesis: Genesis) -> anyhow::Result<Source> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut client = runtime.block_on(connect(&url))?;
    let status = runtime
        .block_on(client.get_status(pb::GetStatusRequest {}))
        .with_context(|| format!("GetStatus of {url}"))?
        .into_inner();
    ensure!(
        status.network_id == genesis.hash().0,
        "{url} runs another network than the genesis file describes"
    );
    let served: Vec<(ChainId, &pb::ChainStatus)> = status
        .chains
        .iter()
        .filter_map(|c| proto_chain(c.chain).map(|id| (id, c)))
        .collect();
    let (chain, head) = match (chain, served.as_slice()) {
        (Some(want), _) => served
            .iter()
            .find(|(id, _)| *id == want)
            .copied()
            .with_context(|| format!("{url} does not serve {want}"))?,
        (None, [one]) => *one,
        (None, _) => bail!("{url} serves several chains: choose one with --chain"),
    };
    let height = head.finalized_height;
    let head_root = block_on_get(&runtime, &mut client, chain, height, false)?
        .0
        .header
        .state_root;
    let (tx, rx) = sync_channel(READ_AHEAD);
    std::thread::Builder::new()
        .name("replay-fetch".into())
        .spawn(move || stream_from_peer(runtime, client, chain, height, tx))?;
    Ok(Source {
        kind: "peer",
        chain,
        genesis,
        head: height,
        head_root,
        blocks: rx,
        generated: None,
        _history: None,
    })
}

async fn connect(url: &str) -> anyhow::Result<NodeClient<tonic::transport::Channel>> {
    let endpoint = tonic::transport::Endpoint::from_shared(url.to_string())
        .with_context(|| format!("{url} is not a URL"))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(PEER_TIMEOUT);
    let channel = endpoint
        .connect()
        .await
        .with_context(|| format!("connecting to {url}"))?;
    Ok(NodeClient::new(channel).max_decoding_message_size(MAX_PEER_MESSAGE_BYTES))
}

fn proto_chain(value: i32) -> Option<ChainId> {
    match pb::Chain::try_from(value).ok()? {
        pb::Chain::Alpha => Some(ChainId::Alpha),
        pb::Chain::Delta => Some(ChainId::Delta),
        pb::Chain::Unspecified => None,
    }
}

fn stream_from_peer(
    runtime: tokio::runtime::Runtime,
    mut client: NodeClient<tonic::transport::Channel>,
    chain: ChainId,
    height: u64,
    tx: SyncSender<Item>,
) {
    for h in 1..=height {
        let item = block_on_get(&runtime, &mut client, chain, h, true);
        let failed = item.is_err();
        if tx.send(item).is_err() || failed {
            return;
        }
    }
}

/// Block `height` of `chain` from the peer, decoded from its canonical bytes (the
/// decoded proto fields are for people; the bytes are what was signed).
fn block_on_get(
    runtime: &tokio::runtime::Runtime,
    client: &mut NodeClient<tonic::transport::Channel>,
    chain: ChainId,
    height: u64,
    with_body: bool,
) -> anyhow::Result<(Block, Option<BlockCertificate>)> {
    let request = pb::GetBlockRequest {
        chain: match chain {
            ChainId::Alpha => pb::Chain::Alpha,
            ChainId::Delta => pb::Chain::Delta,
        } as i32,
        height,
        include_body: with_body,
        include_certificate: with_body,
    };
    let answer = runtime
        .block_on(client.get_block(request))
        .with_context(|| format!("GetBlock {height}"))?
        .into_inner();
    let header = BlockHeader::from_canonical_bytes(&answer.header_bytes)
        .with_context(|| format!("the peer's header of block {height}"))?;
    ensure!(
        header.height == height && header.chain == chain,
        "the peer answered block {height} of {chain} with block {} of {}",
        header.height,
        header.chain
    );
    let body = match answer.body.as_deref() {
        Some(bytes) if with_body => BlockBody::from_canonical_bytes(bytes)
            .with_context(|| format!("the peer's body of block {height}"))?,
        _ => BlockBody::default(),
    };
    let certificate = match answer.certificate {
        Some(c) if with_body => Some(
            BlockCertificate::from_canonical_bytes(&c.certificate_bytes)
                .with_context(|| format!("the peer's certificate of block {height}"))?,
        ),
        _ => None,
    };
    Ok((Block { header, body }, certificate))
}
