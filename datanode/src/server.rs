//! The network edge: accept connections, feed bytes to the parser, run commands, write
//! replies. Everything else is plain code in [`crate::cmd`] and [`crate::store`].
//!
//! Each connection parses every complete request in its buffer, runs them in order and writes
//! all their replies with one write, so a pipeline of N commands costs one read and one write,
//! not N. Replies are written before more input is read, so a client that does not read its
//! replies is slowed down by TCP, not buffered without bound.

use crate::cmd::{Redirects, Session};
use crate::config::Config;
use crate::exec::{plan, Planned, Replies};
use crate::node::Node;
use crate::resp::{Limits, Parser};
use crate::store::now_ms;
use bytes::BytesMut;
use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

/// Output is flushed mid-batch once this much is buffered.
const OUT_FLUSH: usize = 64 * 1024;
/// Read buffer growth step.
const READ_CHUNK: usize = 16 * 1024;
/// A TLS client that has not finished its handshake by then is dropped.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A running DataNode.
pub struct ServerHandle {
    pub node: Arc<Node>,
    addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    done: tokio::task::JoinHandle<()>,
}

impl ServerHandle {
    /// The address the RESP listener is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address the TLS listener is bound to, when TLS is on.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// The admin port's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.node.config().admin_addr
    }

    /// The HTTP port's address, when it is on.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.node.config().http_addr
    }

    /// Completes when a drain has finished (the node should then exit).
    pub async fn drained(&self) {
        let mut rx = self.node.handoff.drained.subscribe();
        let _ = rx.wait_for(|d| *d).await;
    }

    /// Stops accepting, lets in-flight replies finish, and waits for every connection to end.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.done.await;
    }
}

/// Binds the listener and starts serving in the background.
pub async fn start(mut config: Config) -> std::io::Result<ServerHandle> {
    crate::trust::check_config(&config)?;
    crate::trust::reconcile_maxclients(&mut config);
    // Record the empty process's memory before any data arrives (INFO's fragmentation).
    crate::cmd::server::startup_rss();
    let listener = TcpListener::bind((config.bind, config.port))
        .await
        .map_err(|e| {
            bind_error(
                e,
                "RESP clients",
                SocketAddr::new(config.bind, config.port),
                "--port",
            )
        })?;
    let addr = listener.local_addr()?;
    // The node id derives from the address actually bound (port 0 picks one).
    config.port = addr.port();
    if config.tls.cluster && !config.tls.enabled() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "tls-cluster needs a TLS port (--tls-port): peers reach this node there",
        ));
    }
    let tls = if config.tls.enabled() {
        // Checked before anything listens; loaded into the node below.
        crate::tls::server_config(&config.tls)
            .and_then(|_| crate::tls::cluster_config(&config.tls))
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let l = TcpListener::bind((config.bind, config.tls.port.unwrap_or(0))).await?;
        config.tls.port = Some(l.local_addr()?.port());
        Some(l)
    } else {
        None
    };
    let users = match &config.aclfile {
        Some(path) => Some(
            crate::cmd::acl::load_aclfile(path)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
        ),
        None => None,
    };
    let node = Arc::new(Node::new(config));
    if let Some(users) = users {
        node.acl.replace_all(users, None);
    }
    *node.addr.lock() = Some(addr);
    info!(%addr, "listening for RESP clients");
    let tls_addr = match tls {
        Some(l) => {
            let settings = node.config().tls.clone();
            node.load_tls(&settings)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            let tls_addr = l.local_addr()?;
            info!(addr = %tls_addr, "listening for TLS clients");
            Some((l, tls_addr))
        }
        None => None,
    };
    let (stop, stop_rx) = watch::channel(false);
    // The admin port. Failing to bind it leaves the node serving clients, with a warning:
    // the data path matters more than the operator's shortcut.
    let mut admin = node.config().admin_addr;
    let mut bound = TcpListener::bind(admin).await;
    if matches!(&bound, Err(e) if e.kind() == std::io::ErrorKind::AddrInUse) && admin.port() != 0 {
        // Another node on this host has it (20000 is everyone's default): take a free port
        // rather than share the operator's `k` with the other node, and say which.
        let taken = admin;
        bound = TcpListener::bind(SocketAddr::new(admin.ip(), 0)).await;
        if let Ok(l) = &bound {
            warn!(%taken, admin = %l.local_addr().unwrap_or(taken),
                "admin port in use (another DataNode on this host?); using a free one instead (--admin-port to choose)");
        }
    }
    match bound {
        Ok(l) => {
            admin = l.local_addr().unwrap_or(admin);
            node.update_config(|c| c.admin_addr = admin);
            info!(%admin, "admin port listening");
            tokio::spawn(crate::admin::serve(l, node.clone(), stop_rx.clone()));
        }
        Err(e) => warn!(%admin, error = %e, "admin port not available; `k` drains are disabled"),
    }
    // The HTTP port (metrics, health), when asked for. Unlike the admin port, a port asked
    // for explicitly that cannot be bound stops the start: a monitoring system would
    // otherwise scrape nothing, or another process.
    let http_addr = node.config().http_addr;
    if let Some(addr) = http_addr {
        let l = TcpListener::bind(addr)
            .await
            .map_err(|e| std::io::Error::new(e.kind(), format!("HTTP port {addr}: {e}")))?;
        let bound = l.local_addr()?;
        node.update_config(|c| c.http_addr = Some(bound));
        info!(%bound, "HTTP port listening (/metrics, /healthz)");
        tokio::spawn(crate::http::serve(l, node.clone(), stop_rx.clone()));
    }
    let namenode = node.config().namenode.clone();
    if namenode.is_some() {
        // Nothing is served until the NameNode (once it has proved the cluster secret) says
        // what this node owns; only standalone mode owns every slot.
        node.set_routing(crate::cluster::Routing::awaiting());
        node.lease.await_welcome();
    }
    if let Some(nn) = namenode {
        tokio::spawn(crate::agent::run(node.clone(), nn, admin, stop_rx.clone()));
        tokio::spawn(crate::cmd::sync::run(node.clone(), stop_rx.clone()));
        tokio::spawn(crate::agent::renew_lease(node.clone(), stop_rx.clone()));
    }
    let (tls_listener, tls_addr) = tls_addr.unzip();
    if tls_listener.is_some() {
        tokio::spawn(reload_tls_on_sighup(node.clone(), stop_rx.clone()));
    }
    let done = tokio::spawn(serve(listener, tls_listener, node.clone(), stop_rx));
    Ok(ServerHandle {
        node,
        addr,
        tls_addr,
        stop,
        done,
    })
}

/// How [`run`] ended, for the process's exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Stopped by a signal: a standalone node, or a cluster node whose drain finished, or a
    /// drain `k` on the admin port finished.
    Clean,
    /// A cluster node's drain did not finish within the shutdown timeout (or could not start,
    /// the NameNode being away): the slots still here were lost with the process.
    DrainIncomplete,
    /// A second signal: stopped at once, whatever was under way.
    Forced,
}

/// Longest wait, after the node stops accepting, for its connections to finish writing; a
/// client that does not read its replies must not keep the process alive.
const CLOSE_LIMIT: Duration = Duration::from_secs(2);

/// A bind failure as an operator reads it: which listener, which address, and for a port in
/// use, which flag picks another.
pub fn bind_error(e: std::io::Error, what: &str, addr: SocketAddr, flag: &str) -> std::io::Error {
    let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
        format!(
            " (port {} is taken, perhaps by another node on this host; choose another with {flag})",
            addr.port()
        )
    } else {
        String::new()
    };
    std::io::Error::new(
        e.kind(),
        format!("cannot listen for {what} on {addr}: {e}{hint}"),
    )
}

/// Runs a DataNode until a stop signal, or until a drain (`k`) has finished.
///
/// Each message on `signals` is one SIGTERM or SIGINT. The first one stops a standalone node
/// at once; a node in a cluster drains first, like `k`, for at most `shutdown_timeout`, so
/// an orchestrator's stop loses no data. A second signal stops at once. Closing the
/// connections is bounded too (`CLOSE_LIMIT`).
pub async fn run(
    config: Config,
    mut signals: mpsc::Receiver<()>,
    shutdown_timeout: Duration,
) -> std::io::Result<Exit> {
    let ports_file = config.ports_file.clone();
    let handle = start(config).await?;
    if let Some(path) = ports_file {
        let mut ports = vec![("resp", handle.addr()), ("admin", handle.admin_addr())];
        ports.extend(handle.tls_addr().map(|a| ("tls", a)));
        ports.extend(handle.http_addr().map(|a| ("http", a)));
        chkv_common::cli::write_ports_file(&path, &ports).map_err(|e| {
            std::io::Error::new(e.kind(), format!("--ports-file {}: {e}", path.display()))
        })?;
    }
    let clustered = handle.node.config().namenode.is_some();
    let mut exit = Exit::Clean;
    tokio::select! {
        _ = signals.recv() => {
            if !clustered {
                info!("shutting down");
            } else if !crate::migration::start_drain(&handle.node) {
                warn!("stop signal: the NameNode is not reachable, so the slots here cannot be handed over; shutting down");
                exit = Exit::DrainIncomplete;
            } else {
                info!(timeout = ?shutdown_timeout, "stop signal: draining before exit (a second signal stops at once)");
                tokio::select! {
                    _ = handle.drained() => exit = drain_exit(&handle.node),
                    _ = tokio::time::sleep(shutdown_timeout) => {
                        warn!(slots = handle.node.routing().my_slot_count(), keys = handle.node.db.len(),
                            "the drain did not finish within the shutdown timeout; exiting with what is left");
                        exit = Exit::DrainIncomplete;
                    }
                    _ = signals.recv() => {
                        warn!("second stop signal: exiting at once");
                        return Ok(Exit::Forced);
                    }
                }
            }
        }
        _ = handle.drained() => {
            // Give the admin connection a moment to deliver its summary.
            tokio::time::sleep(Duration::from_millis(200)).await;
            exit = drain_exit(&handle.node);
        }
    }
    tokio::select! {
        r = tokio::time::timeout(CLOSE_LIMIT, handle.shutdown()) => {
            if r.is_err() {
                warn!("connections still writing after {CLOSE_LIMIT:?} (clients not reading); exiting anyway");
            }
        }
        _ = signals.recv() => return Ok(Exit::Forced),
    }
    Ok(exit)
}

/// How a finished drain ends the process: clean only when it handed everything over.
fn drain_exit(node: &Node) -> Exit {
    match crate::migration::drain_lost(node) {
        0 => {
            info!("drained; exiting");
            Exit::Clean
        }
        lost => {
            warn!(
                keys = lost,
                "drain incomplete: this node was declared dead mid-drain and its keys not yet handed over were dropped; exiting"
            );
            Exit::DrainIncomplete
        }
    }
}

/// Reloads the TLS certificates on SIGHUP, for the certificate rotation tools that signal.
async fn reload_tls_on_sighup(node: Arc<Node>, mut stop: watch::Receiver<bool>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            warn!("cannot listen for SIGHUP; TLS certificates reload only with CONFIG SET");
            return;
        };
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    let settings = node.config().tls.clone();
                    match node.load_tls(&settings) {
                        Ok(()) => {
                            info!("SIGHUP: TLS certificates reloaded");
                        }
                        Err(e) => warn!(error = %e, "SIGHUP: TLS reload failed; keeping the current certificates"),
                    }
                }
                _ = stop.changed() => return,
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (node, stop.changed().await);
}

/// Accepts on `listener`, or never when there is none.
async fn accept_on(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

async fn serve(
    listener: TcpListener,
    tls_listener: Option<TcpListener>,
    node: Arc<Node>,
    mut stop: watch::Receiver<bool>,
) {
    // Every connection task holds a sender; when all are dropped, all connections are done.
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let cron = tokio::spawn(cron(node.clone(), stop.clone()));
    loop {
        let (res, tls) = tokio::select! {
            res = listener.accept() => (res, false),
            res = accept_on(tls_listener.as_ref()) => (res, true),
            _ = stop.changed() => break,
        };
        match res {
            Ok((sock, peer)) => accept(&node, sock, peer, tls, &stop, &alive_tx),
            Err(e) => {
                // Out of descriptors and similar: back off instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
    drop(tls_listener);
    drop(alive_tx);
    let _ = alive_rx.recv().await;
    let _ = cron.await;
}

/// Sets an accepted client connection's socket options: no Nagle delay; keepalive probes
/// after `keepalive_secs` of silence, a third of that apart, three unanswered closing the
/// connection (Redis's `tcp-keepalive`; 0: none); and at most `notsent_lowat` bytes of
/// replies queued in the kernel unsent (`TCP_NOTSENT_LOWAT`; 0: the kernel's default, no
/// limit).
///
/// The last is CHKV's own, and decides where the rest of a reply larger than the client's
/// receive buffer waits. Without a limit a write queues all of it in the kernel: the
/// client's buffer fills, its window closes, and the rest is sent when the client's reads
/// reopen the window, which on one host happens inside the client's own system call, on its
/// CPU. LRANGE of 600 elements at pipeline 16 (375 KB a batch, 50 clients) closed the
/// client's window 0.13 times a request (Valkey's 0.02), and `redis-benchmark`, the
/// bottleneck of that benchmark, ran slower for it: with 16 KB unsent at most the windows
/// closed 0.02 times a request and the cell gained 5-10% (two runs of 30 paired rounds:
/// medians 1.05 and 1.10, ahead in 19 and 22 rounds; 64 KB gained nothing). The rest of
/// such a reply waits in the node's own buffer, where `client-output-buffer-limit` counts
/// it, and goes out as the kernel asks for more. Replies that fit the window never meet it;
/// mid-sized ones pay a little (LRANGE_300 and LRANGE_100 at pipeline 16: 0.96 and 0.98 of
/// the build without it, 20 paired rounds each).
pub fn tune_client_socket(
    sock: &TcpStream,
    keepalive_secs: u32,
    notsent_lowat: u32,
) -> std::io::Result<()> {
    sock.set_nodelay(true)?;
    let sock = socket2::SockRef::from(sock);
    if keepalive_secs > 0 {
        let idle = Duration::from_secs(keepalive_secs.into());
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(idle)
            .with_interval((idle / 3).max(Duration::from_secs(1)))
            .with_retries(3);
        sock.set_tcp_keepalive(&keepalive)?;
    }
    #[cfg(target_os = "linux")]
    if notsent_lowat > 0 {
        sock.set_tcp_notsent_lowat(notsent_lowat)?;
    }
    #[cfg(not(target_os = "linux"))]
    let _ = notsent_lowat;
    Ok(())
}

fn accept(
    node: &Arc<Node>,
    sock: TcpStream,
    peer: SocketAddr,
    tls: bool,
    stop: &watch::Receiver<bool>,
    alive: &mpsc::Sender<()>,
) {
    node.stats.total_connections.add(1);
    let (maxclients, keepalive_secs, notsent_lowat) = {
        let c = node.config();
        (c.maxclients, c.tcp_keepalive_secs, c.tcp_notsent_lowat)
    };
    if node.connected_clients() >= maxclients {
        node.stats.rejected_connections.add(1);
        tokio::spawn(async move {
            let mut sock = sock;
            let _ = sock
                .write_all(b"-ERR max number of clients reached\r\n")
                .await;
        });
        return;
    }
    if let Err(e) = tune_client_socket(&sock, keepalive_secs, notsent_lowat) {
        debug!(%peer, error = %e, "setting the client socket's options");
    }
    crate::busypoll::watch(&sock);
    let laddr = sock.local_addr().unwrap_or(peer);
    let info = node.register_client(peer, laddr);
    let (node, stop, alive) = (node.clone(), stop.clone(), alive.clone());
    tokio::spawn(async move {
        let id = info.id;
        let res = if tls {
            match tls_handshake(&node, sock).await {
                Ok(sock) => connection(&node, sock, true, info, stop).await,
                Err(e) => Err(e),
            }
        } else {
            connection(&node, sock, false, info, stop).await
        };
        if let Err(e) = res {
            debug!(client = id, error = %e, "connection ended with an error");
        }
        node.unregister_client(id);
        drop(alive);
    });
}

/// The server side of a TLS handshake, with the configuration current at accept time,
/// bounded by [`TLS_HANDSHAKE_TIMEOUT`]. A plaintext client on the TLS port fails here.
async fn tls_handshake(
    node: &Node,
    sock: TcpStream,
) -> std::io::Result<tokio_rustls::server::TlsStream<TcpStream>> {
    let config = node.tls.current().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotConnected, "TLS is not configured")
    })?;
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(sock)).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "TLS handshake timed out",
        )),
    }
}

async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    node: &Arc<Node>,
    mut sock: S,
    tls: bool,
    info: Arc<crate::client::ClientInfo>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let (authed, redirects) = {
        let c = node.config();
        (node.default_user_open(), c.cluster_redirects)
    };
    let mut session = Session::new(info, authed);
    session.tls = tls;
    if redirects {
        session.redirects = Redirects::Redirect;
    }
    let result = serve_session(node, &mut sock, &mut session, &mut stop).await;
    // Watched keys are registered in the store: forget them however the connection ended.
    crate::cmd::multi::unwatch_all(node, &mut session.tx);
    result
}

async fn serve_session<S: AsyncRead + AsyncWrite + Unpin>(
    node: &Arc<Node>,
    sock: &mut S,
    session: &mut Session,
    stop: &mut watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut replies = Replies::default();
    let mut parser = Parser::new();
    let mut inbuf = BytesMut::with_capacity(READ_CHUNK);
    let mut out = BytesMut::with_capacity(READ_CHUNK);
    // Copies of the limits and the routing, refreshed when their generation moves: no shared
    // lock or reference count is written per request.
    let (mut limits_generation, mut limits, mut out_limits) = current_limits(node);
    // Since when this connection's unwritten output has been over its soft output limit.
    let mut over_soft_since = None;
    let mut routing = node.routing();
    let mut last_batch = 0u64;
    // One wait for the server's stop for the connection's life, polled by every wait below:
    // a wait made afresh for each read registered and unregistered itself each time (about
    // 240 instructions a request at pipeline 1). It is polled no more once it has finished:
    // both waits return then.
    let stopped = stop.changed();
    tokio::pin!(stopped);
    loop {
        if node.config_generation() != limits_generation {
            (limits_generation, limits, out_limits) = current_limits(node);
        }
        if routing.generation != node.routing_generation() {
            routing = node.routing();
        }
        // Messages pushed while the connection was waiting (pubsub output limit: a killed
        // subscriber is disconnected, as Redis does).
        if let Some(sub) = &session.pubsub {
            if sub.drain(&mut out).is_err() {
                return Ok(());
            }
        }
        let mut commands = 0u64;
        // Set when a blocking command waits: nothing after it in the buffer runs until it is
        // answered (a blocked Redis client's later commands wait too).
        let mut held_back = false;
        loop {
            if replies.blocks() {
                held_back = true;
                break;
            }
            match parser.next(&mut inbuf, &limits, session.authenticated) {
                Ok(Some(req)) => {
                    commands += 1;
                    // A tracking client's invalidations caused by its own command wait
                    // for its reply, and while clients track prefixes a command's changes
                    // are announced together, after it (see crate::tracking).
                    let tracking = session.tracking.is_some() || node.tracking.batching();
                    if tracking {
                        crate::tracking::begin(session.client.id);
                    }
                    let planned = plan(node, session, &routing, &req);
                    let batch = if tracking {
                        crate::tracking::end()
                    } else {
                        None
                    };
                    // Messages queued for this connection so far (its own subscription
                    // confirmations, a PUBLISH to itself) go before this reply, as in Redis.
                    if let Some(sub) = &session.pubsub {
                        if sub.drain(&mut out).is_err() {
                            return Ok(());
                        }
                    }
                    let withheld = session.withhold_reply();
                    match planned {
                        Planned::Now(_) if withheld => {}
                        // The last request buffered, its reply the round's only one: a
                        // pre-encoded reply becomes the output buffer instead of a copy.
                        Planned::Now(reply) if out.is_empty() && inbuf.is_empty() => {
                            reply.encode_alone(session.proto, &mut out)
                        }
                        Planned::Now(reply) => reply.encode(session.proto, &mut out),
                        // Its reply is not wanted, but a forwarded or waiting request still
                        // has to run to the end.
                        Planned::Later(p) if withheld => {
                            crate::exec::resolve_one(node, session, p).await;
                        }
                        Planned::Later(p) => replies.push_pending(&mut out, p),
                    }
                    if let Some(b) = batch {
                        node.tracking.flush(b);
                        if let Some(sub) = &session.pubsub {
                            if sub.drain(&mut out).is_err() {
                                return Ok(());
                            }
                        }
                    }
                    if session.quit {
                        replies.resolve_into(node, session, &mut out).await;
                        send(sock, &out).await?;
                        return Ok(());
                    }
                    parser.recycle(req);
                    // Forwarded replies on their way are bounded too: past the budget they
                    // are waited for and written before more requests are planned.
                    let over_budget = replies.over_budget(out.len());
                    if over_budget || out.len() >= OUT_FLUSH && replies.is_empty() {
                        if over_budget {
                            replies.resolve_into(node, session, &mut out).await;
                        }
                        write_out(
                            sock,
                            &out,
                            session.pubsub.as_ref(),
                            &out_limits,
                            &mut over_soft_since,
                        )
                        .await?;
                        node.stats.net_output_bytes.add(out.len() as u64);
                        out.clear();
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    // Like Redis: answer what came before, report the error, close.
                    replies.resolve_into(node, session, &mut out).await;
                    if !e.is_silent() {
                        out.extend_from_slice(b"-ERR ");
                        out.extend_from_slice(e.to_string().as_bytes());
                        out.extend_from_slice(b"\r\n");
                    }
                    debug!(client = session.client.id, error = %e, "protocol error");
                    send(sock, &out).await?;
                    return Ok(());
                }
            }
        }
        if let Some(blocked) = replies.take_blocking() {
            // The replies before the blocking command go out first.
            replies.resolve_into(node, session, &mut out).await;
            if !out.is_empty() {
                write_out(
                    sock,
                    &out,
                    session.pubsub.as_ref(),
                    &out_limits,
                    &mut over_soft_since,
                )
                .await?;
                node.stats.net_output_bytes.add(out.len() as u64);
                out.clear();
            }
            replies.push_pending(&mut out, blocked);
            // The wait may be long: meanwhile the socket is watched, so a client that goes
            // away ends its wait (and is not served an element it would never read).
            let ended = tokio::select! {
                _ = replies.resolve_into(node, session, &mut out) => false,
                _ = until_closed(sock, &mut inbuf, limits.max_query_buffer) => true,
                _ = &mut stopped => true,
            };
            if ended {
                return Ok(());
            }
        } else if !replies.is_empty() {
            replies.resolve_into(node, session, &mut out).await;
        }
        if commands > 0 {
            node.stats.total_commands.add(commands);
            session
                .client
                .last_active
                .store(session.client.age_secs(), Relaxed);
        }
        if !out.is_empty() {
            // When other connections are busy too, let every one with a request ready run
            // first, so the replies of one round of readiness go out together, as Redis
            // writes them all at the end of its event loop iteration. A client waiting on
            // many connections then wakes once for many replies instead of once per reply:
            // against a client that replies were trickling to, redis-benchmark spent 4.9
            // instead of 3.4 us of CPU per request at pipeline 1, and was the bottleneck.
            // The yield does not poll the I/O driver first (`let_ready_run` says why and
            // what it saved). A lone busy connection writes at once: it has no one to wait
            // for. Pushed messages alone (no request in this round) go out at once: a
            // PUBLISH wakes every subscriber together, and a yield each would only double
            // the polls of a fan-out.
            if commands > 0 && others_busy(&mut last_batch) {
                chkv_common::sched::let_ready_run().await;
            }
            write_out(
                sock,
                &out,
                session.pubsub.as_ref(),
                &out_limits,
                &mut over_soft_since,
            )
            .await?;
            node.stats.net_output_bytes.add(out.len() as u64);
            out.clear();
        }
        if held_back {
            // Requests that arrived behind the blocking command are in the buffer already.
            continue;
        }
        if inbuf.capacity() - inbuf.len() < READ_CHUNK / 4 {
            // Grow towards what a partial request needs, in bounded steps that follow the
            // bytes that actually arrive.
            let want = parser.wanted().saturating_sub(inbuf.len());
            inbuf.reserve(want.clamp(READ_CHUNK, 1024 * 1024));
        }
        tokio::select! {
            r = sock.read_buf(&mut inbuf) => {
                let n = r?;
                if n == 0 {
                    return Ok(());
                }
                node.stats.net_input_bytes.add(n as u64);
            }
            _ = pushed(session.pubsub.as_ref()) => {}
            _ = &mut stopped => return Ok(()),
        }
    }
}

/// Writes `buf`, the replies a connection has not taken yet, under its class of
/// `client-output-buffer-limit` (`pubsub` while it has a subscription, else `normal`; see
/// [`crate::outbuf`]). Closes the connection (an error) when `buf` is over the hard limit, or
/// has been over the soft one for its seconds, including while the client does not read what
/// it was sent; and, for a subscriber, when a publisher found its outbox over the limit.
async fn write_out<S: AsyncWrite + Unpin>(
    sock: &mut S,
    buf: &[u8],
    sub: Option<&Arc<crate::pubsub::Subscriber>>,
    limits: &crate::outbuf::OutputLimits,
    over_soft_since: &mut Option<std::time::Instant>,
) -> std::io::Result<()> {
    let limit = match sub {
        Some(s) if s.active() => &limits.pubsub,
        _ => &limits.normal,
    };
    let over = || {
        debug!(
            pending = buf.len(),
            "closing a client over its output buffer limit"
        );
        Err(std::io::Error::other("output buffer limit reached"))
    };
    let mut soft_deadline = None;
    if limit.is_set() {
        let now = std::time::Instant::now();
        if crate::outbuf::over_limit(over_soft_since, buf.len() as u64, limit, now) {
            return over();
        }
        soft_deadline = over_soft_since.map(|since| crate::outbuf::soft_deadline(since, limit));
    }
    if soft_deadline.is_none() && sub.is_none() {
        // The common case: no limit to watch while writing.
        return send(sock, buf).await;
    }
    let soft_expired = async {
        match soft_deadline {
            Some(at) => tokio::time::sleep_until(at.into()).await,
            None => std::future::pending().await,
        }
    };
    let killed = async {
        match sub {
            Some(sub) => sub.killed().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        r = send(sock, buf) => {
            // Everything was taken: nothing is pending any more.
            *over_soft_since = None;
            r
        }
        _ = soft_expired => over(),
        _ = killed => Err(std::io::Error::other("pubsub output buffer limit reached")),
    }
}

/// Reads whatever the client sends while its blocking command waits (kept for after it, up
/// to `limit` bytes) and completes when the client closes the connection or it fails.
async fn until_closed<S: AsyncRead + Unpin>(sock: &mut S, inbuf: &mut BytesMut, limit: usize) {
    loop {
        if inbuf.len() >= limit {
            // Enough buffered: wait for the command without reading more.
            return std::future::pending().await;
        }
        if inbuf.capacity() - inbuf.len() < READ_CHUNK / 4 {
            inbuf.reserve(READ_CHUNK);
        }
        match sock.read_buf(inbuf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Completes when a message was pushed to the connection's outbox; never without one.
async fn pushed(sub: Option<&Arc<crate::pubsub::Subscriber>>) {
    match sub {
        Some(sub) => sub.pushed().await,
        None => std::future::pending().await,
    }
}

/// Writes `out` and flushes it: a TLS stream may keep the last record in its buffer until
/// flushed; for TCP the flush is a no-op.
async fn send<S: AsyncWrite + Unpin>(sock: &mut S, out: &[u8]) -> std::io::Result<()> {
    sock.write_all(out).await?;
    sock.flush().await
}

/// Counts a batch of replies about to be written on this thread, and tells whether another
/// connection wrote a batch on this thread since this one's last (`last`, updated). A
/// connection whose task moved from another worker thread (its `last` counts there) is
/// told yes: that only costs it one yield.
fn others_busy(last: &mut u64) -> bool {
    thread_local! {
        static BATCHES: Cell<u64> = const { Cell::new(0) };
    }
    BATCHES.with(|b| {
        let now = b.get() + 1;
        b.set(now);
        let others = now.checked_sub(*last).is_none_or(|d| d > 1);
        *last = now;
        others
    })
}

/// The parser's limits and the output limits from the config, with the config generation
/// they belong to.
fn current_limits(node: &Node) -> (u64, Limits, crate::outbuf::OutputLimits) {
    let generation = node.config_generation();
    let c = node.config();
    let limits = Limits {
        max_bulk_len: c.proto_max_bulk_len,
        max_query_buffer: c.client_query_buffer_limit,
    };
    (generation, limits, c.client_output_buffer_limit)
}

/// Background work: active expiry `hz` times a second and the ops/sec sample.
async fn cron(node: Arc<Node>, mut stop: watch::Receiver<bool>) {
    let mut rng = {
        use rand::SeedableRng;
        rand::rngs::SmallRng::from_os_rng()
    };
    let mut last_sample = (std::time::Instant::now(), 0u64);
    loop {
        let hz = node.config().hz.max(1);
        let period = Duration::from_millis(1000 / hz as u64);
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = stop.changed() => return,
        }
        // Like Redis: keep going while a sizeable share of the sampled keys had expired, but
        // never for more than a quarter of the period.
        let started = std::time::Instant::now();
        loop {
            let (checked, expired) = node.db.active_expire(now_ms(), 2000, &mut rng);
            if checked == 0 || expired * 10 < checked || started.elapsed() > period / 4 {
                break;
            }
            tokio::task::yield_now().await;
        }
        // Client tracking: the table's size limit, and a lapsed lease drops every cache.
        if node.lease.enforced() {
            node.tracking.lease_state(node.lease.serving());
        }
        node.tracking.enforce_limit();
        // Finish evictions that writes left (their budget is short), or after maxmemory shrank.
        node.db.evict_in_background(now_ms(), period / 4);
        let elapsed = last_sample.0.elapsed();
        if elapsed >= Duration::from_secs(1) {
            let total = node.stats.total_commands.get();
            let ops = (total.saturating_sub(last_sample.1)) as f64 / elapsed.as_secs_f64();
            node.stats.instantaneous_ops.store(ops as u64, Relaxed);
            last_sample = (std::time::Instant::now(), total);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An accepted connection and its peer, on loopback.
    #[cfg(target_os = "linux")]
    async fn accepted() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (server, client)
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn client_sockets_get_keepalive_and_the_unsent_limit() {
        let (server, _client) = accepted().await;
        tune_client_socket(&server, 300, 16 * 1024).unwrap();
        let got = socket2::SockRef::from(&server);
        assert!(got.tcp_nodelay().unwrap());
        assert!(got.keepalive().unwrap());
        assert_eq!(got.tcp_keepalive_time().unwrap(), Duration::from_secs(300));
        assert_eq!(
            got.tcp_keepalive_interval().unwrap(),
            Duration::from_secs(100)
        );
        assert_eq!(got.tcp_keepalive_retries().unwrap(), 3);
        assert_eq!(got.tcp_notsent_lowat().unwrap(), 16 * 1024);

        // 0 leaves each off: no probes, the kernel's own unsent limit.
        let (server, _client) = accepted().await;
        let kernel_default = socket2::SockRef::from(&server).tcp_notsent_lowat().unwrap();
        tune_client_socket(&server, 0, 0).unwrap();
        let got = socket2::SockRef::from(&server);
        assert!(got.tcp_nodelay().unwrap());
        assert!(!got.keepalive().unwrap());
        assert_eq!(got.tcp_notsent_lowat().unwrap(), kernel_default);

        // A short keepalive still probes at least a second apart.
        let (server, _client) = accepted().await;
        tune_client_socket(&server, 2, 0).unwrap();
        let got = socket2::SockRef::from(&server);
        assert_eq!(
            got.tcp_keepalive_interval().unwrap(),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn only_interleaved_connections_count_as_busy() {
        // Each test runs on its own thread, so the thread's batch count starts here.
        let (mut a, mut b) = (0u64, 0u64);
        others_busy(&mut a);
        // A lone connection: nobody wrote in between.
        assert!(!others_busy(&mut a));
        assert!(!others_busy(&mut a));
        // Two connections taking turns each see the other.
        others_busy(&mut b);
        assert!(others_busy(&mut a));
        assert!(others_busy(&mut b));
        assert!(others_busy(&mut a));
        // b goes quiet: a is alone again after its next batch.
        assert!(!others_busy(&mut a));
        // A task that moved here from a busier thread.
        let mut moved = u64::MAX / 2;
        assert!(others_busy(&mut moved));
        assert!(!others_busy(&mut moved));
    }
}
