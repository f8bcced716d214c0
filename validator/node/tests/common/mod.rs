//! A local cluster of real `dualchain run` processes on 127.0.0.1, for the
//! node's integration tests: keys, genesis and peers made with the same binary,
//! ports picked free, every process killed when the cluster is dropped.

#![allow(dead_code)]

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use dualchain_core::crypto::AccountKeypair;
use dualchain_core::encoding::Canonical;
use dualchain_core::types::{Address, AssetId, ChainId, Output, Transaction, TxPayload};
use dualchain_proto::v1;

pub const ACCOUNTS_SEED: u64 = 42;
pub const TOKEN: &str = "0123456789abcdef0123456789abcdef";

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_dualchain"))
}

fn free_tcp() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_udp() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[derive(Clone, Copy, Debug)]
pub struct Ports {
    pub alpha_p2p: u16,
    pub delta_p2p: u16,
    pub alpha_api: u16,
    pub delta_api: u16,
    pub metrics: u16,
    pub metrics_delta: u16,
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub n: usize,
    pub ports: Vec<Ports>,
    pub procs: Vec<Vec<Child>>,
    pub accounts: usize,
}

fn run_ok(args: &[&str]) {
    let out = Command::new(bin()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "dualchain {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Cluster {
    /// Keys, genesis (unsigned transactions allowed, `accounts` funded accounts from
    /// [`ACCOUNTS_SEED`]), peers file and token for `n` validators.
    pub fn new(n: usize, alpha_ms: u64, delta_ms: u64, accounts: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut key_dirs = Vec::new();
        for i in 0..n {
            let d = dir.path().join(format!("keys/v{i}"));
            run_ok(&[
                "keygen",
                "--kind",
                "validator",
                "--out",
                d.to_str().unwrap(),
            ]);
            key_dirs.push(d.to_str().unwrap().to_string());
        }
        // The stranger: a valid key that is not in the validator set.
        let stranger = dir.path().join("keys/stranger");
        run_ok(&[
            "keygen",
            "--kind",
            "validator",
            "--out",
            stranger.to_str().unwrap(),
        ]);
        let genesis = dir.path().join("genesis.json");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            .to_string();
        let mut args = vec![
            "genesis".to_string(),
            "--out".into(),
            genesis.to_str().unwrap().into(),
            "--accounts".into(),
            accounts.to_string(),
            "--accounts-seed".into(),
            ACCOUNTS_SEED.to_string(),
            "--allow-unsigned".into(),
            "--alpha-block-time-ms".into(),
            alpha_ms.to_string(),
            "--delta-block-time-ms".into(),
            delta_ms.to_string(),
            "--genesis-time-ms".into(),
            now,
            "--validator-keys".into(),
        ];
        args.extend(key_dirs);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        run_ok(&refs);
        let ports: Vec<Ports> = (0..n)
            .map(|_| Ports {
                alpha_p2p: free_udp(),
                delta_p2p: free_udp(),
                alpha_api: free_tcp(),
                delta_api: free_tcp(),
                metrics: free_tcp(),
                metrics_delta: free_tcp(),
            })
            .collect();
        let peers: Vec<serde_json::Value> = ports
            .iter()
            .enumerate()
            .map(|(i, p)| {
                serde_json::json!({
                    "index": i, "name": format!("v-{i}"), "host": "127.0.0.1",
                    "alphaP2pPort": p.alpha_p2p, "deltaP2pPort": p.delta_p2p,
                    "alphaApiPort": p.alpha_api, "deltaApiPort": p.delta_api,
                })
            })
            .collect();
        std::fs::write(
            dir.path().join("peers.json"),
            serde_json::to_string(&peers).unwrap(),
        )
        .unwrap();
        std::fs::write(dir.path().join("token"), format!("{TOKEN}\n")).unwrap();
        Self {
            dir,
            n,
            ports,
            procs: (0..n).map(|_| Vec::new()).collect(),
            accounts,
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn base_args(&self, i: usize, key_dir: &Path) -> Vec<String> {
        vec![
            "run".into(),
            "--genesis".into(),
            self.path("genesis.json").display().to_string(),
            "--key-dir".into(),
            key_dir.display().to_string(),
            "--peers".into(),
            self.path("peers.json").display().to_string(),
            "--admin-token-file".into(),
            self.path("token").display().to_string(),
            "--data-dir".into(),
            self.path(&format!("data/v{i}")).display().to_string(),
            "--sync-policy".into(),
            "os-buffered".into(),
        ]
    }

    fn spawn(&mut self, i: usize, args: Vec<String>, log: &str) -> &mut Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path(log))
            .unwrap();
        let child = Command::new(bin())
            .args(&args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.procs[i].push(child);
        self.procs[i].last_mut().unwrap()
    }

    /// Validator `i` with both chains in one process.
    pub fn start(&mut self, i: usize) {
        let p = self.ports[i];
        let mut args = self.base_args(i, &self.path(&format!("keys/v{i}")));
        args.extend([
            "--chain".into(),
            "both".into(),
            "--alpha-p2p-listen".into(),
            format!("127.0.0.1:{}", p.alpha_p2p),
            "--delta-p2p-listen".into(),
            format!("127.0.0.1:{}", p.delta_p2p),
            "--alpha-api-listen".into(),
            format!("127.0.0.1:{}", p.alpha_api),
            "--delta-api-listen".into(),
            format!("127.0.0.1:{}", p.delta_api),
            "--metrics-listen".into(),
            format!("127.0.0.1:{}", p.metrics),
        ]);
        self.spawn(i, args, &format!("v{i}.log"));
    }

    /// Validator `i`'s `chain` alone in its own process (the pod layout).
    pub fn start_chain(&mut self, i: usize, chain: ChainId) {
        let p = self.ports[i];
        let (p2p, api, metrics, other_api) = match chain {
            ChainId::Alpha => (p.alpha_p2p, p.alpha_api, p.metrics, p.delta_api),
            ChainId::Delta => (p.delta_p2p, p.delta_api, p.metrics_delta, p.alpha_api),
        };
        let mut args = self.base_args(i, &self.path(&format!("keys/v{i}")));
        let data = self.path(&format!("data/v{i}/{}", chain.name()));
        let pos = args.iter().position(|a| a == "--data-dir").unwrap();
        args[pos + 1] = data.display().to_string();
        args.extend([
            "--chain".into(),
            chain.name().into(),
            "--p2p-listen".into(),
            format!("127.0.0.1:{p2p}"),
            "--api-listen".into(),
            format!("127.0.0.1:{api}"),
            "--metrics-listen".into(),
            format!("127.0.0.1:{metrics}"),
            "--peer-chain-api".into(),
            format!("http://127.0.0.1:{other_api}"),
        ]);
        self.spawn(i, args, &format!("v{i}-{}.log", chain.name()));
    }

    /// Starts a process with a key outside the validator set; returns its exit status
    /// and log.
    pub fn run_stranger(&mut self) -> (ExitStatus, String) {
        let args = self.base_args(self.n, &self.path("keys/stranger"));
        let out = Command::new(bin()).args(&args).output().unwrap();
        (
            out.status,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub fn kill(&mut self, i: usize) {
        for child in &mut self.procs[i] {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.procs[i].clear();
    }

    /// SIGTERM, then wait (at most `timeout`) for every process of validator `i`.
    pub fn terminate(&mut self, i: usize, timeout: Duration) -> Vec<Option<ExitStatus>> {
        let mut out = Vec::new();
        for child in &mut self.procs[i] {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + timeout;
            let status = loop {
                if let Ok(Some(s)) = child.try_wait() {
                    break Some(s);
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            out.push(status);
        }
        self.procs[i].clear();
        out
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    pub fn api_port(&self, i: usize, chain: ChainId) -> u16 {
        match chain {
            ChainId::Alpha => self.ports[i].alpha_api,
            ChainId::Delta => self.ports[i].delta_api,
        }
    }

    pub async fn channel(&self, i: usize, chain: ChainId) -> Option<tonic::transport::Channel> {
        tonic::transport::Endpoint::from_shared(format!(
            "http://127.0.0.1:{}",
            self.api_port(i, chain)
        ))
        .unwrap()
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .ok()
    }

    pub async fn chain_status(&self, i: usize, chain: ChainId) -> Option<v1::ChainStatus> {
        let channel = self.channel(i, chain).await?;
        let status = dualchain_proto::NodeClient::new(channel)
            .get_status(v1::GetStatusRequest {})
            .await
            .ok()?
            .into_inner();
        let want = match chain {
            ChainId::Alpha => v1::Chain::Alpha,
            ChainId::Delta => v1::Chain::Delta,
        };
        status.chains.into_iter().find(|c| c.chain() == want)
    }

    pub async fn height(&self, i: usize, chain: ChainId) -> Option<u64> {
        self.chain_status(i, chain).await.map(|s| s.height)
    }

    /// Waits until validator `i`'s `chain` reaches `height`; panics with the log tail
    /// after `timeout`.
    pub async fn wait_height(
        &self,
        i: usize,
        chain: ChainId,
        height: u64,
        timeout: Duration,
    ) -> u64 {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(h) = self.height(i, chain).await
                && h >= height
            {
                return h;
            }
            if Instant::now() > deadline {
                let tail = self.all_logs_tail();
                panic!(
                    "validator {i} {chain} did not reach height {height} in {timeout:?} (now {:?})\n{tail}",
                    self.height(i, chain).await
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn all_logs_tail(&self) -> String {
        let mut out = String::new();
        if let Ok(entries) = std::fs::read_dir(self.dir.path()) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.ends_with(".log") {
                    let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                    let lines: Vec<&str> = text.lines().collect();
                    let tail = lines[lines.len().saturating_sub(15)..].join("\n");
                    out.push_str(&format!("--- {name}\n{tail}\n"));
                }
            }
        }
        out
    }

    pub async fn block(&self, i: usize, chain: ChainId, height: u64) -> Option<v1::Block> {
        let channel = self.channel(i, chain).await?;
        dualchain_proto::NodeClient::new(channel)
            .get_block(v1::GetBlockRequest {
                chain: match chain {
                    ChainId::Alpha => v1::Chain::Alpha as i32,
                    ChainId::Delta => v1::Chain::Delta as i32,
                },
                height,
                include_body: false,
                include_certificate: true,
            })
            .await
            .ok()
            .map(|r| r.into_inner())
    }

    /// (digest, state root) of block `height` on validator `i`.
    pub async fn block_id(
        &self,
        i: usize,
        chain: ChainId,
        height: u64,
    ) -> Option<(Vec<u8>, Vec<u8>)> {
        let b = self.block(i, chain, height).await?;
        let h = b.header?;
        Some((h.digest, h.state_root))
    }

    /// Unsigned transfers from the genesis accounts, `per_account` nonces each
    /// starting at `first_nonce`.
    pub fn transfers(&self, first_nonce: u64, per_account: u64) -> Vec<Vec<u8>> {
        let keys: Vec<AccountKeypair> =
            dualchain_core::keyfile::seeded_account_keys(self.accounts, ACCOUNTS_SEED);
        let addresses: Vec<Address> = keys.iter().map(|k| Address::of(k.public())).collect();
        let mut out = Vec::new();
        for nonce in first_nonce..first_nonce + per_account {
            for (i, sender) in addresses.iter().enumerate() {
                let to = addresses[(i + 1) % addresses.len()];
                let tx = Transaction {
                    chain: ChainId::Delta,
                    sender: *sender,
                    nonce,
                    fee: 1,
                    payload: TxPayload::Transfer {
                        outputs: vec![Output {
                            to,
                            asset: AssetId::NATIVE,
                            amount: 1,
                        }],
                    },
                };
                out.push(tx.unsigned().to_canonical_bytes());
            }
        }
        out
    }

    /// Submits to validator `i`'s Delta API; returns how many were accepted.
    pub async fn submit(&self, i: usize, txs: Vec<Vec<u8>>) -> u32 {
        let Some(channel) = self.channel(i, ChainId::Delta).await else {
            return 0;
        };
        let mut client = dualchain_proto::TransactionsClient::new(channel)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20);
        let mut accepted = 0;
        for chunk in txs.chunks(5_000) {
            if let Ok(r) = client
                .submit_batch(v1::SubmitBatchRequest {
                    chain: v1::Chain::Delta as i32,
                    transactions: chunk.to_vec(),
                })
                .await
            {
                accepted += r.into_inner().accepted;
            }
        }
        accepted
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for procs in &mut self.procs {
            for child in procs {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if std::thread::panicking() {
            eprintln!("{}", self.all_logs_tail());
        }
    }
}
