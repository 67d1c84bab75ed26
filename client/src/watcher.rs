//! The long-lived watch on the NameNode: `{"type":"watch","version":1}`, then one `table` line
//! now and one at every ring change.
//!
//! When the connection drops (a NameNode restart, a network blip) the watcher reconnects with
//! backoff, trying the given addresses in turn. Meanwhile requests keep being routed with the
//! last table: the DataNodes keep serving, and `-MOVED` replies keep the client right about
//! slots that move while the NameNode is away.

use std::sync::Arc;
use std::time::Duration;

use chkv_common::proto::MAX_LINE_BYTES;
use chkv_common::tls::rustls::ClientConfig;
use chkv_common::{decode_line, encode_line, ClientToNameNode, NameNodeToClient, PROTOCOL_VERSION};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tracing::{debug, info, warn};

use crate::client::Shared;
use crate::conn::Stream;

const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// How the last watch attempt at one address went, for `connect`'s error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// Connected and said `watch`; no verdict yet (a NameNode without a table stays silent).
    Connected,
    /// Nothing reachable there.
    Unreachable(String),
    /// Something else answers there.
    NotNameNode(String),
    /// A NameNode whose connection later failed.
    Failed(String),
}

/// Why one watch connection ended.
#[derive(Debug)]
enum WatchError {
    Unreachable(std::io::Error),
    NotNameNode(String),
    Io(std::io::Error),
}

/// Watches until the task is aborted (when the client is dropped).
/// With `tls` (a `rediss://` NameNode address) the watch connection speaks TLS, and the
/// NameNode's certificate must chain to the CA and name the host given.
pub(crate) async fn run(shared: Arc<Shared>, addrs: Vec<String>, tls: Option<Arc<ClientConfig>>) {
    let mut backoff = BACKOFF_MIN;
    for addr in addrs.iter().cycle() {
        let attempt = match watch(&shared, addr, tls.as_ref()).await {
            Ok(tables) => {
                info!(namenode = %addr, tables, "NameNode watch connection closed; reconnecting");
                if tables > 0 {
                    backoff = BACKOFF_MIN;
                }
                Attempt::Failed("the NameNode closed the watch connection".into())
            }
            Err(e) => {
                debug!(namenode = %addr, error = ?e, "NameNode watch failed");
                let attempt = match e {
                    WatchError::Unreachable(e) => Attempt::Unreachable(e.to_string()),
                    WatchError::NotNameNode(what) => Attempt::NotNameNode(what),
                    WatchError::Io(e) => Attempt::Failed(e.to_string()),
                };
                if let Ok(mut last) = shared.watch_error.lock() {
                    *last = Some(format!("{addr}: {attempt:?}"));
                }
                attempt
            }
        };
        shared.record_attempt(addr, attempt);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// One watch connection; returns how many tables it delivered once the NameNode closes it.
async fn watch(
    shared: &Shared,
    addr: &str,
    tls: Option<&Arc<ClientConfig>>,
) -> Result<u64, WatchError> {
    let connect_timeout = Duration::from_secs(2);
    let stream = tokio::time::timeout(connect_timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| {
            WatchError::Unreachable(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connect timed out",
            ))
        })?
        .map_err(WatchError::Unreachable)?;
    let _ = stream.set_nodelay(true);
    let stream = match tls {
        None => Stream::Left(stream),
        Some(config) => {
            // The host part of `host:port` (brackets of an IPv6 address included).
            let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
            let name = chkv_common::tls::server_name(host)
                .map_err(|e| WatchError::Unreachable(std::io::Error::other(e.to_string())))?;
            let connector = tokio_rustls::TlsConnector::from(config.clone());
            let stream = tokio::time::timeout(connect_timeout, connector.connect(name, stream))
                .await
                .map_err(|_| WatchError::NotNameNode("the TLS handshake timed out".into()))?
                .map_err(|e| WatchError::NotNameNode(format!("TLS handshake: {e}")))?;
            Stream::Right(Box::new(stream))
        }
    };
    let (rd, mut wr) = tokio::io::split(stream);
    let hello = encode_line(&ClientToNameNode::Watch {
        version: PROTOCOL_VERSION,
    })
    .map_err(|e| WatchError::Io(std::io::Error::other(e)))?;
    wr.write_all(&hello).await.map_err(WatchError::Io)?;
    wr.flush().await.map_err(WatchError::Io)?;
    shared.record_attempt(addr, Attempt::Connected);
    let mut rd = BufReader::new(rd);
    let mut line = Vec::new();
    let mut tables = 0u64;
    loop {
        match read_line(&mut rd, &mut line).await {
            Ok(true) => {}
            // A NameNode keeps a watcher's connection open even without a table; a close
            // (or a reset) before any line means the address is some other kind of port.
            Ok(false) if tables == 0 => {
                let hint = if tls.is_none() {
                    " (a NameNode with --tls-cluster yes speaks TLS there: rediss://)"
                } else {
                    ""
                };
                return Err(WatchError::NotNameNode(format!(
                    "it closed the connection on our watch request{hint}"
                )));
            }
            Ok(false) => break,
            Err(e) if tables == 0 => {
                return Err(WatchError::NotNameNode(format!(
                    "it broke the connection on our watch request ({e})"
                )))
            }
            Err(e) => return Err(WatchError::Io(e)),
        }
        let msg = match decode_line::<NameNodeToClient>(&line) {
            Ok(msg) => msg,
            Err(_) if tables == 0 => {
                let shown: String = String::from_utf8_lossy(&line).chars().take(60).collect();
                return Err(WatchError::NotNameNode(format!("it answered {shown:?}")));
            }
            Err(e) => {
                // Framing is intact (one line per message); a message we cannot read may be
                // from a newer NameNode. Skip it rather than drop a working watch.
                warn!(namenode = %addr, error = %e, "ignoring a control line");
                continue;
            }
        };
        let NameNodeToClient::Table {
            epoch,
            table,
            nodes,
        } = msg;
        let current = shared.routes().epoch;
        if epoch < current && tables > 0 {
            debug!(epoch, current, "ignoring an older table");
            continue;
        }
        if epoch < current {
            // The first table of a connection is the NameNode's current view, even when its
            // epoch went back (a NameNode that lost all state): it is the authority.
            warn!(
                epoch,
                current, "the NameNode's epoch went backwards; following it"
            );
        }
        shared.install_table(&table, nodes);
        tables += 1;
    }
    Ok(tables)
}

/// Reads one line (without its `\n`) into `line`; `false` at end of stream. Lines longer
/// than the control plane's limit are an error, so a broken peer cannot make us buffer
/// without bound.
async fn read_line<R: AsyncBufRead + Unpin>(
    rd: &mut R,
    line: &mut Vec<u8>,
) -> std::io::Result<bool> {
    line.clear();
    loop {
        let available = rd.fill_buf().await?;
        if available.is_empty() {
            return Ok(false);
        }
        match available.iter().position(|&b| b == b'\n') {
            Some(nl) => {
                line.extend_from_slice(&available[..nl]);
                rd.consume(nl + 1);
                return Ok(true);
            }
            None => {
                let n = available.len();
                line.extend_from_slice(available);
                rd.consume(n);
            }
        }
        if line.len() > MAX_LINE_BYTES {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "control line too long",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_bounded() {
        let data = b"one\ntwo\n".to_vec();
        let mut rd = BufReader::new(&data[..]);
        let mut line = Vec::new();
        assert!(read_line(&mut rd, &mut line).await.expect("ok"));
        assert_eq!(line, b"one");
        assert!(read_line(&mut rd, &mut line).await.expect("ok"));
        assert_eq!(line, b"two");
        assert!(!read_line(&mut rd, &mut line).await.expect("ok"));

        let long = vec![b'x'; MAX_LINE_BYTES + 10];
        let mut rd = BufReader::new(&long[..]);
        assert!(read_line(&mut rd, &mut line).await.is_err());
    }
}
