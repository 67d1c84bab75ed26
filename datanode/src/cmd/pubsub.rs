//! Pub/Sub commands: SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE and their UN- forms, PUBLISH,
//! SPUBLISH, PUBSUB, RESET, and the peer-only CHKV.PUBLISH.
//!
//! Subscription confirmations are pushed into the connection's outbox
//! ([`crate::pubsub::Subscriber`]) instead of being returned, so they stay in order with the
//! messages; the handler sets [`Session::no_reply`].
//!
//! In a cluster, PUBLISH delivers here and sends CHKV.PUBLISH to every other DataNode, so a
//! subscriber anywhere receives it, as in Redis Cluster; the reply counts the receivers of
//! this node only, as Redis Cluster's does. Sharded channels live on the owner of their slot:
//! SPUBLISH is routed like a key command, SSUBSCRIBE on a node that does not own the slot gets
//! `-MOVED` on every connection (plain ones too: a subscription cannot be forwarded), and a
//! slot moving away ends its subscriptions with a `sunsubscribe` notice.

use super::flags::*;
use super::*;
use crate::outbuf::ClassLimit;
use crate::pubsub::Kind;
use bytes::Bytes;
use std::time::Instant;

const P: &str = "pubsub";

/// The internal command a DataNode sends its peers to deliver a PUBLISH.
pub const PEER_PUBLISH: &str = "chkv.publish";

pub static COMMANDS: &[CommandSpec] = &[
    spec(
        "subscribe",
        -2,
        PUBSUB | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        P,
        "2.0.0",
        "Listens for messages published to channels.",
        "channel [channel ...]",
        subscribe,
    ),
    spec(
        "unsubscribe",
        -1,
        PUBSUB | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        P,
        "2.0.0",
        "Stops listening to messages posted to channels.",
        "[channel [channel ...]]",
        unsubscribe,
    ),
    spec(
        "psubscribe",
        -2,
        PUBSUB | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        P,
        "2.0.0",
        "Listens for messages published to channels that match one or more patterns.",
        "pattern [pattern ...]",
        psubscribe,
    ),
    spec(
        "punsubscribe",
        -1,
        PUBSUB | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        P,
        "2.0.0",
        "Stops listening to messages published to channels that match one or more patterns.",
        "[pattern [pattern ...]]",
        punsubscribe,
    ),
    spec(
        "publish",
        3,
        PUBSUB | LOADING | STALE | FAST,
        NO_KEYS,
        P,
        "2.0.0",
        "Posts a message to a channel.",
        "channel message",
        publish,
    ),
    spec(
        "ssubscribe",
        -2,
        PUBSUB | NOSCRIPT | LOADING | STALE,
        (1, -1, 1),
        P,
        "7.0.0",
        "Listens for messages published to shard channels.",
        "shardchannel [shardchannel ...]",
        ssubscribe,
    ),
    // Redis declares its channels as keys; here it is keyless so that it always runs on the
    // connection's own node, where its subscriptions are.
    spec(
        "sunsubscribe",
        -1,
        PUBSUB | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        P,
        "7.0.0",
        "Stops listening to messages posted to shard channels.",
        "[shardchannel [shardchannel ...]]",
        sunsubscribe,
    ),
    spec(
        "spublish",
        3,
        PUBSUB | LOADING | STALE | FAST,
        (1, 1, 1),
        P,
        "7.0.0",
        "Post a message to a shard channel",
        "shardchannel message",
        spublish,
    ),
    CommandSpec {
        subcommands: PUBSUB_SUBCOMMANDS,
        ..spec(
            "pubsub",
            -2,
            0,
            NO_KEYS,
            P,
            "2.8.0",
            "A container for Pub/Sub commands.",
            "",
            super::server::container,
        )
    },
    spec(
        "reset",
        1,
        NOSCRIPT | LOADING | STALE | FAST | NO_AUTH,
        NO_KEYS,
        "connection",
        "6.2.0",
        "Resets the connection.",
        "",
        reset,
    ),
    spec(
        PEER_PUBLISH,
        3,
        PUBSUB | LOADING | STALE | FAST | ADMIN,
        NO_KEYS,
        P,
        "7.2.4",
        "Internal: delivers a PUBLISH received by another DataNode (peer connections only).",
        "channel message",
        peer_publish,
    ),
];

static PUBSUB_SUBCOMMANDS: &[CommandSpec] = &[
    spec(
        "channels",
        -2,
        PUBSUB | LOADING | STALE,
        NO_KEYS,
        P,
        "2.8.0",
        "Returns the active channels.",
        "[pattern]",
        pubsub_channels,
    ),
    spec(
        "numsub",
        -2,
        PUBSUB | LOADING | STALE,
        NO_KEYS,
        P,
        "2.8.0",
        "Returns a count of subscribers to channels.",
        "[channel [channel ...]]",
        pubsub_numsub,
    ),
    spec(
        "numpat",
        2,
        PUBSUB | LOADING | STALE,
        NO_KEYS,
        P,
        "2.8.0",
        "Returns a count of unique pattern subscriptions.",
        "",
        pubsub_numpat,
    ),
    spec(
        "shardchannels",
        -2,
        PUBSUB | LOADING | STALE,
        NO_KEYS,
        P,
        "7.0.0",
        "Returns the active shard channels.",
        "[pattern]",
        pubsub_shardchannels,
    ),
    spec(
        "shardnumsub",
        -2,
        PUBSUB | LOADING | STALE,
        NO_KEYS,
        P,
        "7.0.0",
        "Returns the count of subscribers of shard channels.",
        "[shardchannel [shardchannel ...]]",
        pubsub_shardnumsub,
    ),
    spec(
        "help",
        2,
        LOADING | STALE,
        NO_KEYS,
        P,
        "6.2.0",
        "Returns helpful text about the different subcommands.",
        "",
        pubsub_help,
    ),
];

/// Commands a RESP2 connection may send while it has subscriptions (Redis's list).
const ALLOWED_WHEN_SUBSCRIBED: &[&str] = &[
    "ping",
    "subscribe",
    "ssubscribe",
    "unsubscribe",
    "sunsubscribe",
    "psubscribe",
    "punsubscribe",
    "quit",
    "reset",
];

/// Redis's refusal of other commands on a subscribed RESP2 connection, or `None`. `top` is
/// the command's name, `sub` the subcommand's (the same for a plain command).
pub fn subscribed_context_error(session: &Session, top: &str, sub: &str) -> Option<Frame> {
    if !session.subscribed_resp2() || ALLOWED_WHEN_SUBSCRIBED.contains(&top) {
        return None;
    }
    let name = if top == sub {
        top.to_string()
    } else {
        format!("{top}|{sub}")
    };
    Some(Frame::error(format!(
        "ERR Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
    )))
}

fn limit(ctx: &Ctx<'_>) -> ClassLimit {
    ctx.node.pubsub.limit()
}

/// Publishes a keyspace notification for `key` (class from [`crate::pubsub::events`],
/// Redis's event name): the one call a command makes after a change.
#[inline]
pub fn notify(ctx: &Ctx<'_>, class: u32, event: &str, key: &[u8]) {
    ctx.node.pubsub.notify_keyspace(class, event, key);
}

/// Arguments from 1 on, copied: a subscription outlives the request's read buffer.
fn names(req: &Request) -> Vec<Bytes> {
    req.iter().skip(1).map(Bytes::copy_from_slice).collect()
}

fn subscribe_to(ctx: &mut Ctx<'_>, req: &Request, kind: Kind) -> Reply {
    let sub = ctx.session.subscriber();
    let lim = limit(ctx);
    ctx.node
        .pubsub
        .subscribe(&sub, kind, names(req), lim, Instant::now());
    ctx.session.no_reply = true;
    Ok(Frame::Null)
}

fn unsubscribe_from(ctx: &mut Ctx<'_>, req: &Request, kind: Kind) -> Reply {
    let sub = ctx.session.subscriber();
    let lim = limit(ctx);
    ctx.node
        .pubsub
        .unsubscribe(&sub, kind, names(req), lim, Instant::now());
    ctx.session.no_reply = true;
    Ok(Frame::Null)
}

fn subscribe(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    subscribe_to(ctx, req, Kind::Channel)
}

fn psubscribe(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    subscribe_to(ctx, req, Kind::Pattern)
}

fn ssubscribe(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    subscribe_to(ctx, req, Kind::Shard)
}

fn unsubscribe(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    unsubscribe_from(ctx, req, Kind::Channel)
}

fn punsubscribe(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    unsubscribe_from(ctx, req, Kind::Pattern)
}

fn sunsubscribe(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    unsubscribe_from(ctx, req, Kind::Shard)
}

/// Delivers a message to this node's subscribers; the receiver count.
pub fn deliver(node: &crate::node::Node, kind: Kind, channel: &[u8], message: &[u8]) -> i64 {
    let lim = node.pubsub.limit();
    node.pubsub
        .publish(kind, channel, message, lim, Instant::now()) as i64
}

fn publish(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let n = deliver(ctx.node, Kind::Channel, req.arg(1), req.arg(2));
    if ctx.session.redirects != Redirects::Internal {
        fan_out(ctx.node, req.arg(1), req.arg(2));
    }
    Ok(Frame::Integer(n))
}

/// Sends a PUBLISH to every other DataNode of the cluster, without waiting for replies.
/// Messages from one connection reach each peer in order (one pipelined link per peer).
///
/// Bounded by the `pubsub` class of `client-output-buffer-limit`: while the messages queued
/// for a peer and not yet written to it (a peer that stops reading, or is unreachable) hold
/// more than the hard limit, further messages for that peer are dropped (delivery is at
/// most once, as in Redis) and counted in INFO's `pubsub_fanout_dropped`.
fn fan_out(node: &crate::node::Node, channel: &[u8], message: &[u8]) {
    let routing = node.routing();
    if routing.standalone {
        return;
    }
    let mut encoded: Option<Bytes> = None;
    let limit = usize::try_from(node.pubsub.limit().hard).unwrap_or(usize::MAX);
    for (i, n) in routing.nodes.iter().enumerate() {
        if Some(i as u16) == routing.me {
            continue;
        }
        let data = encoded.get_or_insert_with(|| {
            let mut buf = bytes::BytesMut::new();
            Request::from_args([PEER_PUBLISH.as_bytes(), channel, message]).encode_into(&mut buf);
            buf.freeze()
        });
        // The reply (the peer's receiver count) is not needed.
        if !node.peers.send_bounded(
            n.client_addr,
            crate::resp::Protocol::Resp2,
            data.clone(),
            limit,
        ) {
            node.pubsub.fanout_dropped();
        }
    }
}

fn peer_publish(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    if ctx.session.redirects != Redirects::Internal {
        return Err(Frame::err(
            "ERR chkv.publish is internal: only accepted on DataNode peer connections",
        ));
    }
    Ok(Frame::Integer(deliver(
        ctx.node,
        Kind::Channel,
        req.arg(1),
        req.arg(2),
    )))
}

fn spublish(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    Ok(Frame::Integer(deliver(
        ctx.node,
        Kind::Shard,
        req.arg(1),
        req.arg(2),
    )))
}

fn channel_list(ctx: &mut Ctx<'_>, req: &Request, kind: Kind) -> Reply {
    if req.len() > 3 {
        return Err(wrong_arity(if kind == Kind::Shard {
            "pubsub|shardchannels"
        } else {
            "pubsub|channels"
        }));
    }
    let pattern = (req.len() == 3).then(|| req.arg(2));
    Ok(Frame::Array(
        ctx.node
            .pubsub
            .channels(kind, pattern)
            .into_iter()
            .map(Frame::Bulk)
            .collect(),
    ))
}

fn pubsub_channels(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    channel_list(ctx, req, Kind::Channel)
}

fn pubsub_shardchannels(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    channel_list(ctx, req, Kind::Shard)
}

fn numsub(ctx: &mut Ctx<'_>, req: &Request, kind: Kind) -> Reply {
    Ok(Frame::Map(
        req.iter()
            .skip(2)
            .map(|c| {
                (
                    Frame::bulk(c),
                    Frame::Integer(ctx.node.pubsub.numsub(kind, c) as i64),
                )
            })
            .collect(),
    ))
}

fn pubsub_numsub(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    numsub(ctx, req, Kind::Channel)
}

fn pubsub_shardnumsub(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    numsub(ctx, req, Kind::Shard)
}

fn pubsub_numpat(ctx: &mut Ctx<'_>, _req: &Request) -> Reply {
    Ok(Frame::Integer(ctx.node.pubsub.len(Kind::Pattern) as i64))
}

fn pubsub_help(_ctx: &mut Ctx<'_>, _req: &Request) -> Reply {
    Ok(Frame::Array(
        [
            "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "CHANNELS [<pattern>]",
            "    Return the currently active channels matching a <pattern> (default: '*').",
            "NUMPAT",
            "    Return number of subscriptions to patterns.",
            "NUMSUB [<channel> ...]",
            "    Return the number of subscribers for the specified channels, excluding",
            "    pattern subscriptions(default: no channels).",
            "SHARDCHANNELS [<pattern>]",
            "    Return the currently active shard level channels matching a <pattern> (default: '*').",
            "SHARDNUMSUB [<shardchannel> ...]",
            "    Return the number of subscribers for the specified shard level channel(s)",
            "HELP",
            "    Print this help.",
        ]
        .iter()
        .map(|l| Frame::simple(l))
        .collect(),
    ))
}

/// RESET: the connection as if new: no subscriptions, RESP2, no name, and authenticated
/// only if no password is required.
fn reset(ctx: &mut Ctx<'_>, _req: &Request) -> Reply {
    ctx.node.tracking.disable(&ctx.session.client);
    ctx.session.tracking = None;
    ctx.session.track_caching = false;
    if let Some(sub) = &ctx.session.pubsub {
        ctx.node.pubsub.drop_subscriber(sub);
        sub.set_proto(crate::resp::Protocol::Resp2);
    }
    ctx.session.proto = crate::resp::Protocol::Resp2;
    ctx.session.reply_mode = ReplyMode::On;
    ctx.session
        .client
        .resp
        .store(2, std::sync::atomic::Ordering::Relaxed);
    *ctx.session.client.name.lock() = None;
    ctx.session.authenticated = ctx.node.config().requirepass.is_none();
    Ok(Frame::simple("RESET"))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use bytes::BytesMut;

    fn pushed(h: &Harness) -> String {
        let mut out = BytesMut::new();
        if let Some(s) = &h.session.pubsub {
            s.drain(&mut out).expect("alive");
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The (channel, message) pairs of the pmessages queued for `h`.
    fn events_of(h: &Harness) -> Vec<(String, String)> {
        let text = pushed(h);
        let mut out = Vec::new();
        let parts: Vec<&str> = text.split("\r\n").collect();
        let mut i = 0;
        while i + 8 < parts.len() {
            if (parts[i] == "*4" || parts[i] == ">4") && parts[i + 2] == "pmessage" {
                out.push((parts[i + 6].to_string(), parts[i + 8].to_string()));
                i += 9;
            } else {
                i += 1;
            }
        }
        out
    }

    #[test]
    fn commands_emit_redis_keyspace_events() {
        let mut h = Harness::new();
        assert_eq!(
            h.run(&["CONFIG", "SET", "notify-keyspace-events", "KEA"]),
            Frame::ok()
        );
        assert_eq!(
            h.run(&["CONFIG", "GET", "notify-keyspace-events"]),
            Frame::Map(vec![(bulk("notify-keyspace-events"), bulk("AKE"))])
        );
        assert!(h
            .run(&["CONFIG", "SET", "notify-keyspace-events", "KEQ"])
            .is_error());
        h.run(&["HELLO", "3"]);
        h.run(&["PSUBSCRIBE", "__keyevent@0__:*"]);
        pushed(&h);
        let script: &[(&[&str], &[&str])] = &[
            (&["SET", "a", "1"], &["set"]),
            (&["SET", "a", "2", "EX", "100"], &["set", "expire"]),
            (&["INCRBY", "a", "3"], &["incrby"]),
            (&["INCRBYFLOAT", "a", "1.5"], &["incrbyfloat"]),
            (&["APPEND", "a", "x"], &["append"]),
            (&["SETRANGE", "a", "0", "y"], &["setrange"]),
            // The TTL survived the writes above.
            (&["PERSIST", "a"], &["persist"]),
            (&["PERSIST", "a"], &[]),
            (&["EXPIRE", "a", "100"], &["expire"]),
            (&["RENAME", "a", "b"], &["rename_from", "rename_to"]),
            (&["COPY", "b", "c"], &["copy_to"]),
            (&["MSET", "d", "1", "e", "2"], &["set", "set"]),
            (&["GETDEL", "d"], &["del"]),
            (&["DEL", "b", "c", "missing"], &["del", "del"]),
            (&["EXPIRE", "e", "0"], &["del"]),
            (&["GET", "missing"], &[]),
        ];
        for (cmd, want) in script {
            assert!(!h.run(cmd).is_error(), "{cmd:?}");
            let got: Vec<String> = events_of(&h)
                .into_iter()
                .map(|(chan, _)| chan.trim_start_matches("__keyevent@0__:").to_string())
                .collect();
            assert_eq!(got, *want, "{cmd:?}");
        }
        // `n` and `m` are not part of `A`.
        h.run(&["CONFIG", "SET", "notify-keyspace-events", "Enm"]);
        h.run(&["SET", "new1", "v"]);
        h.run(&["SET", "new1", "w"]);
        h.run(&["GET", "nothing"]);
        assert_eq!(
            events_of(&h),
            vec![
                ("__keyevent@0__:new".to_string(), "new1".to_string()),
                ("__keyevent@0__:keymiss".to_string(), "nothing".to_string())
            ]
        );
        // Expiry found by a read (lazy) and by the store's sampling (active).
        h.run(&["CONFIG", "SET", "notify-keyspace-events", "Kx"]);
        h.run(&["PSUBSCRIBE", "__keyspace@0__:*"]);
        pushed(&h);
        h.run(&["SET", "lazy", "v", "PX", "10"]);
        h.run(&["SET", "active", "v", "PX", "10"]);
        h.now += 20;
        assert_eq!(h.run(&["GET", "lazy"]), Frame::Null);
        let mut rng = {
            use rand::SeedableRng;
            rand::rngs::SmallRng::seed_from_u64(1)
        };
        h.node.db.active_expire(h.now, 1000, &mut rng);
        assert_eq!(
            events_of(&h),
            vec![
                ("__keyspace@0__:lazy".to_string(), "expired".to_string()),
                ("__keyspace@0__:active".to_string(), "expired".to_string())
            ]
        );
    }

    /// Hashes, bitmaps, HyperLogLogs and the `new` event of the other collections: Redis
    /// 7.0's event names, in its order.
    #[test]
    fn hash_bitmap_and_hll_writes_emit_redis_keyspace_events() {
        let mut h = Harness::new();
        h.run(&["CONFIG", "SET", "notify-keyspace-events", "KEAn"]);
        h.run(&["HELLO", "3"]);
        h.run(&["PSUBSCRIBE", "__keyevent@0__:*"]);
        pushed(&h);
        let script: &[(&[&str], &[&str])] = &[
            (&["HSET", "h", "a", "1"], &["new", "hset"]),
            (&["HMSET", "h", "a", "1", "b", "2"], &["hset"]),
            (&["HSETNX", "h", "a", "9"], &[]),
            (&["HSETNX", "h", "c", "3"], &["hset"]),
            (&["HINCRBY", "h", "a", "10"], &["hincrby"]),
            (&["HINCRBY", "h", "b", "x"], &[]),
            (&["HINCRBYFLOAT", "h", "b", "1.5"], &["hincrbyfloat"]),
            (&["HINCRBY", "h2", "a", "1"], &["new", "hincrby"]),
            (&["HDEL", "h", "missing"], &[]),
            (&["HDEL", "h", "a", "b"], &["hdel"]),
            (&["HDEL", "h", "c"], &["hdel", "del"]),
            (&["HGET", "h2", "a"], &[]),
            (&["SETBIT", "b", "7", "1"], &["new", "setbit"]),
            // Like Redis 7.0: nothing when the bit does not change and the string not grow.
            (&["SETBIT", "b", "7", "1"], &[]),
            (&["SETBIT", "b", "7", "0"], &["setbit"]),
            (&["SETBIT", "b", "7", "1"], &["setbit"]),
            (&["SETBIT", "b", "15", "0"], &["setbit"]),
            (&["BITFIELD", "b", "SET", "u8", "8", "255"], &["setbit"]),
            (&["BITFIELD", "b", "SET", "u8", "8", "255"], &[]),
            (&["BITFIELD", "b", "INCRBY", "u8", "8", "0"], &["setbit"]),
            (&["BITFIELD", "b", "SET", "u8", "16", "0"], &["setbit"]),
            (&["BITFIELD", "b", "GET", "u8", "0"], &[]),
            (
                &[
                    "BITFIELD", "b2", "OVERFLOW", "FAIL", "INCRBY", "u2", "0", "9",
                ],
                &["new"],
            ),
            (&["BITOP", "OR", "dest", "b", "b2"], &["new", "set"]),
            (&["BITOP", "OR", "dest", "b"], &["set"]),
            (&["BITOP", "AND", "dest", "nothing"], &["del"]),
            (&["BITOP", "AND", "dest", "nothing"], &[]),
            (&["PFADD", "hll", "a"], &["new", "pfadd"]),
            (&["PFADD", "hll", "a"], &[]),
            (&["PFADD", "hll", "b"], &["pfadd"]),
            (&["PFMERGE", "hll2", "hll"], &["new", "pfadd"]),
            (&["PFMERGE", "hll2", "hll"], &["pfadd"]),
            (&["PFCOUNT", "hll", "hll2"], &[]),
            (&["SADD", "s", "a"], &["new", "sadd"]),
            (&["SADD", "s", "b"], &["sadd"]),
            (&["SMOVE", "s", "s2", "a"], &["srem", "new", "sadd"]),
            (&["SUNIONSTORE", "s3", "s", "s2"], &["new", "sunionstore"]),
            (&["SUNIONSTORE", "s3", "s"], &["sunionstore"]),
        ];
        for (cmd, want) in script {
            h.run(cmd);
            let got: Vec<String> = events_of(&h)
                .into_iter()
                .map(|(chan, _)| chan.trim_start_matches("__keyevent@0__:").to_string())
                .collect();
            assert_eq!(got, *want, "{cmd:?}");
        }
        // RESTORE: `new` and `restore`; with REPLACE and a TTL already past, `del`.
        let Frame::Bulk(dump) = h.run(&["DUMP", "s"]) else {
            panic!("DUMP of a set")
        };
        pushed(&h);
        let restored = |h: &mut Harness, ttl: &[u8], extra: &[&[u8]]| {
            let mut args: Vec<&[u8]> = vec![b"RESTORE", b"r", ttl, &dump];
            args.extend_from_slice(extra);
            assert!(!h.run_bytes(&args).is_error());
            events_of(h)
                .into_iter()
                .map(|(chan, _)| chan.trim_start_matches("__keyevent@0__:").to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(restored(&mut h, b"0", &[]), ["new", "restore"]);
        assert_eq!(restored(&mut h, b"0", &[b"REPLACE"]), ["new", "restore"]);
        // An absolute TTL of 1 ms after the epoch: already expired, only the old one goes.
        assert_eq!(restored(&mut h, b"1", &[b"REPLACE", b"ABSTTL"]), ["del"]);
        assert_eq!(
            restored(&mut h, b"1", &[b"REPLACE", b"ABSTTL"]),
            [] as [&str; 0]
        );
        // Only the classes asked for: `h` alone says nothing about strings or sets.
        h.run(&["CONFIG", "SET", "notify-keyspace-events", "Eh"]);
        h.run(&["HSET", "h3", "a", "1"]);
        h.run(&["SETBIT", "b", "1", "1"]);
        h.run(&["SADD", "s", "z"]);
        assert_eq!(
            events_of(&h),
            vec![("__keyevent@0__:hset".to_string(), "h3".to_string())]
        );
    }

    #[test]
    fn output_limit_config() {
        let mut h = Harness::new();
        assert_eq!(
            h.run(&["CONFIG", "GET", "client-output-buffer-limit"]),
            Frame::Map(vec![(
                bulk("client-output-buffer-limit"),
                bulk("normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60")
            )])
        );
        assert_eq!(
            h.run(&[
                "CONFIG",
                "SET",
                "client-output-buffer-limit",
                "pubsub 1mb 512kb 5"
            ]),
            Frame::ok()
        );
        assert_eq!(
            h.node.config().client_output_buffer_limit.pubsub,
            ClassLimit {
                hard: 1 << 20,
                soft: 512 << 10,
                soft_seconds: 5
            }
        );
        // Publishers take the new limit too.
        assert_eq!(h.node.pubsub.limit().hard, 1 << 20);
        for bad in ["pubsub 1mb", "nobody 1 1 1", "pubsub x 1 1", "normal 1mb 0"] {
            assert!(
                h.run(&["CONFIG", "SET", "client-output-buffer-limit", bad])
                    .is_error(),
                "{bad}"
            );
        }
        // One setting for every class: `normal` is enforced on plain connections as well.
        assert_eq!(
            h.run(&[
                "CONFIG",
                "SET",
                "client-output-buffer-limit",
                "normal 1mb 0 0 pubsub 0 0 0"
            ]),
            Frame::ok()
        );
        let limits = h.node.config().client_output_buffer_limit;
        assert_eq!(limits.pubsub.hard, 0);
        assert_eq!(limits.normal.hard, 1 << 20);
    }

    #[test]
    fn subscribed_resp2_connections_are_restricted() {
        let mut h = Harness::new();
        h.run(&["SUBSCRIBE", "a"]);
        assert!(h.session.no_reply);
        h.session.no_reply = false;
        assert_eq!(pushed(&h), "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(
            h.run(&["GET", "k"]),
            err("ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context")
        );
        assert_eq!(
            h.run(&["CLIENT", "ID"]),
            err("ERR Can't execute 'client|id': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context")
        );
        assert_eq!(h.run(&["PING"]), Frame::Array(vec![bulk("pong"), bulk("")]));
        assert_eq!(
            h.run(&["PING", "x"]),
            Frame::Array(vec![bulk("pong"), bulk("x")])
        );
        assert!(h.run(&["HELLO", "3"]).is_error());
        assert_eq!(h.run(&["RESET"]), Frame::simple("RESET"));
        assert_eq!(h.node.pubsub.len(Kind::Channel), 0);
        assert_eq!(h.run(&["GET", "k"]), Frame::Null);
        // RESP3 connections may run anything.
        h.run(&["HELLO", "3"]);
        h.run(&["SUBSCRIBE", "a"]);
        assert_eq!(pushed(&h), ">3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(h.run(&["GET", "k"]), Frame::Null);
        assert_eq!(h.run(&["PING"]), Frame::simple("PONG"));
    }

    #[test]
    fn publish_counts_local_receivers_and_pubsub_introspects() {
        let mut h = Harness::new();
        h.run(&["SUBSCRIBE", "news", "sport"]);
        h.run(&["PSUBSCRIBE", "n*"]);
        h.run(&["SSUBSCRIBE", "shard"]);
        pushed(&h);
        let mut other = Harness::new();
        // A second session on the same node.
        let addr = "127.0.0.1:2".parse().expect("addr");
        other.session = Session::new(h.node.register_client(addr, addr), true);
        let mut p = |args: &[&str]| {
            let req = Request::from_args(args.iter().map(|s| s.as_bytes()));
            let mut ctx = Ctx {
                node: &h.node,
                session: &mut other.session,
                now: NOW,
            };
            dispatch(&mut ctx, &req)
        };
        assert_eq!(p(&["PUBLISH", "news", "hi"]), int(2));
        assert_eq!(p(&["PUBLISH", "nothing", "hi"]), int(1));
        assert_eq!(p(&["PUBLISH", "zzz", "hi"]), int(0));
        assert_eq!(p(&["SPUBLISH", "shard", "s"]), int(1));
        assert_eq!(p(&["PUBSUB", "NUMPAT"]), int(1));
        assert_eq!(
            p(&["PUBSUB", "NUMSUB", "news", "x"]),
            Frame::Map(vec![(bulk("news"), int(1)), (bulk("x"), int(0))])
        );
        assert_eq!(
            p(&["PUBSUB", "CHANNELS"]),
            Frame::Array(vec![bulk("news"), bulk("sport")])
        );
        assert_eq!(
            p(&["PUBSUB", "CHANNELS", "s*"]),
            Frame::Array(vec![bulk("sport")])
        );
        assert_eq!(
            p(&["PUBSUB", "SHARDCHANNELS"]),
            Frame::Array(vec![bulk("shard")])
        );
        assert_eq!(
            p(&["PUBSUB", "SHARDNUMSUB", "shard"]),
            Frame::Map(vec![(bulk("shard"), int(1))])
        );
        assert!(p(&["CHKV.PUBLISH", "news", "x"]).is_error());
        assert_eq!(
            pushed(&h),
            "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n\
             *4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$2\r\nhi\r\n\
             *4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$7\r\nnothing\r\n$2\r\nhi\r\n\
             *3\r\n$8\r\nsmessage\r\n$5\r\nshard\r\n$1\r\ns\r\n"
        );
        let text = crate::cmd::server::client_cmd::describe(&h.session.client, true);
        assert!(text.contains("flags=P db=0 sub=2 psub=1 ssub=1"), "{text}");
        // A closed connection's subscriptions are forgotten.
        h.node.unregister_client(h.session.client.id);
        assert!(h.node.pubsub.is_empty());
    }
}
