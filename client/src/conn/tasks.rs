//! A connection's life (connect and greet, then [`chkv_common::pipe`] carries it) and its
//! codec: replies decoded into [`Value`]s for their [`Waiter`]s, pushes to the near-cache.

use super::*;
use chkv_common::pipe::{Codec, Ended, Gather, Options, WhenDropped};

/// The connection's life: connect and greet, then serve requests until it ends.
pub(super) async fn run(tag: ConnTag, config: Arc<ConnConfig>, queue: pipe::Queue<Replies>) {
    let addr = tag.addr;
    let (stream, leftover) = match handshake(addr, &config).await {
        Ok(ok) => ok,
        Err(e) => return queue.fail(e),
    };
    let codec = Replies {
        tag,
        near: config.near.clone(),
    };
    let options = Options {
        response_timeout: config.response_timeout,
        gather: Gather::WhenConcurrent,
        when_dropped: WhenDropped::Finish,
    };
    queue.serve_stream(codec, stream, leftover, options).await;
    // Invalidations sent on this connection from now on are lost: what it read goes (the
    // reader has stopped, so nothing fills the cache from it any more).
    if let Some(near) = &config.near {
        near.conn_lost(tag.id);
    }
}

/// The client's codec: the connection (for the near-cache's tags) and the near-cache its
/// pushes and cached GETs go to.
pub(crate) struct Replies {
    tag: ConnTag,
    near: Option<Arc<NearCache>>,
}

impl Codec for Replies {
    type Slot = Waiter;
    type Reply = Value;
    type Error = Error;

    fn error(addr: SocketAddr, why: Ended) -> Error {
        let connection = |message: String| Error::Connection { addr, message };
        match why {
            Ended::Io(message) => connection(message),
            Ended::ClosedByPeer => connection("connection closed by the server".into()),
            Ended::Closed => connection("connection closed".into()),
            Ended::Killed => connection("connection closed: the caller gave up".into()),
            Ended::Protocol(message) => Error::Protocol { addr, message },
            Ended::Timeout(after) => Error::Timeout { addr, after },
        }
    }

    fn fail(slot: Waiter, error: &Error) {
        match slot {
            Waiter::One(tx) => drop(tx.send(Err(error.clone()))),
            Waiter::Many { tx, .. } => drop(tx.send(Err(error.clone()))),
            Waiter::Cached(c) => drop(c.tx.send(Err(error.clone()))),
        }
    }

    /// Decodes one reply: small ones from the read buffer, large ones sharing it. An
    /// invalidation push goes to the near-cache as it comes, so it is applied before any
    /// reply behind it is handed over.
    fn take(
        &mut self,
        buf: &mut BytesMut,
        len: usize,
    ) -> std::result::Result<Option<Value>, String> {
        let value = if len <= SHARE_ABOVE {
            let parsed = resp::parse(&buf[..len]);
            buf.advance(len);
            parsed
        } else {
            resp::parse_shared(&buf.split_to(len).freeze())
        }
        .map_err(|e| e.0)?;
        if let Value::Push(items) = value {
            // Out-of-band, answers no request.
            if let Some(near) = &self.near {
                near.on_push(self.tag, &items);
            }
            return Ok(None);
        }
        Ok(Some(value))
    }

    fn offer(&mut self, slot: &mut Waiter, value: Value) -> Option<Value> {
        match slot {
            Waiter::One(_) => Some(value),
            Waiter::Many { want, got, .. } => {
                if got.len() + 1 >= *want {
                    Some(value)
                } else {
                    got.push(value);
                    None
                }
            }
            Waiter::Cached(c) => {
                if c.caching.is_none() {
                    c.caching = Some(value);
                    None
                } else {
                    Some(value)
                }
            }
        }
    }

    fn complete(&mut self, slot: Waiter, value: Value) {
        match slot {
            Waiter::One(tx) => drop(tx.send(Ok(value))),
            Waiter::Many { mut got, tx, .. } => {
                got.push(value);
                drop(tx.send(Ok(got)));
            }
            Waiter::Cached(c) => {
                let CachedGet { caching, fill, tx } = *c;
                // Kept only when CLIENT CACHING YES was accepted (the read is tracked).
                if let Some(Value::Okay) = caching {
                    fill.complete(self.tag, &value, Instant::now());
                }
                drop(tx.send(Ok(value)));
            }
        }
    }
}
