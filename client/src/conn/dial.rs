//! Dialling a node (TCP or TLS) and the greeting (AUTH or HELLO, then `CLUSTER REDIRECTS YES`)
//! before a connection carries requests.

use super::*;

/// TLS towards the DataNodes: the rustls configuration (the CA, a client certificate), and
/// each node's TLS address by its client address, from the slot table. Routing keeps using
/// client addresses (tables, `-MOVED`); only the dial goes elsewhere. A node the table does
/// not list (a standalone server) is dialled at the address given.
#[derive(Debug)]
pub(crate) struct TlsLinks {
    pub config: Arc<chkv_common::tls::rustls::ClientConfig>,
    pub addrs: RwLock<HashMap<SocketAddr, SocketAddr>>,
}

impl TlsLinks {
    /// Where to dial the node whose client address is `addr`.
    pub(super) fn dial(&self, addr: SocketAddr) -> SocketAddr {
        let addrs = self.addrs.read().unwrap_or_else(|p| p.into_inner());
        addrs.get(&addr).copied().unwrap_or(addr)
    }

    /// The client address of the node whose TLS address is `addr` (a node answers a TLS
    /// connection's `-MOVED` with the TLS port, as Redis does), or `addr` itself.
    pub fn client_of(&self, addr: SocketAddr) -> SocketAddr {
        let addrs = self.addrs.read().unwrap_or_else(|p| p.into_inner());
        addrs
            .iter()
            .find(|(_, &t)| t == addr)
            .map_or(addr, |(&c, _)| c)
    }

    /// Takes the nodes' TLS addresses from a table.
    pub fn learn(&self, nodes: &[chkv_common::NodeInfo]) {
        let mut addrs = self.addrs.write().unwrap_or_else(|p| p.into_inner());
        for n in nodes {
            match n.tls_addr() {
                Some(t) => addrs.insert(n.client_addr, t),
                None => addrs.remove(&n.client_addr),
            };
        }
    }
}

pub(super) fn protocol(addr: SocketAddr, e: resp::ProtocolError) -> Error {
    Error::Protocol { addr, message: e.0 }
}

/// Connects (with TLS when configured) and greets: AUTH or HELLO, then `CLUSTER REDIRECTS
/// YES`, pipelined. Returns the stream and any bytes read past the greeting's replies.
pub(super) async fn handshake(addr: SocketAddr, config: &ConnConfig) -> Result<(Stream, BytesMut)> {
    let mut stream = dial(addr, config).await?;
    let buf = greet(addr, &mut stream, config).await?;
    Ok((stream, buf))
}

/// Opens a connection to the node whose client address is `addr`: TCP, or TLS to its TLS
/// address when the client speaks TLS.
pub(crate) async fn dial(addr: SocketAddr, config: &ConnConfig) -> Result<Stream> {
    let lost = |message: String| Error::Connection { addr, message };
    let to = config.tls.as_ref().map_or(addr, |t| t.dial(addr));
    let stream = tokio::time::timeout(config.connect_timeout, TcpStream::connect(to))
        .await
        .map_err(|_| {
            lost(format!(
                "connect timed out after {:?}",
                config.connect_timeout
            ))
        })?
        .map_err(|e| lost(e.to_string()))?;
    let _ = stream.set_nodelay(true);
    let Some(tls) = &config.tls else {
        return Ok(Stream::Left(stream));
    };
    // The node's certificate must chain to the CA and name the address dialled.
    let name = chkv_common::tls::rustls::pki_types::ServerName::IpAddress(to.ip().into());
    let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
    let stream = tokio::time::timeout(config.connect_timeout, connector.connect(name, stream))
        .await
        .map_err(|_| {
            lost(format!(
                "TLS handshake with {to} timed out after {:?}",
                config.connect_timeout
            ))
        })?
        .map_err(|e| lost(format!("TLS handshake with {to}: {e}")))?;
    Ok(Stream::Right(Box::new(stream)))
}

/// AUTH or HELLO, then `CLUSTER REDIRECTS YES`, pipelined, on a fresh connection. Returns
/// any bytes read past the greeting's replies.
async fn greet<S: AsyncRead + AsyncWrite + Unpin>(
    addr: SocketAddr,
    stream: &mut S,
    config: &ConnConfig,
) -> Result<BytesMut> {
    let lost = |message: String| Error::Connection { addr, message };
    let mut hello = BytesMut::new();
    let mut expected = 0;
    let mut send = |args: &[&[u8]]| {
        resp::encode_command(args, &mut hello);
        expected += 1;
    };
    let user = config.username.as_deref().unwrap_or(b"default");
    match (&config.password, &config.username, config.resp3) {
        (Some(pw), _, true) => send(&[b"HELLO", b"3", b"AUTH", user, pw]),
        (None, _, true) => send(&[b"HELLO", b"3"]),
        (Some(pw), Some(u), false) => send(&[b"AUTH", u, pw]),
        (Some(pw), None, false) => send(&[b"AUTH", pw]),
        (None, _, false) => {}
    }
    if config.cluster {
        send(&[b"CLUSTER", b"REDIRECTS", b"YES"]);
    }
    if config.near.is_some() {
        // Only the reads after CLIENT CACHING YES (the near-cache's GETs) are tracked.
        send(&[b"CLIENT", b"TRACKING", b"ON", b"OPTIN"]);
    }
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    if expected == 0 {
        return Ok(buf);
    }
    let exchange = async {
        stream
            .write_all(&hello)
            .await
            .map_err(|e| lost(e.to_string()))?;
        stream.flush().await.map_err(|e| lost(e.to_string()))?;
        let mut scanner = Scanner::new();
        let mut replies = 0;
        while replies < expected {
            if let Some(len) = scanner.scan(&buf).map_err(|e| protocol(addr, e))? {
                let frame = buf.split_to(len).freeze();
                match resp::parse(&frame).map_err(|e| protocol(addr, e))? {
                    Value::Error(e) => return Err(Error::Server(e)),
                    Value::Push(_) => {}
                    _ => replies += 1,
                }
                continue;
            }
            buf.reserve(READ_CHUNK);
            match stream.read_buf(&mut buf).await {
                Ok(0) => return Err(lost("connection closed during the handshake".into())),
                Ok(_) => {}
                Err(e) => return Err(lost(e.to_string())),
            }
        }
        Ok(())
    };
    tokio::time::timeout(config.connect_timeout, exchange)
        .await
        .map_err(|_| {
            lost(format!(
                "handshake timed out after {:?}",
                config.connect_timeout
            ))
        })??;
    Ok(buf)
}
