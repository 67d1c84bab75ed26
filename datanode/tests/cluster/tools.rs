//! Redis's own cluster tools against a CHKV cluster: `redis-cli --cluster check` and
//! `--cluster info` pass, and `redis-cli --cluster import --cluster-copy` moves a live
//! redis-server's strings, hashes and sets, with their TTLs, into the cluster. Skipped, with a note, when
//! `redis-cli` or `redis-server` is not on PATH.

use crate::util::*;
use chkv_testkit::redis_server::{find_on_path, RedisServer};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `redis-cli args...` off the runtime's threads, bounded by `timeout`.
async fn redis_cli(cli: &Path, args: Vec<String>) -> Output {
    let cli = cli.to_path_buf();
    let shown = args.join(" ");
    let run = tokio::task::spawn_blocking(move || {
        Command::new("timeout")
            .arg("60")
            .arg(cli)
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli")
    });
    tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .unwrap_or_else(|_| panic!("redis-cli {shown} did not finish"))
        .expect("redis-cli task")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Polls `redis-cli --cluster check` until it passes (slots still moving after the joins
/// make it report open slots or disagreeing nodes for a moment).
async fn wait_check_passes(cli: &Path, addr: SocketAddr) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = redis_cli(
            cli,
            vec!["--cluster".into(), "check".into(), addr.to_string()],
        )
        .await;
        let t = text(&out);
        if out.status.success() && !t.contains("[ERR]") && !t.contains("[WARNING]") {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "redis-cli --cluster check never passed; last output:\n{t}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_cluster_check_info_and_import() {
    let Some(cli) = find_on_path("redis-cli") else {
        eprintln!("note: redis-cli is not on PATH; skipping the redis-cli --cluster test");
        return;
    };
    let Some(redis) = RedisServer::start(&[]).await else {
        eprintln!("note: redis-server is not on PATH; skipping the redis-cli --cluster test");
        return;
    };
    let cluster = Cluster::start(3).await;
    let entry = cluster.addrs()[0];

    let mut con = connect(entry).await;
    let info: String = q(&mut con, &["INFO", "cluster"]).await;
    assert!(info.contains("cluster_enabled:1"), "{info}");
    let info: String = q(&mut con, &["INFO", "server"]).await;
    assert!(info.contains("redis_mode:cluster"), "{info}");

    let check = wait_check_passes(&cli, entry).await;
    assert!(
        check.contains("[OK] All nodes agree about slots configuration."),
        "{check}"
    );
    assert!(check.contains("[OK] All 16384 slots covered."), "{check}");
    for addr in cluster.addrs() {
        assert!(
            check.contains(&addr.to_string()),
            "{addr} missing:\n{check}"
        );
    }
    let out = redis_cli(
        &cli,
        vec!["--cluster".into(), "info".into(), entry.to_string()],
    )
    .await;
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("0 keys in 3 masters."), "{t}");

    // A live redis-server with strings, some with TTLs.
    let mut r = connect(redis.addr).await;
    let n = 300;
    for i in 0..n {
        let (k, v) = (
            format!("imp:{i}"),
            format!("value-{i}-{}", "x".repeat(i % 50)),
        );
        if i % 3 == 0 {
            let _: () = q(&mut r, &["SET", &k, &v]).await;
        } else {
            let _: () = q(&mut r, &["SET", &k, &v, "EX", "1000"]).await;
        }
    }
    // Hashes and sets too, with TTLs.
    let extra = 40;
    for i in 0..extra {
        let (h, st) = (format!("imph:{i}"), format!("imps:{i}"));
        let _: i64 = q(&mut r, &["HSET", &h, "f", &format!("v{i}"), "n", "7"]).await;
        let _: i64 = q(&mut r, &["SADD", &st, "a", &i.to_string(), "c"]).await;
        let _: i64 = q(&mut r, &["EXPIRE", &h, "1000"]).await;
    }
    let out = redis_cli(
        &cli,
        vec![
            "--cluster".into(),
            "import".into(),
            entry.to_string(),
            "--cluster-from".into(),
            redis.addr.to_string(),
            "--cluster-copy".into(),
        ],
    )
    .await;
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(!t.contains("ERR"), "{t}");

    // Every key arrived, on its owner, with its value and TTL; Redis kept its copy.
    let mut total = 0;
    for addr in cluster.addrs() {
        let mut c = connect(addr).await;
        total += q::<i64, _>(&mut c, &["DBSIZE"]).await;
    }
    assert_eq!(total, (n + 2 * extra) as i64);
    for i in 0..extra {
        let (h, st) = (format!("imph:{i}"), format!("imps:{i}"));
        let v: String = q(&mut con, &["HGET", &h, "f"]).await;
        assert_eq!(v, format!("v{i}"));
        let ttl: i64 = q(&mut con, &["TTL", &h]).await;
        assert!((900..=1000).contains(&ttl), "{h}: {ttl}");
        let m: i64 = q(&mut con, &["SCARD", &st]).await;
        assert_eq!(m, 3);
        assert_eq!(q::<i64, _>(&mut con, &["TTL", &st]).await, -1);
    }
    for i in 0..n {
        let k = format!("imp:{i}");
        let v: String = q(&mut con, &["GET", &k]).await;
        assert_eq!(v, format!("value-{i}-{}", "x".repeat(i % 50)));
        let ttl: i64 = q(&mut con, &["TTL", &k]).await;
        if i % 3 == 0 {
            assert_eq!(ttl, -1, "{k}");
        } else {
            assert!((900..=1000).contains(&ttl), "{k}: {ttl}");
        }
    }
    let all = n + 2 * extra;
    assert_eq!(q::<i64, _>(&mut r, &["DBSIZE"]).await, all as i64);
    let out = redis_cli(
        &cli,
        vec!["--cluster".into(), "info".into(), entry.to_string()],
    )
    .await;
    assert!(
        text(&out).contains(&format!("{all} keys in 3 masters.")),
        "{}",
        text(&out)
    );
    cluster.shutdown().await;
}
