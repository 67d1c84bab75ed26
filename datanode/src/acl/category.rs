//! Command categories (`@read`, `@dangerous`, ...), derived from the command table's flags and groups.

use super::*;

/// Redis's command categories, in `ACL CAT`'s order.
pub const CATEGORIES: &[&str] = &[
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
];

fn cat_bit(name: &str) -> Option<u32> {
    CATEGORIES.iter().position(|c| *c == name).map(|i| 1 << i)
}

pub(super) fn bit(name: &str) -> u32 {
    cat_bit(name).unwrap_or(0)
}

/// Commands Redis puts in `@dangerous` that carry no `admin` flag.
const DANGEROUS: &[&str] = &[
    "keys",
    "flushall",
    "flushdb",
    "sort",
    "sort_ro",
    "migrate",
    "restore",
    "info",
    "role",
    "lastsave",
    "shutdown",
    "monitor",
    "debug",
    "config",
    "swapdb",
    "cluster",
    "client",
    "latency",
    "slowlog",
    "acl",
    "module",
    "failover",
    "replicaof",
    "slaveof",
    "save",
    "bgsave",
    "bgrewriteaof",
    "sync",
    "psync",
];

/// Commands that may block the client (`@blocking`).
const BLOCKING: &[&str] = &[
    "blpop",
    "brpop",
    "brpoplpush",
    "blmove",
    "blmpop",
    "bzpopmin",
    "bzpopmax",
    "bzmpop",
    "xread",
    "xreadgroup",
    "wait",
];

/// The categories of a command (or subcommand, with its parent).
pub fn categories(spec: &CommandSpec, parent: Option<&CommandSpec>) -> u32 {
    let mut c = 0;
    if spec.has(flags::WRITE) {
        c |= bit("write");
    }
    if spec.has(flags::READONLY) {
        c |= bit("read");
    }
    c |= if spec.has(flags::FAST) {
        bit("fast")
    } else {
        bit("slow")
    };
    if spec.has(flags::ADMIN) {
        c |= bit("admin") | bit("dangerous");
    }
    let top = parent.unwrap_or(spec);
    if DANGEROUS.contains(&top.name) {
        c |= bit("dangerous");
    }
    if BLOCKING.contains(&top.name) {
        c |= bit("blocking");
    }
    c |= match spec.group {
        "generic" => bit("keyspace"),
        "string" => bit("string"),
        "hash" => bit("hash"),
        "set" => bit("set"),
        "list" => bit("list"),
        "sorted-set" | "sorted_set" | "sortedset" => bit("sortedset"),
        "bitmap" => bit("bitmap"),
        "hyperloglog" => bit("hyperloglog"),
        "geo" => bit("geo"),
        "stream" => bit("stream"),
        "pubsub" => bit("pubsub"),
        "connection" => bit("connection"),
        "transactions" => bit("transaction"),
        "scripting" => bit("scripting"),
        _ => 0,
    };
    c
}

/// The id dispatch gives a command: the table index, plus one more than the subcommand
/// index in the high bits.
fn cmd_id(top: usize, sub: Option<usize>) -> u32 {
    top as u32 | sub.map_or(0, |s| (s as u32 + 1) << 16)
}

/// Every (id, spec, parent) in the table.
pub(super) fn all_commands(
) -> impl Iterator<Item = (u32, &'static CommandSpec, Option<&'static CommandSpec>)> {
    table().iter().enumerate().flat_map(|(i, top)| {
        std::iter::once((cmd_id(i, None), *top, None)).chain(
            top.subcommands
                .iter()
                .enumerate()
                .map(move |(j, s)| (cmd_id(i, Some(j)), s, Some(*top))),
        )
    })
}
