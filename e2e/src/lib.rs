//! Support for the operator's end-to-end tests against a real Kubernetes API server.
//!
//! The cluster comes from `KUBECONFIG`: `e2e/run.sh` creates a kwok control plane (real
//! etcd, kube-apiserver, controller-manager and scheduler; simulated nodes and pods) and
//! `e2e/kind.sh` points the same tests at a kind cluster. Each test works in a namespace
//! of its own and runs its own operator process scoped to that namespace, so tests run
//! in parallel without seeing each other's objects, and one test may kill its operator.

use std::fmt::Debug;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use rand::Rng as _;
use serde::de::DeserializeOwned;
use tokio::process::{Child, Command};

/// This package's directory. Read at run time (cargo sets it for `cargo test`): the
/// compile-time value names whichever clone built the cached binary, and CI builds
/// every clone into one shared target directory.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// Label put on every namespace the suite creates, so leftovers are easy to find.
pub const E2E_LABEL: &str = "dualchain.dev/e2e";

/// Set by `e2e/run.sh`: pods are simulated by kwok, so containers never run and
/// validators never answer. Tests that depend on that say so through [`simulated_pods`].
pub const SIMULATED_PODS_ENV: &str = "DUALCHAIN_E2E_SIMULATED_PODS";

/// How long a single wait may take before the test fails with the last observation.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(120);

/// True when the cluster's pods are kwok simulations rather than running containers.
pub fn simulated_pods() -> bool {
    std::env::var(SIMULATED_PODS_ENV).is_ok_and(|v| v == "1")
}

/// The repository root (the workspace this crate lives in).
pub fn repo_root() -> PathBuf {
    manifest_dir()
        .parent()
        .expect("e2e/ has a parent directory")
        .to_path_buf()
}

/// The cluster under test: a client plus the kubeconfig file the CLI tools use.
pub struct Cluster {
    pub client: Client,
    pub kubeconfig: PathBuf,
}

impl Cluster {
    /// Connects to the cluster `KUBECONFIG` names; a clear error when it is not set, so
    /// that running these tests by hand without a cluster explains what to do.
    pub async fn connect() -> Result<Self> {
        let kubeconfig = std::env::var_os("KUBECONFIG").map(PathBuf::from).context(
            "KUBECONFIG is not set: run e2e/run.sh (kwok) or e2e/kind.sh, which create a cluster and run these tests",
        )?;
        ensure!(
            kubeconfig.is_file(),
            "KUBECONFIG {} is not a file",
            kubeconfig.display()
        );
        dualchain_operator::cli::install_crypto_provider();
        let client = Client::try_default()
            .await
            .context("building a client from KUBECONFIG")?;
        Ok(Self { client, kubeconfig })
    }

    /// Server-side applies both CRDs (as the operator's `crd` subcommand renders them)
    /// unless they already exist, then waits until the API server serves them.
    pub async fn ensure_crds(&self) -> Result<()> {
        let api: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        for (_, crd) in dualchain_operator::crd::all() {
            let name = crd.name_any();
            if api.get_opt(&name).await?.is_none() {
                let params = PatchParams::apply("dualchain-e2e").force();
                api.patch(&name, &params, &Patch::Apply(&crd)).await?;
            }
            wait_for(&format!("CRD {name} Established"), DEFAULT_WAIT, || {
                let api = api.clone();
                let name = name.clone();
                async move {
                    let crd = api.get(&name).await?;
                    let established = crd
                        .status
                        .and_then(|s| s.conditions)
                        .unwrap_or_default()
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True");
                    Ok(established.then_some(()))
                }
            })
            .await?;
        }
        Ok(())
    }

    /// A namespace of its own for one test, deleted when the guard drops.
    pub async fn namespace(&self, test: &str) -> Result<TestNamespace> {
        let suffix: u32 = rand::rng().random_range(0..0xff_ffff);
        let name = format!("e2e-{test}-{suffix:06x}");
        let api: Api<Namespace> = Api::all(self.client.clone());
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([(E2E_LABEL.to_string(), "true".to_string())].into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        api.create(&PostParams::default(), &ns)
            .await
            .with_context(|| format!("creating namespace {name}"))?;
        Ok(TestNamespace {
            name,
            kubeconfig: self.kubeconfig.clone(),
        })
    }

    /// Runs `kubectl` against this cluster and returns its standard output.
    pub async fn kubectl(&self, args: &[&str]) -> Result<String> {
        run_tool(&tool("KUBECTL", "kubectl"), &self.kubeconfig, args).await
    }

    /// `kubectl patch dcn NAME --type merge -p PATCH` in `namespace`, as a user edits a
    /// network's spec.
    pub async fn patch_network(&self, namespace: &str, name: &str, patch: &str) -> Result<String> {
        self.kubectl(&[
            "-n", namespace, "patch", "dcn", name, "--type", "merge", "-p", patch,
        ])
        .await
    }

    /// Runs `helm` against this cluster and returns its standard output.
    pub async fn helm(&self, args: &[&str]) -> Result<String> {
        run_tool(&tool("HELM", "helm"), &self.kubeconfig, args).await
    }
}

/// A tool's path: the environment variable `var` if set, else `default` from `PATH`.
fn tool(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

async fn run_tool(program: &Path, kubeconfig: &Path, args: &[&str]) -> Result<String> {
    let output = Command::new(program)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("starting {}", program.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!(
            "{} {} failed ({}):\n{}{}",
            program.display(),
            args.join(" "),
            output.status,
            stdout,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(stdout)
}

/// A namespace that is deleted (without waiting) when the test ends, pass or fail.
pub struct TestNamespace {
    pub name: String,
    kubeconfig: PathBuf,
}

impl TestNamespace {
    pub fn api<K>(&self, client: &Client) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(client.clone(), &self.name)
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if std::env::var_os("DUALCHAIN_E2E_KEEP").is_some() {
            eprintln!("keeping namespace {} (DUALCHAIN_E2E_KEEP)", self.name);
            return;
        }
        // Drop cannot await; kubectl deletes without waiting for finalization.
        let _ = std::process::Command::new(tool("KUBECTL", "kubectl"))
            .args(["delete", "namespace", &self.name, "--wait=false"])
            .env("KUBECONFIG", &self.kubeconfig)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The operator binary: `DUALCHAIN_OPERATOR_BIN`, else the one cargo built beside
/// this test executable (`target/<profile>/dualchain-operator`).
pub fn operator_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("DUALCHAIN_OPERATOR_BIN") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("test executable has no target/<profile> directory")?;
    let path = profile_dir.join("dualchain-operator");
    ensure!(
        path.is_file(),
        "{} not found: build it first with `cargo build -p dualchain-operator`, or set DUALCHAIN_OPERATOR_BIN",
        path.display()
    );
    Ok(path)
}

/// An operator process watching one namespace, killed when dropped. Its log goes to
/// `target/e2e-logs/<namespace>-operator-<n>.log` and is printed when a test fails.
pub struct Operator {
    child: Child,
    log: PathBuf,
}

impl Operator {
    /// Starts `dualchain-operator run` outside the cluster, scoped to `namespace`,
    /// without leader election, with a short status interval so tests observe status
    /// changes quickly.
    pub async fn start(cluster: &Cluster, namespace: &str) -> Result<Self> {
        Self::spawn(cluster, namespace, &["--no-leader-election"]).await
    }

    /// Like [`Operator::start`], with further `dualchain-operator run` arguments.
    pub async fn start_with(cluster: &Cluster, namespace: &str, extra: &[&str]) -> Result<Self> {
        let mut args = vec!["--no-leader-election"];
        args.extend_from_slice(extra);
        Self::spawn(cluster, namespace, &args).await
    }

    /// Like [`Operator::start`], but competing for the Lease in `namespace` as
    /// `identity`, as replicas of the in-cluster Deployment do.
    pub async fn start_elected(cluster: &Cluster, namespace: &str, identity: &str) -> Result<Self> {
        Self::spawn(
            cluster,
            namespace,
            &["--lease-namespace", namespace, "--identity", identity],
        )
        .await
    }

    async fn spawn(cluster: &Cluster, namespace: &str, extra: &[&str]) -> Result<Self> {
        let binary = operator_binary()?;
        let log_dir = binary
            .parent()
            .map(|dir| dir.join("e2e-logs"))
            .context("operator binary has no directory")?;
        std::fs::create_dir_all(&log_dir)?;
        let log = (0..)
            .map(|n| log_dir.join(format!("{namespace}-operator-{n}.log")))
            .find(|path| !path.exists())
            .expect("an unused log name");
        let file = std::fs::File::create(&log)?;
        let child = Command::new(&binary)
            .args(["run", "--kubeconfig"])
            .arg(&cluster.kubeconfig)
            .args([
                "--namespace",
                namespace,
                "--metrics-addr",
                "127.0.0.1:0",
                "--status-interval-secs",
                "2",
            ])
            .args(extra)
            .env("RUST_LOG", "info,kube=warn")
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(Self { child, log })
    }

    /// SIGKILL: no graceful shutdown, exactly what a crashed or evicted operator does.
    pub async fn kill(mut self) -> Result<()> {
        self.child.kill().await?;
        Ok(())
    }

    /// The most resident memory the operator process has held so far (`VmHWM`).
    pub fn peak_rss_bytes(&self) -> Result<u64> {
        let pid = self.child.id().context("the operator has exited")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .context("no VmHWM in /proc/<pid>/status")?;
        Ok(kib * 1024)
    }

    /// Fails if the operator has exited: a crash would otherwise show up only as a
    /// timeout somewhere else.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "operator exited with {status}; log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
        Ok(())
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- last lines of {} ---", self.log.display());
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
        let _ = self.child.start_kill();
    }
}

/// Polls `probe` every 500 ms until it returns `Some`, for at most `timeout`. A probe
/// error is remembered, not fatal (the object may not exist yet); on timeout the error
/// names what was awaited and the last error seen.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match probe().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(error) => last_error = Some(error),
        }
        if Instant::now() >= deadline {
            match last_error {
                Some(error) => {
                    bail!("timed out after {timeout:?} waiting for {what}; last error: {error:#}")
                }
                None => bail!("timed out after {timeout:?} waiting for {what}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits until the object exists and `check` accepts it; returns it.
pub async fn wait_object<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    check: impl Fn(&K) -> bool,
) -> Result<K>
where
    K: Clone + DeserializeOwned + Debug,
{
    wait_for(&format!("{name}: {what}"), DEFAULT_WAIT, || async {
        Ok(api.get_opt(name).await?.filter(|obj| check(obj)))
    })
    .await
}

/// Waits until the object is gone (404).
pub async fn wait_gone<K>(api: &Api<K>, name: &str, timeout: Duration) -> Result<()>
where
    K: Clone + DeserializeOwned + Debug,
{
    wait_for(&format!("{name} to be deleted"), timeout, || async {
        Ok(api.get_opt(name).await?.is_none().then_some(()))
    })
    .await
}

/// Deletes an object in the background (the garbage collector removes dependents).
pub async fn delete<K>(api: &Api<K>, name: &str) -> Result<()>
where
    K: Clone + DeserializeOwned + Debug,
{
    api.delete(name, &DeleteParams::background()).await?;
    Ok(())
}

/// Parses one YAML document into a typed object.
pub fn from_yaml<T: DeserializeOwned>(yaml: &str) -> Result<T> {
    Ok(serde_saphyr::from_str(yaml)?)
}

/// True when `obj` is controlled by `owner` (a controller owner reference to its UID).
pub fn controlled_by<K: Resource, O: Resource>(obj: &K, owner: &O) -> bool {
    let owner_uid = owner.meta().uid.as_deref();
    obj.owner_references()
        .iter()
        .any(|r| r.controller == Some(true) && Some(r.uid.as_str()) == owner_uid)
}
