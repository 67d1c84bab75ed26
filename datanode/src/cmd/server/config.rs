//! CONFIG GET / SET / RESETSTAT / HELP and the table of configuration parameters.

use super::*;
use crate::store::evict::Policy;

pub(super) static CONFIG_SUBCOMMANDS: &[CommandSpec] = &[
    spec(
        "get",
        -3,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        S,
        "2.0.0",
        "Returns the effective values of configuration parameters.",
        "parameter [parameter ...]",
        config_get,
    ),
    spec(
        "set",
        -4,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        S,
        "2.0.0",
        "Sets configuration parameters in-flight.",
        "parameter value [parameter value ...]",
        config_set,
    ),
    spec(
        "resetstat",
        2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        S,
        "2.0.0",
        "Resets the server's statistics.",
        "",
        config_resetstat,
    ),
    spec(
        "help",
        2,
        LOADING | STALE,
        NO_KEYS,
        S,
        "5.0.0",
        "Returns helpful text about the different subcommands.",
        "",
        config_help,
    ),
];

/// Applies a new value to a config copy, or says why it is invalid.
type Setter = fn(&mut crate::config::Config, &[u8]) -> Result<(), String>;

/// One configuration parameter: its name, how to read it and, when it can change at run
/// time, how to set it.
struct Param {
    name: &'static str,
    get: fn(&crate::config::Config) -> String,
    set: Option<Setter>,
}

fn parse_num<T: std::str::FromStr>(v: &[u8]) -> Result<T, String> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| "argument couldn't be parsed into an integer".to_string())
}

fn parse_mem(v: &[u8]) -> Result<u64, String> {
    std::str::from_utf8(v)
        .ok()
        .and_then(crate::args::parse_memory)
        .ok_or_else(|| "argument must be a memory value".to_string())
}

/// `lfu-log-factor` and `lfu-decay-time`: Redis accepts 0..=INT_MAX.
fn parse_lfu(v: &[u8]) -> Result<u32, String> {
    let n: i64 = parse_num(v)?;
    u32::try_from(n)
        .ok()
        .filter(|&n| n <= i32::MAX as u32)
        .ok_or_else(|| "argument must be between 0 and 2147483647 inclusive".to_string())
}

static PARAMS: &[Param] = &[
    Param {
        name: "bind",
        get: |c| c.bind.to_string(),
        set: None,
    },
    Param {
        name: "port",
        get: |c| c.port.to_string(),
        set: None,
    },
    Param {
        name: "requirepass",
        get: |c| {
            c.requirepass
                .as_ref()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .unwrap_or_default()
        },
        set: Some(|c, v| {
            c.requirepass = (!v.is_empty()).then(|| v.to_vec());
            Ok(())
        }),
    },
    Param {
        name: "client-output-buffer-limit",
        get: |c| c.client_output_buffer_limit.format(),
        set: Some(|c, v| {
            c.client_output_buffer_limit = c.client_output_buffer_limit.parse_into(v)?;
            Ok(())
        }),
    },
    Param {
        name: "maxclients",
        get: |c| c.maxclients.to_string(),
        set: Some(|c, v| {
            let n: i64 = parse_num(v)?;
            if !(1..=4294967295).contains(&n) {
                return Err("argument must be between 1 and 4294967295 inclusive".into());
            }
            c.maxclients = n as usize;
            Ok(())
        }),
    },
    Param {
        name: "proto-max-bulk-len",
        get: |c| c.proto_max_bulk_len.to_string(),
        set: Some(|c, v| {
            let n = parse_mem(v)?;
            if n < 1024 * 1024 {
                return Err(
                    "argument must be between 1048576 and 9223372036854775807 inclusive".into(),
                );
            }
            c.proto_max_bulk_len = n as usize;
            Ok(())
        }),
    },
    Param {
        name: "client-query-buffer-limit",
        get: |c| c.client_query_buffer_limit.to_string(),
        set: Some(|c, v| {
            let n = parse_mem(v)?;
            if n < 1024 * 1024 {
                return Err(
                    "argument must be between 1048576 and 9223372036854775807 inclusive".into(),
                );
            }
            c.client_query_buffer_limit = n as usize;
            Ok(())
        }),
    },
    Param {
        name: "hz",
        get: |c| c.hz.to_string(),
        set: Some(|c, v| {
            let n: u32 = parse_num(v)?;
            c.hz = n.clamp(1, 500);
            Ok(())
        }),
    },
    Param {
        name: "maxmemory",
        get: |c| c.eviction.maxmemory.to_string(),
        set: Some(|c, v| {
            c.eviction.maxmemory = parse_mem(v)?;
            Ok(())
        }),
    },
    Param {
        name: "maxmemory-policy",
        get: |c| c.eviction.policy.to_string(),
        set: Some(|c, v| {
            c.eviction.policy = std::str::from_utf8(v)
                .ok()
                .and_then(Policy::parse)
                .ok_or_else(Policy::choices_error)?;
            Ok(())
        }),
    },
    Param {
        name: "maxmemory-samples",
        get: |c| c.eviction.samples.to_string(),
        set: Some(|c, v| {
            // Redis's range; the store samples at most MAX_SAMPLES keys per eviction.
            let n: i64 = parse_num(v)?;
            if !(1..=i32::MAX as i64).contains(&n) {
                return Err("argument must be between 1 and 2147483647 inclusive".into());
            }
            c.eviction.samples = n as u32;
            Ok(())
        }),
    },
    Param {
        name: "lfu-log-factor",
        get: |c| c.eviction.lfu_log_factor.to_string(),
        set: Some(|c, v| {
            c.eviction.lfu_log_factor = parse_lfu(v)?;
            Ok(())
        }),
    },
    Param {
        name: "lfu-decay-time",
        get: |c| c.eviction.lfu_decay_time.to_string(),
        set: Some(|c, v| {
            c.eviction.lfu_decay_time = parse_lfu(v)?;
            Ok(())
        }),
    },
    Param {
        name: "notify-keyspace-events",
        get: |c| crate::pubsub::events::to_string(c.notify_keyspace_events),
        set: Some(|c, v| {
            c.notify_keyspace_events = crate::pubsub::events::parse(v).ok_or_else(|| {
                "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.".to_string()
            })?;
            Ok(())
        }),
    },
    Param {
        name: "hll-sparse-max-bytes",
        get: |c| c.hll_sparse_max_bytes.to_string(),
        set: Some(|c, v| {
            let n = parse_mem(v)?;
            if n > i64::MAX as u64 {
                return Err("argument must be between 0 and 9223372036854775807 inclusive".into());
            }
            c.hll_sparse_max_bytes = n as usize;
            Ok(())
        }),
    },
    Param {
        name: "tracking-table-max-keys",
        get: |c| c.tracking_table_max_keys.to_string(),
        set: Some(|c, v| {
            let n: i64 = parse_num(v)?;
            if n < 0 {
                return Err("argument must be between 0 and 9223372036854775807 inclusive".into());
            }
            c.tracking_table_max_keys = n as u64;
            Ok(())
        }),
    },
    Param {
        name: "min-replicas-to-write",
        get: |c| c.min_replicas_to_write.to_string(),
        set: Some(|c, v| set_u31(&mut c.min_replicas_to_write, v)),
    },
    Param {
        name: "min-slaves-to-write",
        get: |c| c.min_replicas_to_write.to_string(),
        set: Some(|c, v| set_u31(&mut c.min_replicas_to_write, v)),
    },
    Param {
        name: "min-replicas-max-lag",
        get: |c| c.min_replicas_max_lag.to_string(),
        set: Some(|c, v| set_u31(&mut c.min_replicas_max_lag, v)),
    },
    Param {
        name: "busy-reply-threshold",
        get: |c| c.busy_reply_threshold_ms.to_string(),
        set: Some(set_busy_threshold),
    },
    Param {
        name: "lua-time-limit",
        get: |c| c.busy_reply_threshold_ms.to_string(),
        set: Some(set_busy_threshold),
    },
    Param {
        name: "databases",
        get: |_| "1".into(),
        set: None,
    },
    Param {
        name: "save",
        get: |_| String::new(),
        set: Some(|_, v| {
            if v.is_empty() {
                Ok(())
            } else {
                Err("persistence is not supported by CHKV".into())
            }
        }),
    },
    Param {
        name: "appendonly",
        get: |_| "no".into(),
        set: Some(|_, v| {
            if v.eq_ignore_ascii_case(b"no") {
                Ok(())
            } else {
                Err("persistence is not supported by CHKV".into())
            }
        }),
    },
    Param {
        name: "timeout",
        get: |_| "0".into(),
        set: None,
    },
    Param {
        name: "tcp-keepalive",
        get: |c| c.tcp_keepalive_secs.to_string(),
        set: Some(|c, v| set_u31(&mut c.tcp_keepalive_secs, v)),
    },
    Param {
        name: "aclfile",
        get: |c| path_param(&c.aclfile),
        set: None,
    },
    Param {
        name: "tls-port",
        get: |c| c.tls.port.unwrap_or(0).to_string(),
        set: None,
    },
    Param {
        name: "tls-cluster",
        get: |c| if c.tls.cluster { "yes" } else { "no" }.into(),
        set: None,
    },
    Param {
        name: "tls-cert-file",
        get: |c| path_param(&c.tls.cert_file),
        set: Some(|c, v| set_path(&mut c.tls.cert_file, v)),
    },
    Param {
        name: "tls-key-file",
        get: |c| path_param(&c.tls.key_file),
        set: Some(|c, v| set_path(&mut c.tls.key_file, v)),
    },
    Param {
        name: "tls-ca-cert-file",
        get: |c| path_param(&c.tls.ca_cert_file),
        set: Some(|c, v| set_path(&mut c.tls.ca_cert_file, v)),
    },
    Param {
        name: "tls-auth-clients",
        get: |c| c.tls.auth_clients.name().into(),
        set: Some(|c, v| {
            c.tls.auth_clients = std::str::from_utf8(v)
                .ok()
                .and_then(crate::tls::AuthClients::parse)
                .ok_or_else(|| {
                    "argument(s) must be one of the following: yes, no, optional".to_string()
                })?;
            Ok(())
        }),
    },
    Param {
        name: "cluster-enabled",
        get: |_| "no".into(),
        set: None,
    },
    Param {
        name: "hash-max-listpack-entries",
        get: |c| c.encodings.hash_max_listpack_entries.to_string(),
        set: Some(|c, v| set_limit(&mut c.encodings.hash_max_listpack_entries, v)),
    },
    Param {
        name: "hash-max-ziplist-entries",
        get: |c| c.encodings.hash_max_listpack_entries.to_string(),
        set: Some(|c, v| set_limit(&mut c.encodings.hash_max_listpack_entries, v)),
    },
    Param {
        name: "hash-max-listpack-value",
        get: |c| c.encodings.hash_max_listpack_value.to_string(),
        set: Some(|c, v| set_limit(&mut c.encodings.hash_max_listpack_value, v)),
    },
    Param {
        name: "hash-max-ziplist-value",
        get: |c| c.encodings.hash_max_listpack_value.to_string(),
        set: Some(|c, v| set_limit(&mut c.encodings.hash_max_listpack_value, v)),
    },
    Param {
        name: "set-max-intset-entries",
        get: |c| c.encodings.set_max_intset_entries.to_string(),
        set: Some(|c, v| set_limit(&mut c.encodings.set_max_intset_entries, v)),
    },
    Param {
        name: "set-max-listpack-entries",
        get: |c| c.encodings.set_max_listpack_entries.to_string(),
        set: Some(|c, v| set_limit(&mut c.encodings.set_max_listpack_entries, v)),
    },
    Param {
        name: "set-max-listpack-value",
        get: |c| c.encodings.set_max_listpack_value.to_string(),
        set: Some(|c, v| set_limit(&mut c.encodings.set_max_listpack_value, v)),
    },
    Param {
        name: "list-max-listpack-size",
        get: |c| c.encodings.list_max_listpack_size.to_string(),
        set: Some(|c, v| set_int_in(&mut c.encodings.list_max_listpack_size, v, i32::MIN as i64)),
    },
    Param {
        name: "list-max-ziplist-size",
        get: |c| c.encodings.list_max_listpack_size.to_string(),
        set: Some(|c, v| set_int_in(&mut c.encodings.list_max_listpack_size, v, i32::MIN as i64)),
    },
    Param {
        name: "list-compress-depth",
        get: |c| c.encodings.list_compress_depth.to_string(),
        set: Some(|c, v| {
            let mut n = 0i64;
            set_int_in(&mut n, v, 0)?;
            c.encodings.list_compress_depth = n as usize;
            Ok(())
        }),
    },
    Param {
        name: "zset-max-listpack-entries",
        get: |c| c.encodings.zset_max_listpack_entries.to_string(),
        set: Some(|c, v| set_limit(&mut c.encodings.zset_max_listpack_entries, v)),
    },
    Param {
        name: "zset-max-ziplist-entries",
        get: |c| c.encodings.zset_max_listpack_entries.to_string(),
        set: Some(|c, v| set_limit(&mut c.encodings.zset_max_listpack_entries, v)),
    },
    Param {
        name: "zset-max-listpack-value",
        get: |c| c.encodings.zset_max_listpack_value.to_string(),
        set: Some(|c, v| set_limit(&mut c.encodings.zset_max_listpack_value, v)),
    },
    Param {
        name: "zset-max-ziplist-value",
        get: |c| c.encodings.zset_max_listpack_value.to_string(),
        set: Some(|c, v| set_limit(&mut c.encodings.zset_max_listpack_value, v)),
    },
];

/// An int config between 0 and `i32::MAX`.
fn set_u31(to: &mut u32, v: &[u8]) -> Result<(), String> {
    let n: i64 = parse_num(v)?;
    *to = u32::try_from(n)
        .ok()
        .filter(|&n| n <= i32::MAX as u32)
        .ok_or_else(|| format!("argument must be between 0 and {} inclusive", i32::MAX))?;
    Ok(())
}

/// `busy-reply-threshold` / `lua-time-limit`: milliseconds, 0..=LONG_MAX as in Redis.
fn set_busy_threshold(c: &mut crate::config::Config, v: &[u8]) -> Result<(), String> {
    let n: i64 = parse_num(v)?;
    c.busy_reply_threshold_ms = u64::try_from(n)
        .map_err(|_| "argument must be between 0 and 9223372036854775807 inclusive".to_string())?;
    Ok(())
}

/// An int config (Redis's `int` type) between `min` and `i32::MAX`.
fn set_int_in(to: &mut i64, v: &[u8], min: i64) -> Result<(), String> {
    let n: i64 = parse_num(v)?;
    if n < min || n > i32::MAX as i64 {
        return Err(format!(
            "argument must be between {min} and {} inclusive",
            i32::MAX
        ));
    }
    *to = n;
    Ok(())
}

fn path_param(p: &Option<std::path::PathBuf>) -> String {
    p.as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

fn set_path(p: &mut Option<std::path::PathBuf>, v: &[u8]) -> Result<(), String> {
    let s = std::str::from_utf8(v).map_err(|_| "argument must be a valid path".to_string())?;
    *p = (!s.is_empty()).then(|| s.into());
    Ok(())
}

/// A collection encoding threshold: Redis accepts 0..=LONG_MAX; anything above what
/// memory could hold behaves the same, so the value is kept as a usize.
fn set_limit(to: &mut usize, v: &[u8]) -> Result<(), String> {
    let n: i64 = parse_num(v)?;
    *to = usize::try_from(n)
        .map_err(|_| "argument must be between 0 and 9223372036854775807 inclusive".to_string())?;
    Ok(())
}

fn config_get(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let cfg = ctx.node.config().clone();
    let mut out = Vec::new();
    for p in PARAMS {
        // A plain name is echoed as asked (Redis does); a pattern reports the canonical name.
        let hit = req
            .iter()
            .skip(2)
            .find(|pat| crate::store::glob::glob_match_nocase(pat, p.name.as_bytes()));
        if let Some(pat) = hit {
            let is_pattern = pat.iter().any(|c| matches!(c, b'*' | b'?' | b'['));
            let name = if is_pattern {
                Frame::bulk_static(p.name)
            } else {
                Frame::bulk(pat)
            };
            out.push((name, Frame::bulk((p.get)(&cfg))));
        }
    }
    Ok(Frame::Map(out))
}

fn config_set(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    if !req.len().is_multiple_of(2) {
        return Err(ERR_SYNTAX);
    }
    // All or nothing: apply to a copy, then publish it.
    let mut cfg = ctx.node.config().clone();
    for i in (2..req.len()).step_by(2) {
        let name = req.arg(i);
        if (2..i)
            .step_by(2)
            .any(|j| req.arg(j).eq_ignore_ascii_case(name))
        {
            return Err(Frame::error(format!(
                "ERR CONFIG SET failed (possibly related to argument '{}') - duplicate parameter",
                String::from_utf8_lossy(name)
            )));
        }
        let Some(p) = PARAMS
            .iter()
            .find(|p| p.name.as_bytes().eq_ignore_ascii_case(name))
        else {
            return Err(Frame::error(format!(
                "ERR Unknown option or number of arguments for CONFIG SET - '{}'",
                String::from_utf8_lossy(name)
            )));
        };
        let Some(set) = p.set else {
            return Err(Frame::error(format!(
                "ERR CONFIG SET failed (possibly related to argument '{}') - can't set immutable config",
                p.name
            )));
        };
        set(&mut cfg, req.arg(i + 1)).map_err(|why| {
            Frame::error(format!(
                "ERR CONFIG SET failed (possibly related to argument '{}') - {why}",
                p.name
            ))
        })?;
    }
    // Like Redis: a change of TLS files or client checks loads the new material at once, and
    // a failure leaves everything as it was. New TLS connections get it; open ones keep theirs.
    let tls_changed = !ctx.node.config().tls.same_material(&cfg.tls);
    if tls_changed && cfg.tls.enabled() {
        ctx.node.load_tls(&cfg.tls).map_err(|e| {
            Frame::error(format!(
                "ERR CONFIG SET failed (possibly related to argument 'tls-cert-file') - Unable to update TLS configuration: {e}"
            ))
        })?;
    }
    let new_password = cfg.requirepass != ctx.node.config().requirepass;
    if new_password {
        // requirepass is the default user's password, as in Redis; in a cluster it is the
        // default user's password on every node.
        ctx.node
            .acl
            .set_requirepass(cfg.requirepass.as_deref(), Some(&ctx.node.node_id));
    }
    let db = &ctx.node.db;
    ctx.node.update_config(|published| {
        // The store reads its eviction settings from atomics, not from the config lock; set
        // them under the lock so that concurrent CONFIG SETs cannot leave the two different.
        db.configure_eviction(&cfg.eviction);
        ctx.node.pubsub.configure(&cfg);
        ctx.node.tracking.set_max_keys(cfg.tracking_table_max_keys);
        db.limits.store(&cfg.encodings);
        ctx.node
            .scripting
            .set_threshold(cfg.busy_reply_threshold_ms);
        ctx.node
            .min_replicas_to_write
            .store(cfg.min_replicas_to_write, Relaxed);
        *published = cfg;
    });
    if new_password {
        return crate::cmd::sync::after_change(ctx, crate::sync::Set::Users, Frame::ok());
    }
    Ok(Frame::ok())
}

fn config_resetstat(ctx: &mut Ctx<'_>, _req: &Request) -> Reply {
    let st = &ctx.node.stats;
    for c in [
        &st.total_connections,
        &st.rejected_connections,
        &st.total_commands,
        &st.net_input_bytes,
        &st.net_output_bytes,
    ] {
        c.reset();
    }
    let ds = &ctx.node.db.stats;
    for c in [
        &ds.expired_keys,
        &ds.evicted_keys,
        &ds.keyspace_hits,
        &ds.keyspace_misses,
    ] {
        c.reset();
    }
    ctx.node.cmdstats.reset();
    ctx.node.errors.reset();
    Ok(Frame::ok())
}

fn config_help(_ctx: &mut Ctx<'_>, _req: &Request) -> Reply {
    help_lines(&[
        "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "GET <pattern>",
        "    Return parameters matching the glob-like <pattern> and their values.",
        "SET <directive> <value>",
        "    Set the configuration <directive> to <value>.",
        "RESETSTAT",
        "    Reset statistics reported by the INFO command.",
        "HELP",
        "    Print this help.",
    ])
}
