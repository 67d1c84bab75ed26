//! INFO: the sections, their fields, and the process measurements (RSS, CPU) behind them.

use super::*;
use crate::config::bytes_to_human;
use std::fmt::Write as _;

/// Resident set size of this process in bytes (0 where /proc is missing).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// The process's RSS when the node started (the first call records it; `server::start` makes
/// that call): the memory of an empty node, which Redis counts in `used_memory` as
/// `used_memory_startup` and CHKV's data accounting leaves out.
pub fn startup_rss() -> u64 {
    static STARTUP: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *STARTUP.get_or_init(rss_bytes)
}

/// RSS over the memory the process needs (the data plus an empty node's), as Redis's
/// `mem_fragmentation_ratio` is RSS over everything allocated: about 1 on an empty node and
/// on a healthy full one, above 1.5 when freed memory is not given back.
pub fn fragmentation_ratio(rss: u64, used: u64, startup: u64) -> f64 {
    let needed = used.saturating_add(startup).max(1);
    rss as f64 / needed as f64
}

/// The section title as Redis prints it.
fn section_title(name: &str) -> String {
    match name {
        "cpu" => "CPU".to_string(),
        _ => format!("{}{}", name[..1].to_ascii_uppercase(), &name[1..]),
    }
}

const DEFAULT_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "errorstats",
    "cluster",
    "keyspace",
];

/// Every section, in INFO's order (`commandstats` only when asked for, or with `all`).
const ALL_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "commandstats",
    "errorstats",
    "cluster",
    "keyspace",
];

pub(super) fn info(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let mut wanted: Vec<String> = req
        .iter()
        .skip(1)
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    if wanted.iter().any(|w| w == "all" || w == "everything") {
        wanted = ALL_SECTIONS.iter().map(|s| s.to_string()).collect();
    } else if wanted.is_empty() || wanted.iter().any(|w| w == "default") {
        wanted = DEFAULT_SECTIONS.iter().map(|s| s.to_string()).collect();
    }
    Ok(Frame::Verbatim(Bytes::from(info_text(ctx.node, &wanted))))
}

/// The INFO text for the given lower-case section names.
pub fn info_text(node: &crate::node::Node, sections: &[String]) -> String {
    let mut out = String::new();
    for name in ALL_SECTIONS {
        if !sections.iter().any(|s| s == name) {
            continue;
        }
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        let _ = write!(out, "# {}\r\n", section_title(name));
        info_section(node, name, &mut out);
    }
    out
}

fn info_section(node: &crate::node::Node, name: &str, out: &mut String) {
    let cfg = node.config().clone();
    let st = &node.stats;
    let db = &node.db;
    let mut kv = |k: &str, v: &dyn std::fmt::Display| {
        let _ = write!(out, "{k}:{v}\r\n");
    };
    match name {
        "server" => {
            let uptime = node.started.elapsed().as_secs();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            kv("redis_version", &REDIS_VERSION);
            kv("chkv_version", &env!("CARGO_PKG_VERSION"));
            kv("redis_git_sha1", &"00000000");
            kv("redis_git_dirty", &0);
            kv("redis_mode", &redis_mode(node));
            kv("os", &std::env::consts::OS);
            kv("arch_bits", &(usize::BITS));
            kv("multiplexing_api", &"epoll");
            kv("process_id", &std::process::id());
            kv("run_id", &node.run_id);
            kv("tcp_port", &node.addr.lock().map_or(cfg.port, |a| a.port()));
            kv("server_time_usec", &now.as_micros());
            kv("uptime_in_seconds", &uptime);
            kv("uptime_in_days", &(uptime / 86400));
            kv("hz", &cfg.hz);
            kv(
                "executable",
                &std::env::current_exe()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            );
            kv("config_file", &"");
        }
        "clients" => {
            kv("connected_clients", &node.connected_clients());
            kv("cluster_connections", &0);
            kv("maxclients", &cfg.maxclients);
            kv("blocked_clients", &node.blocking.blocked_clients());
            kv("tracking_clients", &node.tracking.clients());
            kv("total_blocking_keys", &node.blocking.blocking_keys());
        }
        "memory" => {
            let used = db.used_memory();
            let rss = rss_bytes();
            kv("used_memory", &used);
            kv("used_memory_human", &bytes_to_human(used));
            kv("used_memory_rss", &rss);
            kv("used_memory_rss_human", &bytes_to_human(rss));
            // Overhead: the slot tables' arrays; dataset: the entries (keys and values).
            let tables = db.stats.table_memory.get();
            kv("used_memory_overhead", &tables);
            kv("used_memory_dataset", &used.saturating_sub(tables));
            // No replication or AOF buffers to leave out of eviction's count.
            kv("mem_not_counted_for_evict", &0);
            kv("lazyfree_pending_objects", &db.lazyfree_pending());
            let ev = &cfg.eviction;
            kv("maxmemory", &ev.maxmemory);
            kv("maxmemory_human", &bytes_to_human(ev.maxmemory));
            kv("maxmemory_policy", &ev.policy);
            let startup = startup_rss();
            let frag = fragmentation_ratio(rss, used, startup);
            kv("mem_fragmentation_ratio", &format!("{frag:.2}"));
            kv(
                "mem_fragmentation_bytes",
                &(rss as i64 - used.saturating_add(startup) as i64),
            );
            kv("used_memory_startup", &startup);
            let sc = &node.scripting;
            let lua = sc.used_memory();
            kv("used_memory_lua", &lua);
            kv("used_memory_vm_eval", &lua);
            kv("used_memory_lua_human", &bytes_to_human(lua as u64));
            kv("number_of_cached_scripts", &sc.cached_scripts());
            let (libs, funcs) = sc.registry().counts();
            kv("number_of_functions", &funcs);
            kv("number_of_libraries", &libs);
            kv("mem_allocator", &"mimalloc");
        }
        "commandstats" => {
            for (i, c) in crate::cmd::table().iter().enumerate() {
                let f = node.cmdstats.get(i);
                if f.calls == 0 && f.rejected == 0 {
                    continue;
                }
                let per = if f.calls > 0 {
                    f.micros as f64 / f.calls as f64
                } else {
                    0.0
                };
                kv(
                    &format!("cmdstat_{}", c.name),
                    &format_args!(
                        "calls={},usec={},usec_per_call={per:.2},rejected_calls={},failed_calls={}",
                        f.calls, f.micros, f.rejected, f.failed
                    ),
                );
            }
        }
        "errorstats" => {
            for (code, n) in node.errors.codes() {
                kv(&format!("errorstat_{code}"), &format_args!("count={n}"));
            }
        }
        "stats" => {
            kv("total_connections_received", &st.total_connections.get());
            kv("total_error_replies", &node.errors.total());
            kv("total_commands_processed", &st.total_commands.get());
            kv(
                "instantaneous_ops_per_sec",
                &st.instantaneous_ops.load(Relaxed),
            );
            kv("total_net_input_bytes", &st.net_input_bytes.get());
            kv("total_net_output_bytes", &st.net_output_bytes.get());
            kv("rejected_connections", &st.rejected_connections.get());
            kv("expired_keys", &db.stats.expired_keys.get());
            kv("evicted_keys", &db.stats.evicted_keys.get());
            kv("tracking_total_keys", &node.tracking.total_keys());
            kv("tracking_total_items", &node.tracking.total_items());
            kv("tracking_total_prefixes", &node.tracking.total_prefixes());
            kv("keyspace_hits", &db.stats.keyspace_hits.get());
            kv("keyspace_misses", &db.stats.keyspace_misses.get());
            // MIGRATE opens a connection per call and keeps none.
            kv("migrate_cached_sockets", &0);
            use crate::pubsub::Kind;
            kv("pubsub_channels", &node.pubsub.len(Kind::Channel));
            kv("pubsub_patterns", &node.pubsub.len(Kind::Pattern));
            kv("pubsubshard_channels", &node.pubsub.len(Kind::Shard));
            // CHKV: PUBLISH messages not sent to a peer DataNode that did not keep up.
            kv("pubsub_fanout_dropped", &node.pubsub.fanout_dropped_total());
        }
        "persistence" => {
            // CHKV does not persist; these are the values of a Redis with persistence off,
            // which readiness probes and clients read (`loading:0`).
            kv("loading", &0);
            kv("async_loading", &0);
            kv("rdb_changes_since_last_save", &0);
            kv("rdb_bgsave_in_progress", &0);
            kv("rdb_last_bgsave_status", &"ok");
            kv("aof_enabled", &0);
            kv("aof_rewrite_in_progress", &0);
        }
        "replication" => {
            kv("role", &"master");
            kv("connected_slaves", &0);
        }
        "cpu" => {
            let (user, sys) = cpu_times();
            kv("used_cpu_sys", &format!("{sys:.6}"));
            kv("used_cpu_user", &format!("{user:.6}"));
        }
        "cluster" => {
            kv("cluster_enabled", &u8::from(in_cluster(node)));
            if let Some(nn) = &cfg.namenode {
                // CHKV's own: where the NameNode is and, when a session with it failed, why
                // (unreachable, or not a NameNode's DataNode port).
                kv("chkv_namenode", nn);
                if let Some(e) = node.namenode_error.lock().as_deref() {
                    kv("chkv_namenode_last_error", &e.replace(['\r', '\n'], " "));
                }
            }
        }
        "keyspace" => {
            let keys = db.len();
            if keys > 0 {
                let _ = write!(
                    out,
                    "db0:keys={keys},expires={},avg_ttl=0\r\n",
                    db.volatile_len()
                );
            }
        }
        _ => {}
    }
}

/// User and system CPU seconds of this process, from /proc.
fn cpu_times() -> (f64, f64) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return (0.0, 0.0);
    };
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / 100.0;
    (ticks(11), ticks(12))
}
