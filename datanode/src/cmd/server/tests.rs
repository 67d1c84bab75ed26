use super::super::testutil::*;
use crate::config::Config;
use crate::resp::{Frame, Protocol};

/// An empty node with one small key once reported RSS / data bytes (24,760); the ratio
/// counts an empty node's memory as needed, as Redis's `used_memory` does.
#[test]
fn fragmentation_ratio_is_about_one_when_memory_is_used_well() {
    let mb = 1024 * 1024;
    assert_eq!(super::fragmentation_ratio(10 * mb, 0, 10 * mb), 1.0);
    let r = super::fragmentation_ratio(19 * mb, 100, 19 * mb);
    assert!((0.99..=1.0).contains(&r), "{r}");
    let r = super::fragmentation_ratio(300 * mb, 100 * mb, 10 * mb);
    assert!((2.7..2.8).contains(&r), "{r}");
    assert_eq!(super::fragmentation_ratio(0, 0, 0), 0.0);
    let mut h = Harness::new();
    h.run(&["SET", "k", "v"]);
    let Frame::Verbatim(info) = h.run(&["INFO", "memory"]) else {
        panic!("INFO is verbatim text")
    };
    check_ratio(&String::from_utf8_lossy(&info));
}

fn check_ratio(info: &str) {
    let ratio: f64 = info
        .lines()
        .find_map(|l| l.strip_prefix("mem_fragmentation_ratio:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("mem_fragmentation_ratio");
    // A unit test's process is shared with every other test running in parallel, so its RSS
    // says nothing about this node: only the figure's presence and sign are checked here
    // (the formula is checked above, and against a real server in the server tests).
    assert!(ratio > 0.0, "{ratio} in {info}");
    assert!(info.contains("used_memory_startup:"), "{info}");
}

#[test]
fn ping_echo_time_select() {
    let mut h = Harness::new();
    assert_eq!(h.run(&["PING"]), Frame::simple("PONG"));
    assert_eq!(h.run(&["PING", "hi"]), bulk("hi"));
    assert_eq!(
        h.run(&["PING", "a", "b"]),
        err("ERR wrong number of arguments for 'ping' command")
    );
    assert_eq!(h.run(&["ECHO", "x"]), bulk("x"));
    let Frame::Array(t) = h.run(&["TIME"]) else {
        panic!()
    };
    assert_eq!(t.len(), 2);
    assert_eq!(h.run(&["SELECT", "0"]), Frame::ok());
    assert_eq!(h.run(&["SELECT", "1"]), err("ERR DB index is out of range"));
    assert_eq!(
        h.run(&["SELECT", "x"]),
        err("ERR value is not an integer or out of range")
    );
}

#[test]
fn hello_switches_protocol() {
    let mut h = Harness::new();
    let Frame::Map(m) = h.run(&["HELLO", "3"]) else {
        panic!()
    };
    assert!(m.contains(&(bulk("proto"), int(3))));
    assert_eq!(h.session.proto, Protocol::Resp3);
    let Frame::Map(m) = h.run(&["HELLO"]) else {
        panic!()
    };
    assert!(m.contains(&(bulk("proto"), int(3))));
    h.run(&["HELLO", "2", "SETNAME", "app"]);
    assert_eq!(h.session.proto, Protocol::Resp2);
    assert_eq!(h.run(&["CLIENT", "GETNAME"]), bulk("app"));
    assert_eq!(
        h.run(&["HELLO", "4"]),
        err("NOPROTO unsupported protocol version")
    );
    assert_eq!(
        h.run(&["HELLO", "x"]),
        err("ERR Protocol version is not an integer or out of range")
    );
    assert_eq!(
        h.run(&["HELLO", "3", "FOO"]),
        err("ERR Syntax error in HELLO option 'FOO'")
    );
}

#[test]
fn auth_flow() {
    let mut h = Harness::with_config(Config {
        requirepass: Some(b"secret".to_vec()),
        ..Config::default()
    });
    assert_eq!(h.run(&["GET", "k"]), err("NOAUTH Authentication required."));
    // Unknown commands are reported before authentication, as Redis does.
    assert!(matches!(h.run(&["NOPE"]), Frame::Error(e) if e.starts_with("ERR unknown command")));
    assert!(matches!(h.run(&["HELLO", "3"]), Frame::Error(e) if e.starts_with("NOAUTH HELLO")));
    assert_eq!(
        h.run(&["AUTH", "wrong"]),
        err("WRONGPASS invalid username-password pair or user is disabled.")
    );
    assert_eq!(
        h.run(&["AUTH", "bob", "secret"]),
        err("WRONGPASS invalid username-password pair or user is disabled.")
    );
    assert_eq!(h.run(&["AUTH", "secret"]), Frame::ok());
    assert_eq!(h.run(&["GET", "k"]), Frame::Null);
    let mut h2 = Harness::with_config(Config {
        requirepass: Some(b"secret".to_vec()),
        ..Config::default()
    });
    assert!(matches!(
        h2.run(&["HELLO", "3", "AUTH", "default", "secret"]),
        Frame::Map(_)
    ));
    assert_eq!(h2.run(&["AUTH", "default", "secret"]), Frame::ok());
    assert_eq!(h2.run(&["AUTH", "a", "b", "c"]), err("ERR syntax error"));

    let mut open = Harness::new();
    assert!(
        matches!(open.run(&["AUTH", "x"]), Frame::Error(e) if e.contains("without any password configured"))
    );
}

#[test]
fn client_commands() {
    let mut h = Harness::new();
    assert_eq!(h.run(&["CLIENT", "ID"]), int(h.session.client.id as i64));
    assert_eq!(h.run(&["CLIENT", "GETNAME"]), Frame::Null);
    assert_eq!(h.run(&["CLIENT", "SETNAME", "worker-1"]), Frame::ok());
    assert_eq!(h.run(&["CLIENT", "GETNAME"]), bulk("worker-1"));
    assert!(matches!(
        h.run(&["CLIENT", "SETNAME", "a b"]),
        Frame::Error(_)
    ));
    assert_eq!(
        h.run(&["CLIENT", "SETINFO", "LIB-NAME", "redis-rs"]),
        Frame::ok()
    );
    assert_eq!(h.run(&["CLIENT", "SETINFO", "lib-ver", "1.0"]), Frame::ok());
    assert_eq!(
        h.run(&["CLIENT", "SETINFO", "foo", "1"]),
        err("ERR Unrecognized option 'foo'")
    );
    let Frame::Verbatim(list) = h.run(&["CLIENT", "LIST"]) else {
        panic!()
    };
    let list = String::from_utf8_lossy(&list).into_owned();
    assert!(list.contains("name=worker-1"), "{list}");
    assert!(list.contains("lib-name=redis-rs lib-ver=1.0"), "{list}");
    assert!(list.contains("cmd=client"), "{list}");
    let Frame::Verbatim(info) = h.run(&["CLIENT", "INFO"]) else {
        panic!()
    };
    assert!(String::from_utf8_lossy(&info).starts_with(&format!("id={} ", h.session.client.id)));
    let Frame::Verbatim(none) = h.run(&["CLIENT", "LIST", "ID", "999"]) else {
        panic!()
    };
    assert!(none.is_empty());
    assert!(matches!(h.run(&["CLIENT", "HELP"]), Frame::Array(_)));
}

#[test]
fn info_sections_and_fields() {
    let mut h = Harness::new();
    h.run(&["SET", "a", "1", "EX", "100"]);
    h.run(&["SET", "b", "1"]);
    h.run(&["GET", "a"]);
    h.run(&["GET", "zz"]);
    let Frame::Verbatim(all) = h.run(&["INFO"]) else {
        panic!()
    };
    let all = String::from_utf8_lossy(&all).into_owned();
    for f in [
        "# Server",
        "redis_version:",
        "# Clients",
        "connected_clients:1",
        "# Memory",
        "used_memory:",
        "used_memory_human:",
        "maxmemory_policy:noeviction",
        "# Stats",
        "keyspace_hits:1",
        "keyspace_misses:1",
        "# Keyspace",
        "db0:keys=2,expires=1,avg_ttl=0",
    ] {
        assert!(all.contains(f), "missing {f} in {all}");
    }
    let Frame::Verbatim(mem) = h.run(&["INFO", "memory"]) else {
        panic!()
    };
    let mem = String::from_utf8_lossy(&mem).into_owned();
    assert!(mem.starts_with("# Memory\r\n"));
    assert!(!mem.contains("# Server"));
}

#[test]
fn dbsize_flush() {
    let mut h = Harness::new();
    h.run(&["MSET", "a", "1", "b", "2"]);
    assert_eq!(h.run(&["DBSIZE"]), int(2));
    assert_eq!(h.run(&["FLUSHDB", "FOO"]), err("ERR syntax error"));
    assert_eq!(h.run(&["FLUSHALL", "ASYNC"]), Frame::ok());
    assert_eq!(h.run(&["DBSIZE"]), int(0));
    h.run(&["SET", "a", "1"]);
    assert_eq!(h.run(&["FLUSHDB"]), Frame::ok());
    assert_eq!(h.run(&["DBSIZE"]), int(0));
}

#[test]
fn config_get_set() {
    let mut h = Harness::new();
    assert_eq!(
        h.run(&["CONFIG", "GET", "maxclients"]),
        Frame::Map(vec![(bulk("maxclients"), bulk("10000"))])
    );
    let Frame::Map(m) = h.run(&["CONFIG", "GET", "save", "appendonly"]) else {
        panic!()
    };
    assert_eq!(
        m,
        vec![(bulk("save"), bulk("")), (bulk("appendonly"), bulk("no"))]
    );
    let Frame::Map(m) = h.run(&["CONFIG", "GET", "max*"]) else {
        panic!()
    };
    assert!(m.len() >= 3);
    assert_eq!(h.run(&["CONFIG", "SET", "maxclients", "50"]), Frame::ok());
    assert_eq!(h.node.config().maxclients, 50);
    assert_eq!(
        h.run(&["CONFIG", "SET", "maxclients", "x"]),
        err("ERR CONFIG SET failed (possibly related to argument 'maxclients') - argument couldn't be parsed into an integer")
    );
    assert_eq!(
        h.run(&["CONFIG", "SET", "nope", "1"]),
        err("ERR Unknown option or number of arguments for CONFIG SET - 'nope'")
    );
    assert_eq!(
        h.run(&["CONFIG", "SET", "databases", "4"]),
        err("ERR CONFIG SET failed (possibly related to argument 'databases') - can't set immutable config")
    );
    // Atomic: a failing pair leaves the earlier ones unapplied.
    assert!(h
        .run(&["CONFIG", "SET", "maxclients", "70", "port", "1"])
        .is_error());
    assert_eq!(h.node.config().maxclients, 50);
    assert_eq!(h.run(&["CONFIG", "SET", "requirepass", "pw"]), Frame::ok());
    assert_eq!(h.node.config().requirepass.as_deref(), Some(&b"pw"[..]));
    assert_eq!(h.run(&["CONFIG", "RESETSTAT"]), Frame::ok());
}
