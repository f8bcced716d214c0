//! `dualchain devnet` end to end, with this test executable standing in for the node.
//!
//! The test binary has no libtest harness: started with `keygen`, `genesis` or `run`
//! it behaves as a tiny fake `dualchain` (keys and genesis are placeholder files; `run`
//! serves `grpc.health.v1`, `Node` and `Transactions` on the two API ports, seals
//! blocks on the wall clock from the genesis time, so every fake validator reports
//! the same heights and state roots, and stops cleanly on SIGTERM). Started without
//! arguments it runs the scenarios below against itself via `--node-binary`.
//!
//! A genesis made with `--accounts-seed 666` makes validator 1 report different state
//! roots, to check that the devnet notices and fails.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use dualchain_core::encoding::Canonical;
use dualchain_core::types::SignedTransaction;
use dualchain_loadgen::cli::{DevnetArgs, devnet_main, run_devnet};
use dualchain_proto::v1::{
    Block, BlockHeader, Chain, ChainStatus, FinalityEvent, GetBlockRequest, GetStatusRequest,
    NodeStatus, StreamFinalityRequest, SubmitBatchRequest, SubmitBatchResponse, SubmitRequest,
    SubmitSummary, TxResult, TxStatus,
};
use dualchain_proto::{Node, NodeServer, Transactions, TransactionsServer};
use futures::Stream;
use tonic::{Request, Response, Status, Streaming};

const DIVERGENT_SEED: &str = "666";

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Chain timing shared by every fake validator (from the genesis file).
#[derive(Clone, Copy)]
struct Clock {
    genesis_ms: u64,
    alpha_ms: u64,
    delta_ms: u64,
    diverge: bool,
}

impl Clock {
    fn block_ms(&self, chain: Chain) -> u64 {
        if chain == Chain::Alpha {
            self.alpha_ms
        } else {
            self.delta_ms
        }
    }

    fn height(&self, chain: Chain) -> u64 {
        now_ms().saturating_sub(self.genesis_ms) / self.block_ms(chain)
    }

    fn root(&self, chain: Chain, height: u64) -> Vec<u8> {
        let mut root = vec![0u8; 32];
        root[..8].copy_from_slice(&height.to_le_bytes());
        root[8] = chain as u8;
        root[9] = u8::from(self.diverge);
        root
    }
}

#[derive(Clone)]
struct FakeValidator {
    clock: Clock,
    chain: Chain,
    pending: Arc<Mutex<Vec<Vec<u8>>>>,
}

#[tonic::async_trait]
impl Transactions for FakeValidator {
    async fn submit_transactions(
        &self,
        _: Request<Streaming<SubmitRequest>>,
    ) -> Result<Response<SubmitSummary>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn submit_batch(
        &self,
        request: Request<SubmitBatchRequest>,
    ) -> Result<Response<SubmitBatchResponse>, Status> {
        let txs = request.into_inner().transactions;
        let mut results = Vec::new();
        let mut pending = self.pending.lock().unwrap();
        for (i, bytes) in txs.iter().enumerate() {
            let status = match SignedTransaction::from_canonical_bytes(bytes) {
                Ok(stx) => {
                    pending.push(stx.digest().0.to_vec());
                    TxStatus::Accepted
                }
                Err(_) => TxStatus::InvalidEncoding,
            };
            results.push(TxResult {
                index: i as u64,
                digest: Vec::new(),
                status: status as i32,
                reason: String::new(),
            });
        }
        let accepted = results
            .iter()
            .filter(|r| r.status() == TxStatus::Accepted)
            .count() as u32;
        Ok(Response::new(SubmitBatchResponse {
            chain: self.chain as i32,
            rejected: results.len() as u32 - accepted,
            accepted,
            results,
            mempool_depth: 0,
        }))
    }
}

#[tonic::async_trait]
impl Node for FakeValidator {
    async fn get_status(
        &self,
        _: Request<GetStatusRequest>,
    ) -> Result<Response<NodeStatus>, Status> {
        let chains = [Chain::Alpha, Chain::Delta]
            .into_iter()
            .map(|chain| {
                let height = self.clock.height(chain);
                ChainStatus {
                    chain: chain as i32,
                    height,
                    finalized_height: height,
                    latest_state_root: self.clock.root(chain, height),
                    ..ChainStatus::default()
                }
            })
            .collect();
        Ok(Response::new(NodeStatus {
            node_version: "0.0.0-fake".into(),
            chains,
            ..NodeStatus::default()
        }))
    }

    async fn get_block(
        &self,
        request: Request<GetBlockRequest>,
    ) -> Result<Response<Block>, Status> {
        let req = request.into_inner();
        let chain = req.chain();
        if req.height > self.clock.height(chain) {
            return Err(Status::not_found("above the head"));
        }
        Ok(Response::new(Block {
            header: Some(BlockHeader {
                chain: chain as i32,
                height: req.height,
                state_root: self.clock.root(chain, req.height),
                digest: vec![req.height as u8; 32],
                ..BlockHeader::default()
            }),
            finalized: true,
            ..Block::default()
        }))
    }

    type StreamFinalityStream =
        Pin<Box<dyn Stream<Item = Result<FinalityEvent, Status>> + Send + 'static>>;

    async fn stream_finality(
        &self,
        request: Request<StreamFinalityRequest>,
    ) -> Result<Response<Self::StreamFinalityStream>, Status> {
        let chain = match request.into_inner().chain() {
            Chain::Unspecified => self.chain,
            chain => chain,
        };
        let me = self.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        tokio::spawn(async move {
            let mut height = me.clock.height(chain);
            loop {
                tokio::time::sleep(Duration::from_millis(me.clock.block_ms(chain) / 2)).await;
                while me.clock.height(chain) > height {
                    height += 1;
                    let digests = if chain == Chain::Delta {
                        std::mem::take(&mut *me.pending.lock().unwrap())
                    } else {
                        Vec::new()
                    };
                    let event = FinalityEvent {
                        kind: chain.finality_event_kind() as i32,
                        chain: chain as i32,
                        height,
                        tx_count: digests.len() as u32,
                        tx_digests: digests,
                        state_root: me.clock.root(chain, height),
                        ..FinalityEvent::default()
                    };
                    if tx.send(Ok(event)).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

async fn serve(addr: &str, node: FakeValidator, stop: tokio::sync::watch::Receiver<bool>) {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("dualchain.v1.Node", tonic_health::ServingStatus::Serving)
        .await;
    let mut stop = stop;
    tonic::transport::Server::builder()
        .add_service(health)
        .add_service(NodeServer::new(node.clone()))
        .add_service(TransactionsServer::new(node))
        .serve_with_shutdown(addr.parse().unwrap(), async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await
        .unwrap();
}

/// The fake `dualchain` (see the module docs).
fn fake_node(args: &[String]) {
    match args[0].as_str() {
        "keygen" => std::fs::create_dir_all(flag(args, "--out").unwrap()).unwrap(),
        "genesis" => {
            let genesis = serde_json::json!({
                "genesis_time_ms": flag(args, "--genesis-time-ms").unwrap().parse::<u64>().unwrap(),
                "alpha_ms": flag(args, "--alpha-block-time-ms").unwrap().parse::<u64>().unwrap(),
                "delta_ms": flag(args, "--delta-block-time-ms").unwrap().parse::<u64>().unwrap(),
                "seed": flag(args, "--accounts-seed").unwrap(),
                "unsigned": args.iter().any(|a| a == "--allow-unsigned"),
            });
            std::fs::write(flag(args, "--out").unwrap(), genesis.to_string()).unwrap();
        }
        "run" => {
            let genesis: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(flag(args, "--genesis").unwrap()).unwrap(),
            )
            .unwrap();
            let key_dir = flag(args, "--key-dir").unwrap();
            let clock = Clock {
                genesis_ms: genesis["genesis_time_ms"].as_u64().unwrap(),
                alpha_ms: genesis["alpha_ms"].as_u64().unwrap(),
                delta_ms: genesis["delta_ms"].as_u64().unwrap(),
                diverge: genesis["seed"] == DIVERGENT_SEED && key_dir.contains("v-1"),
            };
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(async {
                let (stop_tx, stop) = tokio::sync::watch::channel(false);
                let pending = Arc::new(Mutex::new(Vec::new()));
                let alpha = FakeValidator {
                    clock,
                    chain: Chain::Alpha,
                    pending: pending.clone(),
                };
                let delta = FakeValidator {
                    clock,
                    chain: Chain::Delta,
                    pending,
                };
                let a = tokio::spawn(serve(
                    flag(args, "--alpha-api-listen").unwrap().to_owned().leak(),
                    alpha,
                    stop.clone(),
                ));
                let d = tokio::spawn(serve(
                    flag(args, "--delta-api-listen").unwrap().to_owned().leak(),
                    delta,
                    stop,
                ));
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                        .unwrap();
                term.recv().await;
                eprintln!("fake node: SIGTERM, stopping");
                let _ = stop_tx.send(true);
                let _ = tokio::join!(a, d);
            });
        }
        other => panic!("fake node: unknown command {other}"),
    }
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    devnet: DevnetArgs,
}

fn devnet_args(report: &std::path::Path, extra: &[&str]) -> DevnetArgs {
    let exe = std::env::current_exe().unwrap();
    let mut argv: Vec<String> = vec![
        "devnet".into(),
        "--validators".into(),
        "4".into(),
        "--duration".into(),
        "4s".into(),
        "--time-scale".into(),
        "0.1".into(),
        "--tps".into(),
        "500".into(),
        "--accounts".into(),
        "20".into(),
        "--report".into(),
        report.display().to_string(),
        "--node-binary".into(),
        exe.display().to_string(),
        "--ready-timeout".into(),
        "20s".into(),
    ];
    argv.extend(extra.iter().map(|s| s.to_string()));
    Cli::parse_from(argv).devnet
}

fn scenario_agreeing_devnet_writes_a_full_report() {
    let dir = tempfile::tempdir().unwrap();
    let report_dir = dir.path().join("report");
    let args = devnet_args(&report_dir, &[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let report = runtime.block_on(run_devnet(&args)).unwrap();
    assert!(report.state_roots_agree, "{:?}", report.state_root_checks);
    assert_eq!(report.state_root_checks.len(), 2);
    assert!(
        report
            .state_root_checks
            .iter()
            .all(|c| c.state_roots.len() == 4)
    );
    // The fake seals on the wall clock at 1.5 s / 300 ms: five Delta blocks per Alpha
    // block, measured over 4 s of load (so a couple of Alpha blocks: loose bounds).
    assert!(
        (3.0..=8.0).contains(&report.block_ratio),
        "block ratio {}",
        report.block_ratio
    );
    assert!(report.delta.height > 0 && report.alpha.height > 0);
    assert_eq!(report.loadgen.submitted, 2000);
    // Only validator 0's own transactions are finalized on its stream by the fake.
    assert!(
        report.loadgen.committed >= 400,
        "{}",
        report.loadgen.committed
    );
    assert!(report.delta.finality_ms_p50 > 0);
    assert_eq!(report.memory.len(), 4);
    assert!(report.memory.iter().all(|m| m.vm_hwm_kib.is_some()));
    assert!(
        report.shutdown.iter().all(|s| s.clean),
        "{:?}",
        report.shutdown
    );
    assert!(!report.signed);
    for file in [
        "report.json",
        "report.md",
        "tps.png",
        "finality_cdf.png",
        "heights.png",
    ] {
        assert!(report_dir.join(file).exists(), "{file} missing");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report_dir.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(json["state_roots_agree"], true);
    assert_eq!(json["validators"], 4);
    assert!(json["delta"]["finality_ms_p95"].is_u64());
    eprintln!(
        "ok: agreeing devnet (block ratio {:.2})",
        report.block_ratio
    );
}

fn scenario_disagreeing_state_roots_fail_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let report_dir = dir.path().join("report");
    let args = devnet_args(&report_dir, &["--accounts-seed", DIVERGENT_SEED, "--json"]);
    let err = devnet_main(args).unwrap_err().to_string();
    assert!(err.contains("state roots disagree"), "{err}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report_dir.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(json["state_roots_agree"], false);
    eprintln!("ok: disagreeing devnet fails");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if matches!(
        args.first().map(String::as_str),
        Some("keygen" | "genesis" | "run")
    ) {
        fake_node(&args);
        return;
    }
    // libtest-style invocations (`--list`, filters) run everything; keep it bounded.
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let watchdog = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(180));
        eprintln!("devnet_fake: timed out");
        std::process::exit(2);
    });
    scenario_agreeing_devnet_writes_a_full_report();
    scenario_disagreeing_state_roots_fail_the_run();
    drop(watchdog);
}
