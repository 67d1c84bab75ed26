//! DataNode configuration: what the command line sets and CONFIG GET/SET reads and changes.

use std::net::IpAddr;

/// `busy-reply-threshold`'s default (ms).
pub const DEFAULT_BUSY_THRESHOLD_MS: u64 = 5000;
/// `tracking-table-max-keys`'s default (Redis's).
pub const DEFAULT_TRACKING_MAX_KEYS: u64 = 1_000_000;
/// `tcp-keepalive`'s default, seconds (Redis's).
pub const DEFAULT_TCP_KEEPALIVE_SECS: u32 = 300;
/// `--tcp-notsent-lowat`'s default, bytes (see [`crate::server::tune_client_socket`]).
pub const DEFAULT_TCP_NOTSENT_LOWAT: u32 = 16 * 1024;

/// Runtime configuration of a DataNode.
#[derive(Clone, Debug)]
pub struct Config {
    pub bind: IpAddr,
    /// RESP port; 0 picks a free one.
    pub port: u16,
    /// Password every connection must give (AUTH) before other commands, when set.
    pub requirepass: Option<Vec<u8>>,
    pub maxclients: usize,
    /// Longest single argument a client may send (`proto-max-bulk-len`).
    pub proto_max_bulk_len: usize,
    /// Most bytes buffered from one client (`client-query-buffer-limit`).
    pub client_query_buffer_limit: usize,
    /// Active-expiry frequency, cycles per second (Redis's `hz`).
    pub hz: u32,
    /// Stable node id (40 hex characters); derived from the advertised address when unset.
    pub node_id: Option<String>,
    /// NameNode address (DataNode port); standalone when unset. A host name is looked up at
    /// every connect.
    pub namenode: Option<chkv_common::HostPort>,
    /// Address other nodes and clients use to reach this node, when it differs from the bound one.
    pub advertise: Option<std::net::SocketAddr>,
    /// The name `advertise` was resolved from, looked up again at every registration.
    pub advertise_host: Option<chkv_common::HostPort>,
    /// Answer `-MOVED` to every connection instead of forwarding (Redis Cluster behaviour).
    pub cluster_redirects: bool,
    /// Heartbeat period towards the NameNode.
    pub heartbeat_ms: u64,
    /// Admin port address (`k` drains the node); loopback by default.
    pub admin_addr: std::net::SocketAddr,
    /// HTTP port for `/metrics` and `/healthz`; off when unset (port 0 picks a free one).
    pub http_addr: Option<std::net::SocketAddr>,
    /// `maxmemory`, `maxmemory-policy`, `maxmemory-samples`, `lfu-log-factor`,
    /// `lfu-decay-time`.
    pub eviction: crate::store::evict::EvictionConfig,
    /// `client-output-buffer-limit` (Redis's classes and defaults): `normal` for plain
    /// connections, `pubsub` for subscribers and their outboxes.
    pub client_output_buffer_limit: crate::outbuf::OutputLimits,
    /// `notify-keyspace-events` as [`crate::pubsub::events`] bits; off by default.
    pub notify_keyspace_events: u32,
    /// Password for `k` and `status` on the admin port (`auth <password>`); `requirepass`
    /// when unset.
    pub admin_password: Option<Vec<u8>>,
    /// What this node proves to the NameNode and to other DataNodes, and demands of them
    /// (`--cluster-secret-file` / `CHKV_CLUSTER_SECRET`); without one, loopback only.
    pub cluster_secret: chkv_common::auth::ClusterSecret,
    /// `tls-port`, `tls-cert-file`, `tls-key-file`, `tls-ca-cert-file`, `tls-auth-clients`.
    pub tls: crate::tls::TlsSettings,
    /// `aclfile`: where ACL SAVE writes and ACL LOAD reads users; loaded at start.
    pub aclfile: Option<std::path::PathBuf>,
    /// `--ports-file`: where the binary writes the addresses it listens on once they are
    /// bound (see [`chkv_common::cli::write_ports_file`]).
    pub ports_file: Option<std::path::PathBuf>,
    /// Collection encoding thresholds (`hash-max-listpack-entries`...).
    pub encodings: crate::store::Limits,
    /// Longest sparse HyperLogLog before it turns dense (`hll-sparse-max-bytes`).
    pub hll_sparse_max_bytes: usize,
    /// Milliseconds a script runs before other clients get `-BUSY`
    /// (`busy-reply-threshold`, alias `lua-time-limit`).
    pub busy_reply_threshold_ms: u64,
    /// `min-replicas-to-write` (CHKV has no replicas: above 0, writes are refused).
    pub min_replicas_to_write: u32,
    /// `min-replicas-max-lag` (seconds; kept for CONFIG, no replicas to measure).
    pub min_replicas_max_lag: u32,
    /// `tracking-table-max-keys`: keys CLIENT TRACKING remembers at most (0: no limit).
    pub tracking_table_max_keys: u64,
    /// `tcp-keepalive`: seconds of silence before a client connection is probed (the
    /// interval between probes a third of it, three unanswered probes close it, as Redis);
    /// 0: no probes. Applies to connections accepted after it is set.
    pub tcp_keepalive_secs: u32,
    /// `--tcp-notsent-lowat`: most bytes of replies a client connection keeps queued in the
    /// kernel unsent (behind the client's closed receive window); 0: the kernel's default,
    /// no limit. See [`crate::server::tune_client_socket`].
    pub tcp_notsent_lowat: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: IpAddr::from([127, 0, 0, 1]),
            port: 10100,
            requirepass: None,
            maxclients: 10000,
            proto_max_bulk_len: 512 * 1024 * 1024,
            client_query_buffer_limit: 1024 * 1024 * 1024,
            hz: 10,
            node_id: None,
            namenode: None,
            advertise: None,
            advertise_host: None,
            cluster_redirects: false,
            heartbeat_ms: 1000,
            admin_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 20000)),
            http_addr: None,
            eviction: Default::default(),
            cluster_secret: Default::default(),
            admin_password: None,
            client_output_buffer_limit: Default::default(),
            notify_keyspace_events: 0,
            tls: Default::default(),
            aclfile: None,
            ports_file: None,
            encodings: Default::default(),
            hll_sparse_max_bytes: crate::hll::SPARSE_MAX_BYTES_DEFAULT,
            busy_reply_threshold_ms: DEFAULT_BUSY_THRESHOLD_MS,
            min_replicas_to_write: 0,
            min_replicas_max_lag: 10,
            tracking_table_max_keys: DEFAULT_TRACKING_MAX_KEYS,
            tcp_keepalive_secs: DEFAULT_TCP_KEEPALIVE_SECS,
            tcp_notsent_lowat: DEFAULT_TCP_NOTSENT_LOWAT,
        }
    }
}

/// Formats bytes like Redis's `bytesToHuman` (`1.50M`).
pub fn bytes_to_human(n: u64) -> String {
    let f = n as f64;
    const K: f64 = 1024.0;
    if f < K {
        format!("{n}B")
    } else if f < K * K {
        format!("{:.2}K", f / K)
    } else if f < K * K * K {
        format!("{:.2}M", f / (K * K))
    } else if f < K * K * K * K {
        format!("{:.2}G", f / (K * K * K))
    } else {
        format!("{:.2}T", f / (K * K * K * K))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human() {
        assert_eq!(bytes_to_human(100), "100B");
        assert_eq!(bytes_to_human(1536), "1.50K");
        assert_eq!(bytes_to_human(100 << 20), "100.00M");
    }
}
