//! Subscriptions as streams that survive reconnects and ring changes.
//!
//! Each [`Subscription`] has its own connection, owned by a background task that subscribes,
//! forwards messages into a bounded queue and, when the connection drops or the server says
//! the subscription ended (a shard channel's slot moved: `sunsubscribe`), connects again and
//! subscribes again:
//!
//! - channels and patterns: to any DataNode (a PUBLISH anywhere reaches every DataNode), the
//!   next one in the ring's list after a failure;
//! - a shard channel: to the owner of its slot; `-MOVED` answers and ring changes lead there.
//!
//! Delivery is Redis Pub/Sub's: at most once. Messages published while a subscription is
//! being re-established are not received. A caller that reads slower than messages arrive
//! makes the queue full; the task then stops reading the socket and the server's pubsub
//! output limit eventually disconnects it, after which it subscribes again.

use crate::client::Client;
use crate::resp::{self, Scanner};
use crate::value::{ServerErrorKind, Value};
use bytes::{Bytes, BytesMut};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Messages queued for a subscription before its connection stops being read.
const QUEUE: usize = 1024;
/// Longest RESP reply buffered from a subscription's connection.
const MAX_BUFFER: usize = 64 << 20;

/// What was subscribed to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Topic {
    Channels(Vec<Bytes>),
    Patterns(Vec<Bytes>),
    /// One sharded channel (SSUBSCRIBE), served by its slot's owner.
    Shard(Bytes),
}

/// A message received by a [`Subscription`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The pattern that matched, for pattern subscriptions.
    pub pattern: Option<Bytes>,
    pub channel: Bytes,
    pub payload: Bytes,
}

/// A live subscription; messages arrive through [`Subscription::next`]. Dropping it closes its
/// connection.
#[derive(Debug)]
pub struct Subscription {
    rx: mpsc::Receiver<Message>,
    task: JoinHandle<()>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Subscription {
    /// The next message; never `None` while the subscription lives (it keeps reconnecting).
    pub async fn next(&mut self) -> Option<Message> {
        self.rx.recv().await
    }
}

impl Client {
    /// Subscribes to channels (SUBSCRIBE): messages PUBLISHed on any DataNode.
    pub fn subscribe<I, A>(&self, channels: I) -> Subscription
    where
        I: IntoIterator<Item = A>,
        A: AsRef<[u8]>,
    {
        self.start_subscription(Topic::Channels(to_bytes(channels)))
    }

    /// Subscribes to glob patterns (PSUBSCRIBE).
    pub fn psubscribe<I, A>(&self, patterns: I) -> Subscription
    where
        I: IntoIterator<Item = A>,
        A: AsRef<[u8]>,
    {
        self.start_subscription(Topic::Patterns(to_bytes(patterns)))
    }

    /// Subscribes to a sharded channel (SSUBSCRIBE) at the owner of its slot, following it
    /// when the slot moves.
    pub fn ssubscribe(&self, channel: impl AsRef<[u8]>) -> Subscription {
        self.start_subscription(Topic::Shard(Bytes::copy_from_slice(channel.as_ref())))
    }

    fn start_subscription(&self, topic: Topic) -> Subscription {
        let (tx, rx) = mpsc::channel(QUEUE);
        let client = self.clone();
        let task = tokio::spawn(async move { run(client, topic, tx).await });
        Subscription { rx, task }
    }
}

fn to_bytes<I: IntoIterator<Item = A>, A: AsRef<[u8]>>(items: I) -> Vec<Bytes> {
    items
        .into_iter()
        .map(|a| Bytes::copy_from_slice(a.as_ref()))
        .collect()
}

/// Why a subscription's connection ended.
enum End {
    /// The caller dropped the subscription.
    Dropped,
    /// Connect again: at `Some(addr)` (a `-MOVED`), or wherever routing says now.
    Again(Option<SocketAddr>),
}

async fn run(client: Client, topic: Topic, tx: mpsc::Sender<Message>) {
    let mut failures = 0u32;
    let mut next_node = 0usize;
    let mut target: Option<SocketAddr> = None;
    loop {
        let addr = match target.take() {
            Some(a) => Some(a),
            None => match &topic {
                Topic::Shard(ch) => client.node_for_key(ch),
                _ => {
                    let nodes = client.nodes();
                    next_node = next_node.wrapping_add(1);
                    (!nodes.is_empty()).then(|| nodes[next_node % nodes.len()])
                }
            },
        };
        let ended = match addr {
            Some(addr) => session(&client, addr, &topic, &tx, &mut failures).await,
            None => End::Again(None),
        };
        match ended {
            End::Dropped => return,
            End::Again(moved) => {
                target = moved;
                if moved.is_none() {
                    // Back off, and let the client's table catch up with the ring.
                    failures = failures.saturating_add(1);
                    let ms = (20u64 << failures.min(5)).min(1000);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
            }
        }
        if tx.is_closed() {
            return;
        }
    }
}

/// One connection: subscribe, then forward messages until it ends.
async fn session(
    client: &Client,
    addr: SocketAddr,
    topic: &Topic,
    tx: &mpsc::Sender<Message>,
    failures: &mut u32,
) -> End {
    let config = client.shared().conn_config();
    let Ok(mut sock) = crate::conn::dial(addr, config).await else {
        return End::Again(None);
    };
    let mut out = BytesMut::new();
    match (&config.username, &config.password) {
        (Some(user), Some(pw)) => resp::encode_command(&[&b"AUTH"[..], user, pw], &mut out),
        (None, Some(pw)) => resp::encode_command(&[&b"AUTH"[..], pw], &mut out),
        _ => {}
    }
    let (name, names): (&[u8], Vec<&[u8]>) = match topic {
        Topic::Channels(c) => (b"SUBSCRIBE", c.iter().map(|b| &b[..]).collect()),
        Topic::Patterns(p) => (b"PSUBSCRIBE", p.iter().map(|b| &b[..]).collect()),
        Topic::Shard(c) => (b"SSUBSCRIBE", vec![&c[..]]),
    };
    let mut args = vec![name];
    args.extend(names);
    resp::encode_command(&args, &mut out);
    if sock.write_all(&out).await.is_err() || sock.flush().await.is_err() {
        return End::Again(None);
    }
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut scanner = Scanner::new();
    loop {
        loop {
            let len = match scanner.scan(&buf) {
                Ok(Some(len)) => len,
                Ok(None) => break,
                Err(_) => return End::Again(None),
            };
            let frame = buf.split_to(len).freeze();
            scanner = Scanner::new();
            let Ok(value) = resp::parse_shared(&frame) else {
                return End::Again(None);
            };
            match event(value) {
                Event::Message(m) => {
                    if tx.send(m).await.is_err() {
                        return End::Dropped;
                    }
                }
                Event::Subscribed => *failures = 0,
                // Our shard channel's slot moved away: subscribe at the new owner.
                Event::Unsubscribed => return End::Again(None),
                // Over TLS the node names its TLS port; we dial by client address.
                Event::Moved(a) => {
                    let a = config.tls.as_ref().map_or(a, |t| t.client_of(a));
                    return End::Again(Some(a));
                }
                Event::Error => return End::Again(None),
                Event::Other => {}
            }
        }
        if buf.len() > MAX_BUFFER {
            return End::Again(None);
        }
        buf.reserve(16 * 1024);
        tokio::select! {
            r = sock.read_buf(&mut buf) => match r {
                Ok(0) | Err(_) => return End::Again(None),
                Ok(_) => {}
            },
            _ = tx.closed() => return End::Dropped,
        }
    }
}

enum Event {
    Message(Message),
    Subscribed,
    Unsubscribed,
    Moved(SocketAddr),
    Error,
    Other,
}

fn event(value: Value) -> Event {
    let items = match value {
        Value::Array(items) | Value::Push(items) => items,
        Value::Error(e) => {
            return match e.kind() {
                ServerErrorKind::Moved { addr, .. } => Event::Moved(addr),
                _ => Event::Error,
            }
        }
        _ => return Event::Other,
    };
    let bulk = |v: &Value| match v {
        Value::Bulk(b) => Some(b.clone()),
        _ => None,
    };
    let kind = items.first().and_then(bulk).unwrap_or_default();
    match (&kind[..], items.len()) {
        (b"message" | b"smessage", 3) => match (bulk(&items[1]), bulk(&items[2])) {
            (Some(channel), Some(payload)) => Event::Message(Message {
                pattern: None,
                channel,
                payload,
            }),
            _ => Event::Other,
        },
        (b"pmessage", 4) => match (bulk(&items[1]), bulk(&items[2]), bulk(&items[3])) {
            (Some(p), Some(channel), Some(payload)) => Event::Message(Message {
                pattern: Some(p),
                channel,
                payload,
            }),
            _ => Event::Other,
        },
        (b"subscribe" | b"psubscribe" | b"ssubscribe", 3) => Event::Subscribed,
        (b"sunsubscribe", 3) => Event::Unsubscribed,
        _ => Event::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(b: &[u8]) -> Value {
        resp::parse(b).expect("valid RESP")
    }

    #[test]
    fn events_from_replies() {
        let m = event(parse(b"*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$2\r\nhi\r\n"));
        assert!(
            matches!(m, Event::Message(Message { ref channel, ref payload, pattern: None })
            if &channel[..] == b"c" && &payload[..] == b"hi")
        );
        let p = event(parse(
            b">4\r\n$8\r\npmessage\r\n$2\r\nc*\r\n$1\r\nc\r\n$2\r\nhi\r\n",
        ));
        assert!(
            matches!(p, Event::Message(Message { pattern: Some(ref p), .. }) if &p[..] == b"c*")
        );
        assert!(matches!(
            event(parse(b"*3\r\n$12\r\nsunsubscribe\r\n$1\r\nc\r\n:0\r\n")),
            Event::Unsubscribed
        ));
        assert!(matches!(
            event(parse(b"-MOVED 12 127.0.0.1:7000\r\n")),
            Event::Moved(a) if a.port() == 7000
        ));
        assert!(matches!(event(parse(b"+OK\r\n")), Event::Other));
    }
}
