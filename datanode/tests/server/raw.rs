//! Exact reply bytes over a plain TCP socket: RESP2, RESP3, inline commands, pipelining and
//! binary-safe data.

use crate::util::*;

#[tokio::test]
async fn resp2_reply_bytes() {
    bounded(async {
        let s = start().await;
        let mut c = Raw::connect(s.addr()).await;
        assert_eq!(c.cmd(&["PING"]).await, "+PONG\r\n");
        assert_eq!(c.cmd(&["GET", "k"]).await, "$-1\r\n");
        assert_eq!(c.cmd(&["SET", "k", "v"]).await, "+OK\r\n");
        assert_eq!(c.cmd(&["GET", "k"]).await, "$1\r\nv\r\n");
        assert_eq!(c.cmd(&["EXISTS", "k"]).await, ":1\r\n");
        assert_eq!(c.cmd(&["TTL", "nope"]).await, ":-2\r\n");
        assert_eq!(c.cmd(&["TYPE", "k"]).await, "+string\r\n");
        assert_eq!(
            c.cmd(&["MGET", "k", "nope"]).await,
            "*2\r\n$1\r\nv\r\n$-1\r\n"
        );
        assert_eq!(c.cmd(&["KEYS", "nothing*"]).await, "*0\r\n");
        assert_eq!(c.cmd(&["SET", "e", ""]).await, "+OK\r\n");
        assert_eq!(c.cmd(&["GET", "e"]).await, "$0\r\n\r\n");
        assert_eq!(c.cmd(&["INCRBYFLOAT", "f", "1.5"]).await, "$3\r\n1.5\r\n");
        assert_eq!(
            c.cmd(&["SCAN", "0", "MATCH", "k", "COUNT", "1000"]).await,
            "*2\r\n$1\r\n0\r\n*1\r\n$1\r\nk\r\n"
        );
        assert_eq!(
            c.cmd(&["CONFIG", "GET", "maxclients"]).await,
            "*2\r\n$10\r\nmaxclients\r\n$5\r\n10000\r\n"
        );
        assert_eq!(
            c.cmd(&["SET", "k", "v", "NX", "XX"]).await,
            "-ERR syntax error\r\n"
        );
        assert_eq!(
            c.cmd(&["get"]).await,
            "-ERR wrong number of arguments for 'get' command\r\n"
        );
        assert_eq!(
            c.cmd(&["nope", "x"]).await,
            "-ERR unknown command 'nope', with args beginning with: 'x' \r\n"
        );
        let id = String::from_utf8(c.cmd(&["CLIENT", "ID"]).await.to_vec()).expect("utf8");
        let id = id.trim_start_matches(':').trim_end();
        let hello = c.cmd(&["HELLO"]).await;
        let version = chkv_datanode::REDIS_VERSION;
        let want = format!(
            "*14\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n${}\r\n{version}\r\n\
             $5\r\nproto\r\n:2\r\n$2\r\nid\r\n:{id}\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n\
             $4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n",
            version.len()
        );
        assert_eq!(hello, want.as_str());
        // Errors leave the connection usable.
        assert_eq!(
            c.cmd(&["PING", "still here"]).await,
            "$10\r\nstill here\r\n"
        );
    })
    .await
}

#[tokio::test]
async fn resp3_after_hello_3() {
    bounded(async {
        let s = start().await;
        let mut c = Raw::connect(s.addr()).await;
        assert_eq!(c.cmd(&["SET", "k", "v"]).await, "+OK\r\n");
        let id = c.cmd(&["CLIENT", "ID"]).await;
        let id = std::str::from_utf8(&id[1..id.len() - 2])
            .expect("id")
            .to_string();
        let version = chkv_datanode::REDIS_VERSION;
        let want = format!(
            "%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n${}\r\n{version}\r\n\
             $5\r\nproto\r\n:3\r\n$2\r\nid\r\n:{id}\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n\
             $4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n",
            version.len()
        );
        assert_eq!(c.cmd(&["HELLO", "3"]).await, want.as_str());

        assert_eq!(c.cmd(&["GET", "nope"]).await, "_\r\n");
        assert_eq!(c.cmd(&["GET", "k"]).await, "$1\r\nv\r\n");
        assert_eq!(
            c.cmd(&["MGET", "k", "nope"]).await,
            "*2\r\n$1\r\nv\r\n_\r\n"
        );
        assert_eq!(c.cmd(&["SET", "k", "w", "NX"]).await, "_\r\n");
        assert_eq!(c.cmd(&["TTL", "k"]).await, ":-1\r\n");
        assert_eq!(
            c.cmd(&["CONFIG", "GET", "maxclients"]).await,
            "%1\r\n$10\r\nmaxclients\r\n$5\r\n10000\r\n"
        );
        assert_eq!(c.cmd(&["CONFIG", "GET", "nope"]).await, "%0\r\n");
        assert_eq!(c.cmd(&["CLIENT", "GETNAME"]).await, "_\r\n");
        let info = c.cmd(&["CLIENT", "INFO"]).await;
        assert!(info.starts_with(b"="), "{:?}", show(&info));
        assert!(
            info.windows(8).any(|w| w == b"\r\ntxt:id"),
            "{:?}",
            show(&info)
        );
        let docs = c.cmd(&["COMMAND", "DOCS", "get"]).await;
        assert!(
            docs.starts_with(b"%1\r\n$3\r\nget\r\n%"),
            "{:?}",
            show(&docs)
        );
        assert_eq!(c.cmd(&["INFO", "bogus"]).await, "=4\r\ntxt:\r\n");
        assert_eq!(c.cmd(&["RANDOMKEY"]).await, "$1\r\nk\r\n");
        assert_eq!(c.cmd(&["FLUSHALL"]).await, "+OK\r\n");
        assert_eq!(c.cmd(&["RANDOMKEY"]).await, "_\r\n");
        assert_eq!(
            c.cmd(&["GET"]).await,
            "-ERR wrong number of arguments for 'get' command\r\n"
        );

        // Back to RESP2.
        let hello = c.cmd(&["HELLO", "2"]).await;
        assert!(hello.starts_with(b"*14\r\n"), "{:?}", show(&hello));
        assert_eq!(c.cmd(&["GET", "nope"]).await, "$-1\r\n");
        assert_eq!(
            c.cmd(&["CONFIG", "GET", "maxclients"]).await,
            "*2\r\n$10\r\nmaxclients\r\n$5\r\n10000\r\n"
        );
        // HELLO 3 AUTH with the password of the passwordless default user, and SETNAME.
        let hello = c
            .cmd(&["HELLO", "3", "AUTH", "default", "x", "SETNAME", "r3"])
            .await;
        assert!(hello.starts_with(b"%7\r\n"), "{:?}", show(&hello));
        assert_eq!(c.cmd(&["CLIENT", "GETNAME"]).await, "$2\r\nr3\r\n");
    })
    .await
}

#[tokio::test]
async fn inline_commands() {
    bounded(async {
        let s = start().await;
        let mut c = Raw::connect(s.addr()).await;
        assert_eq!(c.call(b"PING\r\n").await, "+PONG\r\n");
        assert_eq!(c.call(b"ping\n").await, "+PONG\r\n");
        assert_eq!(c.call(b"set k \"a b\"\n").await, "+OK\r\n");
        assert_eq!(c.call(b"get k\n").await, "$3\r\na b\r\n");
        // Empty lines are skipped, extra spaces ignored.
        assert_eq!(c.call(b"\r\n\n   \r\nGET   k  \r\n").await, "$3\r\na b\r\n");
        // Double quotes take C escapes, single quotes are literal.
        assert_eq!(c.call(b"SET q \"x\\ty\\x41\\n\"\r\n").await, "+OK\r\n");
        assert_eq!(c.cmd(&["GET", "q"]).await, "$5\r\nx\tyA\n\r\n");
        assert_eq!(c.call(b"SET q 'a\\nb'\r\n").await, "+OK\r\n");
        assert_eq!(c.cmd(&["GET", "q"]).await, "$4\r\na\\nb\r\n");
        assert_eq!(c.call(b"ECHO \"\"\r\n").await, "$0\r\n\r\n");
        assert_eq!(
            c.call(b"GET\r\n").await,
            "-ERR wrong number of arguments for 'get' command\r\n"
        );
        // Inline and multibulk mix on one connection.
        let mut both = b"SET m 1\r\n".to_vec();
        both.extend_from_slice(&resp(&["INCR", "m"]));
        both.extend_from_slice(b"GET m\r\n");
        c.send(&both).await;
        assert_eq!(c.reply().await, "+OK\r\n");
        assert_eq!(c.reply().await, ":2\r\n");
        assert_eq!(c.reply().await, "$1\r\n2\r\n");
        // Unbalanced quotes are a protocol error: reply, then close.
        c.send(b"ECHO \"abc\r\n").await;
        assert_eq!(
            c.read_to_eof().await,
            "-ERR Protocol error: unbalanced quotes in request\r\n"
        );
        assert_alive(s.addr()).await;
    })
    .await
}

#[tokio::test]
async fn a_request_split_across_many_writes() {
    bounded(async {
        let s = start().await;
        let mut c = Raw::connect(s.addr()).await;
        let req = resp(&["SET", "split", "0123456789"]);
        for b in &req {
            c.send(std::slice::from_ref(b)).await;
            tokio::task::yield_now().await;
        }
        assert_eq!(c.reply().await, "+OK\r\n");
        assert_eq!(c.cmd(&["GET", "split"]).await, "$10\r\n0123456789\r\n");
    })
    .await
}

#[tokio::test]
async fn pipeline_of_1000_in_one_write() {
    bounded(async {
        let s = start().await;
        let mut c = Raw::connect(s.addr()).await;
        let mut batch = Vec::new();
        let mut want: Vec<String> = Vec::new();
        for i in 0..1000 {
            match i % 4 {
                0 => {
                    batch.extend(resp(&["SET", &format!("p{i}"), &format!("value-{i}")]));
                    want.push("+OK\r\n".into());
                }
                1 => {
                    let k = format!("p{}", i - 1);
                    batch.extend(resp(&["GET", &k]));
                    let v = format!("value-{}", i - 1);
                    want.push(format!("${}\r\n{v}\r\n", v.len()));
                }
                2 => {
                    batch.extend(resp(&["INCR", "counter"]));
                    want.push(format!(":{}\r\n", i / 4 + 1));
                }
                _ => {
                    batch.extend(resp(&["ECHO", &i.to_string()]));
                    let v = i.to_string();
                    want.push(format!("${}\r\n{v}\r\n", v.len()));
                }
            }
        }
        c.send(&batch).await;
        for (i, w) in want.iter().enumerate() {
            assert_eq!(c.reply().await, w.as_str(), "reply {i}");
        }
        assert_eq!(c.cmd(&["DBSIZE"]).await, ":251\r\n");
        // Nothing else was sent.
        assert!(c
            .read_for(std::time::Duration::from_millis(50))
            .await
            .is_empty());
    })
    .await
}

#[tokio::test]
async fn binary_safe_keys_and_values() {
    bounded(async {
        let s = start().await;
        let mut c = Raw::connect(s.addr()).await;
        let key: &[u8] = b"k\r\n\0\xff$3\r\n";
        let value: &[u8] = b"\r\n\0*1\r\n\xfe\xff\0";
        assert_eq!(c.cmd(&[&b"SET"[..], key, value]).await, "+OK\r\n");
        let mut want = format!("${}\r\n", value.len()).into_bytes();
        want.extend_from_slice(value);
        want.extend_from_slice(b"\r\n");
        assert_eq!(c.cmd(&[&b"GET"[..], key]).await, want);
        let strlen = format!(":{}\r\n", value.len());
        assert_eq!(c.cmd(&[&b"STRLEN"[..], key]).await, strlen.as_str());
        assert_eq!(c.cmd(&[&b"GET"[..], b"k"]).await, "$-1\r\n");
        let mut keys = format!("*1\r\n${}\r\n", key.len()).into_bytes();
        keys.extend_from_slice(key);
        keys.extend_from_slice(b"\r\n");
        assert_eq!(c.cmd(&["KEYS", "*"]).await, keys);

        // Empty key and empty value.
        assert_eq!(c.cmd(&["SET", "", "empty-key"]).await, "+OK\r\n");
        assert_eq!(c.cmd(&["GET", ""]).await, "$9\r\nempty-key\r\n");
        assert_eq!(c.cmd(&["SET", "empty-value", ""]).await, "+OK\r\n");
        assert_eq!(c.cmd(&["GET", "empty-value"]).await, "$0\r\n\r\n");
        assert_eq!(c.cmd(&["EXISTS", "", "empty-value"]).await, ":2\r\n");
        assert_eq!(c.cmd(&["APPEND", "", "!"]).await, ":10\r\n");
        assert_eq!(c.cmd(&["DEL", ""]).await, ":1\r\n");

        // The same through the redis crate.
        let r = &mut connect(s.addr()).await;
        let got: Vec<u8> = q(r, &[&b"GET"[..], key]).await;
        assert_eq!(got, value);
        let all: Vec<u8> = (0..=255u8).collect();
        let _: () = q(r, &[&b"SET"[..], &all[..], &all[..]]).await;
        let got: Vec<u8> = q(r, &[&b"GET"[..], &all[..]]).await;
        assert_eq!(got, all);

        // A 1 MB value survives the round trip.
        let big: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
        let _: () = q(r, &[&b"SET"[..], b"big", &big[..]]).await;
        let got: Vec<u8> = q(r, &[&b"GET"[..], b"big"]).await;
        assert!(got == big, "1 MB value changed");
        assert_eq!(c.cmd(&["STRLEN", "big"]).await, ":1048576\r\n");
    })
    .await
}
