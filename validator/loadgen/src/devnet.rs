//! `dualchain devnet`: a whole network on this machine, loaded, checked and reported.
//!
//! # Steps
//! 1. A temporary directory (kept with `--keep`) receives N validator keys
//!    (`dualchain keygen`), a genesis with funded benchmark accounts
//!    (`dualchain genesis --accounts-seed`, unsigned mode allowed unless `--signed`),
//!    `peers.json` with free loopback ports and an admin token file.
//! 2. N `dualchain run --chain both` children start, each logging to
//!    `<dir>/v-<i>/node.log`. They are killed if this process fails, is interrupted or
//!    dies: `kill_on_drop`, a drop guard, and `PR_SET_PDEATHSIG` on Linux.
//! 3. Every validator's two API ports must answer `grpc.health.v1.Health/Check` for
//!    `dualchain.v1.Node` with SERVING (or `Node/GetStatus`) within `--ready-timeout`;
//!    otherwise the error names the validator and shows the tail of its log.
//! 4. The load generator runs in-process against every Delta API while a monitor samples
//!    both chains' heights on validator 0 and a progress display shows them.
//! 5. After the load, the chains settle for a few block times; for each chain the
//!    minimum finalized height of all validators is fetched from each (`Node/GetBlock`),
//!    and state roots and block digests must be equal.
//! 6. Memory (VmHWM, VmRSS) is read from `/proc`, the validators get SIGTERM (SIGKILL
//!    after a timeout), and the report is written. [`crate::cli::devnet_main`] then
//!    prints it and fails (non-zero exit) if the state roots disagree.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use dualchain_proto::NodeClient;
use dualchain_proto::v1::{Chain, GetBlockRequest, GetStatusRequest, StreamFinalityRequest};
use serde::Serialize;
use tokio::process::{Child, Command};

use crate::accounts::AccountSource;
use crate::cli::DevnetArgs;
use crate::loadgen::{LiveStats, LoadgenConfig};
use crate::progress::{ChainHeights, DevnetProgress};
pub use crate::report::DevnetReport;
use crate::report::{
    AlphaFigures, DeltaFigures, HeightSample, RootCheck, ShutdownRecord, ValidatorMemory,
};

/// Default Alpha and Delta block times at `--time-scale 1`.
pub const ALPHA_BLOCK_MS: u64 = 15_000;
pub const DELTA_BLOCK_MS: u64 = 3_000;
/// Delta blocks per Alpha block, by design.
pub const BLOCK_RATIO: u64 = ALPHA_BLOCK_MS / DELTA_BLOCK_MS;
/// Time a validator gets to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Sampling interval of the heights (and of the progress display).
const MONITOR_INTERVAL: Duration = Duration::from_millis(250);
/// Lines of a validator's log shown when it fails to start.
const LOG_TAIL_LINES: usize = 30;

/// Block times for a time scale: Delta = 3000 ms × scale (at least 1 ms), and Alpha
/// exactly `BLOCK_RATIO` times Delta (the genesis requires Delta to divide Alpha).
pub fn block_times(time_scale: f64) -> anyhow::Result<(u64, u64)> {
    if !(time_scale.is_finite() && time_scale > 0.0) {
        bail!("--time-scale must be a positive number, got {time_scale}");
    }
    let delta = ((DELTA_BLOCK_MS as f64) * time_scale).round().max(1.0) as u64;
    Ok((delta * BLOCK_RATIO, delta))
}

/// Ports of one validator, all on 127.0.0.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidatorPorts {
    pub alpha_p2p_port: u16,
    pub delta_p2p_port: u16,
    pub alpha_api_port: u16,
    pub delta_api_port: u16,
    #[serde(skip)]
    pub metrics_port: u16,
}

/// One entry of `peers.json`, the fixed contract of `dualchain run --peers`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerEntry {
    pub index: usize,
    pub name: String,
    pub host: String,
    #[serde(flatten)]
    pub ports: ValidatorPorts,
}

/// Picks `count` distinct loopback ports free for both TCP and UDP right now (the
/// listeners are held until all are chosen, then released).
pub fn free_ports(count: usize) -> anyhow::Result<Vec<u16>> {
    let mut held = Vec::with_capacity(count);
    let mut ports = Vec::with_capacity(count);
    let mut attempts = 0;
    while ports.len() < count {
        attempts += 1;
        if attempts > count * 50 {
            bail!("could not find {count} free loopback ports");
        }
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").context("binding a loopback port")?;
        let port = tcp.local_addr()?.port();
        // QUIC needs the same number free on UDP.
        if let Ok(udp) = std::net::UdpSocket::bind(("127.0.0.1", port)) {
            ports.push(port);
            held.push((tcp, udp));
        }
    }
    Ok(ports)
}

/// Assigns ports to `n` validators.
pub fn plan_peers(n: usize) -> anyhow::Result<Vec<PeerEntry>> {
    let ports = free_ports(n * 5)?;
    Ok((0..n)
        .map(|i| {
            let p = &ports[i * 5..i * 5 + 5];
            PeerEntry {
                index: i,
                name: format!("v-{i}"),
                host: "127.0.0.1".into(),
                ports: ValidatorPorts {
                    alpha_p2p_port: p[0],
                    delta_p2p_port: p[1],
                    alpha_api_port: p[2],
                    delta_api_port: p[3],
                    metrics_port: p[4],
                },
            }
        })
        .collect())
}

/// A started validator process.
struct Validator {
    index: usize,
    child: Child,
    pid: u32,
    log: PathBuf,
    ports: ValidatorPorts,
}

impl Validator {
    fn api_url(&self, chain: Chain) -> String {
        let port = match chain {
            Chain::Alpha => self.ports.alpha_api_port,
            _ => self.ports.delta_api_port,
        };
        format!("http://127.0.0.1:{port}")
    }
}

/// Owns the validator processes: whatever happens, none outlives the devnet.
struct Fleet {
    validators: Vec<Validator>,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for v in &mut self.validators {
            // Still running (not stopped cleanly): kill now. kill_on_drop would too,
            // but only once the Child is dropped; be explicit and immediate.
            if matches!(v.child.try_wait(), Ok(None)) {
                let _ = v.child.start_kill();
            }
        }
    }
}

/// Sends `signal` to `pid`.
#[allow(unsafe_code)]
fn send_signal(pid: u32, signal: libc::c_int) -> std::io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| std::io::Error::other("pid out of range"))?;
    // SAFETY: kill(2) has no memory-safety preconditions; pid names our own child.
    let rc = unsafe { libc::kill(pid, signal) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The last `lines` lines of a log file, for error messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// Reads VmHWM and VmRSS (KiB) of `pid` from `/proc/<pid>/status`.
pub fn read_memory(pid: u32) -> (Option<u64>, Option<u64>) {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return (None, None);
    };
    parse_proc_memory(&status)
}

/// Parses VmHWM and VmRSS (KiB) out of a `/proc/<pid>/status` text.
pub fn parse_proc_memory(status: &str) -> (Option<u64>, Option<u64>) {
    let field = |name: &str| {
        status.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse().ok()
        })
    };
    (field("VmHWM"), field("VmRSS"))
}

/// Runs a synchronous `dualchain` helper command, failing with its stderr.
fn run_helper(bin: &Path, args: &[String]) -> anyhow::Result<()> {
    let output = std::process::Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {} {}", bin.display(), args.join(" ")))?;
    if !output.status.success() {
        bail!(
            "`{} {}` failed ({}): {}",
            bin.display(),
            args.first().map_or("", String::as_str),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// Files of a prepared devnet.
struct Layout {
    genesis: PathBuf,
    peers: PathBuf,
    token: PathBuf,
    key_dirs: Vec<PathBuf>,
    data_dirs: Vec<PathBuf>,
}

fn prepare_network(
    bin: &Path,
    dir: &Path,
    args: &DevnetArgs,
    peers: &[PeerEntry],
    block_times: (u64, u64),
) -> anyhow::Result<Layout> {
    let mut key_dirs = Vec::new();
    let mut data_dirs = Vec::new();
    for p in peers {
        let node_dir = dir.join(&p.name);
        std::fs::create_dir_all(&node_dir)
            .with_context(|| format!("creating {}", node_dir.display()))?;
        let key_dir = node_dir.join("key");
        run_helper(
            bin,
            &[
                "keygen".into(),
                "--kind".into(),
                "validator".into(),
                "--out".into(),
                key_dir.display().to_string(),
            ],
        )?;
        key_dirs.push(key_dir);
        data_dirs.push(node_dir.join("data"));
    }
    let genesis = dir.join("genesis.json");
    let genesis_time_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("system clock before 1970")?
        .as_millis() as u64
        + 2_000;
    let mut genesis_args: Vec<String> = vec!["genesis".into(), "--validator-keys".into()];
    genesis_args.extend(key_dirs.iter().map(|d| d.display().to_string()));
    genesis_args.extend([
        "--accounts".into(),
        args.accounts.to_string(),
        "--accounts-seed".into(),
        args.accounts_seed.to_string(),
        "--out".into(),
        genesis.display().to_string(),
        "--alpha-block-time-ms".into(),
        block_times.0.to_string(),
        "--delta-block-time-ms".into(),
        block_times.1.to_string(),
        "--genesis-time-ms".into(),
        genesis_time_ms.to_string(),
    ]);
    if !args.signed {
        genesis_args.push("--allow-unsigned".into());
    }
    run_helper(bin, &genesis_args)?;

    let peers_path = dir.join("peers.json");
    std::fs::write(&peers_path, serde_json::to_string_pretty(peers)?)
        .with_context(|| format!("writing {}", peers_path.display()))?;
    let token = dir.join("admin-token");
    let secret: [u8; 24] = rand::random();
    write_private(&token, hex::encode(secret).as_bytes())?;
    Ok(Layout {
        genesis,
        peers: peers_path,
        token,
        key_dirs,
        data_dirs,
    })
}

fn write_private(path: &Path, content: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(content)
        .with_context(|| format!("writing {}", path.display()))
}

/// The `dualchain run` command line of validator `p` (the fixed contract).
fn run_args(p: &PeerEntry, layout: &Layout, json_logs: bool) -> Vec<String> {
    let addr = |port: u16| format!("127.0.0.1:{port}");
    let mut a: Vec<String> = vec![
        "run".into(),
        "--chain".into(),
        "both".into(),
        "--genesis".into(),
        layout.genesis.display().to_string(),
        "--key-dir".into(),
        layout.key_dirs[p.index].display().to_string(),
        "--data-dir".into(),
        layout.data_dirs[p.index].display().to_string(),
        "--peers".into(),
        layout.peers.display().to_string(),
        "--admin-token-file".into(),
        layout.token.display().to_string(),
        "--alpha-p2p-listen".into(),
        addr(p.ports.alpha_p2p_port),
        "--delta-p2p-listen".into(),
        addr(p.ports.delta_p2p_port),
        "--alpha-api-listen".into(),
        addr(p.ports.alpha_api_port),
        "--delta-api-listen".into(),
        addr(p.ports.delta_api_port),
        "--metrics-listen".into(),
        addr(p.ports.metrics_port),
    ];
    if json_logs {
        a.extend(["--log-format".into(), "json".into()]);
    }
    a
}

#[allow(unsafe_code)]
fn spawn_validator(
    bin: &Path,
    dir: &Path,
    p: &PeerEntry,
    layout: &Layout,
    json_logs: bool,
) -> anyhow::Result<Validator> {
    let log = dir.join(&p.name).join("node.log");
    let out = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let err = out.try_clone()?;
    let mut command = Command::new(bin);
    command
        .args(run_args(p, layout, json_logs))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .kill_on_drop(true)
        // Own process group: a terminal Ctrl-C reaches the devnet, which then stops
        // the validators cleanly itself.
        .process_group(0);
    #[cfg(target_os = "linux")]
    // SAFETY: the closure runs in the forked child before exec and only calls
    // prctl(2), which is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            // If the devnet process dies (even by SIGKILL), the kernel kills this child.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command
        .spawn()
        .with_context(|| format!("starting validator {} ({})", p.index, bin.display()))?;
    let pid = child.id().context("validator exited immediately")?;
    Ok(Validator {
        index: p.index,
        child,
        pid,
        log,
        ports: p.ports,
    })
}

/// Whether `url` reports `dualchain.v1.Node` as serving (health, or GetStatus).
async fn is_ready(url: &str) -> bool {
    let Ok(channel) = crate::loadgen::connect(url).await else {
        return false;
    };
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let check = health.check(tonic_health::pb::HealthCheckRequest {
        service: "dualchain.v1.Node".into(),
    });
    match tokio::time::timeout(Duration::from_secs(2), check).await {
        Ok(Ok(r)) => {
            return r.into_inner().status()
                == tonic_health::pb::health_check_response::ServingStatus::Serving;
        }
        Ok(Err(status)) if status.code() != tonic::Code::Unimplemented => return false,
        _ => {}
    }
    let mut node = NodeClient::new(channel);
    matches!(
        tokio::time::timeout(Duration::from_secs(2), node.get_status(GetStatusRequest {})).await,
        Ok(Ok(_))
    )
}

async fn wait_ready(fleet: &mut Fleet, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    for v in &mut fleet.validators {
        for chain in [Chain::Alpha, Chain::Delta] {
            let url = v.api_url(chain);
            loop {
                if let Ok(Some(status)) = v.child.try_wait() {
                    bail!(
                        "validator {} exited during start-up ({status}); last lines of {}:\n{}",
                        v.index,
                        v.log.display(),
                        log_tail(&v.log, LOG_TAIL_LINES)
                    );
                }
                if is_ready(&url).await {
                    break;
                }
                if Instant::now() >= deadline {
                    bail!(
                        "validator {} did not become ready on {url} within {:?}; last lines of {}:\n{}",
                        v.index,
                        timeout,
                        v.log.display(),
                        log_tail(&v.log, LOG_TAIL_LINES)
                    );
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
    Ok(())
}

/// Waits until validator 0 has finalized a Delta block, so the load starts on a
/// running chain rather than before the genesis time or the first quorum.
async fn wait_first_delta_block(fleet: &Fleet, timeout: Duration) -> anyhow::Result<()> {
    let v = &fleet.validators[0];
    let url = v.api_url(Chain::Delta);
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok((_, finalized)) = chain_heights(&url, Chain::Delta).await
            && finalized >= 1
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "no Delta block was finalized within {timeout:?} of readiness; last lines of {}:\n{}",
                v.log.display(),
                log_tail(&v.log, LOG_TAIL_LINES)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Status of `chain` on the node at `url`: (head height, finalized height).
async fn chain_heights(url: &str, chain: Chain) -> anyhow::Result<(u64, u64)> {
    let channel = crate::loadgen::connect(url).await?;
    let status = tokio::time::timeout(
        Duration::from_secs(5),
        NodeClient::new(channel).get_status(GetStatusRequest {}),
    )
    .await
    .with_context(|| format!("GetStatus on {url} timed out"))??
    .into_inner();
    let c = status
        .chains
        .iter()
        .find(|c| c.chain() == chain)
        .with_context(|| format!("{url} does not report chain {}", chain.as_str_name()))?;
    Ok((c.height, c.finalized_height))
}

/// Samples validator 0's heights until stopped; feeds the progress display.
struct Monitor {
    samples: Arc<Mutex<Vec<HeightSample>>>,
    alpha_txs: Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn rate_over(samples: &[HeightSample], pick: fn(&HeightSample) -> Option<u64>, window: f64) -> f64 {
    let Some(last) = samples.iter().rev().find(|s| pick(s).is_some()) else {
        return 0.0;
    };
    let Some(first) = samples
        .iter()
        .find(|s| pick(s).is_some() && s.t_s >= last.t_s - window)
    else {
        return 0.0;
    };
    let dt = last.t_s - first.t_s;
    if dt <= 0.0 {
        return 0.0;
    }
    (pick(last)
        .unwrap_or(0)
        .saturating_sub(pick(first).unwrap_or(0))) as f64
        / dt
}

fn start_monitor(
    alpha_url: String,
    delta_url: String,
    load_start: Arc<Mutex<Option<Instant>>>,
    live: Arc<LiveStats>,
    duration: Duration,
) -> Monitor {
    let samples = Arc::new(Mutex::new(Vec::new()));
    let alpha_txs = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let origin = Instant::now();
    let task = {
        let samples = samples.clone();
        tokio::spawn(async move {
            let mut progress = DevnetProgress::new(duration);
            let mut ticker = tokio::time::interval(MONITOR_INTERVAL);
            loop {
                ticker.tick().await;
                let (alpha, delta) = tokio::join!(
                    chain_heights(&alpha_url, Chain::Alpha),
                    chain_heights(&delta_url, Chain::Delta)
                );
                let now = Instant::now();
                let t_s = match *lock(&load_start) {
                    Some(start) if now >= start => (now - start).as_secs_f64(),
                    Some(start) => -(start - now).as_secs_f64(),
                    None => -(origin.elapsed().as_secs_f64()),
                };
                let sample = HeightSample {
                    t_s,
                    alpha: alpha.ok().map(|h| h.0),
                    delta: delta.ok().map(|h| h.0),
                };
                let heights = {
                    let mut all = lock(&samples);
                    all.push(sample);
                    ChainHeights {
                        alpha: sample.alpha,
                        delta: sample.delta,
                        alpha_blocks_per_s: rate_over(&all, |s| s.alpha, 10.0),
                        delta_blocks_per_s: rate_over(&all, |s| s.delta, 5.0),
                    }
                };
                progress.update(heights, &live.snapshot());
            }
        })
    };
    Monitor {
        samples,
        alpha_txs,
        task,
    }
}

/// Counts Alpha transactions finalized while the load runs.
async fn follow_alpha(url: String, counter: Arc<std::sync::atomic::AtomicU64>) {
    loop {
        let stream = async {
            let channel = crate::loadgen::connect(&url).await?;
            let request = StreamFinalityRequest {
                chain: Chain::Alpha as i32,
                from_height: None,
                include_tx_digests: false,
            };
            anyhow::Ok(
                NodeClient::new(channel)
                    .stream_finality(request)
                    .await?
                    .into_inner(),
            )
        };
        if let Ok(mut stream) = stream.await {
            while let Ok(Some(event)) = stream.message().await {
                if !event.replayed {
                    counter.fetch_add(
                        u64::from(event.tx_count),
                        std::sync::atomic::Ordering::Relaxed,
                    );
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Fetches (state root, digest) of `chain` at `height` from `url`.
async fn block_at(url: &str, chain: Chain, height: u64) -> anyhow::Result<(String, String)> {
    let channel = crate::loadgen::connect(url).await?;
    let block = tokio::time::timeout(
        Duration::from_secs(5),
        NodeClient::new(channel).get_block(GetBlockRequest {
            chain: chain as i32,
            height,
            include_body: false,
            include_certificate: false,
        }),
    )
    .await
    .with_context(|| format!("GetBlock on {url} timed out"))??
    .into_inner();
    let header = block.header.context("block without header")?;
    Ok((hex::encode(header.state_root), hex::encode(header.digest)))
}

/// Compares state roots and digests of `chain` at the lowest finalized height.
async fn compare_roots(urls: &[String], chain: Chain) -> RootCheck {
    let name = chain
        .as_str_name()
        .trim_start_matches("CHAIN_")
        .to_ascii_lowercase();
    let mut last = RootCheck {
        chain: name.clone(),
        ..RootCheck::default()
    };
    for attempt in 0..5 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let mut heights = Vec::new();
        for url in urls {
            match chain_heights(url, chain).await {
                Ok((_, finalized)) => heights.push(finalized),
                Err(e) => {
                    last.state_roots = vec![format!("error: {e:#}")];
                    heights.clear();
                    break;
                }
            }
        }
        let Some(&height) = heights.iter().min() else {
            continue;
        };
        let mut roots = Vec::new();
        let mut digests = Vec::new();
        for url in urls {
            match block_at(url, chain, height).await {
                Ok((root, digest)) => {
                    roots.push(root);
                    digests.push(digest);
                }
                Err(e) => {
                    roots.push(format!("error: {e:#}"));
                    digests.push(String::new());
                }
            }
        }
        let fetched = roots.iter().all(|r| !r.starts_with("error"));
        let agree = fetched
            && roots.windows(2).all(|w| w[0] == w[1])
            && digests.windows(2).all(|w| w[0] == w[1]);
        last = RootCheck {
            chain: name.clone(),
            height,
            agree,
            state_roots: roots,
            block_digests: digests,
        };
        if fetched {
            return last;
        }
    }
    last
}

async fn stop_all(fleet: &mut Fleet) -> Vec<ShutdownRecord> {
    for v in &fleet.validators {
        if let Err(e) = send_signal(v.pid, libc::SIGTERM) {
            tracing::warn!(validator = v.index, error = %e, "SIGTERM failed");
        }
    }
    let mut records = Vec::new();
    for v in &mut fleet.validators {
        let record = match tokio::time::timeout(STOP_TIMEOUT, v.child.wait()).await {
            Ok(Ok(status)) => ShutdownRecord {
                index: v.index,
                clean: status.success(),
                detail: status.to_string(),
            },
            Ok(Err(e)) => ShutdownRecord {
                index: v.index,
                clean: false,
                detail: format!("wait failed: {e}"),
            },
            Err(_) => {
                let _ = v.child.kill().await;
                ShutdownRecord {
                    index: v.index,
                    clean: false,
                    detail: format!("killed after {STOP_TIMEOUT:?} without exiting"),
                }
            }
        };
        records.push(record);
    }
    records
}

/// Height of a chain in the samples at the load's start and end (validator 0).
fn blocks_during(
    samples: &[HeightSample],
    pick: fn(&HeightSample) -> Option<u64>,
    end: f64,
) -> u64 {
    let at_start = samples
        .iter()
        .filter(|s| s.t_s <= 0.0)
        .filter_map(pick)
        .next_back()
        .or_else(|| samples.iter().find_map(pick));
    let at_end = samples
        .iter()
        .filter(|s| s.t_s <= end)
        .filter_map(pick)
        .next_back();
    match (at_start, at_end) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => 0,
    }
}

/// Delta blocks per Alpha block over the load window, measured between the first and
/// the last Alpha height change inside it, so that whole Alpha blocks are compared
/// (counting from arbitrary instants would be off by up to one Alpha block). Falls back
/// to the plain counts when fewer than two Alpha blocks changed in the window.
pub fn block_ratio(samples: &[HeightSample], end: f64) -> f64 {
    let both: Vec<(f64, u64, u64)> = samples
        .iter()
        .filter_map(|s| Some((s.t_s, s.alpha?, s.delta?)))
        .collect();
    let changes: Vec<&(f64, u64, u64)> = both
        .windows(2)
        .filter(|w| w[1].1 > w[0].1 && w[1].0 >= 0.0 && w[1].0 <= end)
        .map(|w| &w[1])
        .collect();
    if let (Some(first), Some(last)) = (changes.first(), changes.last())
        && last.1 > first.1
    {
        return last.2.saturating_sub(first.2) as f64 / (last.1 - first.1) as f64;
    }
    let alpha = blocks_during(samples, |s| s.alpha, end);
    let delta = blocks_during(samples, |s| s.delta, end);
    if alpha == 0 {
        0.0
    } else {
        delta as f64 / alpha as f64
    }
}

/// Runs the devnet (see the module docs).
pub async fn run(args: &DevnetArgs) -> anyhow::Result<DevnetReport> {
    if args.validators == 0 {
        bail!("--validators must be at least 1");
    }
    if args.accounts < 2 {
        bail!("--accounts must be at least 2");
    }
    let (alpha_ms, delta_ms) = block_times(args.time_scale)?;
    let bin = match &args.node_binary {
        Some(p) => p.clone(),
        None => std::env::current_exe().context("locating the dualchain binary")?,
    };
    let temp = tempfile::Builder::new()
        .prefix("dualchain-devnet-")
        .tempdir()
        .context("creating the devnet directory")?;
    let dir = temp.path().to_path_buf();
    eprintln!(
        "devnet: {} validators in {} (alpha {alpha_ms} ms, delta {delta_ms} ms blocks, {})",
        args.validators,
        dir.display(),
        if args.signed { "signed" } else { "unsigned" }
    );

    let peers = plan_peers(args.validators)?;
    let layout = {
        let (bin, dir, args, peers) = (bin.clone(), dir.clone(), args.clone(), peers.clone());
        tokio::task::spawn_blocking(move || {
            prepare_network(&bin, &dir, &args, &peers, (alpha_ms, delta_ms))
        })
        .await
        .context("preparing keys and genesis")??
    };

    let mut fleet = Fleet {
        validators: Vec::new(),
    };
    for p in &peers {
        fleet
            .validators
            .push(spawn_validator(&bin, &dir, p, &layout, args.json_logs)?);
    }
    let result = tokio::select! {
        r = drive(args, &mut fleet, &dir, (alpha_ms, delta_ms)) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    // Whatever happened, stop the validators (cleanly if they still run).
    let shutdown = stop_all(&mut fleet).await;
    drop(fleet);
    let data_dir = if args.keep {
        let kept = temp.keep();
        eprintln!("devnet: data kept in {}", kept.display());
        Some(kept.display().to_string())
    } else {
        None
    };
    let mut report = result?;
    report.shutdown = shutdown;
    report.data_dir = data_dir;
    crate::report::write_report(
        &args.report,
        &mut report,
        Path::new(crate::report::DEFAULT_FONT),
    )?;
    Ok(report)
}

/// The error a devnet run ends with when the validators' state roots disagree.
pub fn disagreement_error(report: &DevnetReport, report_dir: &Path) -> anyhow::Error {
    let bad: Vec<String> = report
        .state_root_checks
        .iter()
        .filter(|c| !c.agree)
        .map(|c| format!("{} at height {}: {:?}", c.chain, c.height, c.state_roots))
        .collect();
    anyhow::anyhow!(
        "validators' state roots disagree (report in {}): {}",
        report_dir.display(),
        bad.join("; ")
    )
}

/// Readiness, load, settle, compare, measure: the part that runs while validators live.
async fn drive(
    args: &DevnetArgs,
    fleet: &mut Fleet,
    dir: &Path,
    (alpha_ms, delta_ms): (u64, u64),
) -> anyhow::Result<DevnetReport> {
    wait_ready(fleet, args.ready_timeout).await?;
    wait_first_delta_block(fleet, args.ready_timeout).await?;
    eprintln!("devnet: all validators ready, Delta is sealing");
    let _ = dir;

    let delta_urls: Vec<String> = fleet
        .validators
        .iter()
        .map(|v| v.api_url(Chain::Delta))
        .collect();
    let alpha_urls: Vec<String> = fleet
        .validators
        .iter()
        .map(|v| v.api_url(Chain::Alpha))
        .collect();
    let live = LiveStats::new();
    let load_start = Arc::new(Mutex::new(None));
    let monitor = start_monitor(
        alpha_urls[0].clone(),
        delta_urls[0].clone(),
        load_start.clone(),
        live.clone(),
        args.duration,
    );
    let alpha_follower = tokio::spawn(follow_alpha(
        alpha_urls[0].clone(),
        monitor.alpha_txs.clone(),
    ));

    let mut config = LoadgenConfig::new(
        delta_urls.clone(),
        AccountSource::Seed {
            seed: args.accounts_seed,
            count: args.accounts,
        },
    );
    config.tps = Some(args.tps);
    config.duration = args.duration;
    config.workload = args.workload;
    config.signed = args.signed;
    config.batch = args.batch;
    config.drain_timeout = Duration::from_millis((delta_ms * 10).max(5_000));
    // The monitor's clock starts with the send window.
    let live_for_start = live.clone();
    let start_marker = tokio::spawn({
        let load_start = load_start.clone();
        async move {
            loop {
                if let Some(start) = live_for_start.started_at() {
                    *lock(&load_start) = Some(start);
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    let loadgen = crate::loadgen::run(config, live.clone()).await;
    start_marker.abort();
    let loadgen = loadgen.context("running the load")?;
    let load_end = args.duration.as_secs_f64();

    // Memory at the end of the load (VmHWM is the peak over the whole run).
    let memory: Vec<ValidatorMemory> = fleet
        .validators
        .iter()
        .map(|v| {
            let (hwm, rss) = read_memory(v.pid);
            ValidatorMemory {
                index: v.index,
                pid: v.pid,
                vm_hwm_kib: hwm,
                vm_rss_kib: rss,
            }
        })
        .collect();

    // Let the chains settle, then compare.
    let settle = Duration::from_millis((delta_ms * 3).max(alpha_ms).max(1_000));
    tokio::time::sleep(settle).await;
    monitor.task.abort();
    alpha_follower.abort();
    let mut checks = Vec::new();
    for (chain, urls) in [(Chain::Alpha, &alpha_urls), (Chain::Delta, &delta_urls)] {
        checks.push(compare_roots(urls, chain).await);
    }
    let state_roots_agree = checks.iter().all(|c| c.agree);

    let samples = lock(&monitor.samples).clone();
    let alpha_blocks = blocks_during(&samples, |s| s.alpha, load_end);
    let delta_blocks = blocks_during(&samples, |s| s.delta, load_end);
    let final_alpha = samples.iter().rev().find_map(|s| s.alpha).unwrap_or(0);
    let final_delta = samples.iter().rev().find_map(|s| s.delta).unwrap_or(0);
    let alpha_txs = monitor.alpha_txs.load(std::sync::atomic::Ordering::Relaxed);
    let block_ratio = block_ratio(&samples, load_end);
    Ok(DevnetReport {
        validators: args.validators,
        duration_s: args.duration.as_secs_f64(),
        time_scale: args.time_scale,
        workload: args.workload,
        signed: args.signed,
        target_tps: args.tps,
        delta: DeltaFigures {
            tps: loadgen.average_tps,
            finality_ms_p50: loadgen.finality_ms.p50,
            finality_ms_p95: loadgen.finality_ms.p95,
            finality_ms_p99: loadgen.finality_ms.p99,
            height: final_delta,
            blocks_during_load: delta_blocks,
            block_time_ms: delta_ms,
            submitted: loadgen.submitted,
            committed: loadgen.committed,
            rejected: loadgen.rejected,
        },
        alpha: AlphaFigures {
            tps: alpha_txs as f64 / args.duration.as_secs_f64(),
            height: final_alpha,
            blocks_during_load: alpha_blocks,
            block_time_ms: alpha_ms,
            txs_committed: alpha_txs,
        },
        block_ratio,
        state_roots_agree,
        state_root_checks: checks,
        rejected_by_status: loadgen.rejected_by_status.clone(),
        memory,
        shutdown: Vec::new(),
        heights: samples,
        plots: Vec::new(),
        plots_without_text: false,
        data_dir: None,
        loadgen,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_times_scale_and_keep_the_ratio() {
        assert_eq!(block_times(1.0).unwrap(), (15_000, 3_000));
        assert_eq!(block_times(0.1).unwrap(), (1_500, 300));
        assert_eq!(block_times(0.0001).unwrap(), (5, 1));
        assert!(block_times(0.0).is_err());
        assert!(block_times(f64::NAN).is_err());
    }

    #[test]
    fn peers_json_matches_the_run_contract_and_ports_are_distinct() {
        let peers = plan_peers(4).unwrap();
        let mut all: Vec<u16> = peers
            .iter()
            .flat_map(|p| {
                let q = p.ports;
                [
                    q.alpha_p2p_port,
                    q.delta_p2p_port,
                    q.alpha_api_port,
                    q.delta_api_port,
                    q.metrics_port,
                ]
            })
            .collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 20);
        let json = serde_json::to_value(&peers).unwrap();
        let first = &json[0];
        assert_eq!(first["index"], 0);
        assert_eq!(first["name"], "v-0");
        assert_eq!(first["host"], "127.0.0.1");
        for key in [
            "alphaP2pPort",
            "deltaP2pPort",
            "alphaApiPort",
            "deltaApiPort",
        ] {
            assert!(first[key].is_u64(), "{key} missing in {first}");
        }
        assert!(first.get("metricsPort").is_none());
    }

    #[test]
    fn run_command_line_follows_the_contract() {
        let peers = plan_peers(1).unwrap();
        let layout = Layout {
            genesis: "/d/genesis.json".into(),
            peers: "/d/peers.json".into(),
            token: "/d/admin-token".into(),
            key_dirs: vec!["/d/v-0/key".into()],
            data_dirs: vec!["/d/v-0/data".into()],
        };
        let args = run_args(&peers[0], &layout, true);
        let line = args.join(" ");
        assert!(line.starts_with("run --chain both --genesis /d/genesis.json --key-dir /d/v-0/key --data-dir /d/v-0/data --peers /d/peers.json --admin-token-file /d/admin-token"), "{line}");
        let p = peers[0].ports;
        for part in [
            format!("--alpha-p2p-listen 127.0.0.1:{}", p.alpha_p2p_port),
            format!("--delta-p2p-listen 127.0.0.1:{}", p.delta_p2p_port),
            format!("--alpha-api-listen 127.0.0.1:{}", p.alpha_api_port),
            format!("--delta-api-listen 127.0.0.1:{}", p.delta_api_port),
            format!("--metrics-listen 127.0.0.1:{}", p.metrics_port),
        ] {
            assert!(line.contains(&part), "{part} missing in {line}");
        }
        assert!(line.ends_with("--log-format json"));
    }

    #[test]
    fn proc_memory_is_parsed() {
        let status =
            "Name:\tdualchain\nVmPeak:\t  900 kB\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n";
        assert_eq!(parse_proc_memory(status), (Some(204_800), Some(102_400)));
        assert_eq!(parse_proc_memory("Name: x\n"), (None, None));
        let (hwm, rss) = read_memory(std::process::id());
        assert!(hwm.is_some() && rss.is_some());
    }

    #[test]
    fn blocks_and_rates_are_counted_over_the_load_window() {
        let samples: Vec<HeightSample> = (-4..=64)
            .map(|i| {
                let t = f64::from(i) * 0.5;
                HeightSample {
                    t_s: t,
                    alpha: Some((t.max(-2.0) + 2.0) as u64 / 2 + 10),
                    delta: Some(((t.max(-2.0) + 2.0) * 10.0 / 4.0) as u64 + 50),
                }
            })
            .collect();
        let alpha = blocks_during(&samples, |s| s.alpha, 30.0);
        let delta = blocks_during(&samples, |s| s.delta, 30.0);
        assert_eq!(alpha, 15);
        assert_eq!(delta, 75);
        assert_eq!(delta as f64 / alpha as f64, 5.0);
        assert!(
            (block_ratio(&samples, 30.0) - 5.0).abs() < 0.35,
            "{}",
            block_ratio(&samples, 30.0)
        );
        let rate = rate_over(&samples, |s| s.delta, 5.0);
        assert!((rate - 2.5).abs() < 0.2, "{rate}");
        assert_eq!(rate_over(&[], |s| s.delta, 5.0), 0.0);
    }

    #[test]
    fn block_ratio_is_measured_on_whole_alpha_blocks_whatever_the_phase() {
        for phase in [0.0, 0.2, 0.7, 1.1, 1.45] {
            let samples: Vec<HeightSample> = (-8..=124)
                .map(|i| {
                    let t = f64::from(i) * 0.25;
                    let since_genesis = t + 10.0 + phase;
                    HeightSample {
                        t_s: t,
                        alpha: Some((since_genesis / 1.5).floor() as u64),
                        delta: Some((since_genesis / 0.3).floor() as u64),
                    }
                })
                .collect();
            let ratio = block_ratio(&samples, 30.0);
            assert!((ratio - 5.0).abs() <= 0.1, "phase {phase}: {ratio}");
        }
        assert_eq!(block_ratio(&[], 30.0), 0.0);
    }

    #[test]
    fn log_tail_returns_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("node.log");
        std::fs::write(
            &log,
            (1..=50).map(|i| format!("line {i}\n")).collect::<String>(),
        )
        .unwrap();
        let tail = log_tail(&log, 3);
        assert_eq!(tail, "line 48\nline 49\nline 50");
        assert!(log_tail(&dir.path().join("missing"), 3).contains("cannot read"));
    }

    #[tokio::test]
    async fn a_validator_that_dies_at_start_is_reported_with_its_log() {
        // `sh` stands in for the node binary: it prints a line and exits non-zero.
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("node.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new("sh")
            .args(["-c", "echo 'fatal: genesis not found' >&2; exit 3"])
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let pid = child.id().unwrap();
        let ports = plan_peers(1).unwrap()[0].ports;
        let mut fleet = Fleet {
            validators: vec![Validator {
                index: 0,
                child,
                pid,
                log,
                ports,
            }],
        };
        let err = wait_ready(&mut fleet, Duration::from_secs(20))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("validator 0 exited during start-up"), "{err}");
        assert!(err.contains("fatal: genesis not found"), "{err}");
    }

    #[tokio::test]
    async fn validators_stop_on_sigterm_and_are_killed_after_the_timeout() {
        let spawn = |script: &str| {
            let child = Command::new("sh")
                .args(["-c", script])
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            let pid = child.id().unwrap();
            Validator {
                index: 0,
                child,
                pid,
                log: PathBuf::new(),
                ports: plan_peers(1).unwrap()[0].ports,
            }
        };
        let mut fleet = Fleet {
            validators: vec![spawn("trap 'exit 0' TERM; while :; do sleep 0.05; done")],
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        let records = stop_all(&mut fleet).await;
        assert!(records[0].clean, "{:?}", records[0]);
    }
}
