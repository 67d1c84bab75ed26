//! Connections from this DataNode to the others, for forwarding requests.
//!
//! One pipelined connection per (peer, protocol): requests from every client connection are
//! queued on it and the replies come back in order. A writer task and a reader task share
//! the queue of waiting callers, so a peer that is slow to read never blocks our reading of
//! its replies. Peer connections ask for redirects (`CLUSTER REDIRECTS INTERNAL`), so a request
//! that reaches a node which no longer owns its slot comes back as `-MOVED` instead of being
//! forwarded again: forwarding is at most one hop, and the forwarding side retries.
//!
//! The connection itself (the writer batching what every client connection forwarded in one
//! round into one write, the reader handing replies back in order) is
//! [`chkv_common::pipe`], shared with the client library; here a reply stays raw bytes, to be
//! relayed as they are. A link has no response timeout (a forwarded request waits as long as
//! its client does), and when the pool drops a link (its peer left the table) what waits on
//! it fails at once rather than on a peer that may be paused.
//!
//! Every connection opens with the cluster-secret handshake ([`crate::trust`]), never with
//! `requirepass`: the address came from the control plane, and a password sent there would
//! be handed to whoever the table names. The peer's requirepass does not apply to it either,
//! so rotating the password never breaks links between nodes.
//!
//! With `tls-cluster` every connection goes to the peer's TLS port (learnt from the table
//! and from migrate orders, [`Peers::learn_tls_port`]) over TLS, presenting this node's
//! certificate and checking the peer's against the CA; a peer without a TLS port is not
//! reached at all.
//!
//! Requests sent without waiting for their reply (a PUBLISH fanned out to every node) go
//! through [`Peers::send_bounded`]: what such requests hold queued for one peer and not yet
//! written to its socket is bounded, so a peer that stops reading (or cannot be reached)
//! costs this node a bounded amount however fast its clients publish.

use crate::resp::reply::{reply_len, ReplyError};
use crate::resp::{Protocol, Request};
use bytes::{Bytes, BytesMut};
use chkv_common::auth::ClusterSecret;
use chkv_common::pipe::{
    self, Budget, Codec, Ended, Gather, Hold, Job, Options, Stream, WhenDropped,
};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tracing::debug;

/// Why a forwarded request got no reply.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PeerError {
    #[error("cannot connect to {0}: {1}")]
    Connect(SocketAddr, String),
    #[error("connection to {0} lost: {1}")]
    Lost(SocketAddr, String),
    #[error("peer {0} refused the handshake: {1}")]
    Handshake(SocketAddr, String),
}

pub type PeerReply = Result<Bytes, PeerError>;

/// A peer's replies, kept as the bytes they came in.
struct Raw;

impl Codec for Raw {
    type Slot = oneshot::Sender<PeerReply>;
    type Reply = Bytes;
    type Error = PeerError;

    fn error(addr: SocketAddr, why: Ended) -> PeerError {
        let text = match why {
            Ended::Io(e) | Ended::Protocol(e) => e,
            Ended::ClosedByPeer => "closed by peer".into(),
            Ended::Closed | Ended::Killed => "connection closed".into(),
            Ended::Timeout(after) => format!("no reply in {after:?}"),
        };
        PeerError::Lost(addr, text)
    }

    fn fail(slot: Self::Slot, error: &PeerError) {
        let _ = slot.send(Err(error.clone()));
    }

    fn take(&mut self, buf: &mut BytesMut, len: usize) -> Result<Option<Bytes>, String> {
        Ok(Some(buf.split_to(len).freeze()))
    }

    fn offer(&mut self, _slot: &mut Self::Slot, reply: Bytes) -> Option<Bytes> {
        Some(reply)
    }

    fn complete(&mut self, slot: Self::Slot, reply: Bytes) {
        let _ = slot.send(Ok(reply));
    }
}

/// How every peer link runs: no response timeout, gathered writes, and a dropped link fails
/// what waits on it.
const LINK: Options = Options {
    response_timeout: None,
    gather: Gather::Always,
    when_dropped: WhenDropped::Fail,
};

type Link = pipe::Handle<Raw>;

/// Peer connections by (address, protocol). Looked up once per forwarded request, so hashed
/// with foldhash (SipHash cost about 200 instructions a lookup).
type Conns = HashMap<(SocketAddr, Protocol), Link, foldhash::fast::RandomState>;

/// The pool of peer connections of one node.
pub struct Peers {
    conns: Mutex<Conns>,
    /// Per peer: bytes of [`Peers::send_bounded`] requests queued and not yet written.
    budgets: Mutex<HashMap<SocketAddr, Budget>>,
    auth: Arc<PeerAuth>,
    /// With `tls-cluster`: the client side of TLS links, and each peer's TLS port by its
    /// client address.
    tls: Mutex<PeerTls>,
}

#[derive(Default)]
struct PeerTls {
    config: Option<Arc<rustls::ClientConfig>>,
    ports: HashMap<SocketAddr, u16>,
}

/// How a new connection reaches its peer.
enum Route {
    Plain,
    Tls {
        config: Arc<rustls::ClientConfig>,
        port: Option<u16>,
    },
}

/// What a connection proves: this node's id and the cluster secret.
struct PeerAuth {
    secret: ClusterSecret,
    my_id: String,
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Most bytes a peer may send before its handshake replies are complete.
const MAX_HANDSHAKE_REPLY: usize = 64 * 1024;

impl Peers {
    /// The pool of node `my_id`, proving `secret` on every connection.
    pub fn new(secret: ClusterSecret, my_id: String) -> Peers {
        Peers {
            conns: Mutex::new(Conns::default()),
            budgets: Mutex::new(HashMap::new()),
            auth: Arc::new(PeerAuth { secret, my_id }),
            tls: Mutex::new(PeerTls::default()),
        }
    }

    /// Sets the client side of TLS links (`tls-cluster`; `None`: plaintext links). Open
    /// connections are kept; new ones use `config`.
    pub fn set_tls(&self, config: Option<Arc<rustls::ClientConfig>>) {
        self.tls.lock().config = config;
    }

    /// Notes the TLS port of the peer at `addr` (its client address), or that it has none;
    /// whether that changed it.
    pub fn learn_tls_port(&self, addr: SocketAddr, port: Option<u16>) -> bool {
        let mut tls = self.tls.lock();
        let old = match port {
            Some(p) => tls.ports.insert(addr, p),
            None => tls.ports.remove(&addr),
        };
        old != port
    }

    /// How a new connection to `addr` is made.
    fn route(&self, addr: SocketAddr) -> Route {
        let tls = self.tls.lock();
        match &tls.config {
            None => Route::Plain,
            Some(config) => Route::Tls {
                config: config.clone(),
                port: tls.ports.get(&addr).copied(),
            },
        }
    }

    /// Sends an encoded request to `addr` and returns where its raw reply will arrive.
    pub fn send(
        &self,
        addr: SocketAddr,
        proto: Protocol,
        data: Bytes,
    ) -> oneshot::Receiver<PeerReply> {
        self.send_job(addr, proto, data, None)
    }

    /// Sends an encoded request to `addr` without waiting for its reply, unless the requests
    /// sent this way to `addr` and not yet written to its socket (a peer that does not read,
    /// or is being connected to) already hold bytes and this one would take them past
    /// `limit` (0: no limit): then it is not sent, and `false` says so.
    pub fn send_bounded(
        &self,
        addr: SocketAddr,
        proto: Protocol,
        data: Bytes,
        limit: usize,
    ) -> bool {
        let budget = self.budgets.lock().entry(addr).or_default().clone();
        let Some(hold) = budget.charge(data.len(), limit) else {
            return false;
        };
        drop(self.send_job(addr, proto, data, Some(hold)));
        true
    }

    /// Bytes of [`Peers::send_bounded`] requests queued for `addr` and not yet written.
    pub fn queued_bounded(&self, addr: SocketAddr) -> usize {
        self.budgets.lock().get(&addr).map_or(0, Budget::held)
    }

    fn send_job(
        &self,
        addr: SocketAddr,
        proto: Protocol,
        data: Bytes,
        hold: Option<Hold>,
    ) -> oneshot::Receiver<PeerReply> {
        let (tx, rx) = oneshot::channel();
        let mut job = Job {
            hold,
            ..Job::new(data, tx)
        };
        let mut conns = self.conns.lock();
        for _ in 0..2 {
            let link = conns
                .entry((addr, proto))
                .or_insert_with(|| spawn_conn(addr, proto, self.auth.clone(), self.route(addr)));
            match link.send(job) {
                Ok(()) => return rx,
                Err(j) => {
                    // That connection has ended: replace it once.
                    conns.remove(&(addr, proto));
                    job = j;
                }
            }
        }
        let _ = job
            .slot
            .send(Err(PeerError::Lost(addr, "connection closed".into())));
        rx
    }

    /// Sends `req`, encoded as RESP.
    pub fn send_request(
        &self,
        addr: SocketAddr,
        proto: Protocol,
        req: &Request,
    ) -> oneshot::Receiver<PeerReply> {
        self.send(addr, proto, req.to_wire())
    }

    /// A connection of its own to `addr`, outside the pool: for state that lives in the
    /// peer's session, like the WATCH of one client's transaction. It closes when the
    /// returned value is dropped (and the peer then forgets that session's state).
    pub fn dedicated(&self, addr: SocketAddr, proto: Protocol) -> PeerConn {
        PeerConn {
            addr,
            proto,
            link: spawn_conn(addr, proto, self.auth.clone(), self.route(addr)),
        }
    }

    /// Drops connections to peers that are no longer in the cluster.
    pub fn retain(&self, keep: impl Fn(&SocketAddr) -> bool) {
        self.conns.lock().retain(|(a, _), _| keep(a));
        self.budgets.lock().retain(|a, _| keep(a));
    }

    /// Takes the peers' TLS ports from the table (a peer's port changed: its connections
    /// are replaced).
    pub fn learn_tls_ports(&self, nodes: &[chkv_common::NodeInfo]) {
        let changed: Vec<SocketAddr> = nodes
            .iter()
            .filter(|n| self.learn_tls_port(n.client_addr, n.tls_port))
            .map(|n| n.client_addr)
            .collect();
        if !changed.is_empty() {
            self.conns.lock().retain(|(a, _), _| !changed.contains(a));
        }
    }
}

/// A pipelined connection to one peer, owned by one client session ([`Peers::dedicated`]).
pub struct PeerConn {
    pub addr: SocketAddr,
    pub proto: Protocol,
    link: Link,
}

impl PeerConn {
    /// Sends `req` and returns where its raw reply will arrive.
    pub fn send_request(&self, req: &Request) -> oneshot::Receiver<PeerReply> {
        let (reply, rx) = oneshot::channel();
        if let Err(job) = self.link.send(Job::new(req.to_wire(), reply)) {
            let _ = job
                .slot
                .send(Err(PeerError::Lost(self.addr, "connection closed".into())));
        }
        rx
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.link.is_closed()
    }
}

fn spawn_conn(addr: SocketAddr, proto: Protocol, auth: Arc<PeerAuth>, route: Route) -> Link {
    let (link, queue) = pipe::channel(addr);
    tokio::spawn(run_conn(addr, proto, auth, route, queue));
    link
}

/// Reads one complete reply into `buf` (bounded), returning its length.
async fn read_reply<S: AsyncRead + Unpin>(
    sock: &mut S,
    buf: &mut BytesMut,
    addr: SocketAddr,
    deadline: tokio::time::Instant,
) -> Result<usize, PeerError> {
    loop {
        let malformed = |e: ReplyError| PeerError::Handshake(addr, e.to_string());
        if let Some(n) = reply_len(buf).map_err(malformed)? {
            return Ok(n);
        }
        if buf.len() > MAX_HANDSHAKE_REPLY {
            return Err(PeerError::Handshake(
                addr,
                "handshake reply too long".into(),
            ));
        }
        let n = tokio::time::timeout_at(deadline, sock.read_buf(buf))
            .await
            .map_err(|_| PeerError::Handshake(addr, "timed out".into()))?
            .map_err(|e| PeerError::Lost(addr, e.to_string()))?;
        if n == 0 {
            return Err(PeerError::Lost(addr, "closed during handshake".into()));
        }
    }
}

/// Connects to `to` over TCP.
async fn tcp_connect(addr: SocketAddr, to: SocketAddr) -> Result<TcpStream, PeerError> {
    let sock = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(to))
        .await
        .map_err(|_| PeerError::Connect(addr, "timed out".into()))?
        .map_err(|e| PeerError::Connect(addr, e.to_string()))?;
    let _ = sock.set_nodelay(true);
    crate::busypoll::watch(&sock);
    Ok(sock)
}

/// The TLS handshake with the peer whose client address is `addr`, on its TLS `port`.
async fn tls_connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    port: Option<u16>,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, PeerError> {
    let port = port.ok_or_else(|| {
        PeerError::Connect(
            addr,
            "tls-cluster is on and this peer advertises no TLS port".into(),
        )
    })?;
    let sock = tcp_connect(addr, SocketAddr::new(addr.ip(), port)).await?;
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let connector = tokio_rustls::TlsConnector::from(config);
    tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, sock))
        .await
        .map_err(|_| PeerError::Connect(addr, "TLS handshake timed out".into()))?
        .map_err(|e| PeerError::Connect(addr, format!("TLS handshake: {e}")))
}

/// Performs the handshake: the cluster-secret exchange (`CLUSTER PEERHELLO`, then
/// `PEERAUTH`), HELLO 3 for RESP3, CLUSTER REDIRECTS INTERNAL. Returns what was read past it.
async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    sock: &mut S,
    addr: SocketAddr,
    proto: Protocol,
    auth: &PeerAuth,
) -> Result<BytesMut, PeerError> {
    let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
    let lost = |e: std::io::Error| PeerError::Lost(addr, e.to_string());
    let my_nonce = chkv_common::auth::nonce();
    let mut hello = BytesMut::new();
    crate::trust::hello_request(&auth.my_id, &my_nonce).encode_into(&mut hello);
    sock.write_all(&hello).await.map_err(lost)?;
    sock.flush().await.map_err(lost)?;
    let mut buf = BytesMut::with_capacity(4096);
    let n = read_reply(sock, &mut buf, addr, deadline).await?;
    let challenge = buf.split_to(n);
    let (peer_id, proof) =
        crate::trust::answer_challenge(&auth.secret, &auth.my_id, &my_nonce, &challenge)
            .map_err(|e| PeerError::Handshake(addr, e))?;
    debug!(%addr, peer = %peer_id, "peer authenticated");
    let mut hello = BytesMut::new();
    proof.encode_into(&mut hello);
    if proto == Protocol::Resp3 {
        Request::from_args(["HELLO", "3"]).encode_into(&mut hello);
    }
    Request::from_args(["CLUSTER", "REDIRECTS", "INTERNAL"]).encode_into(&mut hello);
    sock.write_all(&hello).await.map_err(lost)?;
    sock.flush().await.map_err(lost)?;
    // The proof's reply, HELLO's, and CLUSTER REDIRECTS's.
    for _ in 0..2 + usize::from(proto == Protocol::Resp3) {
        let n = read_reply(sock, &mut buf, addr, deadline).await?;
        let r = buf.split_to(n);
        if r.first() == Some(&b'-') {
            let text = &r[..r.len().min(200)];
            return Err(PeerError::Handshake(
                addr,
                String::from_utf8_lossy(text).trim().to_string(),
            ));
        }
    }
    Ok(buf)
}

async fn run_conn(
    addr: SocketAddr,
    proto: Protocol,
    auth: Arc<PeerAuth>,
    route: Route,
    queue: pipe::Queue<Raw>,
) {
    let opened = async {
        let mut sock = match route {
            Route::Plain => Stream::Left(tcp_connect(addr, addr).await?),
            Route::Tls { config, port } => {
                Stream::Right(Box::new(tls_connect(addr, config, port).await?))
            }
        };
        let rbuf = handshake(&mut sock, addr, proto, &auth).await?;
        Ok::<_, PeerError>((sock, rbuf))
    };
    match opened.await {
        Ok((sock, rbuf)) => queue.serve_stream(Raw, sock, rbuf, LINK).await,
        Err(failed) => {
            debug!(%addr, error = %failed, "peer connection failed");
            queue.fail(failed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer that accepts connections and never answers: what fire-and-forget requests
    /// queue for it stays within the limit (more are refused), and is given back when the
    /// connection fails (its handshake times out); a request larger than the limit still
    /// goes when nothing is queued.
    #[tokio::test]
    async fn fire_and_forget_requests_to_a_silent_peer_are_bounded() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let holder = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((sock, _)) = listener.accept().await {
                held.push(sock);
            }
        });
        let peers = Peers::new(ClusterSecret::none(), "me".into());
        let msg = Bytes::from(vec![b'x'; 400]);
        let send = |data: &Bytes| peers.send_bounded(addr, Protocol::Resp2, data.clone(), 1000);
        assert!(send(&msg));
        assert!(send(&msg));
        assert!(!send(&msg), "1200 bytes would pass the limit of 1000");
        assert_eq!(peers.queued_bounded(addr), 800);
        // Unlimited: always sent.
        assert!(peers.send_bounded(addr, Protocol::Resp2, msg.clone(), 0));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while peers.queued_bounded(addr) != 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "bytes never given back"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let big = Bytes::from(vec![b'x'; 2000]);
        assert!(send(&big));
        assert!(!send(&msg));
        assert_eq!(peers.queued_bounded(addr), 2000);
        holder.abort();
    }
}
