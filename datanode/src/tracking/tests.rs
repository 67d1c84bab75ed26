use super::*;
use crate::cmd::testutil::*;

fn inv(keys: &[&str]) -> String {
    let mut s = format!(">2\r\n$10\r\ninvalidate\r\n*{}\r\n", keys.len());
    for k in keys {
        s.push_str(&format!("${}\r\n{k}\r\n", k.len()));
    }
    s
}

#[test]
fn default_mode_invalidates_once_per_read() {
    let mut h = Harness::new();
    let mut w = h.other_session();
    h.run(&["HELLO", "3"]);
    assert_eq!(h.run(&["CLIENT", "TRACKING", "on"]), Frame::ok());
    h.run_as(&mut w, &["SET", "k", "1"]);
    h.run(&["GET", "k"]);
    assert_eq!(h.node.tracking.total_keys(), 1);
    h.run_as(&mut w, &["SET", "k", "2"]);
    assert_eq!(Harness::pushed(&h.session), inv(&["k"]));
    // Forgotten until read again.
    h.run_as(&mut w, &["SET", "k", "3"]);
    assert_eq!(Harness::pushed(&h.session), "");
    assert_eq!(h.node.tracking.total_keys(), 0);
    // Its own write: after its reply (here: pushed once the command is done).
    h.run(&["GET", "k"]);
    h.run(&["DEL", "k"]);
    assert_eq!(Harness::pushed(&h.session), inv(&["k"]));
    // NOLOOP: not told of its own writes.
    h.run(&["CLIENT", "TRACKING", "on", "NOLOOP"]);
    h.run(&["GET", "k"]);
    h.run(&["SET", "k", "x"]);
    assert_eq!(Harness::pushed(&h.session), "");
    // Flushes say "everything".
    h.run(&["GET", "k"]);
    h.run_as(&mut w, &["FLUSHALL"]);
    assert_eq!(
        Harness::pushed(&h.session),
        ">2\r\n$10\r\ninvalidate\r\n_\r\n"
    );
    assert_eq!(h.node.tracking.total_keys(), 0);
}

#[test]
fn optin_optout_and_caching() {
    let mut h = Harness::new();
    let mut w = h.other_session();
    h.run(&["HELLO", "3"]);
    h.run(&["CLIENT", "TRACKING", "on", "OPTIN"]);
    h.run(&["GET", "a"]);
    assert_eq!(h.node.tracking.total_keys(), 0);
    assert_eq!(h.run(&["CLIENT", "CACHING", "yes"]), Frame::ok());
    h.run(&["GET", "b"]);
    h.run(&["GET", "c"]);
    h.run_as(&mut w, &["MSET", "a", "1", "b", "1", "c", "1"]);
    assert_eq!(Harness::pushed(&h.session), inv(&["b"]));
    assert_eq!(
        h.run(&["CLIENT", "CACHING", "no"]),
        err("ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.")
    );
    h.run(&["CLIENT", "TRACKING", "off"]);
    h.run(&["CLIENT", "TRACKING", "on", "OPTOUT"]);
    h.run(&["CLIENT", "CACHING", "no"]);
    h.run(&["GET", "a"]);
    h.run(&["GET", "b"]);
    h.run_as(&mut w, &["MSET", "a", "2", "b", "2"]);
    assert_eq!(Harness::pushed(&h.session), inv(&["b"]));
    assert_eq!(h.run(&["CLIENT", "GETREDIR"]), int(0));
    h.run(&["CLIENT", "TRACKING", "off"]);
    assert_eq!(h.run(&["CLIENT", "GETREDIR"]), int(-1));
}

#[test]
fn bcast_prefixes_and_redirect_to_a_resp2_subscriber() {
    let mut h = Harness::new();
    let mut w = h.other_session();
    let mut r = h.other_session();
    h.run_as(&mut r, &["SUBSCRIBE", "__redis__:invalidate"]);
    Harness::pushed(&r);
    let id = r.client.id.to_string();
    assert_eq!(
        h.run(&[
            "CLIENT", "TRACKING", "on", "BCAST", "REDIRECT", &id, "PREFIX", "a:", "PREFIX", "b:"
        ]),
        Frame::ok()
    );
    h.run(&["MSET", "a:1", "1", "c:1", "1", "a:2", "2"]);
    assert_eq!(
        Harness::pushed(&r),
        "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*2\r\n$3\r\na:1\r\n$3\r\na:2\r\n"
    );
    h.run_as(&mut w, &["SET", "b:9", "1"]);
    assert!(Harness::pushed(&r).ends_with("*1\r\n$3\r\nb:9\r\n"));
    assert_eq!(h.node.tracking.total_prefixes(), 2);
    // The target leaves: the redirect is broken.
    h.node.unregister_client(r.client.id);
    h.run_as(&mut w, &["SET", "a:1", "2"]);
    let info = h.run(&["CLIENT", "TRACKINGINFO"]);
    let Frame::Map(m) = info else {
        panic!("{info:?}")
    };
    assert_eq!(
        m[0].1,
        Frame::Set(vec![bulk("on"), bulk("bcast"), bulk("broken_redirect")])
    );
    h.run(&["CLIENT", "TRACKING", "off"]);
    assert_eq!(h.node.tracking.total_prefixes(), 0);
}

#[test]
fn slots_leaving_and_the_size_limit_invalidate() {
    let mut h = Harness::new();
    h.run(&["HELLO", "3"]);
    h.run(&["CLIENT", "TRACKING", "on"]);
    h.run(&["MGET", "{x}1", "{x}2", "y"]);
    assert_eq!(h.node.tracking.total_keys(), 3);
    h.node.db.lock(key_slot(b"x")).modified_all();
    let got = Harness::pushed(&h.session);
    assert!(got.contains("{x}1") && got.contains("{x}2") && !got.contains("$1\r\ny"));
    assert_eq!(h.node.tracking.total_keys(), 1);
    h.run(&["MGET", "a", "b", "c"]);
    Harness::pushed(&h.session);
    h.run(&["CONFIG", "SET", "tracking-table-max-keys", "1"]);
    h.node.tracking.enforce_limit();
    assert_eq!(h.node.tracking.total_keys(), 1);
    assert_eq!(Harness::pushed(&h.session).matches("invalidate").count(), 3);
    // A lapsed lease: everyone drops everything, once.
    h.node.tracking.lease_state(false);
    h.node.tracking.lease_state(false);
    assert_eq!(
        Harness::pushed(&h.session),
        ">2\r\n$10\r\ninvalidate\r\n_\r\n"
    );
    assert_eq!(h.node.tracking.total_keys(), 0);
}

#[test]
fn scripts_track_their_declared_keys_only_when_they_read() {
    let mut h = Harness::new();
    let mut w = h.other_session();
    h.run(&["HELLO", "3"]);
    h.run(&["CLIENT", "TRACKING", "on"]);
    h.run(&["EVAL", "redis.call('set', 'k3', 'bar')", "2", "k1", "k2"]);
    assert_eq!(h.node.tracking.total_keys(), 0);
    h.run(&["EVAL", "redis.call('get', 'k3')", "2", "k1", "k2"]);
    assert_eq!(h.node.tracking.total_keys(), 2);
    h.run_as(&mut w, &["MSET", "k2", "1", "k1", "1", "k3", "1"]);
    assert_eq!(
        Harness::pushed(&h.session),
        format!("{}{}", inv(&["k2"]), inv(&["k1"]))
    );
}
