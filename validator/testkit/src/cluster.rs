//! A local network of real `dualchain run` processes on 127.0.0.1.
//!
//! [`LocalCluster::prepare`] makes everything with the binary itself: one validator key
//! per validator (`dualchain keygen`), a genesis with funded benchmark accounts
//! (`dualchain genesis --accounts-seed`), `peers.json` with free loopback ports and an
//! admin token file. Validators then start with both chains in one process
//! ([`LocalCluster::start`]) or one process per chain, the pod layout
//! ([`LocalCluster::start_chain`]).
//!
//! # Layout of the directory
//! ```text
//! genesis.json  peers.json  admin-token
//! v-<i>/key  v-<i>/data  v-<i>/node.log          (--chain both)
//! v-<i>/data/<chain>  v-<i>/node-<chain>.log      (one process per chain)
//! stranger/key  stranger/data                      (a key outside the validator set)
//! ```
//!
//! # Processes never outlive the cluster
//! Dropping it SIGKILLs every process still running; on Linux each child also gets
//! `PR_SET_PDEATHSIG(SIGKILL)`, so even a SIGKILLed test or devnet takes its
//! validators with it. The death signal follows the *thread* that spawned the child:
//! start processes from a thread that lives as long as the cluster (a test's thread,
//! a runtime worker or `block_on` thread), not from `spawn_blocking`.
//! Every process runs in its own process group, so a terminal's Ctrl-C reaches only
//! the owner, which then stops the validators itself.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use dualchain_core::types::{ChainId, ConsensusEngine};
use dualchain_proto::v1;
use serde::Serialize;

use crate::ports::{LocalPeer, peers_json, plan_local_peers};
use crate::{log_tail, unix_ms};
use dualchain_client::node::{self as client, proto_chain};

/// Lines of a validator's log shown in errors.
pub const LOG_TAIL_LINES: usize = 30;

/// What to prepare.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    /// Number of validators.
    pub validators: usize,
    pub alpha_block_ms: u64,
    pub delta_block_ms: u64,
    /// Funded accounts, derived from `accounts_seed` (`dualchain genesis --accounts-seed`).
    pub accounts: usize,
    pub accounts_seed: u64,
    /// `dualchain genesis --allow-unsigned`.
    pub allow_unsigned: bool,
    /// The genesis time is now plus this.
    pub genesis_delay: Duration,
    /// Admin bearer token; `None` draws a random one.
    pub admin_token: Option<String>,
    /// Appended to every `dualchain run` command line.
    pub extra_run_args: Vec<String>,
    /// `--log-format json` for the validators.
    pub json_logs: bool,
    /// Extra environment of the validator processes (e.g. `RUST_LOG`).
    pub env: Vec<(String, String)>,
    /// Prefix of the temporary directory's name.
    pub dir_prefix: String,
    /// Soft and hard `RLIMIT_NOFILE` of the validator processes (`None`: inherited).
    pub open_file_limit: Option<u64>,
    /// `dualchain genesis --epoch-length` (`None`: the genesis default).
    pub epoch_length: Option<u64>,
    /// How many of the `validators` (the last ones) are left out of the genesis set:
    /// validators that join the running network. They have keys, ports and
    /// `peers.json` entries like the others, and run with `--join`.
    pub joiners: usize,
    /// Consensus engines of Alpha and Delta (`dualchain genesis --alpha-consensus
    /// / --delta-consensus`).
    pub engines: (ConsensusEngine, ConsensusEngine),
}

impl ClusterSpec {
    /// `validators` validators with the default block times (15 s / 3 s), 1000
    /// accounts from seed 42, unsigned transactions allowed.
    pub fn new(validators: usize) -> Self {
        Self {
            validators,
            alpha_block_ms: 15_000,
            delta_block_ms: 3_000,
            accounts: 1000,
            accounts_seed: 42,
            allow_unsigned: true,
            genesis_delay: Duration::ZERO,
            admin_token: None,
            extra_run_args: Vec::new(),
            json_logs: false,
            env: Vec::new(),
            dir_prefix: "dualchain-cluster-".into(),
            open_file_limit: None,
            epoch_length: None,
            joiners: 0,
            engines: (ConsensusEngine::DagBft, ConsensusEngine::DagBft),
        }
    }

    /// Sets the block times.
    pub fn block_times(mut self, alpha_ms: u64, delta_ms: u64) -> Self {
        self.alpha_block_ms = alpha_ms;
        self.delta_block_ms = delta_ms;
        self
    }

    /// Sets the number of funded accounts.
    pub fn accounts(mut self, accounts: usize) -> Self {
        self.accounts = accounts;
        self
    }
}

/// How a validator process ended when the cluster stopped it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StopRecord {
    pub index: usize,
    /// Exited with status 0 after SIGTERM.
    pub clean: bool,
    pub detail: String,
}

/// One running `dualchain run` process.
#[derive(Debug)]
struct Process {
    /// `None` for `--chain both`.
    chain: Option<ChainId>,
    child: Child,
    pid: u32,
    log: PathBuf,
}

/// Files of the prepared network.
#[derive(Clone, Debug)]
pub struct Layout {
    pub genesis: PathBuf,
    pub peers: PathBuf,
    pub token: PathBuf,
    pub key_dirs: Vec<PathBuf>,
    pub data_dirs: Vec<PathBuf>,
}

/// A prepared local network and its running processes (see the module docs).
#[derive(Debug)]
pub struct LocalCluster {
    bin: PathBuf,
    spec: ClusterSpec,
    temp: Option<tempfile::TempDir>,
    dir: PathBuf,
    peers: Vec<LocalPeer>,
    layout: Layout,
    token: String,
    procs: Vec<Vec<Process>>,
}

/// Runs a synchronous `dualchain` helper command, failing with its stderr.
fn run_helper(bin: &Path, args: &[String]) -> anyhow::Result<()> {
    let output = Command::new(bin)
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

fn keygen(bin: &Path, out: &Path) -> anyhow::Result<()> {
    run_helper(
        bin,
        &[
            "keygen".into(),
            "--kind".into(),
            "validator".into(),
            "--out".into(),
            out.display().to_string(),
        ],
    )
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

/// Sends `signal` to `pid`.
#[allow(unsafe_code)]
pub fn send_signal(pid: u32, signal: libc::c_int) -> std::io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| std::io::Error::other("pid out of range"))?;
    // SAFETY: kill(2) has no memory-safety preconditions; pid names our own child.
    let rc = unsafe { libc::kill(pid, signal) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// `dualchain run` with its own process group, `open_files` as its open-file
/// limit if given and, on Linux, a parent-death signal.
#[allow(unsafe_code)]
fn node_command(bin: &Path, open_files: Option<u64>) -> Command {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(bin);
    command.stdin(Stdio::null()).process_group(0);
    let limit = open_files.map(|n| libc::rlimit {
        rlim_cur: n as libc::rlim_t,
        rlim_max: n as libc::rlim_t,
    });
    #[cfg(target_os = "linux")]
    // SAFETY: the closure runs in the forked child before exec and only calls
    // prctl(2) and setrlimit(2), which are async-signal-safe; `limit` is a copy.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(limit) = &limit
                && libc::setrlimit(libc::RLIMIT_NOFILE, limit) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command
}

impl LocalCluster {
    /// Keys, genesis, `peers.json` and token for `spec.validators` validators, made
    /// with `bin` (a `dualchain` binary) in a fresh temporary directory. Blocking.
    pub fn prepare(bin: impl Into<PathBuf>, spec: ClusterSpec) -> anyhow::Result<Self> {
        let bin = bin.into();
        if spec.validators <= spec.joiners {
            bail!("a cluster needs at least one validator in its genesis set");
        }
        let temp = tempfile::Builder::new()
            .prefix(&spec.dir_prefix)
            .tempdir()
            .context("creating the cluster directory")?;
        let dir = temp.path().to_path_buf();
        let peers = plan_local_peers(spec.validators)?;
        let mut key_dirs = Vec::new();
        let mut data_dirs = Vec::new();
        for p in &peers {
            let node_dir = dir.join(&p.entry.name);
            std::fs::create_dir_all(&node_dir)
                .with_context(|| format!("creating {}", node_dir.display()))?;
            let key_dir = node_dir.join("key");
            keygen(&bin, &key_dir)?;
            key_dirs.push(key_dir);
            data_dirs.push(node_dir.join("data"));
        }
        let genesis = dir.join("genesis.json");
        let genesis_time_ms = unix_ms() + spec.genesis_delay.as_millis() as u64;
        let mut args: Vec<String> = vec!["genesis".into(), "--validator-keys".into()];
        let members = spec.validators - spec.joiners;
        args.extend(key_dirs[..members].iter().map(|d| d.display().to_string()));
        args.extend([
            "--accounts".into(),
            spec.accounts.to_string(),
            "--accounts-seed".into(),
            spec.accounts_seed.to_string(),
            "--out".into(),
            genesis.display().to_string(),
            "--alpha-block-time-ms".into(),
            spec.alpha_block_ms.to_string(),
            "--delta-block-time-ms".into(),
            spec.delta_block_ms.to_string(),
            "--genesis-time-ms".into(),
            genesis_time_ms.to_string(),
        ]);
        if spec.allow_unsigned {
            args.push("--allow-unsigned".into());
        }
        if let Some(length) = spec.epoch_length {
            args.extend(["--epoch-length".into(), length.to_string()]);
        }
        args.extend([
            "--alpha-consensus".into(),
            spec.engines.0.name().into(),
            "--delta-consensus".into(),
            spec.engines.1.name().into(),
        ]);
        run_helper(&bin, &args)?;

        let peers_path = dir.join("peers.json");
        std::fs::write(&peers_path, peers_json(&peers))
            .with_context(|| format!("writing {}", peers_path.display()))?;
        let token = spec
            .admin_token
            .clone()
            .unwrap_or_else(|| hex::encode(rand::random::<[u8; 24]>()));
        let token_path = dir.join("admin-token");
        write_private(&token_path, format!("{token}\n").as_bytes())?;
        Ok(Self {
            bin,
            procs: (0..spec.validators).map(|_| Vec::new()).collect(),
            spec,
            temp: Some(temp),
            dir,
            peers,
            layout: Layout {
                genesis,
                peers: peers_path,
                token: token_path,
                key_dirs,
                data_dirs,
            },
            token,
        })
    }

    /// What the cluster was prepared from.
    pub fn spec(&self) -> &ClusterSpec {
        &self.spec
    }

    /// The directory holding keys, genesis, data and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Keeps the directory after the cluster is dropped; returns its path.
    pub fn keep_dir(&mut self) -> PathBuf {
        if let Some(temp) = self.temp.take() {
            let _ = temp.keep();
        }
        self.dir.clone()
    }

    pub fn len(&self) -> usize {
        self.peers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    pub fn peers(&self) -> &[LocalPeer] {
        &self.peers
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The admin bearer token.
    pub fn admin_token(&self) -> &str {
        &self.token
    }

    /// `http://127.0.0.1:<port>` of validator `i`'s `chain` API.
    pub fn api_url(&self, i: usize, chain: ChainId) -> String {
        self.peers[i].api_url(chain)
    }

    /// `http://127.0.0.1:<port>` of validator `i`'s `chain` admin listener.
    pub fn admin_url(&self, i: usize, chain: ChainId) -> String {
        self.peers[i].admin_url(chain)
    }

    /// A channel to validator `i`'s `chain` admin listener.
    pub async fn admin_channel(
        &self,
        i: usize,
        chain: ChainId,
    ) -> Option<tonic::transport::Channel> {
        client::connect(&self.admin_url(i, chain)).await.ok()
    }

    /// Every validator's API URL of `chain`.
    pub fn api_urls(&self, chain: ChainId) -> Vec<String> {
        self.peers.iter().map(|p| p.api_url(chain)).collect()
    }

    fn common_run_args(&self, key_dir: &Path, data_dir: &Path) -> Vec<String> {
        let l = &self.layout;
        vec![
            "run".into(),
            "--genesis".into(),
            l.genesis.display().to_string(),
            "--key-dir".into(),
            key_dir.display().to_string(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--peers".into(),
            l.peers.display().to_string(),
            "--admin-token-file".into(),
            l.token.display().to_string(),
        ]
    }

    fn finish_args(&self, mut args: Vec<String>) -> Vec<String> {
        args.extend(self.spec.extra_run_args.iter().cloned());
        if self.spec.json_logs {
            args.extend(["--log-format".into(), "json".into()]);
        }
        args
    }

    /// The `dualchain run --chain both` command line of validator `i` (the contract).
    pub fn run_args(&self, i: usize) -> Vec<String> {
        let p = &self.peers[i];
        let addr = |port: u16| format!("127.0.0.1:{port}");
        let mut args = self.common_run_args(&self.layout.key_dirs[i], &self.layout.data_dirs[i]);
        args.splice(1..1, ["--chain".to_string(), "both".to_string()]);
        args.extend([
            "--alpha-p2p-listen".into(),
            addr(p.entry.alpha_p2p_port),
            "--delta-p2p-listen".into(),
            addr(p.entry.delta_p2p_port),
            "--alpha-api-listen".into(),
            addr(p.entry.alpha_api_port),
            "--delta-api-listen".into(),
            addr(p.entry.delta_api_port),
            "--alpha-admin-listen".into(),
            addr(p.alpha_admin_port),
            "--delta-admin-listen".into(),
            addr(p.delta_admin_port),
            "--metrics-listen".into(),
            addr(p.metrics_port),
        ]);
        if self.is_joiner(i) {
            args.push("--join".into());
        }
        self.finish_args(args)
    }

    /// Whether validator `i` is outside the genesis set (see [`ClusterSpec::joiners`]).
    pub fn is_joiner(&self, i: usize) -> bool {
        i >= self.spec.validators - self.spec.joiners
    }

    /// The command line of validator `i`'s `chain` alone (the two-container pod).
    pub fn run_chain_args(&self, i: usize, chain: ChainId) -> Vec<String> {
        let p = &self.peers[i];
        let metrics = match chain {
            ChainId::Alpha => p.metrics_port,
            ChainId::Delta => p.delta_metrics_port,
        };
        let other = chain.other();
        let data = self.layout.data_dirs[i].join(chain.name());
        let mut args = self.common_run_args(&self.layout.key_dirs[i], &data);
        args.splice(1..1, ["--chain".to_string(), chain.name().to_string()]);
        args.extend([
            "--p2p-listen".into(),
            format!("127.0.0.1:{}", p.p2p_port(chain)),
            "--api-listen".into(),
            format!("127.0.0.1:{}", p.api_port(chain)),
            "--admin-listen".into(),
            format!("127.0.0.1:{}", p.admin_port(chain)),
            "--metrics-listen".into(),
            format!("127.0.0.1:{metrics}"),
            "--peer-chain-api".into(),
            p.api_url(other),
        ]);
        if self.is_joiner(i) {
            args.push("--join".into());
        }
        self.finish_args(args)
    }

    /// Log file of validator `i` (`chain`: `None` for the `--chain both` process).
    pub fn log_path(&self, i: usize, chain: Option<ChainId>) -> PathBuf {
        let name = match chain {
            None => "node.log".to_string(),
            Some(c) => format!("node-{}.log", c.name()),
        };
        self.dir.join(&self.peers[i].entry.name).join(name)
    }

    fn spawn(
        &mut self,
        i: usize,
        chain: Option<ChainId>,
        args: Vec<String>,
    ) -> anyhow::Result<u32> {
        let log = self.log_path(i, chain);
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("opening {}", log.display()))?;
        let err = out.try_clone()?;
        let child = node_command(&self.bin, self.spec.open_file_limit)
            .args(&args)
            .envs(self.spec.env.iter().map(|(k, v)| (k, v)))
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting validator {i} ({})", self.bin.display()))?;
        let pid = child.id();
        self.procs[i].push(Process {
            chain,
            child,
            pid,
            log,
        });
        Ok(pid)
    }

    /// Starts validator `i` with both chains in one process; returns its pid.
    pub fn start(&mut self, i: usize) -> anyhow::Result<u32> {
        let args = self.run_args(i);
        self.spawn(i, None, args)
    }

    /// Starts validator `i` with both chains and `extra` arguments after the usual
    /// ones (e.g. `--bootstrap-from peers` for a validator whose data was wiped).
    pub fn start_with(&mut self, i: usize, extra: &[&str]) -> anyhow::Result<u32> {
        let mut args = self.run_args(i);
        args.extend(extra.iter().map(|a| a.to_string()));
        self.spawn(i, None, args)
    }

    /// Starts validator `i`'s `chain` alone in its own process; returns its pid.
    pub fn start_chain(&mut self, i: usize, chain: ChainId) -> anyhow::Result<u32> {
        let args = self.run_chain_args(i, chain);
        self.spawn(i, Some(chain), args)
    }

    /// Starts every validator with both chains.
    pub fn start_all(&mut self) -> anyhow::Result<()> {
        for i in 0..self.len() {
            self.start(i)?;
        }
        Ok(())
    }

    /// Pids of validator `i`'s processes, in start order.
    pub fn pids(&self, i: usize) -> Vec<u32> {
        self.procs[i].iter().map(|p| p.pid).collect()
    }

    /// Runs `dualchain run` in the foreground with a valid key that is not in the
    /// validator set; returns its exit status and stderr.
    pub fn run_stranger(&self) -> anyhow::Result<(ExitStatus, String)> {
        let key = self.dir.join("stranger/key");
        if !key.exists() {
            keygen(&self.bin, &key)?;
        }
        let mut args = self.common_run_args(&key, &self.dir.join("stranger/data"));
        args = self.finish_args(args);
        let out = node_command(&self.bin, self.spec.open_file_limit)
            .args(&args)
            .envs(self.spec.env.iter().map(|(k, v)| (k, v)))
            .output()
            .context("running the stranger")?;
        Ok((
            out.status,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    /// SIGKILLs validator `i`'s processes of `which` (`None`: all of them) and reaps them.
    fn kill_where(&mut self, i: usize, which: impl Fn(&Process) -> bool) {
        let procs = std::mem::take(&mut self.procs[i]);
        for mut p in procs {
            if which(&p) {
                let _ = p.child.kill();
                let _ = p.child.wait();
            } else {
                self.procs[i].push(p);
            }
        }
    }

    /// Stops (SIGSTOP) every process of validator `i` without ending it: a validator
    /// that vanishes for a while and comes back with its memory intact (a partition,
    /// a paused VM). [`LocalCluster::thaw`] continues it.
    pub fn freeze(&self, i: usize) {
        for pid in self.pids(i) {
            send_signal(pid, libc::SIGSTOP).expect("stopping a validator process");
        }
    }

    /// Continues (SIGCONT) the processes [`LocalCluster::freeze`] stopped.
    pub fn thaw(&self, i: usize) {
        for pid in self.pids(i) {
            send_signal(pid, libc::SIGCONT).expect("continuing a validator process");
        }
    }

    /// SIGKILLs every process of validator `i`.
    pub fn kill(&mut self, i: usize) {
        self.kill_where(i, |_| true);
    }

    /// SIGKILLs the process running validator `i`'s `chain` alone.
    pub fn kill_chain(&mut self, i: usize, chain: ChainId) {
        self.kill_where(i, |p| p.chain == Some(chain));
    }

    /// SIGTERM to every process of validator `i`, then waits up to `timeout` for each
    /// (SIGKILL after); `None` for a process that had to be killed.
    pub async fn terminate(&mut self, i: usize, timeout: Duration) -> Vec<Option<ExitStatus>> {
        let mut procs = std::mem::take(&mut self.procs[i]);
        for p in &procs {
            let _ = send_signal(p.pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        for p in &mut procs {
            out.push(wait_until(&mut p.child, deadline).await);
        }
        out
    }

    /// Stops every running process: SIGTERM to all, then each gets until `timeout`
    /// (SIGKILL after). One record per process.
    pub async fn stop_all(&mut self, timeout: Duration) -> Vec<StopRecord> {
        for (i, procs) in self.procs.iter().enumerate() {
            for p in procs {
                if let Err(e) = send_signal(p.pid, libc::SIGTERM)
                    && e.raw_os_error() != Some(libc::ESRCH)
                {
                    eprintln!("validator {i}: SIGTERM failed: {e}");
                }
            }
        }
        let deadline = Instant::now() + timeout;
        let mut records = Vec::new();
        for i in 0..self.procs.len() {
            for mut p in std::mem::take(&mut self.procs[i]) {
                let record = match wait_until(&mut p.child, deadline).await {
                    Some(status) => StopRecord {
                        index: i,
                        clean: status.success(),
                        detail: status.to_string(),
                    },
                    None => StopRecord {
                        index: i,
                        clean: false,
                        detail: format!("killed after {timeout:?} without exiting"),
                    },
                };
                records.push(record);
            }
        }
        records
    }

    /// Waits until every running process answers readiness (`grpc.health.v1`, else
    /// `GetStatus`) on its chains' APIs. Fails naming the validator, with its log's tail,
    /// if one exits or `timeout` passes.
    pub async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        for i in 0..self.procs.len() {
            for k in 0..self.procs[i].len() {
                let chains = match self.procs[i][k].chain {
                    None => vec![ChainId::Alpha, ChainId::Delta],
                    Some(c) => vec![c],
                };
                for chain in chains {
                    let url = self.api_url(i, chain);
                    loop {
                        let p = &mut self.procs[i][k];
                        if let Ok(Some(status)) = p.child.try_wait() {
                            bail!(
                                "validator {i} exited during start-up ({status}); last lines of {}:\n{}",
                                p.log.display(),
                                log_tail(&p.log, LOG_TAIL_LINES)
                            );
                        }
                        if client::is_ready(&url).await {
                            break;
                        }
                        if Instant::now() >= deadline {
                            bail!(
                                "validator {i} did not become ready on {url} within {timeout:?}; last lines of {}:\n{}",
                                p.log.display(),
                                log_tail(&p.log, LOG_TAIL_LINES)
                            );
                        }
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                }
            }
        }
        Ok(())
    }

    /// Status of `chain` on validator `i`, if it answers.
    pub async fn chain_status(&self, i: usize, chain: ChainId) -> Option<v1::ChainStatus> {
        client::chain_status(&self.api_url(i, chain), proto_chain(chain))
            .await
            .ok()
    }

    /// Head height of `chain` on validator `i`, if it answers.
    pub async fn height(&self, i: usize, chain: ChainId) -> Option<u64> {
        self.chain_status(i, chain).await.map(|s| s.height)
    }

    /// Lowest head height of `chain` over `which` (0 for a validator that does not answer).
    pub async fn min_height(&self, which: &[usize], chain: ChainId) -> u64 {
        let mut min = u64::MAX;
        for &i in which {
            min = min.min(self.height(i, chain).await.unwrap_or(0));
        }
        min
    }

    /// Waits until validator `i`'s `chain` has a head (`finalized`: a finalized) height
    /// of at least `height`; returns it. The error carries the logs' tails.
    pub async fn try_wait_height(
        &self,
        i: usize,
        chain: ChainId,
        height: u64,
        finalized: bool,
        timeout: Duration,
    ) -> anyhow::Result<u64> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.chain_status(i, chain).await {
                let h = if finalized {
                    s.finalized_height
                } else {
                    s.height
                };
                if h >= height {
                    return Ok(h);
                }
            }
            if Instant::now() > deadline {
                let now = self.height(i, chain).await;
                bail!(
                    "validator {i} {chain} did not reach {}height {height} within {timeout:?} (now {now:?})\n{}",
                    if finalized { "finalized " } else { "" },
                    self.all_logs_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// [`Self::try_wait_height`] of the head height, panicking on timeout (tests).
    pub async fn wait_height(
        &self,
        i: usize,
        chain: ChainId,
        height: u64,
        timeout: Duration,
    ) -> u64 {
        self.try_wait_height(i, chain, height, false, timeout)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Block `height` of `chain` on validator `i`, with its certificate.
    pub async fn block(&self, i: usize, chain: ChainId, height: u64) -> Option<v1::Block> {
        client::block(&self.api_url(i, chain), proto_chain(chain), height, true)
            .await
            .ok()
    }

    /// (digest, state root) of block `height` on validator `i`.
    pub async fn block_id(
        &self,
        i: usize,
        chain: ChainId,
        height: u64,
    ) -> Option<(Vec<u8>, Vec<u8>)> {
        let h = self.block(i, chain, height).await?.header?;
        Some((h.digest, h.state_root))
    }

    /// Every validator in `which` has the same block (digest and state root) at
    /// `height`; panics otherwise (tests).
    pub async fn assert_same_block(&self, which: &[usize], chain: ChainId, height: u64) {
        let mut ids = Vec::new();
        for &i in which {
            let url = self.api_url(i, chain);
            let block = client::block(&url, proto_chain(chain), height, true)
                .await
                .unwrap_or_else(|e| panic!("validator {i} has no {chain} block {height}: {e:#}"));
            let header = block
                .header
                .unwrap_or_else(|| panic!("validator {i}'s {chain} block {height} has no header"));
            ids.push((header.digest, header.state_root));
        }
        assert!(
            ids.windows(2).all(|w| w[0] == w[1]),
            "{chain} block {height} differs between validators {which:?}"
        );
    }

    /// [`LocalCluster::assert_same_block`] at every height from 1 through `through`.
    pub async fn assert_same_chain(&self, which: &[usize], chain: ChainId, through: u64) {
        for height in 1..=through {
            self.assert_same_block(which, chain, height).await;
        }
    }

    /// A channel to validator `i`'s `chain` API.
    pub async fn channel(&self, i: usize, chain: ChainId) -> Option<tonic::transport::Channel> {
        client::connect(&self.api_url(i, chain)).await.ok()
    }

    /// Submits `txs` to validator `i`'s Delta API; returns how many were accepted.
    pub async fn submit(&self, i: usize, txs: &[Vec<u8>]) -> u32 {
        client::submit(&self.api_url(i, ChainId::Delta), v1::Chain::Delta, txs)
            .await
            .unwrap_or(0)
    }

    /// Submits `txs` in batches of 100, batch `k` to validator `which[k % len]`;
    /// returns how many were accepted.
    pub async fn submit_spread(&self, which: &[usize], txs: &[Vec<u8>]) -> u32 {
        let mut accepted = 0;
        for (k, part) in txs.chunks(100).enumerate() {
            accepted += self.submit(which[k % which.len()], part).await;
        }
        accepted
    }

    /// Unsigned transfers from every funded account to the next, `per_account` nonces
    /// each starting at `first_nonce` (canonical bytes).
    pub fn transfers(&self, first_nonce: u64, per_account: u64) -> Vec<Vec<u8>> {
        let addresses =
            crate::workload::seeded_addresses(self.spec.accounts, self.spec.accounts_seed);
        crate::workload::unsigned_bytes(&crate::workload::ring_transfers(
            &addresses,
            first_nonce,
            per_account,
        ))
    }

    /// The log of validator `i` (its `--chain both` process).
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.log_path(i, None)).unwrap_or_default()
    }

    /// The last lines of every log.
    pub fn all_logs_tail(&self) -> String {
        let mut out = String::new();
        for p in &self.peers {
            let Ok(entries) = std::fs::read_dir(self.dir.join(&p.entry.name)) else {
                continue;
            };
            let mut logs: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|path| path.extension().is_some_and(|x| x == "log"))
                .collect();
            logs.sort();
            for log in logs {
                out.push_str(&format!(
                    "--- {}\n{}\n",
                    log.strip_prefix(&self.dir).unwrap_or(&log).display(),
                    log_tail(&log, 15)
                ));
            }
        }
        out
    }
}

/// Polls `child` until it exits or `deadline` passes (then SIGKILL): `None` if killed.
async fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for procs in &mut self.procs {
            for p in procs.iter_mut() {
                if matches!(p.child.try_wait(), Ok(None)) {
                    let _ = p.child.kill();
                }
                let _ = p.child.wait();
            }
        }
        if std::thread::panicking() {
            eprintln!("{}", self.all_logs_tail());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in `dualchain`: `keygen` and `genesis` succeed, `run` does `run_body`.
    fn script(dir: &Path, run_body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("fake-dualchain");
        std::fs::write(
            &path,
            format!("#!/bin/sh\ncase \"$1\" in\n  run) {run_body} ;;\n  *) exit 0 ;;\nesac\n"),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        // Another test thread forking while the file was open for writing makes exec
        // fail with ETXTBSY for a moment.
        for _ in 0..100 {
            match Command::new(&path).arg("probe").status() {
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => break,
            }
        }
        path
    }

    #[test]
    fn run_command_lines_follow_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = ClusterSpec::new(2);
        spec.json_logs = true;
        spec.extra_run_args = vec!["--sync-policy".into(), "os-buffered".into()];
        let c = LocalCluster::prepare(script(dir.path(), "exit 0"), spec).unwrap();
        let d = c.dir().display().to_string();
        let line = c.run_args(1).join(" ");
        assert!(
            line.starts_with(&format!(
                "run --chain both --genesis {d}/genesis.json --key-dir {d}/v-1/key --data-dir {d}/v-1/data --peers {d}/peers.json --admin-token-file {d}/admin-token"
            )),
            "{line}"
        );
        let p = &c.peers()[1];
        for part in [
            format!("--alpha-p2p-listen 127.0.0.1:{}", p.entry.alpha_p2p_port),
            format!("--delta-p2p-listen 127.0.0.1:{}", p.entry.delta_p2p_port),
            format!("--alpha-api-listen 127.0.0.1:{}", p.entry.alpha_api_port),
            format!("--delta-api-listen 127.0.0.1:{}", p.entry.delta_api_port),
            format!("--alpha-admin-listen 127.0.0.1:{}", p.alpha_admin_port),
            format!("--delta-admin-listen 127.0.0.1:{}", p.delta_admin_port),
            format!("--metrics-listen 127.0.0.1:{}", p.metrics_port),
        ] {
            assert!(line.contains(&part), "{part} missing in {line}");
        }
        assert!(
            line.ends_with("--sync-policy os-buffered --log-format json"),
            "{line}"
        );

        let line = c.run_chain_args(1, ChainId::Delta).join(" ");
        assert!(line.starts_with("run --chain delta "), "{line}");
        for part in [
            format!("--data-dir {d}/v-1/data/delta"),
            format!("--p2p-listen 127.0.0.1:{}", p.entry.delta_p2p_port),
            format!("--api-listen 127.0.0.1:{}", p.entry.delta_api_port),
            format!("--admin-listen 127.0.0.1:{}", p.delta_admin_port),
            format!("--metrics-listen 127.0.0.1:{}", p.delta_metrics_port),
            format!(
                "--peer-chain-api http://127.0.0.1:{}",
                p.entry.alpha_api_port
            ),
        ] {
            assert!(line.contains(&part), "{part} missing in {line}");
        }
        let token = std::fs::read_to_string(&c.layout().token).unwrap();
        assert_eq!(token.trim(), c.admin_token());
        assert_eq!(c.admin_token().len(), 48);
        let peers: Vec<dualchain_core::types::PeerEntry> =
            serde_json::from_str(&std::fs::read_to_string(&c.layout().peers).unwrap()).unwrap();
        assert_eq!(peers.len(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_validator_that_dies_at_start_is_reported_with_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let bin = script(dir.path(), "echo 'fatal: genesis not found' >&2; exit 3");
        let mut c = LocalCluster::prepare(bin, ClusterSpec::new(1)).unwrap();
        c.start(0).unwrap();
        let err = c
            .wait_ready(Duration::from_secs(20))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("validator 0 exited during start-up"), "{err}");
        assert!(err.contains("fatal: genesis not found"), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn validators_stop_on_sigterm_and_are_killed_after_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let polite = script(
            dir.path(),
            "trap 'exit 0' TERM; while :; do sleep 0.05; done",
        );
        let mut c = LocalCluster::prepare(polite, ClusterSpec::new(2)).unwrap();
        c.start_all().unwrap();
        c.start_chain(1, ChainId::Alpha).unwrap();
        assert_eq!(c.pids(1).len(), 2);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let records = c.stop_all(Duration::from_secs(10)).await;
        assert_eq!(records.len(), 3);
        assert!(records.iter().all(|r| r.clean), "{records:?}");
        assert!(c.pids(0).is_empty());

        let stubborn_dir = tempfile::tempdir().unwrap();
        let stubborn = script(
            stubborn_dir.path(),
            "trap '' TERM; while :; do sleep 0.05; done",
        );
        let mut c = LocalCluster::prepare(stubborn, ClusterSpec::new(1)).unwrap();
        c.start(0).unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let statuses = c.terminate(0, Duration::from_millis(500)).await;
        assert_eq!(statuses, vec![None], "killed after the timeout");
    }
}
