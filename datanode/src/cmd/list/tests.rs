use super::super::testutil::*;
use super::*;

fn arr(v: &[&str]) -> Frame {
    Frame::Array(v.iter().map(|s| bulk(s)).collect())
}

const WT: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

#[test]
fn push_pop_range() {
    let mut h = Harness::new();
    assert_eq!(h.run(&["LPUSH", "l", "a", "b", "c"]), int(3));
    assert_eq!(h.run(&["RPUSH", "l", "1", "2"]), int(5));
    assert_eq!(
        h.run(&["LRANGE", "l", "0", "-1"]),
        arr(&["c", "b", "a", "1", "2"])
    );
    assert_eq!(h.run(&["LRANGE", "l", "-2", "100"]), arr(&["1", "2"]));
    assert_eq!(h.run(&["LRANGE", "l", "3", "1"]), arr(&[]));
    assert_eq!(h.run(&["LRANGE", "none", "0", "-1"]), arr(&[]));
    assert_eq!(h.run(&["LLEN", "l"]), int(5));
    assert_eq!(h.run(&["LINDEX", "l", "-1"]), bulk("2"));
    assert_eq!(h.run(&["LINDEX", "l", "5"]), Frame::Null);
    assert_eq!(h.run(&["LPOP", "l"]), bulk("c"));
    assert_eq!(h.run(&["RPOP", "l", "2"]), arr(&["2", "1"]));
    assert_eq!(h.run(&["LPOP", "l", "0"]), arr(&[]));
    assert_eq!(h.run(&["LPOP", "none", "0"]), Frame::NullArray);
    assert_eq!(h.run(&["LPOP", "none"]), Frame::Null);
    assert_eq!(
        h.run(&["LPOP", "l", "-1"]),
        err("ERR value is out of range, must be positive")
    );
    assert_eq!(
        h.run(&["LPOP", "l", "1", "1"]),
        err("ERR wrong number of arguments for 'lpop' command")
    );
    assert_eq!(h.run(&["RPOP", "l", "9"]), arr(&["a", "b"]));
    assert_eq!(h.run(&["EXISTS", "l"]), int(0));
    assert_eq!(h.run(&["LPUSHX", "l", "x"]), int(0));
    assert_eq!(h.run(&["EXISTS", "l"]), int(0));
    h.run(&["SET", "s", "x"]);
    assert_eq!(h.run(&["LPUSH", "s", "x"]), err(WT));
    assert_eq!(h.run(&["LLEN", "s"]), err(WT));
    assert_eq!(h.run(&["LPOP", "s", "0"]), err(WT));
    h.run(&["RPUSH", "t", "x"]);
    assert_eq!(h.run(&["TYPE", "t"]), Frame::simple("list"));
    assert_eq!(h.run(&["OBJECT", "ENCODING", "t"]), bulk("listpack"));
    assert_eq!(h.run(&["GET", "t"]), err(WT));
}

#[test]
fn set_insert_remove_trim() {
    let mut h = Harness::new();
    h.run(&["RPUSH", "l", "a", "b", "a", "c", "a"]);
    assert_eq!(h.run(&["LSET", "l", "1", "B"]), Frame::ok());
    assert_eq!(h.run(&["LSET", "l", "-1", "A"]), Frame::ok());
    assert_eq!(
        h.run(&["LSET", "l", "5", "x"]),
        err("ERR index out of range")
    );
    assert_eq!(h.run(&["LSET", "none", "0", "x"]), err("ERR no such key"));
    assert_eq!(h.run(&["LINSERT", "l", "BEFORE", "c", "X"]), int(6));
    assert_eq!(h.run(&["LINSERT", "l", "after", "A", "Y"]), int(7));
    assert_eq!(h.run(&["LINSERT", "l", "after", "nope", "Y"]), int(-1));
    assert_eq!(h.run(&["LINSERT", "none", "after", "a", "Y"]), int(0));
    assert_eq!(
        h.run(&["LINSERT", "l", "bad", "a", "Y"]),
        err("ERR syntax error")
    );
    assert_eq!(
        h.run(&["LRANGE", "l", "0", "-1"]),
        arr(&["a", "B", "a", "X", "c", "A", "Y"])
    );
    assert_eq!(h.run(&["LREM", "l", "-1", "a"]), int(1));
    assert_eq!(
        h.run(&["LRANGE", "l", "0", "-1"]),
        arr(&["a", "B", "X", "c", "A", "Y"])
    );
    assert_eq!(h.run(&["LREM", "l", "0", "zz"]), int(0));
    assert_eq!(h.run(&["LTRIM", "l", "1", "-2"]), Frame::ok());
    assert_eq!(
        h.run(&["LRANGE", "l", "0", "-1"]),
        arr(&["B", "X", "c", "A"])
    );
    assert_eq!(h.run(&["LTRIM", "l", "5", "1"]), Frame::ok());
    assert_eq!(h.run(&["EXISTS", "l"]), int(0));
    assert_eq!(h.run(&["LTRIM", "l", "0", "1"]), Frame::ok());
}

#[test]
fn lpos() {
    let mut h = Harness::new();
    h.run(&["RPUSH", "l", "a", "b", "c", "1", "2", "3", "c", "c"]);
    assert_eq!(h.run(&["LPOS", "l", "c"]), int(2));
    assert_eq!(h.run(&["LPOS", "l", "c", "RANK", "-1"]), int(7));
    assert_eq!(h.run(&["LPOS", "l", "c", "RANK", "4"]), Frame::Null);
    assert_eq!(
        h.run(&["LPOS", "l", "c", "COUNT", "0"]),
        Frame::Array(vec![int(2), int(6), int(7)])
    );
    assert_eq!(
        h.run(&["LPOS", "l", "c", "COUNT", "2", "RANK", "-1"]),
        Frame::Array(vec![int(7), int(6)])
    );
    assert_eq!(
        h.run(&["LPOS", "l", "c", "COUNT", "0", "MAXLEN", "7", "RANK", "2"]),
        Frame::Array(vec![int(6)])
    );
    assert_eq!(h.run(&["LPOS", "l", "1"]), int(3));
    assert_eq!(
        h.run(&["LPOS", "none", "1", "COUNT", "1"]),
        Frame::Array(vec![])
    );
    assert!(matches!(
        h.run(&["LPOS", "l", "c", "RANK", "0"]),
        Frame::Error(_)
    ));
    assert_eq!(h.run(&["LPOS", "l", "c", "COUNT"]), err("ERR syntax error"));
}

#[test]
fn moves_and_mpop() {
    let mut h = Harness::new();
    h.run(&["RPUSH", "{t}a", "1", "2", "3"]);
    assert_eq!(h.run(&["RPOPLPUSH", "{t}a", "{t}b"]), bulk("3"));
    assert_eq!(
        h.run(&["LMOVE", "{t}a", "{t}b", "LEFT", "RIGHT"]),
        bulk("1")
    );
    assert_eq!(h.run(&["LRANGE", "{t}b", "0", "-1"]), arr(&["3", "1"]));
    assert_eq!(
        h.run(&["LMOVE", "{t}a", "{t}a", "LEFT", "RIGHT"]),
        bulk("2")
    );
    assert_eq!(
        h.run(&["LMOVE", "{t}none", "{t}b", "LEFT", "RIGHT"]),
        Frame::Null
    );
    h.run(&["SET", "{t}s", "x"]);
    assert_eq!(h.run(&["LMOVE", "{t}a", "{t}s", "LEFT", "RIGHT"]), err(WT));
    assert_eq!(h.run(&["LLEN", "{t}a"]), int(1));
    assert_eq!(
        h.run(&["LMOVE", "{t}a", "{t}b", "UP", "RIGHT"]),
        err("ERR syntax error")
    );
    assert_eq!(h.run(&["RPOPLPUSH", "{t}a", "{t}b"]), bulk("2"));
    assert_eq!(h.run(&["EXISTS", "{t}a"]), int(0));
    assert_eq!(
        h.run(&["LMPOP", "2", "{t}a", "{t}b", "RIGHT", "COUNT", "2"]),
        Frame::Array(vec![bulk("{t}b"), arr(&["1", "3"])])
    );
    assert_eq!(
        h.run(&["LMPOP", "1", "{t}b", "LEFT"]),
        Frame::Array(vec![bulk("{t}b"), arr(&["2"])])
    );
    assert_eq!(h.run(&["LMPOP", "1", "{t}b", "LEFT"]), Frame::NullArray);
    assert_eq!(h.run(&["LMPOP", "2", "{t}b", "{t}s", "LEFT"]), err(WT));
    assert_eq!(
        h.run(&["LMPOP", "0", "{t}b", "LEFT"]),
        err("ERR numkeys should be greater than 0")
    );
    assert_eq!(
        h.run(&["LMPOP", "2", "{t}b", "LEFT"]),
        err("ERR syntax error")
    );
    assert_eq!(
        h.run(&["LMPOP", "1", "{t}b", "LEFT", "COUNT", "0"]),
        err("ERR count should be greater than 0")
    );
    assert_eq!(
        h.run(&["LMPOP", "1", "{t}b", "LEFT", "COUNT", "1", "COUNT", "2"]),
        err("ERR syntax error")
    );
}

fn pair(k: &str, v: &str) -> Frame {
    Frame::Array(vec![bulk(k), bulk(v)])
}

#[tokio::test]
async fn blocked_clients_are_served_oldest_first() {
    let mut h = Harness::new();
    let (mut a, mut b) = (h.other_session(), h.other_session());
    let wa = block_on(&mut h, &mut a, &["BLPOP", "q", "0"]);
    let wb = block_on(&mut h, &mut b, &["BRPOP", "q", "other", "0"]);
    assert_eq!(h.node.blocking.blocked_clients(), 2);
    // Variadic push: the list is [y, x] when the waiters are served, after the command.
    assert_eq!(h.run(&["LPUSH", "q", "x", "y"]), int(2));
    assert_eq!(reply(wa).await, pair("q", "y"));
    assert_eq!(reply(wb).await, pair("q", "x"));
    assert_eq!(h.run(&["EXISTS", "q"]), int(0));
    assert_eq!(h.node.blocking.blocked_clients(), 0);
    // A second key, written first, serves the waiter.
    let wa = block_on(
        &mut h,
        &mut a,
        &["BLMPOP", "0", "2", "k1", "k2", "LEFT", "COUNT", "5"],
    );
    h.run(&["RPUSH", "k2", "1", "2"]);
    assert_eq!(
        reply(wa).await,
        Frame::Array(vec![bulk("k2"), arr(&["1", "2"])])
    );
}

#[tokio::test]
async fn transactions_serve_after_exec_and_never_block() {
    let mut h = Harness::new();
    let mut a = h.other_session();
    let wa = block_on(&mut h, &mut a, &["BLPOP", "q", "0"]);
    for c in [
        &["MULTI"][..],
        &["LPUSH", "q", "a"],
        &["DEL", "q"],
        &["SET", "q", "s"],
    ] {
        h.run(c);
    }
    h.run(&["EXEC"]);
    // The key ended up a string: still blocked.
    assert_eq!(h.node.blocking.blocked_clients(), 1);
    h.run(&["DEL", "q"]);
    for c in [
        &["MULTI"][..],
        &["LPUSH", "q", "a"],
        &["LPUSH", "q", "b"],
        &["LPUSH", "q", "c"],
    ] {
        h.run(c);
    }
    h.run(&["EXEC"]);
    assert_eq!(reply(wa).await, pair("q", "c"));
    // Inside MULTI a blocking command answers at once.
    h.run(&["DEL", "q"]);
    h.run(&["RPUSH", "q", "only"]);
    h.run(&["MULTI"]);
    h.run(&["BLPOP", "q", "0"]);
    h.run(&["BLPOP", "q", "0"]);
    h.run(&["BRPOPLPUSH", "q", "d", "0"]);
    assert_eq!(
        h.run(&["EXEC"]),
        Frame::Array(vec![pair("q", "only"), Frame::NullArray, Frame::Null])
    );
    assert!(h.session.blocked.is_none());
}

#[tokio::test]
async fn moves_chain_and_wrong_destinations_fail_alone() {
    let mut h = Harness::new();
    let (mut a, mut b) = (h.other_session(), h.other_session());
    let wa = block_on(
        &mut h,
        &mut a,
        &["BLMOVE", "{t}1", "{t}2", "RIGHT", "LEFT", "0"],
    );
    let wb = block_on(
        &mut h,
        &mut b,
        &["BLMOVE", "{t}2", "{t}3", "LEFT", "RIGHT", "0"],
    );
    h.run(&["RPUSH", "{t}1", "foo"]);
    // Served before the push's reply: both moves are done.
    assert_eq!(h.run(&["LRANGE", "{t}3", "0", "-1"]), arr(&["foo"]));
    assert_eq!(h.run(&["EXISTS", "{t}1", "{t}2"]), int(0));
    assert_eq!(reply(wa).await, bulk("foo"));
    assert_eq!(reply(wb).await, bulk("foo"));
    // A destination of another type: that client gets WRONGTYPE, the next is served.
    h.run(&["SET", "{t}bad", "x"]);
    let wa = block_on(&mut h, &mut a, &["BRPOPLPUSH", "{t}src", "{t}bad", "0"]);
    let wb = block_on(&mut h, &mut b, &["BRPOPLPUSH", "{t}src", "{t}good", "0"]);
    h.run(&["LPUSH", "{t}src", "e"]);
    assert_eq!(reply(wa).await, err(WT));
    assert_eq!(reply(wb).await, bulk("e"));
    assert_eq!(h.run(&["LRANGE", "{t}good", "0", "-1"]), arr(&["e"]));
    // A key moved into place (RENAME) serves.
    let wa = block_on(&mut h, &mut a, &["BLPOP", "{t}dst", "0"]);
    h.run(&["RPUSH", "{t}tmp", "r"]);
    h.run(&["RENAME", "{t}tmp", "{t}dst"]);
    assert_eq!(reply(wa).await, pair("{t}dst", "r"));
}

#[tokio::test]
async fn timeouts_unblock_and_disconnects() {
    let mut h = Harness::new();
    let mut a = h.other_session();
    let wa = block_on(&mut h, &mut a, &["BLPOP", "q", "0.01"]);
    assert_eq!(reply(wa).await, Frame::NullArray);
    assert_eq!(h.node.blocking.blocked_clients(), 0);
    let id = a.client.id.to_string();
    let wa = block_on(&mut h, &mut a, &["BLMOVE", "q", "d", "LEFT", "LEFT", "0"]);
    assert_eq!(h.run(&["CLIENT", "UNBLOCK", &id]), int(1));
    assert_eq!(reply(wa).await, Frame::Null);
    let wa = block_on(&mut h, &mut a, &["BLPOP", "q", "0"]);
    assert_eq!(h.run(&["CLIENT", "UNBLOCK", &id, "ERROR"]), int(1));
    assert_eq!(
        reply(wa).await,
        err("UNBLOCKED client unblocked via CLIENT UNBLOCK")
    );
    assert_eq!(h.run(&["CLIENT", "UNBLOCK", &id]), int(0));
    assert_eq!(
        h.run(&["CLIENT", "UNBLOCK", &id, "NOW"]),
        err("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR")
    );
    // A client that went away is not served: the element stays.
    let wa = block_on(&mut h, &mut a, &["BLPOP", "q", "0"]);
    drop(wa);
    assert_eq!(h.node.blocking.blocked_clients(), 0);
    h.run(&["RPUSH", "q", "kept"]);
    assert_eq!(h.run(&["LRANGE", "q", "0", "-1"]), arr(&["kept"]));
    // Errors come before blocking.
    assert_eq!(h.run(&["BLPOP", "q", "-1"]), err("ERR timeout is negative"));
    h.run(&["SET", "s", "x"]);
    assert_eq!(h.run(&["BLPOP", "none", "s", "0"]), err(WT));
    assert!(h.session.blocked.is_none());
}

#[tokio::test]
async fn a_moved_slot_hands_its_waiters_back() {
    let mut h = Harness::new();
    let mut a = h.other_session();
    let mut wa = block_on(&mut h, &mut a, &["BLPOP", "q", "5"]);
    h.node.blocking.slots_moved(|_| true);
    assert!(matches!(wa.wait().await, blocking::Wake::Moved));
    assert_eq!(h.node.blocking.blocked_clients(), 0);
    let again = wa.request_again();
    assert_eq!(again.arg(1), b"q");
    assert!(again.arg(2) != b"5", "the timeout shrank");
}

#[test]
fn keyspace_events() {
    let mut h = Harness::new();
    h.run(&["CONFIG", "SET", "notify-keyspace-events", "KEA"]);
    // The events themselves are checked end to end in the server tests; here the
    // commands must run with notifications on.
    assert_eq!(h.run(&["RPUSH", "l", "a"]), int(1));
    assert_eq!(h.run(&["LPOP", "l"]), bulk("a"));
}
