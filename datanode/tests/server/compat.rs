//! Replies that once differed from real Redis 7 (checked against redis-server 7.0.15 on
//! x86-64 Linux). Each test asserts the bytes Redis sends, guarding the fix.

use crate::util::*;
use chkv_datanode::config::Config;

#[tokio::test]
async fn set_repeated_option_last_wins() {
    bounded(async {
        let s = start().await;
        let mut c = Raw::connect(s.addr()).await;
        assert_eq!(
            c.cmd(&["SET", "k", "v", "EX", "10", "EX", "20"]).await,
            "+OK\r\n"
        );
        assert_eq!(c.cmd(&["TTL", "k"]).await, ":20\r\n");
        assert_eq!(
            c.cmd(&["SET", "k", "v", "KEEPTTL", "KEEPTTL"]).await,
            "+OK\r\n"
        );
        assert_eq!(c.cmd(&["TTL", "k"]).await, ":20\r\n");
    })
    .await
}

#[tokio::test]
async fn getex_repeated_option_last_wins() {
    bounded(async {
        let s = start().await;
        let mut c = Raw::connect(s.addr()).await;
        assert_eq!(c.cmd(&["SET", "g", "v"]).await, "+OK\r\n");
        assert_eq!(
            c.cmd(&["GETEX", "g", "EX", "10", "EX", "20"]).await,
            "$1\r\nv\r\n"
        );
        assert_eq!(c.cmd(&["TTL", "g"]).await, ":20\r\n");
        assert_eq!(
            c.cmd(&["GETEX", "g", "PERSIST", "PERSIST"]).await,
            "$1\r\nv\r\n"
        );
        assert_eq!(c.cmd(&["TTL", "g"]).await, ":-1\r\n");
    })
    .await
}

#[tokio::test]
async fn command_errors_come_before_noauth() {
    bounded(async {
        let s = start_with(Config {
            requirepass: Some(b"pw".to_vec()),
            ..config()
        })
        .await;
        let mut c = Raw::connect(s.addr()).await;
        assert_eq!(
            c.cmd(&["NOPE"]).await,
            "-ERR unknown command 'NOPE', with args beginning with: \r\n"
        );
        assert_eq!(
            c.cmd(&["GET"]).await,
            "-ERR wrong number of arguments for 'get' command\r\n"
        );
        assert_eq!(
            c.cmd(&["CLIENT", "NOPE"]).await,
            "-ERR unknown subcommand 'NOPE'. Try CLIENT HELP.\r\n"
        );
        assert_eq!(
            c.cmd(&["GET", "k"]).await,
            "-NOAUTH Authentication required.\r\n"
        );
    })
    .await
}

#[tokio::test]
async fn incrbyfloat_matches_redis_long_double() {
    bounded(async {
        let s = start().await;
        let mut c = Raw::connect(s.addr()).await;
        // (stored value, increment, expected reply); f64 would print 0.30000000000000004.
        for (start_, by, redis) in [
            ("0.1", "0.2", "0.3"),
            ("1e-20", "0", "0"),
            ("1", "1.5e17", "150000000000000001"),
            // Redis's long-double rounding error, printed %.17Lf: CHKV computes the same.
            ("5.6", "1e3", "1005.59999999999999998"),
            ("3.0e3", "1.1", "3001.10000000000000009"),
        ] {
            assert_eq!(c.cmd(&["SET", "f", start_]).await, "+OK\r\n");
            let want = format!("${}\r\n{redis}\r\n", redis.len());
            assert_eq!(
                c.cmd(&["INCRBYFLOAT", "f", by]).await,
                want.as_str(),
                "{start_} + {by}"
            );
        }
    })
    .await
}

#[tokio::test]
async fn client_list_id_accepts_any_integer() {
    bounded(async {
        let s = start().await;
        let mut c = Raw::connect(s.addr()).await;
        assert_eq!(c.cmd(&["CLIENT", "LIST", "ID", "0"]).await, "$0\r\n\r\n");
        assert_eq!(c.cmd(&["CLIENT", "LIST", "ID", "-1"]).await, "$0\r\n\r\n");
    })
    .await
}

#[tokio::test]
async fn config_set_error_texts() {
    bounded(async {
        let s = start().await;
        let mut c = Raw::connect(s.addr()).await;
        assert_eq!(
            c.cmd(&["CONFIG", "SET", "maxclients", "100", "hz"]).await,
            "-ERR syntax error\r\n"
        );
        assert_eq!(
            c.cmd(&["CONFIG", "SET", "maxclients", "100", "maxclients", "200"]).await,
            "-ERR CONFIG SET failed (possibly related to argument 'maxclients') - duplicate parameter\r\n"
        );
        assert_eq!(
            c.cmd(&["CONFIG", "SET", "maxclients", "-1"]).await,
            "-ERR CONFIG SET failed (possibly related to argument 'maxclients') - argument must be between 1 and 4294967295 inclusive\r\n"
        );
    })
    .await
}

#[tokio::test]
async fn config_get_echoes_the_requested_name() {
    bounded(async {
        let s = start().await;
        let mut c = Raw::connect(s.addr()).await;
        assert_eq!(
            c.cmd(&["CONFIG", "GET", "MAXCLIENTS"]).await,
            "*2\r\n$10\r\nMAXCLIENTS\r\n$5\r\n10000\r\n"
        );
    })
    .await
}

#[tokio::test]
async fn command_info_unknown_is_a_null_bulk() {
    bounded(async {
        let s = start().await;
        let mut c = Raw::connect(s.addr()).await;
        assert_eq!(c.cmd(&["COMMAND", "INFO", "nope"]).await, "*1\r\n$-1\r\n");
    })
    .await
}

#[tokio::test]
async fn client_info_names_the_subcommand() {
    bounded(async {
        let s = start().await;
        let c = &mut connect(s.addr()).await;
        let info: String = q(c, &["CLIENT", "INFO"]).await;
        assert!(info.contains(" cmd=client|info "), "{info}");
    })
    .await
}

/// `idle=` counts from a connection's last command, and the connection asking is running
/// one: Redis shows it idle 0 in its own CLIENT INFO and CLIENT LIST line.
#[tokio::test]
async fn the_client_asking_is_not_idle() {
    bounded(async {
        let s = start().await;
        let me = &mut connect(s.addr()).await;
        let other = &mut connect(s.addr()).await;
        let other_id: i64 = q(other, &["CLIENT", "ID"]).await;
        let my_id: i64 = q(me, &["CLIENT", "ID"]).await;
        // Both connections' last commands are now over a second old.
        tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
        let field = |line: &str, name: &str| -> u64 {
            line.split(' ')
                .find_map(|f| f.strip_prefix(name))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in {line}"))
        };
        let info: String = q(me, &["CLIENT", "INFO"]).await;
        assert!(field(&info, "age=") >= 1, "{info}");
        assert_eq!(field(&info, "idle="), 0, "{info}");
        let list: String = q(me, &["CLIENT", "LIST"]).await;
        let line = |id: i64| {
            list.lines()
                .find(|l| l.starts_with(&format!("id={id} ")))
                .unwrap_or_else(|| panic!("no client {id} in {list}"))
                .to_string()
        };
        assert_eq!(field(&line(my_id), "idle="), 0, "{list}");
        assert!(field(&line(other_id), "idle=") >= 1, "{list}");
    })
    .await
}

#[tokio::test]
async fn info_cpu_header() {
    bounded(async {
        let s = start().await;
        let c = &mut connect(s.addr()).await;
        let cpu: String = q(c, &["INFO", "cpu"]).await;
        assert!(cpu.starts_with("# CPU\r\n"), "{cpu}");
    })
    .await
}

#[tokio::test]
async fn inline_command_stops_at_nul() {
    bounded(async {
        let s = start().await;
        let mut c = Raw::connect(s.addr()).await;
        // Redis: the line is empty, so skipped. CHKV: -ERR unknown command '\0\x01', ...
        c.send(b"\0\x01\r\nPING\r\n").await;
        assert_eq!(c.reply().await, "+PONG\r\n");
    })
    .await
}
