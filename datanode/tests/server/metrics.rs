//! The HTTP port: `/metrics` in a valid Prometheus text format with per-command calls,
//! errors and latency histograms, and `/healthz`.

use crate::util::*;
use chkv_datanode::server;
use chkv_testkit::prom::{parse_prometheus, Sample};
use std::net::SocketAddr;

/// GET `path` on its own connection; the status code and the body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut c = Raw::connect(addr).await;
    c.send(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await;
    let text = String::from_utf8(c.read_to_eof().await.to_vec()).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP head and body");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    (status, body.to_string())
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|s| s.2)
}

#[tokio::test]
async fn metrics_count_commands_errors_and_latency() {
    bounded(async {
        let node = start_with(chkv_datanode::config::Config {
            http_addr: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            ..config()
        })
        .await;
        let http = node.http_addr().expect("HTTP port on");
        assert_ne!(http.port(), 0);
        let mut con = connect(node.addr()).await;
        for i in 0..10 {
            let _: () = q(&mut con, &["SET", &format!("k{i}"), "v"]).await;
        }
        let _: Option<String> = q(&mut con, &["GET", "k1"]).await;
        let _: Option<String> = q(&mut con, &["GET", "nope"]).await;
        // A failed call (wrong type of value) and a rejected one (arity).
        let _ = q_err(&mut con, &["INCR", "k1"]).await;
        let _ = q_err(&mut con, &["GET"]).await;
        let _: i64 = q(&mut con, &["EXPIRE", "k2", "100"]).await;

        let (status, body) = get(http, "/metrics").await;
        assert_eq!(status, 200, "{body}");
        let samples = parse_prometheus(&body).expect("valid exposition format");
        let v = |name: &str, labels: &[(&str, &str)]| value(&samples, name, labels);
        assert_eq!(v("chkv_command_calls_total", &[("cmd", "set")]), Some(10.0));
        assert_eq!(v("chkv_command_calls_total", &[("cmd", "get")]), Some(2.0));
        assert_eq!(
            v("chkv_command_rejected_calls_total", &[("cmd", "get")]),
            Some(1.0)
        );
        assert_eq!(
            v("chkv_command_failed_calls_total", &[("cmd", "incr")]),
            Some(1.0)
        );
        assert_eq!(
            v("chkv_command_failed_calls_total", &[("cmd", "set")]),
            Some(0.0)
        );
        assert_eq!(
            v("chkv_command_duration_seconds_count", &[("cmd", "set")]),
            Some(10.0)
        );
        assert_eq!(
            v(
                "chkv_command_duration_seconds_bucket",
                &[("cmd", "set"), ("le", "+Inf")]
            ),
            Some(10.0)
        );
        // Buckets are cumulative: never decreasing, never above the count.
        let buckets: Vec<f64> = samples
            .iter()
            .filter(|(n, l, _)| {
                n == "chkv_command_duration_seconds_bucket"
                    && l.iter().any(|(k, v)| k == "cmd" && v == "set")
            })
            .map(|s| s.2)
            .collect();
        assert!(buckets.len() > 5, "{buckets:?}");
        assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
        assert!(v("chkv_command_duration_seconds_sum", &[("cmd", "set")]).is_some());
        assert_eq!(v("chkv_keys", &[]), Some(10.0));
        assert_eq!(v("chkv_keys_with_expiry", &[]), Some(1.0));
        assert_eq!(v("chkv_connected_clients", &[]), Some(1.0));
        assert_eq!(v("chkv_keyspace_hits_total", &[]), Some(1.0), "GET k1");
        assert!(v("chkv_used_memory_bytes", &[]).is_some_and(|m| m > 0.0));
        for counter in [
            "chkv_commands_processed_total",
            "chkv_expired_keys_total",
            "chkv_evicted_keys_total",
            "chkv_forwarded_requests_total",
            "chkv_handoff_bytes_sent_total",
            "chkv_handoff_pieces_sent_total",
            "chkv_connections_received_total",
        ] {
            assert!(
                body.contains(&format!("# TYPE {counter} counter")),
                "{counter}"
            );
        }
        assert_eq!(v("chkv_cluster_enabled", &[]), Some(0.0));

        assert_eq!(get(http, "/healthz").await, (200, "ok\n".to_string()));
        assert_eq!(get(http, "/nope").await.0, 404);
        node.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn the_http_port_is_off_by_default() {
    bounded(async {
        let node = server::start(config()).await.expect("starts");
        assert_eq!(node.http_addr(), None);
        node.shutdown().await;
    })
    .await
}
