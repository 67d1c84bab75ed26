//! NameNode settings: the command-line flags ([`Args`]) and the checked, typed form the
//! library runs on ([`Config`]).
//!
//! Flags are milliseconds and plain counts because that is what an operator types; the library
//! takes `Duration`s and non-zero counts so a zero interval cannot reach the timing code.

use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use chkv_common::auth::{ClusterSecret, SECRET_ENV};
use chkv_common::DEFAULT_VNODES;
use clap::Parser;

use crate::Error;

/// Longest gap between two probes of a silent DataNode, whatever the heartbeat interval: with
/// three probes a node whose socket closed (kill -9, crash) is declared dead within a second.
pub const MAX_PROBE_INTERVAL: Duration = Duration::from_millis(300);

/// Probes sent to a silent DataNode before it is declared dead.
pub const PROBE_ATTEMPTS: NonZeroU32 = match NonZeroU32::new(3) {
    Some(n) => n,
    None => panic!("3 is not zero"),
};

/// Missed heartbeats before a DataNode is probed, unless configured otherwise.
pub const DEFAULT_TOLERANCE: NonZeroU32 = match NonZeroU32::new(3) {
    Some(n) => n,
    None => panic!("3 is not zero"),
};

/// The shortest lease the defaults give, however fast the heartbeats: a shorter one runs out
/// whenever the NameNode's answers and a peer's are both a second late, which a busy machine
/// sees (the lease is renewed long before it ends, so a longer one costs nothing until a
/// node goes silent, whose slots then wait this long more).
pub const MIN_DEFAULT_LEASE: Duration = Duration::from_secs(2);

/// Failure-detection timing, shared by the pure [`Membership`](crate::Membership) and the
/// server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// How often DataNodes heartbeat.
    pub heartbeat_interval: Duration,
    /// Heartbeat intervals of silence before the NameNode starts probing a node.
    pub heartbeat_tolerance: NonZeroU32,
    /// Gap between two probes, and how long the last probe waits for its answer.
    pub probe_interval: Duration,
    /// Probes before a silent node is declared dead.
    pub probe_attempts: NonZeroU32,
    /// After startup, how long registrations are collected before the first table is published,
    /// so that after a NameNode restart every surviving DataNode has re-registered and the
    /// first table has the same owners as before instead of flapping.
    pub startup_grace: Duration,
    /// The ownership lease DataNodes hold: a node serves its slots only while its lease (its
    /// heartbeat's send time plus this, renewed by the NameNode or by its peers) is valid.
    /// The NameNode gives a silent node's slots to others only once its lease has surely run
    /// out, so this is also what a dead node's slots wait on top of the detection.
    pub lease: Duration,
    /// Added to every lease wait: covers clock-rate drift between machines, coarse clock
    /// reads and scheduling delays between reading a clock and acting on it.
    pub lease_margin: Duration,
}

impl Timing {
    /// The timing for `heartbeat_interval` and `tolerance`, with the derived defaults: probes
    /// every `min(interval / 2, 300 ms)`, three of them, a startup grace of two intervals, and
    /// a lease of `tolerance` intervals (what the node would have been probed after), at
    /// least [`MIN_DEFAULT_LEASE`].
    pub fn new(heartbeat_interval: Duration, heartbeat_tolerance: NonZeroU32) -> Timing {
        let lease = (heartbeat_interval * heartbeat_tolerance.get()).max(MIN_DEFAULT_LEASE);
        Timing {
            heartbeat_interval,
            heartbeat_tolerance,
            probe_interval: (heartbeat_interval / 2).min(MAX_PROBE_INTERVAL),
            probe_attempts: PROBE_ATTEMPTS,
            startup_grace: heartbeat_interval * 2,
            lease,
            lease_margin: Timing::margin_for(lease),
        }
    }

    /// The margin for a lease of `lease`: a tenth of it, at least 100 ms (far above the
    /// drift of any working clock and a coarse clock's tick).
    pub fn margin_for(lease: Duration) -> Duration {
        (lease / 10).max(Duration::from_millis(100))
    }

    /// Silence after which a node is probed: `tolerance` missed heartbeats.
    pub fn suspect_after(&self) -> Duration {
        self.heartbeat_interval * self.heartbeat_tolerance.get()
    }
}

impl Default for Timing {
    fn default() -> Timing {
        Timing::new(Duration::from_secs(1), DEFAULT_TOLERANCE)
    }
}

/// Everything [`start`](crate::start) needs. Port 0 picks a free port (tests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Address the listeners bind to unless their own address is set.
    pub bind: IpAddr,
    /// Where DataNodes connect (default: `bind`).
    pub datanode_bind: Option<IpAddr>,
    /// Where clients watch (default: `bind`).
    pub client_bind: Option<IpAddr>,
    /// Where HTTP listens (default: `bind`).
    pub http_bind: Option<IpAddr>,
    /// What every DataNode must prove on the control port; without one, loopback only.
    pub cluster_secret: ClusterSecret,
    /// DataNodes register and heartbeat here.
    pub datanode_port: u16,
    /// Clients watch the ring here.
    pub client_port: u16,
    /// HTTP status, JSON cluster state and Prometheus metrics.
    pub http_port: u16,
    /// Virtual nodes per DataNode on the ring.
    pub vnodes: NonZeroU32,
    /// Heartbeats, probes and the startup grace.
    pub timing: Timing,
    /// Bearer token for the HTTP API's writes (`POST /api/nodes/{id}/drain`); without one
    /// they are refused.
    pub http_token: Option<HttpToken>,
    /// `tls-cluster`: the control plane speaks TLS only, with this certificate: the
    /// DataNode port (DataNodes must present certificates that chain to the CA), the watch
    /// port and HTTP (client certificates as `tls_auth_clients` says).
    pub cluster_tls: Option<ClusterTls>,
    /// `tls-auth-clients` of the watch and HTTP ports with `cluster_tls` (Redis's default:
    /// yes, a certificate from the CA is required).
    pub tls_auth_clients: chkv_common::tls::AuthClients,
    /// `--ports-file`: where [`crate::run`] writes the bound addresses (`datanode`, `client`,
    /// `http`), see [`chkv_common::cli::write_ports_file`].
    pub ports_file: Option<PathBuf>,
}

/// The PEM files of the DataNode port's TLS (`--tls-cluster yes`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub ca_cert_file: PathBuf,
}

impl ClusterTls {
    /// The rustls configuration of the DataNode port, reading the files.
    pub fn server_config(
        &self,
    ) -> Result<std::sync::Arc<chkv_common::tls::rustls::ServerConfig>, chkv_common::tls::TlsError>
    {
        self.config_for(chkv_common::tls::AuthClients::Yes)
    }

    /// The rustls configuration of a port whose clients' certificates are checked as
    /// `auth` says, reading the files.
    pub fn config_for(
        &self,
        auth: chkv_common::tls::AuthClients,
    ) -> Result<std::sync::Arc<chkv_common::tls::rustls::ServerConfig>, chkv_common::tls::TlsError>
    {
        chkv_common::tls::server_config(
            Some(&self.cert_file),
            Some(&self.key_file),
            Some(&self.ca_cert_file),
            auth,
        )
    }
}

/// A secret for the HTTP API. Its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpToken(std::sync::Arc<str>);

impl HttpToken {
    /// A token from its text; `None` when it is empty (after trimming whitespace, which a
    /// token file usually ends with).
    pub fn new(text: &str) -> Option<HttpToken> {
        let text = text.trim();
        (!text.is_empty()).then(|| HttpToken(text.into()))
    }

    /// Whether `offered` is this token, in time that depends only on the lengths.
    pub fn matches(&self, offered: &[u8]) -> bool {
        let mine = self.0.as_bytes();
        if mine.len() != offered.len() {
            return false;
        }
        let diff = mine
            .iter()
            .zip(offered)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }
}

impl std::fmt::Debug for HttpToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpToken(<redacted>)")
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            datanode_bind: None,
            client_bind: None,
            http_bind: None,
            cluster_secret: ClusterSecret::none(),
            datanode_port: 10101,
            client_port: 10102,
            http_port: 10180,
            vnodes: DEFAULT_VNODES,
            timing: Timing::default(),
            http_token: None,
            cluster_tls: None,
            tls_auth_clients: chkv_common::tls::AuthClients::Yes,
            ports_file: None,
        }
    }
}

impl Config {
    /// Loopback, every port 0, default timing: what in-process tests start from.
    pub fn ephemeral() -> Config {
        Config {
            datanode_port: 0,
            client_port: 0,
            http_port: 0,
            ..Config::default()
        }
    }
}

/// `chkv-namenode` command-line flags. Each can also be set in the environment
/// (`CHKV_NAMENODE_` and the flag in capitals with `_`, e.g. `CHKV_NAMENODE_HTTP_PORT`) or as a
/// key of the `--config` file; see [`chkv_common::cli`].
#[derive(Clone, Debug, Parser)]
#[command(
    name = "chkv-namenode",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("CHKV_GIT_COMMIT"), ")"),
    about = "CHKV NameNode: membership, ring and ring pushes",
    after_help = "Every flag can also be set in the environment (CHKV_NAMENODE_ and the flag in capitals with _, e.g. CHKV_NAMENODE_HTTP_PORT) or as a key of the --config file (http-port = 10180); flags override the environment, which overrides the file."
)]
pub struct Args {
    /// TOML file whose keys are these flags' long names (`http-port = 10180`).
    #[arg(long)]
    pub config: Option<std::path::PathBuf>,
    /// Address to listen on (every port without its own `--*-bind`).
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Address of the DataNode port [default: --bind].
    #[arg(long)]
    pub datanode_bind: Option<IpAddr>,
    /// Address of the client watch port [default: --bind].
    #[arg(long)]
    pub client_bind: Option<IpAddr>,
    /// Address of the HTTP port [default: --bind].
    #[arg(long)]
    pub http_bind: Option<IpAddr>,
    /// File holding the cluster secret every DataNode must prove (same file on every node).
    /// Without it (or CHKV_CLUSTER_SECRET) only loopback addresses may be bound.
    #[arg(long)]
    pub cluster_secret_file: Option<PathBuf>,
    /// Name of this cluster: DataNodes of another cluster (another `--cluster-name`) are
    /// refused even when they hold the same secret.
    #[arg(long, default_value = chkv_common::auth::DEFAULT_CLUSTER)]
    pub cluster_name: String,
    /// Port DataNodes register and heartbeat on (0 picks a free one).
    #[arg(long, default_value_t = 10101)]
    pub datanode_port: u16,
    /// Port clients watch the ring on (0 picks a free one).
    #[arg(long, default_value_t = 10102)]
    pub client_port: u16,
    /// HTTP status/metrics port (0 picks a free one).
    #[arg(long, default_value_t = 10180)]
    pub http_port: u16,
    /// Expected DataNode heartbeat interval, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub heartbeat_interval_ms: u64,
    /// Missed heartbeats before a DataNode is probed.
    #[arg(long, default_value_t = 3)]
    pub heartbeat_tolerance: u32,
    /// Gap between probes of a silent DataNode, in milliseconds [default: min(interval/2, 300)].
    #[arg(long)]
    pub probe_interval_ms: Option<u64>,
    /// Time to collect re-registrations after startup before publishing the first table, in
    /// milliseconds [default: 2 x heartbeat interval].
    #[arg(long)]
    pub startup_grace_ms: Option<u64>,
    /// Ownership lease of the DataNodes, in milliseconds [default: heartbeat interval x
    /// tolerance, at least 2000]. A paused or cut-off DataNode stops serving within it; a
    /// silent node's slots are given to others only after it (plus a margin) has passed since
    /// anyone last renewed it.
    #[arg(long)]
    pub lease_ms: Option<u64>,
    /// Virtual nodes per DataNode.
    #[arg(long, default_value_t = DEFAULT_VNODES.get())]
    pub vnodes: u32,
    /// File holding the bearer token for the HTTP API's writes (`POST /api/nodes/{id}/drain`);
    /// without it (or CHKV_HTTP_TOKEN) they are refused.
    #[arg(long)]
    pub http_token_file: Option<std::path::PathBuf>,
    /// The HTTP API token itself (prefer --http-token-file: the environment of a process can
    /// be read by its user).
    #[arg(
        long = "http-token",
        env = "CHKV_HTTP_TOKEN",
        hide_env_values = true,
        hide = true
    )]
    pub http_token: Option<String>,
    /// yes: the DataNode, watch and HTTP ports speak TLS only (DataNodes run with
    /// --tls-cluster yes, clients use rediss://), with --tls-cert-file and --tls-key-file;
    /// DataNodes' certificates must chain to --tls-ca-cert-file. SIGHUP reloads the files.
    // `Set`: a bool field would otherwise be a bare switch, and `--tls-cluster yes` an error.
    #[arg(long, default_value = "no", value_parser = parse_yes_no, action = clap::ArgAction::Set)]
    pub tls_cluster: bool,
    /// Client certificates on the watch and HTTP ports with --tls-cluster yes: yes
    /// (required, from --tls-ca-cert-file), optional, no.
    #[arg(long, default_value = "yes", value_parser = parse_auth_clients)]
    pub tls_auth_clients: chkv_common::tls::AuthClients,
    /// PEM certificate chain of the DataNode port (--tls-cluster yes).
    #[arg(long)]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of --tls-cert-file.
    #[arg(long)]
    pub tls_key_file: Option<PathBuf>,
    /// PEM CA bundle DataNodes' certificates must chain to.
    #[arg(long)]
    pub tls_ca_cert_file: Option<PathBuf>,
    /// Log filter: a level (error, warn, info, debug, trace) or a tracing directive list.
    #[arg(long, default_value = "info", env = "CHKV_LOG")]
    pub log_level: String,
    /// Once listening, write the bound addresses here, one `name=address` line each
    /// (`datanode`, `client`, `http`): for supervisors and tests that start it on port 0.
    #[arg(long)]
    pub ports_file: Option<PathBuf>,
}

fn parse_yes_no(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        // true/false too: a TOML config file may write the setting as a boolean.
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        _ => Err(format!("'{s}' is not yes or no")),
    }
}

fn parse_auth_clients(s: &str) -> Result<chkv_common::tls::AuthClients, String> {
    chkv_common::tls::AuthClients::parse(s)
        .ok_or_else(|| format!("'{s}' is not yes, no or optional"))
}

impl TryFrom<&Args> for Config {
    type Error = Error;

    fn try_from(args: &Args) -> Result<Config, Error> {
        if args.heartbeat_interval_ms == 0 {
            return Err(Error::Config("--heartbeat-interval-ms must be > 0".into()));
        }
        let tolerance = NonZeroU32::new(args.heartbeat_tolerance)
            .ok_or_else(|| Error::Config("--heartbeat-tolerance must be > 0".into()))?;
        let vnodes = NonZeroU32::new(args.vnodes)
            .ok_or_else(|| Error::Config("--vnodes must be > 0".into()))?;
        let mut timing = Timing::new(Duration::from_millis(args.heartbeat_interval_ms), tolerance);
        if let Some(ms) = args.probe_interval_ms {
            if ms == 0 {
                return Err(Error::Config("--probe-interval-ms must be > 0".into()));
            }
            timing.probe_interval = Duration::from_millis(ms);
        }
        if let Some(ms) = args.startup_grace_ms {
            timing.startup_grace = Duration::from_millis(ms);
        }
        if let Some(ms) = args.lease_ms {
            if ms == 0 {
                return Err(Error::Config("--lease-ms must be > 0".into()));
            }
            timing.lease = Duration::from_millis(ms);
            timing.lease_margin = Timing::margin_for(timing.lease);
        }
        let env = std::env::var(SECRET_ENV).ok();
        let cluster_secret =
            ClusterSecret::load(args.cluster_secret_file.as_deref(), env.as_deref())
                .and_then(|secret| secret.named(&args.cluster_name))
                .map_err(|e| Error::Config(e.to_string()))?;
        let http_token = match (&args.http_token_file, &args.http_token) {
            (Some(path), _) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    Error::Config(format!("--http-token-file {}: {e}", path.display()))
                })?;
                Some(HttpToken::new(&text).ok_or_else(|| {
                    Error::Config(format!("--http-token-file {} is empty", path.display()))
                })?)
            }
            (None, Some(text)) => Some(
                HttpToken::new(text)
                    .ok_or_else(|| Error::Config("CHKV_HTTP_TOKEN is empty".into()))?,
            ),
            (None, None) => None,
        };
        let cluster_tls = if args.tls_cluster {
            let need = |f: &Option<PathBuf>, name: &str| {
                f.clone()
                    .ok_or_else(|| Error::Config(format!("--tls-cluster yes needs {name}")))
            };
            let tls = ClusterTls {
                cert_file: need(&args.tls_cert_file, "--tls-cert-file")?,
                key_file: need(&args.tls_key_file, "--tls-key-file")?,
                ca_cert_file: need(&args.tls_ca_cert_file, "--tls-ca-cert-file")?,
            };
            tls.server_config()
                .and_then(|_| tls.config_for(args.tls_auth_clients))
                .map_err(|e| Error::Config(format!("--tls-cluster: {e}")))?;
            Some(tls)
        } else {
            None
        };
        Ok(Config {
            bind: args.bind,
            datanode_bind: args.datanode_bind,
            client_bind: args.client_bind,
            http_bind: args.http_bind,
            cluster_secret,
            datanode_port: args.datanode_port,
            client_port: args.client_port,
            http_port: args.http_port,
            vnodes,
            timing,
            http_token,
            cluster_tls,
            tls_auth_clients: args.tls_auth_clients,
            ports_file: args.ports_file.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(argv: &[&str]) -> Result<Config, Error> {
        let args =
            Args::try_parse_from(std::iter::once("chkv-namenode").chain(argv.iter().copied()))
                .map_err(|e| Error::Config(e.to_string()))?;
        Config::try_from(&args)
    }

    #[test]
    fn defaults_match_the_design() {
        let config = parse(&[]).expect("defaults are valid");
        assert_eq!(config, Config::default());
        assert_eq!(config.timing.probe_interval, Duration::from_millis(300));
        assert_eq!(config.timing.startup_grace, Duration::from_secs(2));
        assert_eq!(config.timing.suspect_after(), Duration::from_secs(3));
        assert_eq!(config.timing.lease, Duration::from_secs(3));
        assert_eq!(config.timing.lease_margin, Duration::from_millis(300));
        let config = parse(&["--lease-ms", "500"]).expect("valid");
        assert_eq!(config.timing.lease, Duration::from_millis(500));
        assert_eq!(config.timing.lease_margin, Duration::from_millis(100));
    }

    #[test]
    fn short_intervals_scale_the_probes() {
        let config = parse(&["--heartbeat-interval-ms", "100", "--http-port", "0"]).expect("valid");
        assert_eq!(config.timing.probe_interval, Duration::from_millis(50));
        assert_eq!(config.timing.startup_grace, Duration::from_millis(200));
        assert_eq!(config.http_port, 0);
        let config =
            parse(&["--probe-interval-ms", "20", "--startup-grace-ms", "0"]).expect("valid");
        assert_eq!(config.timing.probe_interval, Duration::from_millis(20));
        assert_eq!(config.timing.startup_grace, Duration::ZERO);
    }

    #[test]
    fn http_token_from_a_file_compares_exactly() {
        let dir = std::env::temp_dir().join(format!("chkv-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("token");
        std::fs::write(&file, "s3cret\n").expect("write");
        let config = parse(&["--http-token-file", file.to_str().expect("utf8")]).expect("valid");
        let token = config.http_token.expect("token");
        assert!(token.matches(b"s3cret"));
        assert!(!token.matches(b"s3cret\n"));
        assert!(!token.matches(b"s3creT"));
        assert!(!token.matches(b""));
        assert_eq!(format!("{token:?}"), "HttpToken(<redacted>)");
        std::fs::write(&file, " \n").expect("write");
        assert!(matches!(
            parse(&["--http-token-file", file.to_str().expect("utf8")]),
            Err(Error::Config(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn tls_cluster_takes_yes_or_no() {
        // The files are checked at once: `--tls-cluster yes` without them names the first.
        let e = parse(&["--tls-cluster", "yes"]).expect_err("no files");
        assert!(e.to_string().contains("--tls-cert-file"), "{e}");
        assert_eq!(
            parse(&["--tls-cluster", "no"]).expect("valid").cluster_tls,
            None
        );
        let e = parse(&["--tls-cluster", "maybe"]).expect_err("not yes or no");
        assert!(e.to_string().contains("yes or no"), "{e}");
        let e = parse(&["--tls-auth-clients", "sometimes"]).expect_err("bad mode");
        assert!(e.to_string().contains("optional"), "{e}");
    }

    #[test]
    fn zeros_are_refused() {
        for argv in [
            &["--heartbeat-interval-ms", "0"][..],
            &["--heartbeat-tolerance", "0"],
            &["--vnodes", "0"],
            &["--probe-interval-ms", "0"],
            &["--lease-ms", "0"],
        ] {
            assert!(matches!(parse(argv), Err(Error::Config(_))), "{argv:?}");
        }
    }
}
