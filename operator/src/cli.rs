//! Command line of `dualchain-operator` (subcommands `crd` and `run`).

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::context::{OperatorPods, Settings};
use crate::runtime::RunOptions;

/// Kubernetes operator for dualchain networks and benchmark clusters.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Print the CustomResourceDefinitions as YAML (or write one file per CRD).
    Crd(CrdArgs),
    /// Run the controllers against the cluster (in-cluster, or any kubeconfig).
    Run(RunArgs),
    /// Check manifests against the CRD schemas and CEL rules, as the API server would.
    Validate(ValidateArgs),
}

#[derive(clap::Args, Debug)]
pub struct ValidateArgs {
    /// YAML files (multi-document allowed); `-` reads standard input.
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct CrdArgs {
    /// Write `<crd name>.yaml` files into this directory instead of printing; repeatable.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Vec<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Kubeconfig file [default: in-cluster config, then $KUBECONFIG, then ~/.kube/config].
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use.
    #[arg(long)]
    pub context: Option<String>,
    /// Only watch this namespace [default: all namespaces].
    #[arg(long, env = "WATCH_NAMESPACE")]
    pub namespace: Option<String>,
    /// Address of the /metrics, /healthz and /readyz endpoint.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// Run without leader election (only when a single instance runs).
    #[arg(long)]
    pub no_leader_election: bool,
    /// Namespace of the leader-election Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// Namespace of the operator's own pods (with --operator-pod-labels).
    #[arg(long, env = "POD_NAMESPACE")]
    pub operator_namespace: Option<String>,
    /// Labels of the operator's own pods, `key=value,...`: every network's NetworkPolicy
    /// admits these pods (in --operator-namespace) to the validators' gRPC API ports
    /// [default: none admitted, for an operator running outside the cluster].
    #[arg(long, env = "OPERATOR_POD_LABELS", value_name = "LABELS")]
    pub operator_pod_labels: Option<String>,
    /// Identity in the Lease [default: pod name, else host name and process id].
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Seconds between status refreshes of a healthy network.
    #[arg(long, default_value_t = 30)]
    pub status_interval_secs: u64,
    /// Log as JSON lines.
    #[arg(long)]
    pub log_json: bool,
}

fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "operator".into());
    format!("{host}-{}", std::process::id())
}

/// Runs a subcommand.
pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Crd(crd) => {
            if crd.out_dir.is_empty() {
                // A closed pipe (`| head`) is not an error worth a panic.
                let text = crate::crd::render_all()?;
                match std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes()) {
                    Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e.into()),
                    _ => {}
                }
            } else {
                for dir in &crd.out_dir {
                    for path in crate::crd::write_dir(dir)? {
                        println!("wrote {}", path.display());
                    }
                }
            }
            Ok(())
        }
        Command::Validate(v) => validate(&v.files),
        Command::Run(run) => {
            init_tracing(run.log_json);
            install_crypto_provider();
            let operator_pods = operator_pods(
                run.operator_namespace.as_deref(),
                run.operator_pod_labels.as_deref(),
            )?;
            if operator_pods.is_none() {
                tracing::warn!(
                    "no --operator-pod-labels: validators' NetworkPolicies admit no operator pod \
                     to their API ports (fine for an operator running outside the cluster)"
                );
            }
            let options = RunOptions {
                kubeconfig: run.kubeconfig,
                context: run.context,
                namespace: run.namespace,
                metrics_addr: run.metrics_addr,
                leader_election: !run.no_leader_election,
                lease_namespace: run.lease_namespace,
                identity: run.identity.unwrap_or_else(default_identity),
                settings: Settings {
                    operator_pods,
                    status_interval: std::time::Duration::from_secs(
                        run.status_interval_secs.max(1),
                    ),
                    ..Settings::default()
                },
            };
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?
                .block_on(crate::runtime::run(options))
        }
    }
}

/// The operator's own pods, from `--operator-namespace` and `--operator-pod-labels`.
fn operator_pods(
    namespace: Option<&str>,
    labels: Option<&str>,
) -> anyhow::Result<Option<OperatorPods>> {
    match (namespace, labels) {
        (_, None) => Ok(None),
        (None, Some(_)) => {
            anyhow::bail!("--operator-pod-labels needs --operator-namespace (or POD_NAMESPACE)")
        }
        (Some(namespace), Some(labels)) => OperatorPods::parse(namespace, labels)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("--operator-pod-labels: {e}")),
    }
}

/// Validates every document of every file, printing one line per document.
pub fn validate(files: &[PathBuf]) -> anyhow::Result<()> {
    let mut invalid = 0;
    for file in files {
        let text = if file.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin())?
        } else {
            std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?
        };
        let results = crate::schema_check::check_yaml(&text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        for (i, result) in results.iter().enumerate() {
            match result {
                Ok(()) => println!("{} #{i}: valid", file.display()),
                Err(violations) => {
                    invalid += 1;
                    for v in violations {
                        println!("{} #{i}: {v}", file.display());
                    }
                }
            }
        }
    }
    if invalid > 0 {
        anyhow::bail!("{invalid} invalid document(s)");
    }
    Ok(())
}

/// Selects rustls' crypto backend for the Kubernetes client. The workspace compiles
/// two (ring through kube, aws-lc-rs through quinn), and rustls refuses to guess
/// between them: without this the first API call panics.
pub fn install_crypto_provider() {
    // An error only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

fn init_tracing(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,kube=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn parses_both_subcommands() {
        let cli = Cli::try_parse_from(["op", "crd", "--out-dir", "a", "--out-dir", "b"]).unwrap();
        assert!(matches!(cli.args.command, Command::Crd(ref c) if c.out_dir.len() == 2));
        let cli = Cli::try_parse_from([
            "op",
            "run",
            "--kubeconfig",
            "/k",
            "--no-leader-election",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .unwrap();
        match cli.args.command {
            Command::Run(r) => {
                assert!(r.no_leader_election);
                assert_eq!(r.kubeconfig.as_deref(), Some(std::path::Path::new("/k")));
            }
            _ => panic!("expected run"),
        }
        assert!(Cli::try_parse_from(["op", "run", "--metrics-addr", "nope"]).is_err());
    }

    #[test]
    fn operator_pod_labels_are_parsed_or_refused() {
        assert_eq!(operator_pods(Some("ops"), None).unwrap(), None);
        let pods = operator_pods(Some("ops"), Some("a=1, b=2"))
            .unwrap()
            .unwrap();
        assert_eq!(pods.namespace, "ops");
        assert_eq!(
            pods.labels,
            std::collections::BTreeMap::from([
                ("a".to_string(), "1".to_string()),
                ("b".to_string(), "2".to_string())
            ])
        );
        for bad in ["a", "a=", "=1", "a=1,a=2", ""] {
            let err = operator_pods(Some("ops"), Some(bad)).unwrap_err();
            assert!(
                err.to_string().contains("--operator-pod-labels"),
                "{bad}: {err}"
            );
        }
        assert!(operator_pods(None, Some("a=1")).is_err());
        assert!(operator_pods(Some(""), Some("a=1")).is_err());
    }
}
