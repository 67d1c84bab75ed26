//! Command categories (`@read`, `@dangerous`, ...) of each command, derived from what the
//! command table already says of it (its flags and its group, Redis's names for both), plus
//! the short lists Redis keeps by hand (`@dangerous`, `@blocking`), so a new command gets its
//! categories with no extra table; and the table as ACL rules see it ([`commands`]), the
//! plain data [`crate::acl`] compiles rules against.

use crate::acl::bit;
use crate::cmd::{flags, table, CommandSpec};
use std::sync::OnceLock;

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
pub(crate) fn categories(spec: &CommandSpec, parent: Option<&CommandSpec>) -> u32 {
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
    // DBSIZE, FLUSHDB, FLUSHALL: server commands over the whole keyspace, @keyspace in Redis.
    if spec.has(flags::KEYSPACE) {
        c |= bit("keyspace");
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
fn all_commands() -> impl Iterator<Item = (u32, &'static CommandSpec, Option<&'static CommandSpec>)>
{
    table().iter().enumerate().flat_map(|(i, top)| {
        std::iter::once((cmd_id(i, None), *top, None)).chain(
            top.subcommands
                .iter()
                .enumerate()
                .map(move |(j, s)| (cmd_id(i, Some(j)), s, Some(*top))),
        )
    })
}

/// Every command and subcommand with its id and categories, as [`crate::acl`] needs them to
/// apply command rules (made once).
pub(crate) fn commands() -> &'static crate::acl::Commands {
    static COMMANDS: OnceLock<crate::acl::Commands> = OnceLock::new();
    COMMANDS.get_or_init(|| {
        crate::acl::Commands::new(
            all_commands()
                .map(|(id, spec, parent)| crate::acl::Command {
                    id,
                    name: spec.name,
                    parent: parent.map(|p| p.name),
                    categories: categories(spec, parent),
                })
                .collect(),
        )
    })
}
