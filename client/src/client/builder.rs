//! The client's options: [`Builder`], TLS, the retry budget, and the NameNode addresses [`NameNodes`] accepts.

use super::*;

/// How many times and for how long a routed request is retried after a redirect, a dropped
/// connection or a cluster that is between tables, before
/// [`Error::RetriesExhausted`]. Both bounds apply; the first reached ends the retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryBudget {
    /// Attempts in all, the first one included.
    pub attempts: u32,
    /// Time the retries may spend waiting (for a new table, a backoff) before the last
    /// attempt. Time spent waiting for answers does not count (the response timeout bounds
    /// each attempt): on a slow machine a slow answer must not use up the budget that is
    /// there to ride out a ring change.
    pub time: Duration,
}

impl Default for RetryBudget {
    /// 32 attempts within 5 s: enough to ride out a handoff's redirects and a killed node's
    /// removal from the ring (about a second with the NameNode's defaults, up to 4 s when the
    /// node goes silent without closing its connections).
    fn default() -> RetryBudget {
        RetryBudget {
            attempts: 32,
            time: Duration::from_secs(5),
        }
    }
}

/// The NameNode's watch port and the DataNode's client port, for URLs without a port.
const NAMENODE_PORT: u16 = 10102;
const DATANODE_PORT: u16 = 10100;

/// Options for a [`Client`]; [`Client::builder`] starts one.
#[derive(Clone, Debug)]
pub struct Builder {
    pub(super) connect_timeout: Duration,
    pub(super) response_timeout: Option<Duration>,
    pub(super) table_timeout: Duration,
    pub(super) pool_size: usize,
    pub(super) retry: RetryBudget,
    pub(super) password: Option<Bytes>,
    pub(super) username: Option<Bytes>,
    pub(super) resp3: bool,
    pub(super) near: Option<NearCacheOptions>,
    pub(super) tls: Option<Tls>,
}

/// TLS towards the DataNodes' TLS ports (`--tls-port`), what a `rediss://` URL asks of other
/// clients: the CA the nodes' certificates must chain to (and name the address dialled), and
/// a client certificate for nodes that require one (`tls-auth-clients yes`). With a NameNode,
/// each node is reached at the TLS port it advertises; standalone, at the address given.
#[derive(Clone, Debug)]
pub struct Tls(pub(super) Arc<chkv_common::tls::rustls::ClientConfig>);

impl Tls {
    /// Trusts the CA certificates in the PEM file `ca`; presents no client certificate.
    pub fn new(ca: impl AsRef<std::path::Path>) -> Result<Tls> {
        Tls::build(ca.as_ref(), None)
    }

    /// Trusts `ca` and presents the certificate chain `cert` with its private key `key`
    /// (PEM files), for mutual TLS.
    pub fn with_client_cert(
        ca: impl AsRef<std::path::Path>,
        cert: impl AsRef<std::path::Path>,
        key: impl AsRef<std::path::Path>,
    ) -> Result<Tls> {
        Tls::build(ca.as_ref(), Some((cert.as_ref(), key.as_ref())))
    }

    fn build(
        ca: &std::path::Path,
        identity: Option<(&std::path::Path, &std::path::Path)>,
    ) -> Result<Tls> {
        chkv_common::tls::client_config(ca, identity, chkv_common::tls::ServerNames::Check)
            .map(Tls)
            .map_err(|e| Error::Invalid(format!("TLS: {e}")))
    }
}

impl Default for Builder {
    fn default() -> Builder {
        Builder {
            connect_timeout: Duration::from_secs(1),
            response_timeout: Some(Duration::from_secs(2)),
            table_timeout: Duration::from_secs(10),
            pool_size: 1,
            retry: RetryBudget::default(),
            password: None,
            username: None,
            resp3: false,
            near: None,
            tls: None,
        }
    }
}

impl Builder {
    /// Longest wait for a TCP connection and its handshake (default 1 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Builder {
        self.connect_timeout = timeout;
        self
    }

    /// Longest wait for a reply (default 2 s). Replies come in order, so an overdue one
    /// means the connection (or the node) is stuck: every request waiting on it fails with
    /// [`Error::Timeout`], not retried (they may have run), and the connection is replaced.
    pub fn response_timeout(mut self, timeout: Duration) -> Builder {
        self.response_timeout = Some(timeout);
        self
    }

    /// Wait for replies as long as it takes.
    pub fn no_response_timeout(mut self) -> Builder {
        self.response_timeout = None;
        self
    }

    /// Longest wait in [`connect`](Builder::connect) for the first slot table (default 10 s;
    /// a NameNode that just started sends none during its startup grace, two heartbeats).
    pub fn table_timeout(mut self, timeout: Duration) -> Builder {
        self.table_timeout = timeout;
        self
    }

    /// Connections per DataNode (default 1). Each carries any number of requests at once;
    /// more spread the parsing of replies over more tasks.
    pub fn pool_size(mut self, connections: usize) -> Builder {
        self.pool_size = connections.max(1);
        self
    }

    /// The retry budget of routed requests.
    pub fn retry_budget(mut self, budget: RetryBudget) -> Builder {
        self.retry = RetryBudget {
            attempts: budget.attempts.max(1),
            time: budget.time,
        };
        self
    }

    /// Password for the DataNodes (`requirepass`), sent with AUTH on every new connection.
    pub fn password(mut self, password: impl AsRef<[u8]>) -> Builder {
        self.password = Some(Bytes::copy_from_slice(password.as_ref()));
        self
    }

    /// ACL user to authenticate as with [`Builder::password`] (`AUTH username password`);
    /// the `default` user when unset.
    pub fn username(mut self, username: impl AsRef<[u8]>) -> Builder {
        self.username = Some(Bytes::copy_from_slice(username.as_ref()));
        self
    }

    /// Connect to the DataNodes over TLS (see [`Tls`]).
    pub fn tls(mut self, tls: Tls) -> Builder {
        self.tls = Some(tls);
        self
    }

    /// Speak RESP3 (`HELLO 3`) instead of RESP2. The typed API returns the same either way;
    /// [`Client::cmd`] then returns RESP3 types (maps, doubles, ...).
    pub fn resp3(mut self, on: bool) -> Builder {
        self.resp3 = on;
        self
    }

    /// Keep GET results in the client (a near-cache) with server-assisted invalidation:
    /// connections speak RESP3 (as with [`Builder::resp3`]) and say
    /// `CLIENT TRACKING ON OPTIN`; each GET that misses asks the node to track the key, and
    /// the node's invalidation push drops it. Bounded by `options`; see the crate docs for
    /// what it guarantees and [`Client::near_cache_stats`] for its counters.
    pub fn near_cache(mut self, options: NearCacheOptions) -> Builder {
        self.near = Some(options);
        self
    }

    /// Connects through the NameNode(s) at `namenodes` (their client/watch port, 10102 by
    /// default): waits for the current slot table, then keeps watching for new ones in the
    /// background, rotating through the addresses with backoff when the connection drops.
    ///
    /// Each address is `host:port` or a `redis://`/`rediss://` URL (port 10102 when it has
    /// none): its user info sets [`Builder::username`] and [`Builder::password`], and
    /// `rediss://` makes the watch connection and every DataNode connection TLS, with
    /// [`Builder::tls`] or else the files the URL names (`?tls-ca-cert-file=ca.pem`, and
    /// `&tls-cert-file=..&tls-key-file=..` for a client certificate). A NameNode run with
    /// `--tls-cluster yes` serves its watch port over TLS only, so it needs `rediss://`.
    pub async fn connect(self, namenodes: impl NameNodes) -> Result<Client> {
        let (this, addrs, watch_tls) = self.with_urls(namenodes.into_addrs(), NAMENODE_PORT)?;
        if addrs.is_empty() {
            return Err(Error::Invalid("no NameNode address given".into()));
        }
        this.connect_to(addrs, watch_tls).await
    }

    /// Takes credentials and TLS from the URLs among `addrs` (which must agree), and returns
    /// the plain addresses and whether the watch speaks TLS.
    fn with_urls(
        mut self,
        addrs: Vec<String>,
        default_port: u16,
    ) -> Result<(Builder, Vec<String>, bool)> {
        let urls = addrs.iter().filter(|a| crate::url::is_url(a)).count();
        if urls == 0 {
            return Ok((self, addrs, false));
        }
        if urls < addrs.len() {
            return Err(Error::Invalid(
                "mixing redis:// URLs and plain addresses: give all as URLs".into(),
            ));
        }
        let mut plain = Vec::with_capacity(addrs.len());
        let mut first: Option<RedisUrl> = None;
        for a in &addrs {
            let url = RedisUrl::parse(a)?;
            plain.push(url.addr(default_port));
            if let Some(f) = &first {
                let same = |u: &RedisUrl| {
                    (
                        u.tls,
                        u.username.clone(),
                        u.password.clone(),
                        u.ca_cert_file.clone(),
                        u.cert_file.clone(),
                        u.key_file.clone(),
                    )
                };
                if same(f) != same(&url) {
                    return Err(Error::Invalid(
                        "the URLs differ in scheme, user, password or TLS files".into(),
                    ));
                }
            } else {
                first = Some(url);
            }
        }
        let Some(url) = first else {
            return Ok((self, plain, false));
        };
        if let Some(p) = url.password {
            self.password = Some(Bytes::from(p));
        }
        if let Some(u) = url.username {
            self.username = Some(Bytes::from(u));
        }
        if url.tls {
            match (&url.ca_cert_file, &self.tls) {
                (Some(ca), _) => {
                    self.tls = Some(match (&url.cert_file, &url.key_file) {
                        (Some(c), Some(k)) => Tls::with_client_cert(ca, c, k)?,
                        _ => Tls::new(ca)?,
                    })
                }
                (None, Some(_)) => {}
                (None, None) => {
                    return Err(Error::Invalid(
                        "rediss:// needs the CA the servers' certificates chain to: Builder::tls, or ?tls-ca-cert-file=PATH in the URL".into(),
                    ))
                }
            }
        }
        Ok((self, plain, url.tls))
    }

    async fn connect_to(self, addrs: Vec<String>, watch_tls: bool) -> Result<Client> {
        let shared = Arc::new(Shared::new(&self, true));
        let mut tables = shared.tables.subscribe();
        let watch_tls = if watch_tls {
            self.tls.as_ref().map(|t| t.0.clone())
        } else {
            None
        };
        let watcher = tokio::spawn(watcher::run(shared.clone(), addrs.clone(), watch_tls));
        let client = Client {
            inner: Arc::new(Inner {
                shared,
                watcher: Some(watcher),
            }),
        };
        // Wait for the first table; give up early once every address has shown it is not a
        // NameNode or cannot be reached, so a wrong address fails in about a second.
        let deadline = tokio::time::Instant::now() + self.table_timeout;
        loop {
            let step = deadline.min(tokio::time::Instant::now() + Duration::from_millis(50));
            if tokio::time::timeout_at(step, tables.wait_for(|n| *n > 0))
                .await
                .is_ok_and(|r| r.is_ok())
            {
                return Ok(client);
            }
            if let Some(e) = client.inner.shared.definite_failure(&addrs) {
                return Err(e);
            }
            if tokio::time::Instant::now() >= deadline {
                break;
            }
        }
        Err(Error::NoCluster(format!(
            "the NameNode at {} sent no slot table within {:?} (a NameNode publishes its first one a moment after it starts){}",
            addrs.join(", "),
            self.table_timeout,
            client
                .inner
                .shared
                .watch_error()
                .map(|e| format!(" (last error: {e})"))
                .unwrap_or_default()
        )))
    }

    /// [`connect_standalone`](Builder::connect_standalone) to the server a `redis://` or
    /// `rediss://` URL names (port 10100 when it has none; the host resolved now, its first
    /// address used), with the URL's user, password and TLS as in [`connect`](Builder::connect).
    pub async fn connect_standalone_url(self, url: &str) -> Result<Client> {
        if !crate::url::is_url(url) {
            return Err(Error::Invalid(format!(
                "{url:?} is not a redis:// or rediss:// URL"
            )));
        }
        let (this, addrs, tls) = self.with_urls(vec![url.to_string()], DATANODE_PORT)?;
        if !tls && this.tls.is_some() {
            return Err(Error::Invalid(
                "a redis:// URL with Builder::tls: use rediss://".into(),
            ));
        }
        let host = &addrs[0];
        let addr = tokio::time::timeout(this.connect_timeout, tokio::net::lookup_host(host))
            .await
            .map_err(|_| Error::Invalid(format!("resolving {host} timed out")))?
            .map_err(|e| Error::Invalid(format!("resolving {host}: {e}")))?
            .next()
            .ok_or_else(|| Error::Invalid(format!("{host} resolves to no address")))?;
        this.connect_standalone(addr).await
    }

    /// Connects to one DataNode (or any Redis server) without a NameNode: it owns every slot.
    /// The connection is opened and checked with PING now.
    pub async fn connect_standalone(self, addr: SocketAddr) -> Result<Client> {
        let shared = Arc::new(Shared::new(&self, false));
        let pool = shared.new_pool(addr);
        *shared.routes.write().unwrap_or_else(|p| p.into_inner()) =
            Arc::new(Routes::standalone(pool));
        shared.ring.send_replace(RingInfo {
            epoch: 0,
            nodes: Vec::new(),
            assigned_slots: chkv_common::SLOT_COUNT,
        });
        let client = Client {
            inner: Arc::new(Inner {
                shared,
                watcher: None,
            }),
        };
        // The node answered the greeting (AUTH included); PING proves it serves. An ACL user
        // without +ping gets NOPERM, which proves the same.
        match client.cmd_on(addr, ["PING"]).await {
            Err(e) if e.code() != Some("NOPERM") => Err(e),
            _ => Ok(client),
        }
    }
}

/// One or more NameNode addresses (`"host:port"` strings or socket addresses).
pub trait NameNodes {
    fn into_addrs(self) -> Vec<String>;
}

impl NameNodes for &str {
    fn into_addrs(self) -> Vec<String> {
        vec![self.to_string()]
    }
}

impl NameNodes for String {
    fn into_addrs(self) -> Vec<String> {
        vec![self]
    }
}

impl NameNodes for SocketAddr {
    fn into_addrs(self) -> Vec<String> {
        vec![self.to_string()]
    }
}

impl<T: ToString> NameNodes for Vec<T> {
    fn into_addrs(self) -> Vec<String> {
        self.iter().map(ToString::to_string).collect()
    }
}

impl<T: ToString> NameNodes for &[T] {
    fn into_addrs(self) -> Vec<String> {
        self.iter().map(ToString::to_string).collect()
    }
}

impl<T: ToString, const N: usize> NameNodes for [T; N] {
    fn into_addrs(self) -> Vec<String> {
        self.iter().map(ToString::to_string).collect()
    }
}
