//! A DataNode with `requirepass`: the AUTH gate over raw bytes and through the `redis` crate.

use crate::util::*;
use chkv_datanode::config::Config;

const PW: &str = "s3cret";

fn with_password() -> Config {
    Config {
        requirepass: Some(PW.as_bytes().to_vec()),
        ..config()
    }
}

const NOAUTH: &str = "-NOAUTH Authentication required.\r\n";
const WRONGPASS: &str = "-WRONGPASS invalid username-password pair or user is disabled.\r\n";

#[tokio::test]
async fn noauth_wrongpass_then_auth() {
    bounded(async {
        let s = start_with(with_password()).await;
        let mut c = Raw::connect(s.addr()).await;
        assert_eq!(c.cmd(&["GET", "k"]).await, NOAUTH);
        assert_eq!(c.cmd(&["SET", "k", "v"]).await, NOAUTH);
        assert_eq!(c.cmd(&["PING"]).await, NOAUTH);
        assert_eq!(c.cmd(&["CLIENT", "ID"]).await, NOAUTH);
        assert_eq!(c.call(b"PING\r\n").await, NOAUTH);
        assert_eq!(c.cmd(&["AUTH", "wrong"]).await, WRONGPASS);
        assert_eq!(c.cmd(&["AUTH", "bob", PW]).await, WRONGPASS);
        assert_eq!(c.cmd(&["AUTH", "default", "wrong"]).await, WRONGPASS);
        assert_eq!(
            c.cmd(&["AUTH", "a", "b", "c"]).await,
            "-ERR syntax error\r\n"
        );
        assert_eq!(
            c.cmd(&["AUTH"]).await,
            "-ERR wrong number of arguments for 'auth' command\r\n"
        );
        // Still locked after the failures.
        assert_eq!(c.cmd(&["GET", "k"]).await, NOAUTH);
        assert_eq!(c.cmd(&["AUTH", PW]).await, "+OK\r\n");
        assert_eq!(c.cmd(&["GET", "k"]).await, "$-1\r\n");
        assert_eq!(c.cmd(&["SET", "k", "v"]).await, "+OK\r\n");
        // A failed AUTH later does not log the connection out (as in Redis).
        assert_eq!(c.cmd(&["AUTH", "wrong"]).await, WRONGPASS);
        assert_eq!(c.cmd(&["GET", "k"]).await, "$1\r\nv\r\n");

        let mut d = Raw::connect(s.addr()).await;
        assert_eq!(c.cmd(&["QUIT"]).await, "+OK\r\n");
        assert_eq!(d.cmd(&["AUTH", "default", PW]).await, "+OK\r\n");
        assert_eq!(d.cmd(&["GET", "k"]).await, "$1\r\nv\r\n");
        // Inline AUTH works too.
        let mut e = Raw::connect(s.addr()).await;
        assert_eq!(
            e.call(format!("AUTH {PW}\r\nGET k\r\n").as_bytes()).await,
            "+OK\r\n"
        );
        assert_eq!(e.reply().await, "$1\r\nv\r\n");
    })
    .await
}

#[tokio::test]
async fn hello_with_and_without_auth() {
    bounded(async {
        let s = start_with(with_password()).await;
        let mut c = Raw::connect(s.addr()).await;
        let hello_noauth = "-NOAUTH HELLO must be called with the client already authenticated, \
             otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate \
             the client and select the RESP protocol version at the same time\r\n";
        assert_eq!(c.cmd(&["HELLO", "3"]).await, hello_noauth);
        assert_eq!(c.cmd(&["HELLO"]).await, hello_noauth);
        assert_eq!(c.cmd(&["HELLO", "3", "SETNAME", "x"]).await, hello_noauth);
        assert_eq!(
            c.cmd(&["HELLO", "3", "AUTH", "default", "nope"]).await,
            WRONGPASS
        );
        assert_eq!(c.cmd(&["HELLO", "3", "AUTH", "bob", PW]).await, WRONGPASS);
        // Nothing changed: still RESP2 and locked.
        assert_eq!(c.cmd(&["GET", "k"]).await, NOAUTH);
        let hello = c
            .cmd(&["HELLO", "3", "AUTH", "default", PW, "SETNAME", "app"])
            .await;
        assert!(
            hello.starts_with(b"%7\r\n$6\r\nserver\r\n"),
            "{:?}",
            show(&hello)
        );
        assert_eq!(c.cmd(&["GET", "k"]).await, "_\r\n");
        assert_eq!(c.cmd(&["CLIENT", "GETNAME"]).await, "$3\r\napp\r\n");
        // HELLO without AUTH is fine once authenticated.
        let hello = c.cmd(&["HELLO", "2"]).await;
        assert!(hello.starts_with(b"*14\r\n"), "{:?}", show(&hello));
        assert_eq!(c.cmd(&["GET", "k"]).await, "$-1\r\n");
    })
    .await
}

#[tokio::test]
async fn redis_crate_with_password_in_the_url() {
    bounded(async {
        let s = start_with(with_password()).await;
        let addr = s.addr();
        let c = &mut connect_url(&format!("redis://:{PW}@{addr}/")).await;
        assert_eq!(val(c, &["SET", "k", "v"]).await, OK);
        assert_eq!(val(c, &["GET", "k"]).await, bulk("v"));
        let c = &mut connect_url(&format!("redis://default:{PW}@{addr}/")).await;
        assert_eq!(val(c, &["GET", "k"]).await, bulk("v"));
        // RESP3: the crate authenticates with HELLO 3 AUTH.
        let c = &mut connect_url(&format!("redis://:{PW}@{addr}/?protocol=resp3")).await;
        assert_eq!(val(c, &["GET", "k"]).await, bulk("v"));
        assert_eq!(val(c, &["GET", "nope"]).await, NIL);

        let wrong = try_connect_url(&format!("redis://:wrong@{addr}/")).await;
        let err = wrong.expect_err("a wrong password must fail to connect");
        assert_eq!(err.kind(), redis::ErrorKind::AuthenticationFailed, "{err}");
        let wrong = try_connect_url(&format!("redis://:wrong@{addr}/?protocol=resp3")).await;
        assert!(wrong.is_err(), "RESP3 with a wrong password connected");

        // Without a password the crate connects, and commands are refused.
        let c = &mut connect(addr).await;
        assert_eq!(
            q_err(c, &["GET", "k"]).await,
            "NOAUTH Authentication required."
        );
    })
    .await
}

#[tokio::test]
async fn requirepass_set_at_run_time() {
    bounded(async {
        let s = start().await;
        let c = &mut connect(s.addr()).await;
        assert_eq!(val(c, &["SET", "k", "v"]).await, OK);
        assert_eq!(val(c, &["CONFIG", "SET", "requirepass", PW]).await, OK);
        let got: std::collections::HashMap<String, String> =
            q(c, &["CONFIG", "GET", "requirepass"]).await;
        assert_eq!(got["requirepass"], PW);
        // The connection that set it stays in; new ones must authenticate.
        assert_eq!(val(c, &["GET", "k"]).await, bulk("v"));
        let mut fresh = Raw::connect(s.addr()).await;
        assert_eq!(fresh.cmd(&["GET", "k"]).await, NOAUTH);
        assert_eq!(fresh.cmd(&["AUTH", PW]).await, "+OK\r\n");
        assert_eq!(fresh.cmd(&["GET", "k"]).await, "$1\r\nv\r\n");
        // Clearing it opens the door again.
        assert_eq!(val(c, &["CONFIG", "SET", "requirepass", ""]).await, OK);
        let mut open = Raw::connect(s.addr()).await;
        assert_eq!(open.cmd(&["GET", "k"]).await, "$1\r\nv\r\n");
    })
    .await
}
