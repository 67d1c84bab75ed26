//! Pub/Sub: who listens to what, and the per-connection outboxes messages are pushed into.
//!
//! A connection that subscribes gets a [`Subscriber`]: its subscriptions and an outbox of
//! encoded messages. A publisher appends to the outboxes of the receivers and wakes their
//! connections, which write the bytes out; it never waits for a socket, so a slow subscriber
//! costs the publisher nothing. Each outbox is bounded by the `pubsub` class of
//! `client-output-buffer-limit` ([`crate::outbuf`]): past the hard limit, or past the soft limit
//! for longer than its seconds, the subscriber is marked killed and its connection closes, as
//! Redis disconnects it.
//!
//! Subscription confirmations (`subscribe`, `unsubscribe`, ...) go through the same outbox
//! as messages, under the registry lock, so a client always reads its confirmation before
//! the first message of a channel and after the last.
//!
//! Lock order: the registry, then a subscriber's state.

use crate::outbuf::{over_limit, ClassLimit};
use crate::resp::{Frame, Protocol};
use crate::store::glob::glob_match;
use bytes::{Bytes, BytesMut};
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Notify;
use tracing::warn;

/// The three kinds of subscription.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Channel,
    Pattern,
    /// Sharded channels (SSUBSCRIBE), served by the owner of the channel's slot.
    Shard,
}

impl Kind {
    fn idx(self) -> usize {
        self as usize
    }

    fn subscribe_name(self) -> &'static str {
        match self {
            Kind::Channel => "subscribe",
            Kind::Pattern => "psubscribe",
            Kind::Shard => "ssubscribe",
        }
    }

    fn unsubscribe_name(self) -> &'static str {
        match self {
            Kind::Channel => "unsubscribe",
            Kind::Pattern => "punsubscribe",
            Kind::Shard => "sunsubscribe",
        }
    }
}

/// A frame encoded at most once per protocol, for all the receivers of one message.
pub struct Encoded {
    frame: Frame,
    resp2: Option<Bytes>,
    resp3: Option<Bytes>,
}

impl Encoded {
    pub fn new(frame: Frame) -> Encoded {
        Encoded {
            frame,
            resp2: None,
            resp3: None,
        }
    }

    fn get(&mut self, proto: Protocol) -> &[u8] {
        let slot = match proto {
            Protocol::Resp2 => &mut self.resp2,
            Protocol::Resp3 => &mut self.resp3,
        };
        slot.get_or_insert_with(|| {
            let mut b = BytesMut::new();
            self.frame.encode(proto, &mut b);
            b.freeze()
        })
    }
}

/// The outbox is gone: the connection exceeded its output limit and must close.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("output buffer limit reached")]
pub struct Killed;

/// One connection's subscriptions and pending pushed messages.
pub struct Subscriber {
    pub client_id: u64,
    state: Mutex<SubState>,
    wake: Notify,
    /// Signalled once, when the output limit kills the subscriber: it interrupts a write to
    /// a client that stopped reading.
    kill: Notify,
}

struct SubState {
    proto: Protocol,
    out: BytesMut,
    over_soft_since: Option<Instant>,
    killed: bool,
    subs: [HashSet<Bytes>; 3],
}

/// What is kept of a drained outbox's capacity.
const KEEP_CAPACITY: usize = 64 * 1024;

impl Subscriber {
    pub fn new(client_id: u64, proto: Protocol) -> Subscriber {
        Subscriber {
            client_id,
            state: Mutex::new(SubState {
                proto,
                out: BytesMut::new(),
                over_soft_since: None,
                killed: false,
                subs: Default::default(),
            }),
            wake: Notify::new(),
            kill: Notify::new(),
        }
    }

    /// Messages pushed from now on are encoded for `proto` (HELLO, RESET).
    pub fn set_proto(&self, proto: Protocol) {
        self.state.lock().proto = proto;
    }

    /// How many subscriptions of `kind` the connection has.
    pub fn count(&self, kind: Kind) -> usize {
        self.state.lock().subs[kind.idx()].len()
    }

    /// Channels plus patterns: the count Redis reports in (P)SUBSCRIBE confirmations.
    fn plain_count(st: &SubState) -> usize {
        st.subs[0].len() + st.subs[1].len()
    }

    /// Whether the connection has any subscription (Redis's "subscribed mode").
    pub fn active(&self) -> bool {
        let st = self.state.lock();
        st.subs.iter().any(|s| !s.is_empty())
    }

    /// Appends a message, enforcing the output limit at `now`. Returns false when the
    /// subscriber is (or just got) killed.
    fn push(&self, msg: &mut Encoded, limit: ClassLimit, now: Instant) -> bool {
        let mut st = self.state.lock();
        if st.killed {
            return false;
        }
        let bytes = msg.get(st.proto);
        let len = (st.out.len() as u64).saturating_add(bytes.len() as u64);
        if over_limit(&mut st.over_soft_since, len, &limit, now) {
            st.killed = true;
            st.out = BytesMut::new();
            drop(st);
            warn!(
                client = self.client_id,
                "closing a subscriber over the pubsub output buffer limit"
            );
            self.wake.notify_one();
            self.kill.notify_one();
            return false;
        }
        let was_empty = st.out.is_empty();
        st.out.extend_from_slice(bytes);
        drop(st);
        if was_empty {
            self.wake.notify_one();
        }
        true
    }

    /// The protocol pushed messages are encoded for.
    pub fn proto(&self) -> Protocol {
        self.state.lock().proto
    }

    /// Pushes a client-side caching invalidation (`keys`: an array of keys, or null for
    /// "everything"): a RESP3 `invalidate` push, or, for a RESP2 connection in subscribed mode
    /// that a tracking client redirects to, a message on `__redis__:invalidate` (as Redis).
    /// Returns false when the connection cannot receive one (RESP2, not subscribed).
    pub fn push_invalidation(
        &self,
        keys: &Frame,
        redirected: bool,
        limit: ClassLimit,
        now: Instant,
    ) -> bool {
        let (proto, subscribed) = {
            let st = self.state.lock();
            (st.proto, st.subs.iter().any(|s| !s.is_empty()))
        };
        let frame = match proto {
            Protocol::Resp3 => Frame::Push(vec![Frame::bulk_static("invalidate"), keys.clone()]),
            Protocol::Resp2 if redirected && subscribed => Frame::Push(vec![
                Frame::bulk_static("message"),
                Frame::bulk_static(TRACKING_CHANNEL),
                keys.clone(),
            ]),
            Protocol::Resp2 => return false,
        };
        self.push(&mut Encoded::new(frame), limit, now)
    }

    /// Pushes `frame` (RESP3 connections only; RESP2 has no out-of-band messages).
    pub fn push_resp3(&self, frame: Frame, limit: ClassLimit, now: Instant) -> bool {
        self.proto() == Protocol::Resp3 && self.push(&mut Encoded::new(frame), limit, now)
    }

    /// Moves the pending bytes to `into`; `Err` when the connection must close.
    pub fn drain(&self, into: &mut BytesMut) -> Result<(), Killed> {
        let mut st = self.state.lock();
        if st.killed {
            return Err(Killed);
        }
        if !st.out.is_empty() {
            into.extend_from_slice(&st.out);
            st.out.clear();
            st.over_soft_since = None;
            if st.out.capacity() > KEEP_CAPACITY {
                st.out = BytesMut::new();
            }
        }
        Ok(())
    }

    /// Completes when something was pushed (or the subscriber was killed) since the last
    /// wake-up. A push that happens before this is awaited is not lost.
    pub async fn pushed(&self) {
        self.wake.notified().await
    }

    /// Completes once the subscriber has been killed by the output limit.
    pub async fn killed(&self) {
        while !self.is_killed() {
            self.kill.notified().await;
        }
    }

    fn is_killed(&self) -> bool {
        self.state.lock().killed
    }
}

/// The channel RESP2 connections receive redirected tracking invalidations on.
pub const TRACKING_CHANNEL: &str = "__redis__:invalidate";

type Subs = BTreeMap<u64, Arc<Subscriber>>;

#[derive(Default)]
struct Registry {
    /// Channel (or pattern) -> its subscribers, per [`Kind`].
    maps: [HashMap<Bytes, Subs>; 3],
}

/// Keyspace notification classes: the letters of `notify-keyspace-events`.
pub mod events {
    pub const KEYSPACE: u32 = 1 << 0; // K
    pub const KEYEVENT: u32 = 1 << 1; // E
    pub const GENERIC: u32 = 1 << 2; // g
    pub const STRING: u32 = 1 << 3; // $
    pub const LIST: u32 = 1 << 4; // l
    pub const SET: u32 = 1 << 5; // s
    pub const HASH: u32 = 1 << 6; // h
    pub const ZSET: u32 = 1 << 7; // z
    pub const EXPIRED: u32 = 1 << 8; // x
    pub const EVICTED: u32 = 1 << 9; // e
    pub const STREAM: u32 = 1 << 10; // t
    pub const KEY_MISS: u32 = 1 << 11; // m
    pub const MODULE: u32 = 1 << 12; // d
    pub const NEW: u32 = 1 << 13; // n
    /// `A`: every class but key-miss and new.
    pub const ALL: u32 =
        GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

    /// Parses the flags as Redis does; `None` on an unknown letter.
    pub fn parse(s: &[u8]) -> Option<u32> {
        s.iter().try_fold(0, |f, c| {
            Some(
                f | match c {
                    b'A' => ALL,
                    b'g' => GENERIC,
                    b'$' => STRING,
                    b'l' => LIST,
                    b's' => SET,
                    b'h' => HASH,
                    b'z' => ZSET,
                    b'x' => EXPIRED,
                    b'e' => EVICTED,
                    b'K' => KEYSPACE,
                    b'E' => KEYEVENT,
                    b't' => STREAM,
                    b'm' => KEY_MISS,
                    b'd' => MODULE,
                    b'n' => NEW,
                    _ => return None,
                },
            )
        })
    }

    /// The flags in Redis's canonical spelling (`AKE`, `gKE`, `$lshzxeKE`).
    pub fn to_string(f: u32) -> String {
        let mut s = String::new();
        if f & ALL == ALL {
            s.push('A');
        } else {
            for (bit, c) in [
                (GENERIC, 'g'),
                (STRING, '$'),
                (LIST, 'l'),
                (SET, 's'),
                (HASH, 'h'),
                (ZSET, 'z'),
                (EXPIRED, 'x'),
                (EVICTED, 'e'),
                (STREAM, 't'),
                (MODULE, 'd'),
                (NEW, 'n'),
            ] {
                if f & bit != 0 {
                    s.push(c);
                }
            }
        }
        for (bit, c) in [(KEYSPACE, 'K'), (KEYEVENT, 'E'), (KEY_MISS, 'm')] {
            if f & bit != 0 {
                s.push(c);
            }
        }
        s
    }
}

/// A node's Pub/Sub state.
#[derive(Default)]
pub struct PubSub {
    registry: RwLock<Registry>,
    /// `notify-keyspace-events` as [`events`] bits; read on every write, changed by CONFIG SET.
    notify: AtomicU32,
    /// A copy of the config's `pubsub` output limit, for publishers without the config (the
    /// store's expiry and eviction).
    limit: Mutex<ClassLimit>,
    /// Messages not sent to a peer because those queued for it held the pubsub hard limit.
    fanout_dropped: std::sync::atomic::AtomicU64,
}

fn push_frame(kind: &'static str, a: Frame, b: Frame) -> Frame {
    Frame::Push(vec![Frame::bulk_static(kind), a, b])
}

impl PubSub {
    /// Takes the settings that concern Pub/Sub from a config about to be published.
    pub fn configure(&self, config: &crate::config::Config) {
        *self.limit.lock() = config.client_output_buffer_limit.pubsub;
        self.notify.store(config.notify_keyspace_events, Relaxed);
    }

    /// The output limit publishers apply.
    pub fn limit(&self) -> ClassLimit {
        *self.limit.lock()
    }

    /// Counts a message not fanned out to a peer (see `cmd::pubsub::fan_out`).
    pub fn fanout_dropped(&self) {
        self.fanout_dropped.fetch_add(1, Relaxed);
    }

    /// Messages not fanned out to a peer so far (INFO `pubsub_fanout_dropped`).
    pub fn fanout_dropped_total(&self) -> u64 {
        self.fanout_dropped.load(Relaxed)
    }

    /// Publishes a keyspace notification for `key` if the class is enabled: `event` on
    /// `__keyspace@0__:<key>` (K) and `key` on `__keyevent@0__:<event>` (E), to this node's
    /// subscribers (the node that holds the key).
    #[inline]
    pub fn notify_keyspace(&self, class: u32, event: &str, key: &[u8]) {
        let flags = self.notify.load(Relaxed);
        if flags & class != 0 {
            self.publish_keyspace(flags, event, key);
        }
    }

    #[cold]
    #[inline(never)]
    fn publish_keyspace(&self, flags: u32, event: &str, key: &[u8]) {
        let (limit, now) = (self.limit(), Instant::now());
        if flags & events::KEYSPACE != 0 {
            let mut chan = b"__keyspace@0__:".to_vec();
            chan.extend_from_slice(key);
            self.publish(Kind::Channel, &chan, event.as_bytes(), limit, now);
        }
        if flags & events::KEYEVENT != 0 {
            let chan = format!("__keyevent@0__:{event}");
            self.publish(Kind::Channel, chan.as_bytes(), key, limit, now);
        }
    }

    /// Subscribes `sub` to `names` of `kind`, pushing one confirmation per name.
    pub fn subscribe(
        &self,
        sub: &Arc<Subscriber>,
        kind: Kind,
        names: impl IntoIterator<Item = Bytes>,
        limit: ClassLimit,
        now: Instant,
    ) {
        let mut reg = self.registry.write();
        for name in names {
            let count = {
                let mut st = sub.state.lock();
                if st.subs[kind.idx()].insert(name.clone()) {
                    reg.maps[kind.idx()]
                        .entry(name.clone())
                        .or_default()
                        .insert(sub.client_id, sub.clone());
                }
                match kind {
                    Kind::Shard => st.subs[2].len(),
                    _ => Subscriber::plain_count(&st),
                }
            };
            let mut msg = Encoded::new(push_frame(
                kind.subscribe_name(),
                Frame::Bulk(name),
                Frame::Integer(count as i64),
            ));
            sub.push(&mut msg, limit, now);
        }
    }

    /// Unsubscribes `sub` from `names` of `kind` (all of them when empty), pushing one
    /// confirmation per name, or one with a null name when there was nothing to leave.
    pub fn unsubscribe(
        &self,
        sub: &Arc<Subscriber>,
        kind: Kind,
        names: Vec<Bytes>,
        limit: ClassLimit,
        now: Instant,
    ) {
        let mut reg = self.registry.write();
        let names = if names.is_empty() {
            let mut all: Vec<Bytes> = sub.state.lock().subs[kind.idx()].iter().cloned().collect();
            all.sort();
            all
        } else {
            names
        };
        if names.is_empty() {
            let count = {
                let st = sub.state.lock();
                match kind {
                    Kind::Shard => st.subs[2].len(),
                    _ => Subscriber::plain_count(&st),
                }
            };
            let mut msg = Encoded::new(push_frame(
                kind.unsubscribe_name(),
                Frame::Null,
                Frame::Integer(count as i64),
            ));
            sub.push(&mut msg, limit, now);
            return;
        }
        for name in names {
            let count = {
                let mut st = sub.state.lock();
                if st.subs[kind.idx()].remove(&name) {
                    remove_from(&mut reg.maps[kind.idx()], &name, sub.client_id);
                }
                match kind {
                    Kind::Shard => st.subs[2].len(),
                    _ => Subscriber::plain_count(&st),
                }
            };
            let mut msg = Encoded::new(push_frame(
                kind.unsubscribe_name(),
                Frame::Bulk(name),
                Frame::Integer(count as i64),
            ));
            sub.push(&mut msg, limit, now);
        }
    }

    /// Forgets every subscription of `sub` without confirmations (the connection closed).
    pub fn drop_subscriber(&self, sub: &Subscriber) {
        let mut reg = self.registry.write();
        let mut st = sub.state.lock();
        for (i, set) in st.subs.iter_mut().enumerate() {
            for name in set.drain() {
                remove_from(&mut reg.maps[i], &name, sub.client_id);
            }
        }
    }

    /// Delivers a message to the subscribers of `channel` (and, for [`Kind::Channel`], of
    /// the patterns matching it). Returns how many receivers it was queued for.
    pub fn publish(
        &self,
        kind: Kind,
        channel: &[u8],
        message: &[u8],
        limit: ClassLimit,
        now: Instant,
    ) -> usize {
        let reg = self.registry.read();
        let mut n = 0;
        let name = match kind {
            Kind::Shard => "smessage",
            _ => "message",
        };
        if let Some(subs) = reg.maps[kind.idx()].get(channel) {
            let mut msg =
                Encoded::new(push_frame(name, Frame::bulk(channel), Frame::bulk(message)));
            for s in subs.values() {
                s.push(&mut msg, limit, now);
                n += 1;
            }
        }
        if kind == Kind::Channel {
            for (pattern, subs) in &reg.maps[Kind::Pattern.idx()] {
                if !glob_match(pattern, channel) {
                    continue;
                }
                let mut msg = Encoded::new(Frame::Push(vec![
                    Frame::bulk_static("pmessage"),
                    Frame::Bulk(pattern.clone()),
                    Frame::bulk(channel),
                    Frame::bulk(message),
                ]));
                for s in subs.values() {
                    s.push(&mut msg, limit, now);
                    n += 1;
                }
            }
        }
        n
    }

    /// Channels (or shard channels) with subscribers, filtered by an optional glob pattern.
    pub fn channels(&self, kind: Kind, pattern: Option<&[u8]>) -> Vec<Bytes> {
        let reg = self.registry.read();
        let mut v: Vec<Bytes> = reg.maps[kind.idx()]
            .keys()
            .filter(|c| pattern.is_none_or(|p| glob_match(p, c)))
            .cloned()
            .collect();
        v.sort();
        v
    }

    /// Subscribers of one channel.
    pub fn numsub(&self, kind: Kind, channel: &[u8]) -> usize {
        self.registry.read().maps[kind.idx()]
            .get(channel)
            .map_or(0, |s| s.len())
    }

    /// Distinct channels (or patterns) with at least one subscriber.
    pub fn len(&self, kind: Kind) -> usize {
        self.registry.read().maps[kind.idx()].len()
    }

    /// Whether nobody subscribes to anything.
    pub fn is_empty(&self) -> bool {
        self.registry.read().maps.iter().all(|m| m.is_empty())
    }

    /// Unsubscribes everyone from the shard channels whose slot `lost` says this node no
    /// longer serves, with Redis's `sunsubscribe` notice, so clients subscribe again at the
    /// new owner. Returns how many channels were dropped.
    pub fn drop_shard_slots(
        &self,
        lost: impl Fn(u16) -> bool,
        limit: ClassLimit,
        now: Instant,
    ) -> usize {
        let mut reg = self.registry.write();
        let gone: Vec<Bytes> = reg.maps[Kind::Shard.idx()]
            .keys()
            .filter(|c| lost(chkv_common::key_slot(c)))
            .cloned()
            .collect();
        for name in &gone {
            let Some(subs) = reg.maps[Kind::Shard.idx()].remove(name) else {
                continue;
            };
            for s in subs.values() {
                let count = {
                    let mut st = s.state.lock();
                    st.subs[2].remove(name);
                    st.subs[2].len()
                };
                let mut msg = Encoded::new(push_frame(
                    "sunsubscribe",
                    Frame::Bulk(name.clone()),
                    Frame::Integer(count as i64),
                ));
                s.push(&mut msg, limit, now);
            }
        }
        gone.len()
    }
}

fn remove_from(map: &mut HashMap<Bytes, Subs>, name: &[u8], id: u64) {
    if let Some(subs) = map.get_mut(name) {
        subs.remove(&id);
        if subs.is_empty() {
            map.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn take(s: &Subscriber) -> String {
        let mut out = BytesMut::new();
        s.drain(&mut out).expect("alive");
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn subscribe_publish_unsubscribe() {
        let ps = PubSub::default();
        let now = Instant::now();
        let lim = crate::outbuf::OutputLimits::default().pubsub;
        let a = Arc::new(Subscriber::new(1, Protocol::Resp2));
        let c = Arc::new(Subscriber::new(2, Protocol::Resp3));
        ps.subscribe(&a, Kind::Channel, [b("ch"), b("ch"), b("x")], lim, now);
        assert_eq!(
            take(&a),
            "*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n\
             *3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n\
             *3\r\n$9\r\nsubscribe\r\n$1\r\nx\r\n:2\r\n"
        );
        ps.subscribe(&c, Kind::Pattern, [b("c*")], lim, now);
        assert_eq!(take(&c), ">3\r\n$10\r\npsubscribe\r\n$2\r\nc*\r\n:1\r\n");
        assert_eq!(ps.publish(Kind::Channel, b"ch", b"hi", lim, now), 2);
        assert_eq!(take(&a), "*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n");
        assert_eq!(
            take(&c),
            ">4\r\n$8\r\npmessage\r\n$2\r\nc*\r\n$2\r\nch\r\n$2\r\nhi\r\n"
        );
        assert_eq!(ps.publish(Kind::Shard, b"ch", b"hi", lim, now), 0);
        assert_eq!(ps.numsub(Kind::Channel, b"ch"), 1);
        assert_eq!(ps.len(Kind::Pattern), 1);
        assert_eq!(ps.channels(Kind::Channel, None), vec![b("ch"), b("x")]);
        assert_eq!(ps.channels(Kind::Channel, Some(b"c*")), vec![b("ch")]);
        ps.unsubscribe(&a, Kind::Channel, vec![], lim, now);
        assert_eq!(
            take(&a),
            "*3\r\n$11\r\nunsubscribe\r\n$2\r\nch\r\n:1\r\n\
             *3\r\n$11\r\nunsubscribe\r\n$1\r\nx\r\n:0\r\n"
        );
        ps.unsubscribe(&a, Kind::Channel, vec![], lim, now);
        assert_eq!(take(&a), "*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n");
        assert_eq!(ps.publish(Kind::Channel, b"ch", b"hi", lim, now), 1);
        ps.drop_subscriber(&c);
        assert!(ps.is_empty());
    }

    #[test]
    fn event_flags_parse_and_print_as_redis() {
        for (given, shown) in [
            ("gKE", "gKE"),
            ("$lshzxeKE", "$lshzxeKE"),
            ("KA", "AK"),
            ("EA", "AE"),
            ("En", "nE"),
            ("", ""),
            ("AKEmn", "AKEm"),
        ] {
            let f = events::parse(given.as_bytes()).expect(given);
            assert_eq!(events::to_string(f), shown, "{given}");
        }
        assert_eq!(events::parse(b"KEq"), None);
    }

    #[test]
    fn keyspace_notifications_follow_the_flags() {
        let ps = PubSub::default();
        let now = Instant::now();
        let lim = crate::outbuf::OutputLimits::default().pubsub;
        let s = Arc::new(Subscriber::new(1, Protocol::Resp2));
        ps.subscribe(&s, Kind::Pattern, [b("*")], lim, now);
        take(&s);
        ps.notify_keyspace(events::STRING, "set", b"k");
        assert_eq!(take(&s), "");
        let c = crate::config::Config {
            notify_keyspace_events: events::parse(b"KE$").expect("flags"),
            ..Default::default()
        };
        ps.configure(&c);
        ps.notify_keyspace(events::GENERIC, "del", b"k");
        assert_eq!(take(&s), "");
        ps.notify_keyspace(events::STRING, "set", b"k");
        assert_eq!(
            take(&s),
            "*4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$16\r\n__keyspace@0__:k\r\n$3\r\nset\r\n\
             *4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$18\r\n__keyevent@0__:set\r\n$1\r\nk\r\n"
        );
    }

    #[test]
    fn a_subscriber_over_the_hard_limit_is_killed_not_waited_for() {
        let ps = PubSub::default();
        let now = Instant::now();
        let lim = ClassLimit {
            hard: 1000,
            soft: 0,
            soft_seconds: 0,
        };
        let slow = Arc::new(Subscriber::new(1, Protocol::Resp2));
        ps.subscribe(&slow, Kind::Channel, [b("ch")], lim, now);
        let payload = vec![b'x'; 100];
        for _ in 0..20 {
            ps.publish(Kind::Channel, b"ch", &payload, lim, now);
        }
        assert!(slow.is_killed());
        assert_eq!(slow.drain(&mut BytesMut::new()), Err(Killed));
    }

    #[test]
    fn losing_a_slot_sunsubscribes_its_shard_channels() {
        let ps = PubSub::default();
        let now = Instant::now();
        let lim = crate::outbuf::OutputLimits::default().pubsub;
        let a = Arc::new(Subscriber::new(1, Protocol::Resp2));
        ps.subscribe(&a, Kind::Shard, [b("{a}1"), b("{b}1")], lim, now);
        take(&a);
        let lost = chkv_common::key_slot(b"a");
        assert_eq!(ps.drop_shard_slots(|s| s == lost, lim, now), 1);
        assert_eq!(
            take(&a),
            "*3\r\n$12\r\nsunsubscribe\r\n$4\r\n{a}1\r\n:1\r\n"
        );
        assert_eq!(ps.channels(Kind::Shard, None), vec![b("{b}1")]);
        assert_eq!(a.count(Kind::Shard), 1);
    }
}
