//! Connection and server commands through the `redis` crate.

use crate::util::*;
use redis::Value;
use std::collections::HashMap;

/// A RESP3 map or a RESP2 flat array of pairs, as (key, value) pairs with string keys.
fn pairs(v: Value) -> Vec<(String, Value)> {
    match v {
        Value::Map(m) => m
            .into_iter()
            .map(|(k, v)| (redis::from_redis_value(k).expect("string key"), v))
            .collect(),
        Value::Array(a) => {
            assert!(a.len() % 2 == 0, "odd pair list {a:?}");
            let mut it = a.into_iter();
            let mut out = Vec::new();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                out.push((redis::from_redis_value(k).expect("string key"), v));
            }
            out
        }
        other => panic!("not a map: {other:?}"),
    }
}

fn lookup<'a>(m: &'a [(String, Value)], key: &str) -> &'a Value {
    &m.iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("no {key} in {m:?}"))
        .1
}

#[tokio::test]
async fn ping_echo_select_time() {
    bounded(async {
        let s = start().await;
        let c = &mut connect(s.addr()).await;
        assert_eq!(val(c, &["PING"]).await, Value::SimpleString("PONG".into()));
        assert_eq!(val(c, &["PING", "hi"]).await, bulk("hi"));
        assert_eq!(val(c, &["PING", ""]).await, bulk(""));
        assert_eq!(
            q_err(c, &["PING", "a", "b"]).await,
            "ERR wrong number of arguments for 'ping' command"
        );
        assert_eq!(val(c, &["ECHO", "x y"]).await, bulk("x y"));
        assert_eq!(val(c, &["ECHO", ""]).await, bulk(""));
        assert_eq!(
            q_err(c, &["ECHO"]).await,
            "ERR wrong number of arguments for 'echo' command"
        );
        assert_eq!(
            q_err(c, &["ECHO", "a", "b"]).await,
            "ERR wrong number of arguments for 'echo' command"
        );
        assert_eq!(val(c, &["SELECT", "0"]).await, OK);
        assert_eq!(
            q_err(c, &["SELECT", "x"]).await,
            "ERR value is not an integer or out of range"
        );
        // CHKV has one database, like a Redis Cluster node.
        assert_eq!(
            q_err(c, &["SELECT", "1"]).await,
            "ERR DB index is out of range"
        );
        assert_eq!(
            q_err(c, &["SELECT", "-1"]).await,
            "ERR DB index is out of range"
        );

        let (secs, micros): (String, String) = q(c, &["TIME"]).await;
        let secs: u64 = secs.parse().expect("seconds");
        let micros: u64 = micros.parse().expect("microseconds");
        assert!(micros < 1_000_000);
        let now = now_ms() / 1000;
        assert!(secs.abs_diff(now) <= 2, "TIME {secs} vs {now}");
        assert_eq!(
            q_err(c, &["TIME", "x"]).await,
            "ERR wrong number of arguments for 'time' command"
        );
        assert_eq!(
            q_err(c, &["NOPE", "a", "b"]).await,
            "ERR unknown command 'NOPE', with args beginning with: 'a' 'b' "
        );
        assert_eq!(
            q_err(c, &["NOPE"]).await,
            "ERR unknown command 'NOPE', with args beginning with: "
        );
    })
    .await
}

#[tokio::test]
async fn hello_and_resp3_client() {
    bounded(async {
        let s = start().await;
        let c = &mut connect(s.addr()).await;
        let id: i64 = q(c, &["CLIENT", "ID"]).await;
        let hello = pairs(val(c, &["HELLO"]).await);
        let keys: Vec<&str> = hello.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["server", "version", "proto", "id", "mode", "role", "modules"]
        );
        assert_eq!(lookup(&hello, "server"), &bulk("redis"));
        assert_eq!(lookup(&hello, "proto"), &int(2));
        assert_eq!(lookup(&hello, "id"), &int(id));
        assert_eq!(lookup(&hello, "mode"), &bulk("standalone"));
        assert_eq!(lookup(&hello, "role"), &bulk("master"));
        assert_eq!(lookup(&hello, "modules"), &Value::Array(vec![]));
        let version: String =
            redis::from_redis_value(lookup(&hello, "version").clone()).expect("v");
        assert!(version.starts_with("7."), "{version}");

        let hello = pairs(val(c, &["HELLO", "2", "SETNAME", "app-1"]).await);
        assert_eq!(lookup(&hello, "proto"), &int(2));
        assert_eq!(val(c, &["CLIENT", "GETNAME"]).await, bulk("app-1"));
        assert_eq!(
            q_err(c, &["HELLO", "4"]).await,
            "NOPROTO unsupported protocol version"
        );
        assert_eq!(
            q_err(c, &["HELLO", "1"]).await,
            "NOPROTO unsupported protocol version"
        );
        assert_eq!(
            q_err(c, &["HELLO", "x"]).await,
            "ERR Protocol version is not an integer or out of range"
        );
        assert_eq!(
            q_err(c, &["HELLO", "3", "FOO"]).await,
            "ERR Syntax error in HELLO option 'FOO'"
        );
        assert_eq!(
            q_err(c, &["HELLO", "2", "AUTH", "default"]).await,
            "ERR Syntax error in HELLO option 'AUTH'"
        );
        assert_eq!(
            q_err(c, &["HELLO", "2", "SETNAME", "a b"]).await,
            "ERR Client names cannot contain spaces, newlines or special characters."
        );
        assert_eq!(
            q_err(c, &["HELLO", "2", "AUTH", "bob", "x"]).await,
            "WRONGPASS invalid username-password pair or user is disabled."
        );

        // The crate's own RESP3 handshake (HELLO 3 at connect).
        let r3 = &mut connect_url(&format!("redis://{}/?protocol=resp3", s.addr())).await;
        assert_eq!(val(r3, &["GET", "nope"]).await, NIL);
        assert_eq!(val(r3, &["SET", "k", "v"]).await, OK);
        let cfg = val(r3, &["CONFIG", "GET", "maxclients"]).await;
        assert_eq!(cfg, Value::Map(vec![(bulk("maxclients"), bulk("10000"))]));
        let hello = val(r3, &["HELLO"]).await;
        assert!(matches!(&hello, Value::Map(_)), "{hello:?}");
        assert_eq!(lookup(&pairs(hello), "proto"), &int(3));
        let info = val(r3, &["CLIENT", "INFO"]).await;
        assert!(
            matches!(&info, Value::VerbatimString { text, .. } if text.contains(" resp=3 ")),
            "{info:?}"
        );
        // RESP2 connections keep seeing RESP2.
        assert_eq!(val(c, &["GET", "k"]).await, bulk("v"));
        let cfg = val(c, &["CONFIG", "GET", "maxclients"]).await;
        assert_eq!(cfg, Value::Array(vec![bulk("maxclients"), bulk("10000")]));
    })
    .await
}

#[tokio::test]
async fn auth_without_a_password_configured() {
    bounded(async {
        let s = start().await;
        let c = &mut connect(s.addr()).await;
        assert_eq!(
            q_err(c, &["AUTH", "x"]).await,
            "ERR AUTH <password> called without any password configured for the default user. \
             Are you sure your configuration is correct?"
        );
        // The default user has no password: any password is accepted for it.
        assert_eq!(val(c, &["AUTH", "default", "anything"]).await, OK);
        assert_eq!(
            q_err(c, &["AUTH", "bob", "x"]).await,
            "WRONGPASS invalid username-password pair or user is disabled."
        );
        assert_eq!(q_err(c, &["AUTH", "a", "b", "c"]).await, "ERR syntax error");
        assert_eq!(
            q_err(c, &["AUTH"]).await,
            "ERR wrong number of arguments for 'auth' command"
        );
        assert_eq!(val(c, &["PING"]).await, Value::SimpleString("PONG".into()));
    })
    .await
}

#[tokio::test]
async fn quit_closes_the_connection() {
    bounded(async {
        let s = start().await;
        let c = &mut connect(s.addr()).await;
        assert_eq!(val(c, &["SET", "k", "v"]).await, OK);
        assert_eq!(val(c, &["QUIT"]).await, OK);
        let after = try_q::<Value, _>(c, &["GET", "k"]).await;
        assert!(
            after.is_err(),
            "connection still usable after QUIT: {after:?}"
        );
        // The server itself is fine.
        let c2 = &mut connect(s.addr()).await;
        assert_eq!(val(c2, &["GET", "k"]).await, bulk("v"));
    })
    .await
}

#[tokio::test]
async fn client_subcommands() {
    bounded(async {
        let s = start().await;
        let c = &mut connect(s.addr()).await;
        let other = &mut connect(s.addr()).await;
        let id: i64 = q(c, &["CLIENT", "ID"]).await;
        let other_id: i64 = q(other, &["CLIENT", "ID"]).await;
        assert!(id > 0 && other_id > 0 && id != other_id);

        assert_eq!(val(c, &["CLIENT", "GETNAME"]).await, NIL);
        assert_eq!(val(c, &["CLIENT", "SETNAME", "worker-1"]).await, OK);
        assert_eq!(val(c, &["CLIENT", "GETNAME"]).await, bulk("worker-1"));
        for bad in ["a b", "a\nb", "tab\there"] {
            assert_eq!(
                q_err(c, &["CLIENT", "SETNAME", bad]).await,
                "ERR Client names cannot contain spaces, newlines or special characters.",
                "{bad:?}"
            );
        }
        assert_eq!(val(c, &["CLIENT", "GETNAME"]).await, bulk("worker-1"));
        assert_eq!(
            val(c, &["CLIENT", "SETINFO", "LIB-NAME", "mylib"]).await,
            OK
        );
        assert_eq!(val(c, &["CLIENT", "SETINFO", "lib-ver", "9.9"]).await, OK);
        assert_eq!(
            q_err(c, &["CLIENT", "SETINFO", "foo", "1"]).await,
            "ERR Unrecognized option 'foo'"
        );

        let list: String = q(c, &["CLIENT", "LIST"]).await;
        let lines: Vec<&str> = list.lines().collect();
        assert_eq!(lines.len(), 2, "{list}");
        let mine = lines
            .iter()
            .find(|l| l.starts_with(&format!("id={id} ")))
            .unwrap_or_else(|| panic!("no line for client {id}: {list}"));
        for field in [
            "addr=127.0.0.1:",
            &format!("laddr={}", s.addr()),
            "name=worker-1",
            "db=0",
            "cmd=client",
            "user=default",
            "resp=2",
            "lib-name=mylib",
            "lib-ver=9.9",
        ] {
            assert!(mine.contains(field), "missing {field} in {mine}");
        }
        assert!(list.contains(&format!("id={other_id} ")), "{list}");

        let info: String = q(c, &["CLIENT", "INFO"]).await;
        assert!(info.starts_with(&format!("id={id} ")), "{info}");
        assert!(
            info.ends_with('\n') && info.lines().count() == 1,
            "{info:?}"
        );

        let only: String = q(c, &["CLIENT", "LIST", "ID", &other_id.to_string()]).await;
        assert!(only.starts_with(&format!("id={other_id} ")) && only.lines().count() == 1);
        let both: String = q(
            c,
            &[
                "CLIENT",
                "LIST",
                "ID",
                &id.to_string(),
                &other_id.to_string(),
            ],
        )
        .await;
        assert_eq!(both.lines().count(), 2);
        let none: String = q(c, &["CLIENT", "LIST", "ID", "999999"]).await;
        assert_eq!(none, "");
        let normal: String = q(c, &["CLIENT", "LIST", "TYPE", "normal"]).await;
        assert_eq!(normal.lines().count(), 2);
        let pubsub: String = q(c, &["CLIENT", "LIST", "TYPE", "pubsub"]).await;
        assert_eq!(pubsub, "");
        assert_eq!(
            q_err(c, &["CLIENT", "LIST", "TYPE", "bogus"]).await,
            "ERR Unknown client type 'bogus'"
        );
        assert_eq!(
            q_err(c, &["CLIENT", "LIST", "ID", "x"]).await,
            "ERR Invalid client ID"
        );
        assert_eq!(
            q_err(c, &["CLIENT", "LIST", "FOO"]).await,
            "ERR syntax error"
        );

        // An empty name clears it.
        assert_eq!(val(c, &["CLIENT", "SETNAME", ""]).await, OK);
        assert_eq!(val(c, &["CLIENT", "GETNAME"]).await, NIL);

        assert_eq!(
            q_err(c, &["CLIENT", "BOGUS"]).await,
            "ERR unknown subcommand 'BOGUS'. Try CLIENT HELP."
        );
        assert_eq!(
            q_err(c, &["CLIENT"]).await,
            "ERR wrong number of arguments for 'client' command"
        );
        assert_eq!(
            q_err(c, &["CLIENT", "SETNAME"]).await,
            "ERR wrong number of arguments for 'client|setname' command"
        );
        assert_eq!(
            q_err(c, &["CLIENT", "ID", "x"]).await,
            "ERR wrong number of arguments for 'client|id' command"
        );
        let help: Vec<String> = q(c, &["CLIENT", "HELP"]).await;
        assert!(help[0].starts_with("CLIENT <subcommand>"), "{help:?}");

        // A closed connection leaves the list.
        drop(std::mem::replace(other, connect(s.addr()).await));
        let gone = eventually(STEP_LIMIT, || {
            let mut c = c.clone();
            async move {
                let list: String = q(&mut c, &["CLIENT", "LIST"]).await;
                !list.contains(&format!("id={other_id} "))
            }
        })
        .await;
        assert!(gone, "client {other_id} still listed after closing");
    })
    .await
}

#[tokio::test]
async fn command_and_subcommands() {
    bounded(async {
        let s = start().await;
        let c = &mut connect(s.addr()).await;
        let count: i64 = q(c, &["COMMAND", "COUNT"]).await;
        let all: Vec<Value> = q(c, &["COMMAND"]).await;
        assert_eq!(all.len() as i64, count);
        let names: Vec<String> = q(c, &["COMMAND", "LIST"]).await;
        for name in [
            "get",
            "set",
            "getex",
            "incrbyfloat",
            "del",
            "scan",
            "expire",
            "ping",
            "hello",
            "client",
            "client|id",
            "config|get",
            "command|docs",
            "info",
            "flushall",
        ] {
            assert!(names.iter().any(|n| n == name), "COMMAND LIST lacks {name}");
        }
        let gets: Vec<String> = q(c, &["COMMAND", "LIST", "FILTERBY", "PATTERN", "get*"]).await;
        assert!(gets.iter().all(|n| n.starts_with("get")), "{gets:?}");
        assert!(gets.contains(&"getrange".to_string()));

        // COMMAND INFO: [name, arity, flags, first, last, step, acl, tips, keyspecs, subs].
        let info: Vec<Value> = q(c, &["COMMAND", "INFO", "get", "nope", "mset"]).await;
        assert_eq!(info.len(), 3);
        let Value::Array(get) = &info[0] else {
            panic!("{info:?}")
        };
        assert_eq!(get.len(), 10);
        assert_eq!(get[0], bulk("get"));
        assert_eq!(get[1], int(2));
        let flags: Vec<String> = redis::from_redis_value(get[2].clone()).expect("flags");
        assert!(flags.contains(&"readonly".into()) && flags.contains(&"fast".into()));
        assert_eq!((&get[3], &get[4], &get[5]), (&int(1), &int(1), &int(1)));
        assert!(matches!(info[1], Value::Nil), "{:?}", info[1]);
        let Value::Array(mset) = &info[2] else {
            panic!("{info:?}")
        };
        assert_eq!(
            (&mset[1], &mset[3], &mset[4], &mset[5]),
            (&int(-3), &int(1), &int(-1), &int(2))
        );

        let docs = pairs(val(c, &["COMMAND", "DOCS", "set"]).await);
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].0, "set");
        let set = pairs(docs[0].1.clone());
        assert_eq!(lookup(&set, "group"), &bulk("string"));
        assert_eq!(lookup(&set, "since"), &bulk("1.0.0"));
        assert!(matches!(lookup(&set, "arguments"), Value::Array(a) if a.len() >= 2));
        let none = val(c, &["COMMAND", "DOCS", "nope"]).await;
        assert_eq!(none, Value::Array(vec![]));

        let keys: Vec<String> = q(c, &["COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2"]).await;
        assert_eq!(keys, ["a", "b"]);
        let keys: Vec<String> = q(c, &["COMMAND", "GETKEYS", "SET", "k", "v", "EX", "1"]).await;
        assert_eq!(keys, ["k"]);
        assert_eq!(
            q_err(c, &["COMMAND", "GETKEYS", "PING", "x"]).await,
            "ERR The command has no key arguments"
        );
        assert_eq!(
            q_err(c, &["COMMAND", "GETKEYS", "nope", "x"]).await,
            "ERR Invalid command specified"
        );
        assert_eq!(
            q_err(c, &["COMMAND", "GETKEYS", "GET", "a", "b"]).await,
            "ERR Invalid number of arguments specified for command"
        );
        assert_eq!(
            q_err(c, &["COMMAND", "BOGUS"]).await,
            "ERR unknown subcommand 'BOGUS'. Try COMMAND HELP."
        );
        assert_eq!(
            q_err(c, &["COMMAND", "COUNT", "x"]).await,
            "ERR wrong number of arguments for 'command|count' command"
        );
    })
    .await
}

/// Parses an INFO text into its sections (lower-case names) and fields.
fn parse_info(text: &str) -> Vec<(String, HashMap<String, String>)> {
    let mut out: Vec<(String, HashMap<String, String>)> = Vec::new();
    for line in text.split("\r\n") {
        if let Some(name) = line.strip_prefix("# ") {
            out.push((name.to_ascii_lowercase(), HashMap::new()));
        } else if let Some((k, v)) = line.split_once(':') {
            out.last_mut()
                .expect("field before any section")
                .1
                .insert(k.to_string(), v.to_string());
        } else {
            assert!(line.is_empty(), "odd INFO line {line:?}");
        }
    }
    out
}

#[tokio::test]
async fn info_sections_use_redis_field_names() {
    bounded(async {
        let s = start().await;
        let c = &mut connect(s.addr()).await;
        assert_eq!(val(c, &["SET", "a", "1", "EX", "100"]).await, OK);
        assert_eq!(val(c, &["SET", "b", "1"]).await, OK);
        assert_eq!(val(c, &["GET", "a"]).await, bulk("1"));
        assert_eq!(val(c, &["GET", "zz"]).await, NIL);

        let text: String = q(c, &["INFO"]).await;
        assert!(text.starts_with("# Server\r\n"), "{text}");
        let info = parse_info(&text);
        let names: Vec<&str> = info.iter().map(|(n, _)| n.as_str()).collect();
        for want in [
            "server",
            "clients",
            "memory",
            "stats",
            "replication",
            "cpu",
            "keyspace",
        ] {
            assert!(names.contains(&want), "no {want} section in {names:?}");
        }
        let field = |section: &str, key: &str| -> String {
            info.iter()
                .find(|(n, _)| n == section)
                .and_then(|(_, f)| f.get(key).cloned())
                .unwrap_or_else(|| panic!("no {section}.{key} in {text}"))
        };
        assert!(field("server", "redis_version").starts_with("7."));
        assert_eq!(field("server", "redis_mode"), "standalone");
        assert_eq!(field("server", "tcp_port"), s.addr().port().to_string());
        assert_eq!(
            field("server", "process_id"),
            std::process::id().to_string()
        );
        field("server", "run_id");
        field("server", "uptime_in_seconds")
            .parse::<u64>()
            .expect("uptime");
        assert_eq!(field("server", "hz"), "10");
        assert_eq!(field("clients", "connected_clients"), "1");
        assert_eq!(field("clients", "maxclients"), "10000");
        for key in [
            "used_memory",
            "used_memory_rss",
            "used_memory_dataset",
            "maxmemory",
        ] {
            field("memory", key).parse::<u64>().expect(key);
        }
        field("memory", "used_memory_human");
        assert_eq!(field("memory", "maxmemory_policy"), "noeviction");
        for key in [
            "total_connections_received",
            "total_commands_processed",
            "instantaneous_ops_per_sec",
            "total_net_input_bytes",
            "total_net_output_bytes",
            "rejected_connections",
            "expired_keys",
            "evicted_keys",
        ] {
            field("stats", key).parse::<u64>().expect(key);
        }
        assert_eq!(field("stats", "keyspace_hits"), "1");
        assert_eq!(field("stats", "keyspace_misses"), "1");
        assert!(
            field("stats", "total_commands_processed")
                .parse::<u64>()
                .expect("n")
                >= 5
        );
        assert_eq!(field("replication", "role"), "master");
        assert_eq!(field("replication", "connected_slaves"), "0");
        field("cpu", "used_cpu_sys").parse::<f64>().expect("cpu");
        field("cpu", "used_cpu_user").parse::<f64>().expect("cpu");
        assert_eq!(field("keyspace", "db0"), "keys=2,expires=1,avg_ttl=0");

        // One section, case-insensitive, and nothing else.
        for arg in ["memory", "MEMORY"] {
            let mem: String = q(c, &["INFO", arg]).await;
            assert!(mem.starts_with("# Memory\r\n"), "{mem}");
            assert_eq!(parse_info(&mem).len(), 1, "{mem}");
        }
        let two: String = q(c, &["INFO", "server", "stats"]).await;
        let two: Vec<String> = parse_info(&two).into_iter().map(|(n, _)| n).collect();
        assert_eq!(two, ["server", "stats"]);
        let all: String = q(c, &["INFO", "all"]).await;
        assert!(all.contains("# Keyspace\r\n"));
        let bogus: String = q(c, &["INFO", "bogus"]).await;
        assert_eq!(bogus, "");
        // An empty keyspace has a section header and no db line.
        assert_eq!(val(c, &["FLUSHALL"]).await, OK);
        let ks: String = q(c, &["INFO", "keyspace"]).await;
        assert_eq!(ks, "# Keyspace\r\n");
    })
    .await
}

#[tokio::test]
async fn dbsize_flushdb_flushall() {
    bounded(async {
        let s = start().await;
        let c = &mut connect(s.addr()).await;
        assert_eq!(val(c, &["DBSIZE"]).await, int(0));
        let fill = |n: usize| {
            let mut args = vec!["MSET".to_string()];
            for i in 0..n {
                args.push(format!("k{i}"));
                args.push("v".into());
            }
            args
        };
        assert_eq!(val(c, &fill(100)).await, OK);
        assert_eq!(val(c, &["DBSIZE"]).await, int(100));
        assert_eq!(
            q_err(c, &["DBSIZE", "x"]).await,
            "ERR wrong number of arguments for 'dbsize' command"
        );
        assert_eq!(q_err(c, &["FLUSHDB", "FOO"]).await, "ERR syntax error");
        assert_eq!(
            q_err(c, &["FLUSHALL", "SYNC", "ASYNC"]).await,
            "ERR syntax error"
        );
        assert_eq!(val(c, &["DBSIZE"]).await, int(100));
        for flush in [
            &["FLUSHDB"][..],
            &["FLUSHDB", "SYNC"],
            &["FLUSHDB", "async"],
            &["FLUSHALL"],
            &["FLUSHALL", "sync"],
            &["FLUSHALL", "ASYNC"],
        ] {
            assert_eq!(val(c, &fill(10)).await, OK);
            assert_eq!(val(c, flush).await, OK, "{flush:?}");
            assert_eq!(val(c, &["DBSIZE"]).await, int(0), "{flush:?}");
            assert_eq!(val(c, &["GET", "k1"]).await, NIL);
        }
        // Keys with a TTL go too, and the store is usable afterwards.
        assert_eq!(val(c, &["SET", "t", "v", "EX", "100"]).await, OK);
        assert_eq!(val(c, &["FLUSHALL"]).await, OK);
        assert_eq!(val(c, &["TTL", "t"]).await, int(-2));
        assert_eq!(val(c, &["SET", "t", "v"]).await, OK);
        assert_eq!(val(c, &["DBSIZE"]).await, int(1));
    })
    .await
}

#[tokio::test]
async fn config_get_and_set() {
    bounded(async {
        let s = start().await;
        let c = &mut connect(s.addr()).await;
        let one: HashMap<String, String> = q(c, &["CONFIG", "GET", "maxclients"]).await;
        assert_eq!(one, HashMap::from([("maxclients".into(), "10000".into())]));
        let two: HashMap<String, String> = q(c, &["CONFIG", "GET", "save", "appendonly"]).await;
        assert_eq!(
            two,
            HashMap::from([
                ("save".into(), "".into()),
                ("appendonly".into(), "no".into())
            ])
        );
        let glob: HashMap<String, String> = q(c, &["CONFIG", "GET", "max*"]).await;
        for k in ["maxclients", "maxmemory", "maxmemory-policy"] {
            assert!(glob.contains_key(k), "CONFIG GET max* lacks {k}: {glob:?}");
        }
        assert!(glob.keys().all(|k| k.starts_with("max")), "{glob:?}");
        let port: HashMap<String, String> = q(c, &["CONFIG", "GET", "port", "bind"]).await;
        assert_eq!(port["port"], s.addr().port().to_string());
        assert_eq!(port["bind"], "127.0.0.1");
        let none: HashMap<String, String> = q(c, &["CONFIG", "GET", "nope"]).await;
        assert!(none.is_empty());
        assert_eq!(
            q_err(c, &["CONFIG", "GET"]).await,
            "ERR wrong number of arguments for 'config|get' command"
        );

        assert_eq!(val(c, &["CONFIG", "SET", "maxclients", "50"]).await, OK);
        assert_eq!(s.node.config().maxclients, 50);
        let mc: HashMap<String, String> = q(c, &["CONFIG", "GET", "maxclients"]).await;
        assert_eq!(mc["maxclients"], "50");
        assert_eq!(
            val(c, &["CONFIG", "SET", "hz", "20", "maxclients", "60"]).await,
            OK
        );
        assert_eq!(s.node.config().hz, 20);
        assert_eq!(s.node.config().maxclients, 60);
        assert_eq!(
            val(c, &["CONFIG", "SET", "client-query-buffer-limit", "2mb"]).await,
            OK
        );
        assert_eq!(s.node.config().client_query_buffer_limit, 2 << 20);
        let qb: HashMap<String, String> =
            q(c, &["CONFIG", "GET", "client-query-buffer-limit"]).await;
        assert_eq!(qb["client-query-buffer-limit"], (2 << 20).to_string());
        assert_eq!(val(c, &["CONFIG", "SET", "save", ""]).await, OK);
        assert_eq!(val(c, &["CONFIG", "SET", "appendonly", "no"]).await, OK);

        assert_eq!(
            q_err(c, &["CONFIG", "SET", "maxclients", "x"]).await,
            "ERR CONFIG SET failed (possibly related to argument 'maxclients') - \
             argument couldn't be parsed into an integer"
        );
        assert_eq!(
            q_err(c, &["CONFIG", "SET", "maxclients", "0"]).await,
            "ERR CONFIG SET failed (possibly related to argument 'maxclients') - \
             argument must be between 1 and 4294967295 inclusive"
        );
        assert_eq!(
            q_err(c, &["CONFIG", "SET", "nope", "1"]).await,
            "ERR Unknown option or number of arguments for CONFIG SET - 'nope'"
        );
        assert_eq!(
            q_err(c, &["CONFIG", "SET", "proto-max-bulk-len", "1000"]).await,
            "ERR CONFIG SET failed (possibly related to argument 'proto-max-bulk-len') - \
             argument must be between 1048576 and 9223372036854775807 inclusive"
        );
        assert_eq!(
            q_err(c, &["CONFIG", "SET", "client-query-buffer-limit", "lots"]).await,
            "ERR CONFIG SET failed (possibly related to argument 'client-query-buffer-limit') - \
             argument must be a memory value"
        );
        assert_eq!(
            q_err(c, &["CONFIG", "SET", "maxclients"]).await,
            "ERR wrong number of arguments for 'config|set' command"
        );
        // All or nothing: one bad pair leaves the others unapplied.
        let bad = q_err(c, &["CONFIG", "SET", "maxclients", "70", "port", "1"]).await;
        assert!(bad.starts_with("ERR CONFIG SET failed"), "{bad}");
        assert_eq!(s.node.config().maxclients, 60);
        // tcp-keepalive is the probe time given to connections accepted from then on.
        let ka: HashMap<String, String> = q(c, &["CONFIG", "GET", "tcp-keepalive"]).await;
        assert_eq!(ka, HashMap::from([("tcp-keepalive".into(), "300".into())]));
        assert_eq!(val(c, &["CONFIG", "SET", "tcp-keepalive", "60"]).await, OK);
        let ka: HashMap<String, String> = q(c, &["CONFIG", "GET", "tcp-keepalive"]).await;
        assert_eq!(ka, HashMap::from([("tcp-keepalive".into(), "60".into())]));
        assert_eq!(s.node.config().tcp_keepalive_secs, 60);
        assert!(q_err(c, &["CONFIG", "SET", "tcp-keepalive", "-1"])
            .await
            .starts_with("ERR CONFIG SET failed (possibly related to argument 'tcp-keepalive')"));

        assert_eq!(val(c, &["CONFIG", "RESETSTAT"]).await, OK);
        let stats: String = q(c, &["INFO", "stats"]).await;
        assert_eq!(info_field::<u64>(&stats, "keyspace_hits"), 0);
        assert_eq!(
            q_err(c, &["CONFIG", "BOGUS"]).await,
            "ERR unknown subcommand 'BOGUS'. Try CONFIG HELP."
        );
        assert_eq!(
            q_err(c, &["CONFIG"]).await,
            "ERR wrong number of arguments for 'config' command"
        );
        let help: Vec<String> = q(c, &["CONFIG", "HELP"]).await;
        assert!(help[0].starts_with("CONFIG <subcommand>"), "{help:?}");
    })
    .await
}
