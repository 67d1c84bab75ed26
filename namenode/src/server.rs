//! The NameNode's I/O: listeners, connection tasks, and the core task around [`Membership`].
//!
//! One core task owns the [`Membership`] and is the only place state changes, so there are no
//! locks: connection tasks send it decoded events over a channel, it asks the state machine
//! what to do and does it (queue a line for a connection, drop a connection, publish a table).
//! It sleeps until [`Membership::next_deadline`] rather than ticking at a fixed rate, so probes
//! go out on time and an idle NameNode does nothing.
//!
//! Each DataNode connection has a reader task (lines in -> events) and a writer task (a bounded
//! queue -> socket). The core holds the only sender of that queue: dropping it closes the
//! connection once what was queued is written. A node that stops reading fills its queue and is
//! dropped rather than letting the NameNode buffer without bound, as Redis does with a client
//! over its output limit; it will reconnect and be welcomed with the current table.
//!
//! Watchers do not go through the core: the newest table (encoded once) sits in a
//! `tokio::sync::watch`, and each watcher task writes it whenever it changes. A watcher that
//! reads slowly skips tables it had no time for, which is right for a routing table: only the
//! newest one matters.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chkv_common::auth::{
    accept_lines, check_node_id, escape, require_loopback, AuthError, ClusterSecret, Purpose,
    NAMENODE_ID,
};
use chkv_common::lines::read_line;
use chkv_common::proto::{
    check_epoch, check_version, slot_ranges, MAX_LINE_BYTES, MAX_REPORTED_MEMBERS,
};
use chkv_common::{
    decode_line, encode_line, ClientToNameNode, DataNodeToNameNode, NameNodeToClient,
    NameNodeToDataNode, NodeId, NodeInfo,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};

use crate::activity::{EventLog, LoggedEvent, OpsRates};
use crate::membership::{
    Action, ClusterStatus, ConnId, DrainRefused, Event, Membership, NodeStats, Notice,
};
use crate::{http, ClusterTls, Config, Error};
use chkv_common::tls::{AuthClients, TlsError};
use tokio_rustls::TlsAcceptor;

/// Lines queued for one DataNode before it counts as not reading and is dropped.
const DATANODE_QUEUE: usize = 64;
/// Events queued for the core before connection tasks wait.
const CORE_QUEUE: usize = 1024;
/// A write that does not complete in this long means the peer stopped reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// A watcher must say `watch` this soon after connecting.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest line a watcher may send (the handshake is about 30 bytes).
const MAX_WATCH_LINE: usize = 4096;
/// Open connections per port at most; past it new ones are closed at once. Unauthenticated
/// DataNode connections cost a few KB each and end after the handshake timeout, so a flood of
/// them is bounded in memory; the DataNodes already connected keep their connections.
const MAX_DATANODE_CONNS: usize = 1024;
const MAX_WATCHERS: usize = 4096;
const MAX_HTTP_CONNS: usize = 256;

/// A running NameNode. Dropping it stops every task abruptly; [`shutdown`] waits for them.
///
/// [`shutdown`]: NameNodeHandle::shutdown
#[derive(Debug)]
pub struct NameNodeHandle {
    datanode_addr: SocketAddr,
    client_addr: SocketAddr,
    http_addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    tls: Option<Arc<ControlTls>>,
}

impl NameNodeHandle {
    /// Where DataNodes register (the bound address, so port 0 is resolved).
    pub fn datanode_addr(&self) -> SocketAddr {
        self.datanode_addr
    }

    /// Where clients watch the ring.
    pub fn client_addr(&self) -> SocketAddr {
        self.client_addr
    }

    /// The HTTP status port.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// With `tls-cluster`, reads the certificate, key and CA files again for new
    /// connections (what SIGHUP does); open connections keep theirs. On an error nothing
    /// changes. `Ok(false)` without TLS.
    pub fn reload_tls(&self) -> Result<bool, Error> {
        match &self.tls {
            None => Ok(false),
            Some(tls) => tls
                .reload()
                .map(|()| true)
                .map_err(|e| Error::Config(format!("TLS reload: {e}"))),
        }
    }

    /// Stops accepting, closes every connection and waits until all tasks have ended. The
    /// ports are free again when this returns.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Binds the three ports and starts serving. Returns once the ports are bound.
pub async fn start(config: Config) -> Result<NameNodeHandle, Error> {
    let secret = &config.cluster_secret;
    let datanode_ip = config.datanode_bind.unwrap_or(config.bind);
    let client_ip = config.client_bind.unwrap_or(config.bind);
    let http_ip = config.http_bind.unwrap_or(config.bind);
    let datanodes = bind(secret, datanode_ip, config.datanode_port, "datanodes").await?;
    let clients = bind(secret, client_ip, config.client_port, "watchers").await?;
    let web = bind(secret, http_ip, config.http_port, "http").await?;
    let local = |listener: &TcpListener, what| {
        listener.local_addr().map_err(|source| Error::Bind {
            what,
            addr: SocketAddr::new(config.bind, 0),
            source,
        })
    };
    let datanode_addr = local(&datanodes, "datanodes")?;
    let client_addr = local(&clients, "watchers")?;
    let http_addr = local(&web, "http")?;

    let (stop, stop_rx) = watch::channel(false);
    let (core_tx, core_rx) = mpsc::channel(CORE_QUEUE);
    let (tables_tx, tables_rx) = watch::channel(None);
    let watchers = Arc::new(AtomicUsize::new(0));

    let core = Core {
        // A life number no earlier life drew (64 random bits; 0 means none).
        membership: Membership::new(config.vnodes, config.timing, now())
            .with_life(rand::random::<u64>().max(1)),
        conns: HashMap::new(),
        tables: tables_tx,
        watchers: watchers.clone(),
        log: EventLog::default(),
        rates: OpsRates::default(),
    };
    let mut tasks = JoinSet::new();
    tasks.spawn(core.run(core_rx, stop_rx.clone()));

    let mut last_conn = 0;
    let (tx, stop_dn) = (core_tx.clone(), stop_rx.clone());
    let secret = config.cluster_secret.clone();
    let control_tls = match &config.cluster_tls {
        Some(t) => Some(Arc::new(
            ControlTls::load(t.clone(), config.tls_auth_clients)
                .map_err(|e| Error::Config(format!("--tls-cluster: {e}")))?,
        )),
        None => None,
    };
    let tls = control_tls.clone();
    tasks.spawn(accept_loop(
        datanodes,
        stop_rx.clone(),
        "datanode",
        MAX_DATANODE_CONNS,
        move |stream, peer| {
            last_conn += 1;
            let conn = ConnId(last_conn);
            let (tx, stop, secret, tls) =
                (tx.clone(), stop_dn.clone(), secret.clone(), tls.clone());
            async move {
                let Some(tls) = tls else {
                    return serve_datanode(stream, peer, conn, tx, stop, secret).await;
                };
                // tls-cluster: TLS only, the DataNode's certificate checked against the CA.
                let acceptor = tls.datanodes();
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => serve_datanode(stream, peer, conn, tx, stop, secret).await,
                    Ok(Err(e)) => warn!(%conn, %peer, "refusing datanode: TLS handshake: {e}"),
                    Err(_) => debug!(%conn, %peer, "datanode TLS handshake timed out"),
                }
            }
        },
    ));
    let stop_w = stop_rx.clone();
    let tls = control_tls.clone();
    tasks.spawn(accept_loop(
        clients,
        stop_rx.clone(),
        "watcher",
        MAX_WATCHERS,
        move |stream, peer| {
            let (tables, watchers, stop) = (tables_rx.clone(), watchers.clone(), stop_w.clone());
            let tls = tls.clone();
            async move {
                let Some(tls) = tls else {
                    return serve_watcher(stream, peer, tables, watchers, stop).await;
                };
                // tls-cluster: the watch port speaks TLS only.
                match tls.accept_client(stream).await {
                    Ok(stream) => serve_watcher(stream, peer, tables, watchers, stop).await,
                    Err(e) => debug!(%peer, "refusing watcher: {e}"),
                }
            }
        },
    ));
    let web_server = http::server(StatusSource(core_tx), config.http_token.clone());
    // The HTTP server answers 503 past its own connection limit; this cap only bounds the
    // tasks a flood can start.
    let tls = control_tls.clone();
    tasks.spawn(accept_loop(
        web,
        stop_rx,
        "http",
        MAX_HTTP_CONNS,
        move |stream, peer| {
            let (web_server, tls) = (web_server.clone(), tls.clone());
            async move {
                let Some(tls) = tls else {
                    return web_server.serve(stream).await;
                };
                // tls-cluster: HTTPS only.
                match tls.accept_client(stream).await {
                    Ok(stream) => web_server.serve(stream).await,
                    Err(e) => debug!(%peer, "refusing HTTP client: {e}"),
                }
            }
        },
    ));

    info!(%datanode_addr, %client_addr, %http_addr, "namenode listening");
    Ok(NameNodeHandle {
        datanode_addr,
        client_addr,
        http_addr,
        stop,
        tasks,
        tls: control_tls,
    })
}

/// The control plane's TLS with `tls-cluster`: the acceptor of the DataNode port (a
/// DataNode certificate from the CA required) and that of the watch and HTTP ports
/// (`tls-auth-clients`), both replaced by [`NameNodeHandle::reload_tls`]. A connection takes
/// the acceptor when it arrives, so a reload never disturbs an established one.
struct ControlTls {
    files: ClusterTls,
    auth: AuthClients,
    datanodes: std::sync::RwLock<TlsAcceptor>,
    clients: std::sync::RwLock<TlsAcceptor>,
}

impl std::fmt::Debug for ControlTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlTls")
            .field("files", &self.files)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl ControlTls {
    fn load(files: ClusterTls, auth: AuthClients) -> Result<ControlTls, TlsError> {
        let (datanodes, clients) = ControlTls::read(&files, auth)?;
        Ok(ControlTls {
            files,
            auth,
            datanodes: std::sync::RwLock::new(datanodes),
            clients: std::sync::RwLock::new(clients),
        })
    }

    fn read(files: &ClusterTls, auth: AuthClients) -> Result<(TlsAcceptor, TlsAcceptor), TlsError> {
        Ok((
            TlsAcceptor::from(files.server_config()?),
            TlsAcceptor::from(files.config_for(auth)?),
        ))
    }

    /// Reads the files again and installs them, or changes nothing and says why.
    fn reload(&self) -> Result<(), TlsError> {
        let (datanodes, clients) = ControlTls::read(&self.files, self.auth)?;
        *self.datanodes.write().unwrap_or_else(|p| p.into_inner()) = datanodes;
        *self.clients.write().unwrap_or_else(|p| p.into_inner()) = clients;
        Ok(())
    }

    fn datanodes(&self) -> TlsAcceptor {
        self.datanodes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The TLS handshake of a watch or HTTP client, bounded in time.
    async fn accept_client(
        &self,
        stream: TcpStream,
    ) -> Result<tokio_rustls::server::TlsStream<TcpStream>, String> {
        let acceptor = self
            .clients
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => Err(format!("TLS handshake: {e}")),
            Err(_) => Err("TLS handshake timed out".into()),
        }
    }
}

/// Starts a NameNode and serves until `shutdown` resolves (e.g. on SIGINT/SIGTERM), then stops
/// it cleanly.
/// SIGHUP reloads the TLS files (`tls-cluster`).
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    let ports_file = config.ports_file.clone();
    let handle = start(config).await?;
    if let Some(path) = ports_file {
        let ports = [
            ("datanode", handle.datanode_addr()),
            ("client", handle.client_addr()),
            ("http", handle.http_addr()),
        ];
        chkv_common::cli::write_ports_file(&path, &ports)
            .map_err(|source| Error::PortsFile { path, source })?;
    }
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut shutdown = std::pin::pin!(shutdown);
        match signal(SignalKind::hangup()) {
            Ok(mut hup) => loop {
                tokio::select! {
                    () = &mut shutdown => break,
                    _ = hup.recv() => match handle.reload_tls() {
                        Ok(true) => info!("SIGHUP: TLS certificates reloaded"),
                        Ok(false) => info!("SIGHUP: no TLS to reload"),
                        Err(e) => warn!("SIGHUP: {e}; keeping the current certificates"),
                    },
                }
            },
            Err(e) => {
                warn!("cannot listen for SIGHUP ({e}); TLS files reload only on a restart");
                shutdown.await;
            }
        }
    }
    #[cfg(not(unix))]
    shutdown.await;
    handle.shutdown().await;
    info!("namenode stopped");
    Ok(())
}

/// Binds `ip:port`, refusing a non-loopback address without a cluster secret.
async fn bind(
    secret: &ClusterSecret,
    ip: std::net::IpAddr,
    port: u16,
    what: &'static str,
) -> Result<TcpListener, Error> {
    let addr = SocketAddr::new(ip, port);
    require_loopback(secret, addr, what).map_err(|e| Error::Config(e.to_string()))?;
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { what, addr, source })
}

/// The core's clock: tokio's, so tests that pause time pause the NameNode too.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Wall-clock milliseconds since the Unix epoch, for the event log.
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Accepts connections until told to stop, then aborts the ones still open. With `max`
/// connections open, new ones are closed as soon as they are accepted.
async fn accept_loop<F, Fut>(
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
    what: &'static str,
    max: usize,
    mut serve: F,
) where
    F: FnMut(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if conns.len() >= max {
                        debug!(%peer, "{what} connection refused: {max} open already");
                        drop(stream);
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    conns.spawn(serve(stream, peer));
                }
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    warn!("accepting {what} connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.shutdown().await;
}

/// What connection tasks and the HTTP server tell the core.
enum CoreEvent {
    /// A DataNode connection opened; `tx` feeds its writer.
    Connected {
        conn: ConnId,
        tx: mpsc::Sender<Arc<[u8]>>,
    },
    /// Something for the state machine.
    Membership(Event),
    /// The connection sent something unacceptable: answer `error{message}` and close it.
    Refused { conn: ConnId, message: String },
    /// A snapshot for HTTP.
    Status(oneshot::Sender<Snapshot>),
    /// An operator asks for `node` to drain.
    Drain {
        node: NodeId,
        reply: oneshot::Sender<Result<(), DrainRefused>>,
    },
}

/// How HTTP handlers reach the core.
#[derive(Clone)]
pub(crate) struct StatusSource(mpsc::Sender<CoreEvent>);

/// A [`ClusterStatus`] plus what only the server knows.
pub(crate) struct Snapshot {
    pub status: ClusterStatus,
    pub watchers: usize,
    /// The event log, oldest first.
    pub events: Vec<LoggedEvent>,
    /// Operations per second of each node in `status.nodes`, in the same order.
    pub ops_per_sec: Vec<f64>,
}

impl StatusSource {
    /// The current cluster state, or `None` when the NameNode is shutting down.
    pub(crate) async fn snapshot(&self) -> Option<Snapshot> {
        let (tx, rx) = oneshot::channel();
        self.0.send(CoreEvent::Status(tx)).await.ok()?;
        rx.await.ok()
    }

    /// Asks `node` to drain; `None` when the NameNode is shutting down.
    pub(crate) async fn drain(&self, node: NodeId) -> Option<Result<(), DrainRefused>> {
        let (reply, rx) = oneshot::channel();
        self.0.send(CoreEvent::Drain { node, reply }).await.ok()?;
        rx.await.ok()
    }
}

/// The newest table as watchers receive it, encoded once for all of them.
struct TableLine {
    epoch: u64,
    line: Arc<[u8]>,
}

struct Core {
    membership: Membership,
    /// Writer queues of open DataNode connections.
    conns: HashMap<ConnId, mpsc::Sender<Arc<[u8]>>>,
    tables: watch::Sender<Option<Arc<TableLine>>>,
    watchers: Arc<AtomicUsize>,
    /// Joins, drains, deaths and epochs, for the dashboard.
    log: EventLog,
    rates: OpsRates,
}

impl Core {
    async fn run(mut self, mut events: mpsc::Receiver<CoreEvent>, mut stop: watch::Receiver<bool>) {
        loop {
            let deadline = self.membership.next_deadline();
            let wake = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = stop.changed() => break,
                event = events.recv() => match event {
                    Some(event) => self.on_event(event),
                    None => break,
                },
                () = wake => self.feed(Event::Tick),
            }
        }
    }

    fn on_event(&mut self, event: CoreEvent) {
        match event {
            CoreEvent::Connected { conn, tx } => {
                self.conns.insert(conn, tx);
            }
            CoreEvent::Membership(event) => self.feed(event),
            CoreEvent::Refused { conn, message } => {
                warn!(%conn, "refusing datanode connection: {message}");
                let mut later = VecDeque::new();
                self.send(conn, &NameNodeToDataNode::Error { message }, &mut later);
                self.conns.remove(&conn);
                later.push_back(Event::Disconnected { conn });
                self.feed_all(later);
            }
            CoreEvent::Status(reply) => {
                let status = self.membership.status(now());
                self.rates
                    .retain(|id| status.nodes.iter().any(|n| &n.id == id));
                let ops_per_sec = status.nodes.iter().map(|n| self.rates.get(&n.id)).collect();
                let _ = reply.send(Snapshot {
                    status,
                    watchers: self.watchers.load(Ordering::Relaxed),
                    events: self.log.entries().cloned().collect(),
                    ops_per_sec,
                });
            }
            CoreEvent::Drain { node, reply } => {
                let result = self.membership.drain_target(&node).map(|conn| {
                    info!(%node, %conn, "operator asked for a drain");
                    self.log.push(
                        "drain_requested",
                        Some(node.clone()),
                        "an operator asked for a drain (HTTP API)".into(),
                        unix_ms(),
                    );
                    let mut later = VecDeque::new();
                    self.send(conn, &NameNodeToDataNode::Drain, &mut later);
                    self.feed_all(later);
                });
                let _ = reply.send(result);
            }
        }
    }

    fn feed(&mut self, event: Event) {
        self.feed_all(VecDeque::from([event]));
    }

    /// Runs events through the state machine, and the events its actions cause (a dropped
    /// connection is a disconnection), until there are none left.
    fn feed_all(&mut self, mut events: VecDeque<Event>) {
        while let Some(event) = events.pop_front() {
            if let Event::Disconnected { conn } = event {
                // Dropping the queue ends the writer, which closes the socket.
                self.conns.remove(&conn);
            }
            let at = now();
            self.rates.observe(&event, at);
            for action in self.membership.handle(event, at) {
                self.log.record_action(&action, unix_ms());
                self.execute(action, &mut events);
            }
        }
    }

    fn execute(&mut self, action: Action, later: &mut VecDeque<Event>) {
        match action {
            Action::SendTo { conn, msg } => self.send(conn, &msg, later),
            Action::Broadcast { publication, to } => {
                let table = &publication.table;
                let nodes = &publication.nodes;
                info!(
                    epoch = table.epoch(),
                    nodes = nodes.len(),
                    slots = table.assigned_slots(),
                    "publishing slot table"
                );
                if !to.is_empty() {
                    if let Some(line) = encode(&NameNodeToDataNode::table(
                        table.clone(),
                        nodes.clone(),
                        self.membership.life(),
                    )) {
                        for conn in to {
                            self.push(conn, line.clone(), later);
                        }
                    }
                }
                if let Some(line) = encode(&NameNodeToClient::table(table.clone(), nodes.clone())) {
                    self.tables.send_replace(Some(Arc::new(TableLine {
                        epoch: table.epoch(),
                        line,
                    })));
                }
            }
            Action::Probe {
                node,
                conn,
                nonce,
                attempt,
            } => {
                debug!(%node, attempt, nonce, connected = conn.is_some(), "probing");
                if let Some(conn) = conn {
                    self.send(conn, &NameNodeToDataNode::Ping { nonce }, later);
                }
            }
            Action::Close { conn, reason } => {
                debug!(%conn, ?reason, "closing datanode connection");
                self.conns.remove(&conn);
            }
            Action::DeclaredDead { node, silent_for } => {
                warn!(%node, silent_ms = silent_for.as_millis() as u64, "datanode declared dead");
            }
            Action::Notice(notice) => log_notice(&notice),
        }
    }

    fn send(&mut self, conn: ConnId, msg: &NameNodeToDataNode, later: &mut VecDeque<Event>) {
        if let Some(line) = encode(msg) {
            self.push(conn, line, later);
        }
    }

    fn push(&mut self, conn: ConnId, line: Arc<[u8]>, later: &mut VecDeque<Event>) {
        let Some(tx) = self.conns.get(&conn) else {
            return;
        };
        if let Err(e) = tx.try_send(line) {
            if matches!(e, mpsc::error::TrySendError::Full(_)) {
                warn!(%conn, "datanode is not reading its control connection; dropping it");
            }
            self.conns.remove(&conn);
            later.push_back(Event::Disconnected { conn });
        }
    }
}

fn encode<T: serde::Serialize>(msg: &T) -> Option<Arc<[u8]>> {
    match encode_line(msg) {
        Ok(line) => Some(line.into()),
        Err(e) => {
            error!("{e}");
            None
        }
    }
}

fn log_notice(notice: &Notice) {
    match notice {
        Notice::Joined { node, client_addr } => info!(%node, %client_addr, "datanode joined"),
        Notice::Rejoined { node, conn } => info!(%node, %conn, "datanode registered again"),
        Notice::Left { node } => info!(%node, "datanode left"),
        Notice::Draining { node } => info!(%node, "datanode draining"),
        Notice::Migrating { from, to, slots } => {
            info!(%from, %to, slots, "ordered slot handoff")
        }
        Notice::ConnectionLost { node } => info!(%node, "datanode connection lost; probing"),
        Notice::Suspected { node, silent_for } => {
            info!(%node, silent_ms = silent_for.as_millis() as u64, "datanode silent; probing");
        }
        Notice::Recovered { node } => info!(%node, "datanode answered"),
        Notice::Fencing { node, silent_for } => warn!(
            %node,
            silent_ms = silent_for.as_millis() as u64,
            "datanode silent through every probe; fencing it (its slots move once its lease has run out)"
        ),
        Notice::UnclaimedAssigned { slots } => {
            info!(slots, "slots nobody reported after the restart assigned")
        }
        Notice::StartupDone {
            epoch,
            members,
            reused_epoch,
            honoured_behind,
        } => info!(
            epoch,
            members, reused_epoch, honoured_behind, "startup grace over"
        ),
    }
}

/// One DataNode connection: the authentication handshake, then the writer runs here and the
/// reader in its own task. Nothing reaches the core before the peer has proved the cluster
/// secret, and the connection is bound to the node id it proved it for.
async fn serve_datanode<S: AsyncRead + AsyncWrite + Send + 'static>(
    stream: S,
    peer: SocketAddr,
    conn: ConnId,
    core: mpsc::Sender<CoreEvent>,
    mut stop: watch::Receiver<bool>,
    secret: ClusterSecret,
) {
    debug!(%conn, %peer, "datanode connected");
    let (rd, mut wr) = tokio::io::split(stream);
    let mut rd = BufReader::new(rd);
    let node = match accept_lines(&mut rd, &mut wr, &secret, Purpose::Control, NAMENODE_ID).await {
        Ok(id) => NodeId::new(id),
        Err(e) => {
            match e {
                AuthError::BadProof => warn!(%conn, %peer, "refusing datanode: {e}"),
                e => debug!(%conn, %peer, "datanode handshake: {e}"),
            }
            // Close our side first, so the error line reaches the peer even when it sent
            // more than we read (closing with unread input would reset the connection).
            let _ = tokio::time::timeout(Duration::from_secs(1), wr.shutdown()).await;
            return;
        }
    };
    debug!(%conn, %peer, %node, "datanode authenticated");
    let (tx, mut rx) = mpsc::channel::<Arc<[u8]>>(DATANODE_QUEUE);
    if core.send(CoreEvent::Connected { conn, tx }).await.is_err() {
        return;
    }
    let reader = tokio::spawn(read_datanode(rd, conn, node, core.clone()));
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            line = rx.recv() => {
                let Some(line) = line else { break };
                // A TLS stream may keep the line until flushed (a no-op for TCP).
                let write = async {
                    wr.write_all(&line).await?;
                    wr.flush().await
                };
                match tokio::time::timeout(WRITE_TIMEOUT, write).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        debug!(%conn, "write failed: {e}");
                        break;
                    }
                    Err(_) => {
                        warn!(%conn, "datanode stopped reading; closing");
                        break;
                    }
                }
            }
        }
    }
    reader.abort();
    let _ = wr.shutdown().await;
    // Idempotent: the reader may have reported the close already.
    let _ = core
        .send(CoreEvent::Membership(Event::Disconnected { conn }))
        .await;
    debug!(%conn, %peer, "datanode connection closed");
}

/// Decodes the lines of DataNode `node` into events until EOF, an error, or a refused
/// message.
async fn read_datanode<R: AsyncRead + Unpin>(
    mut rd: BufReader<R>,
    conn: ConnId,
    node: NodeId,
    core: mpsc::Sender<CoreEvent>,
) {
    let mut buf = Vec::new();
    loop {
        let (event, last) = match read_line(&mut rd, &mut buf, MAX_LINE_BYTES).await {
            Ok(true) if buf.trim_ascii().is_empty() => continue,
            Ok(true) => match datanode_event(conn, &node, &buf) {
                Ok(Some(event)) => (CoreEvent::Membership(event), false),
                Ok(None) => continue,
                Err(message) => (CoreEvent::Refused { conn, message }, true),
            },
            Ok(false) => (CoreEvent::Membership(Event::Disconnected { conn }), true),
            Err(e) => {
                let message = e.to_string();
                (CoreEvent::Refused { conn, message }, true)
            }
        };
        if core.send(event).await.is_err() || last {
            return;
        }
    }
}

/// The event a line from DataNode `node` stands for: `Ok(None)` for messages this NameNode
/// does not act on yet, `Err` (the text of an `error` reply) for lines it refuses. A message
/// that speaks for another node than the one the connection authenticated as is refused, as
/// is an epoch beyond [`MAX_EPOCH`](chkv_common::proto::MAX_EPOCH).
/// A registration's suspects list, checked: at most [`MAX_REPORTED_MEMBERS`] valid ids.
fn suspects_reported(list: Vec<NodeId>) -> Result<Vec<NodeId>, String> {
    if list.len() > MAX_REPORTED_MEMBERS {
        return Err(format!(
            "register lists {} suspects (at most {MAX_REPORTED_MEMBERS})",
            list.len()
        ));
    }
    for id in &list {
        check_node_id(id.as_str()).map_err(|e| e.to_string())?;
    }
    Ok(list)
}

/// A registration's list of its table's members and their `since`, checked: at most
/// [`MAX_REPORTED_MEMBERS`], valid ids, epochs in range.
fn members_since(list: Vec<(NodeId, u64)>) -> Result<Vec<(NodeId, u64)>, String> {
    if list.len() > MAX_REPORTED_MEMBERS {
        return Err(format!(
            "register lists {} members (at most {MAX_REPORTED_MEMBERS})",
            list.len()
        ));
    }
    for (id, since) in &list {
        check_node_id(id.as_str()).map_err(|e| e.to_string())?;
        check_epoch(*since).map_err(|e| e.to_string())?;
    }
    Ok(list)
}

fn datanode_event(conn: ConnId, node: &NodeId, line: &[u8]) -> Result<Option<Event>, String> {
    let msg = decode_line::<DataNodeToNameNode>(line).map_err(|e| e.to_string())?;
    let (DataNodeToNameNode::Register { node_id, .. }
    | DataNodeToNameNode::Heartbeat { node_id, .. }
    | DataNodeToNameNode::Pong { node_id, .. }
    | DataNodeToNameNode::HandoffProgress { node_id, .. }
    | DataNodeToNameNode::HandoffDone { node_id, .. }
    | DataNodeToNameNode::Leave { node_id, .. }
    | DataNodeToNameNode::SuspectsAck { node_id, .. }) = &msg;
    if node_id != node {
        return Err(format!(
            "message for node {} on a connection authenticated as {node}",
            escape(node_id.as_str().as_bytes())
        ));
    }
    Ok(Some(match msg {
        DataNodeToNameNode::Register {
            version,
            node_id,
            client_addr,
            admin_addr,
            tls_port,
            epoch_seen,
            owned_slots,
            leased,
            draining,
            life,
            since,
            suspects,
        } => {
            check_version(version).map_err(|e| e.to_string())?;
            check_node_id(node_id.as_str()).map_err(|e| e.to_string())?;
            let epoch_seen = check_epoch(epoch_seen).map_err(|e| e.to_string())?;
            let owned_slots = slot_ranges(owned_slots.as_deref().unwrap_or_default())
                .map_err(|e| e.to_string())?;
            let members_since = members_since(since)?;
            let suspects = suspects_reported(suspects)?;
            Event::Registered {
                conn,
                info: NodeInfo {
                    id: node_id,
                    client_addr,
                    admin_addr,
                    tls_port,
                    since: 0,
                },
                epoch_seen,
                owned_slots,
                leased,
                draining,
                life,
                members_since,
                suspects,
            }
        }
        DataNodeToNameNode::Heartbeat {
            node_id,
            epoch,
            keys,
            used_memory,
            ops,
            seq,
        } => Event::Heartbeat {
            conn,
            node: node_id,
            epoch: check_epoch(epoch).map_err(|e| e.to_string())?,
            stats: NodeStats {
                keys,
                used_memory,
                ops,
            },
            seq,
        },
        DataNodeToNameNode::SuspectsAck { node_id, version } => Event::SuspectsAcked {
            conn,
            node: node_id,
            version,
        },
        DataNodeToNameNode::Pong { node_id, nonce } => Event::ProbeAnswered {
            conn,
            node: node_id,
            nonce,
        },
        DataNodeToNameNode::Leave { node_id } => Event::Left {
            conn,
            node: node_id,
        },
        DataNodeToNameNode::HandoffDone {
            node_id,
            slots,
            to,
            epoch,
        } => Event::HandoffDone {
            conn,
            node: node_id,
            slots: slot_ranges(&slots).map_err(|e| e.to_string())?,
            to,
            epoch,
        },
        DataNodeToNameNode::HandoffProgress {
            node_id,
            slots_done,
            slots_total,
            keys_moved,
            ..
        } => {
            debug!(%conn, node = %node_id, slots_done, slots_total, keys_moved, "handoff progress");
            return Ok(None);
        }
    }))
}

/// One watching client: the handshake, then every new table until either side stops.
async fn serve_watcher<S: AsyncRead + AsyncWrite + Send + 'static>(
    stream: S,
    peer: SocketAddr,
    mut tables: watch::Receiver<Option<Arc<TableLine>>>,
    watchers: Arc<AtomicUsize>,
    mut stop: watch::Receiver<bool>,
) {
    let (rd, mut wr) = tokio::io::split(stream);
    let mut rd = BufReader::new(rd);
    let mut buf = Vec::new();
    let handshake = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        read_line(&mut rd, &mut buf, MAX_WATCH_LINE),
    )
    .await;
    match handshake {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => return,
        Ok(Err(e)) => return debug!(%peer, "watcher handshake: {e}"),
        Err(_) => return debug!(%peer, "watcher sent no watch request in time"),
    }
    match decode_line::<ClientToNameNode>(&buf) {
        Ok(ClientToNameNode::Watch { version }) => {
            if let Err(e) = check_version(version) {
                return warn!(%peer, "refusing watcher: {e}");
            }
        }
        Err(e) => return warn!(%peer, "refusing watcher: {e}"),
    }
    let _count = Counted::new(&watchers);
    debug!(%peer, "watcher connected");

    // The current table at once (if the startup grace is over), then each new one.
    let mut current = tables.borrow_and_update().clone();
    let mut scratch = [0u8; 512];
    loop {
        if let Some(table) = current.take() {
            let write = async {
                wr.write_all(&table.line).await?;
                wr.flush().await
            };
            match tokio::time::timeout(WRITE_TIMEOUT, write).await {
                Ok(Ok(())) => debug!(%peer, epoch = table.epoch, "table sent to watcher"),
                _ => break,
            }
        }
        tokio::select! {
            _ = stop.changed() => break,
            changed = tables.changed() => {
                if changed.is_err() {
                    break;
                }
                current = tables.borrow_and_update().clone();
            }
            // Nothing more is expected from a watcher: read only to notice it leaving.
            read = rd.read(&mut scratch) => match read {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            },
        }
    }
    let _ = wr.shutdown().await;
    debug!(%peer, "watcher gone");
}

/// Counts something for as long as it lives.
struct Counted<'a>(&'a AtomicUsize);

impl<'a> Counted<'a> {
    fn new(counter: &'a AtomicUsize) -> Counted<'a> {
        counter.fetch_add(1, Ordering::Relaxed);
        Counted(counter)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests;
