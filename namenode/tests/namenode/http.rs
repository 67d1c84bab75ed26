//! The HTTP port: dashboard, JSON API, the drain API and its token, Prometheus metrics, bounds.

use std::time::Duration;

use anyhow::Result;
use chkv_namenode::HttpToken;
use serde_json::Value;

use crate::util::{bounded, config, http_get, http_request, start, within, FakeDataNode, Received};
use chkv_testkit::prom::parse_prometheus;

const INTERVAL: Duration = Duration::from_millis(100);
/// Liveness bound of a wait: generous.
const LIVENESS: Duration = Duration::from_secs(60);

#[tokio::test]
async fn http_reports_the_cluster() -> Result<()> {
    bounded(180, async {
        let nn = start(config(INTERVAL, Duration::ZERO)).await?;
        let (_a, _) = FakeDataNode::join(nn.datanode_addr(), "dn-a", 7601, INTERVAL).await?;
        let (_b, table) = FakeDataNode::join(nn.datanode_addr(), "dn-b", 7602, INTERVAL).await?;
        // Until a heartbeat of each has carried the load figures (a condition: on a loaded
        // machine a fixed pause was sometimes too short).
        within(LIVENESS, "both nodes' figures", async {
            loop {
                let (_, body) = http_get(nn.http_addr(), "/api/cluster").await?;
                let cluster: Value = serde_json::from_str(&body)?;
                let nodes = cluster["nodes"].as_array().cloned().unwrap_or_default();
                if nodes.len() == 2 && nodes.iter().all(|n| n["keys"] == 100) {
                    return anyhow::Ok(());
                }
                tokio::time::sleep(INTERVAL).await;
            }
        })
        .await??;

        for path in ["/cluster", "/api/cluster"] {
            let (status, body) = http_get(nn.http_addr(), path).await?;
            assert_eq!(status, 200);
            let cluster: Value = serde_json::from_str(&body)?;
            assert_eq!(cluster["state"], "running");
            assert_eq!(cluster["epoch"], table.epoch());
            assert_eq!(cluster["slots_assigned"], 16384);
            let nodes = cluster["nodes"].as_array().cloned().unwrap_or_default();
            assert_eq!(nodes.len(), 2);
            assert_eq!(nodes[0]["id"], "dn-a");
            assert_eq!(nodes[0]["client_addr"], "127.0.0.1:7601");
            assert_eq!(nodes[0]["admin_addr"], "127.0.0.1:17601");
            assert_eq!(nodes[1]["keys"], 100);
            assert_eq!(nodes[1]["used_memory"], 1 << 20);
            assert_eq!(nodes[1]["state"], "alive");
            assert!(nodes[1]["last_heartbeat_ms_ago"].as_u64().is_some());
            let slots: u64 = nodes.iter().filter_map(|n| n["slots"].as_u64()).sum();
            assert_eq!(slots, 16384);
            assert!(!cluster["ranges"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .is_empty());
        }

        let (status, body) = http_get(nn.http_addr(), "/api/nodes").await?;
        assert_eq!(status, 200);
        let nodes: Value = serde_json::from_str(&body)?;
        assert_eq!(nodes[1]["id"], "dn-b");
        assert_eq!(nodes[1]["draining"], false);
        assert!(nodes[1]["ops_per_sec"].as_f64().is_some());

        let (status, body) = http_get(nn.http_addr(), "/api/events").await?;
        assert_eq!(status, 200);
        let events: Value = serde_json::from_str(&body)?;
        let kinds: Vec<&str> = events
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["kind"].as_str())
            .collect();
        assert!(kinds.contains(&"join"), "{kinds:?}");
        assert!(kinds.contains(&"epoch"), "{kinds:?}");

        let metrics = http_request(nn.http_addr(), "GET", "/metrics", &[], b"").await?;
        assert_eq!(metrics.status, 200);
        assert!(metrics
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")));
        let samples = parse_prometheus(&metrics.body)?;
        let value = |name: &str, node: Option<&str>| {
            samples
                .iter()
                .find(|(n, labels, _)| {
                    n == name
                        && node.is_none_or(|id| labels.iter().any(|(k, v)| k == "node" && v == id))
                })
                .map(|s| s.2)
        };
        assert_eq!(value("chkv_epoch", None), Some(table.epoch() as f64));
        assert_eq!(value("chkv_datanodes", None), Some(2.0));
        assert_eq!(value("chkv_slots_assigned", None), Some(16384.0));
        assert_eq!(value("chkv_datanode_keys", Some("dn-a")), Some(100.0));
        assert_eq!(value("chkv_datanode_ops_total", Some("dn-b")), Some(5.0));
        assert!(metrics
            .body
            .contains(r#"chkv_datanode_keys{addr="127.0.0.1:7601",node="dn-a"} 100"#));

        let page = http_request(nn.http_addr(), "GET", "/", &[], b"").await?;
        assert_eq!(page.status, 200);
        assert!(page
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/html")));
        assert!(page.body.contains(r#"<svg id="ring""#));
        assert_eq!(page.body.matches(r#"class="node-row""#).count(), 2);
        assert!(page.body.contains(&format!("epoch {}", table.epoch())));

        let (status, body) = http_get(nn.http_addr(), "/healthz").await?;
        assert_eq!((status, body.as_str()), (200, "ok\n"));
        let (status, _) = http_get(nn.http_addr(), "/nope").await?;
        assert_eq!(status, 404);
        let r = http_request(nn.http_addr(), "POST", "/api/cluster", &[], b"").await?;
        assert_eq!(r.status, 405);
        nn.shutdown().await;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn hostile_node_ids_are_escaped() -> Result<()> {
    bounded(180, async {
        let nn = start(config(INTERVAL, Duration::ZERO)).await?;
        // Node ids are 1-64 printable bytes without spaces (issue 12), which still leaves
        // everything HTML needs escaped.
        let hostile = r#"<img/src=x/onerror="alert(1)">&'"#;
        let (_a, _) = FakeDataNode::join(nn.datanode_addr(), hostile, 7611, INTERVAL).await?;
        let (status, page) = http_get(nn.http_addr(), "/").await?;
        assert_eq!(status, 200);
        assert!(!page.contains("<img"), "{page}");
        assert!(!page.contains(r#"onerror="alert"#));
        assert!(page.contains("&lt;img/src=x/onerror=&quot;alert(1)&quot;&gt;&amp;&#39;"));
        let (_, metrics) = http_get(nn.http_addr(), "/metrics").await?;
        let samples = parse_prometheus(&metrics)?;
        assert!(samples
            .iter()
            .any(|(n, labels, _)| n == "chkv_datanode_keys"
                && labels.iter().any(|(k, v)| k == "node" && v == hostile)));
        let (_, nodes) = http_get(nn.http_addr(), "/api/nodes").await?;
        let nodes: Value = serde_json::from_str(&nodes)?;
        assert_eq!(nodes[0]["id"], hostile);
        nn.shutdown().await;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn drains_need_a_configured_token() -> Result<()> {
    bounded(180, async {
        let nn = start(config(INTERVAL, Duration::ZERO)).await?;
        let (_a, _) = FakeDataNode::join(nn.datanode_addr(), "dn-a", 7621, INTERVAL).await?;
        let r = http_request(
            nn.http_addr(),
            "POST",
            "/api/nodes/dn-a/drain",
            &[("Authorization", "Bearer anything")],
            b"",
        )
        .await?;
        assert_eq!(r.status, 403);
        assert!(r.body.contains("--http-token-file"), "{}", r.body);
        nn.shutdown().await;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn an_authorised_drain_moves_the_node_out() -> Result<()> {
    bounded(180, async {
        let mut cfg = config(INTERVAL, Duration::ZERO);
        cfg.http_token = HttpToken::new("tok-123");
        let nn = start(cfg).await?;
        let (mut a, _) = FakeDataNode::join(nn.datanode_addr(), "dn-a", 7631, INTERVAL).await?;
        let (_b, _) = FakeDataNode::join(nn.datanode_addr(), "dn-b", 7632, INTERVAL).await?;
        while let Ok(Received::Table(_)) = a.next(Duration::from_millis(300)).await {}
        let post = |path: &'static str, auth: Option<&'static str>| {
            let addr = nn.http_addr();
            async move {
                let headers: Vec<(&str, &str)> =
                    auth.map(|a| ("Authorization", a)).into_iter().collect();
                http_request(addr, "POST", path, &headers, b"").await
            }
        };
        let r = post("/api/nodes/dn-a/drain", None).await?;
        assert_eq!(r.status, 401);
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        let r = post("/api/nodes/dn-a/drain", Some("Bearer tok-124")).await?;
        assert_eq!(r.status, 401);
        let r = post("/api/nodes/dn-a/drain", Some("Basic tok-123")).await?;
        assert_eq!(r.status, 401);
        let r = post("/api/nodes/dn-x/drain", Some("Bearer tok-123")).await?;
        assert_eq!(r.status, 404, "{}", r.body);

        let r = post("/api/nodes/dn-a/drain", Some("Bearer tok-123")).await?;
        assert_eq!(r.status, 202, "{}", r.body);
        let v: Value = serde_json::from_str(&r.body)?;
        assert_eq!(v["draining"], "dn-a");
        // The node answers with `leave`; its slots move to dn-b and the table without it is
        // its acknowledgement.
        let deadline = tokio::time::Instant::now() + LIVENESS;
        loop {
            match a.next(LIVENESS).await? {
                Received::Table(t) if t.nodes().iter().all(|n| n.as_str() != "dn-a") => break,
                _ if tokio::time::Instant::now() > deadline => anyhow::bail!("no drain"),
                _ => {}
            }
        }
        let (_, events) = http_get(nn.http_addr(), "/api/events").await?;
        let events: Value = serde_json::from_str(&events)?;
        let kinds: Vec<(&str, &str)> = events
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| Some((e["kind"].as_str()?, e["node"].as_str().unwrap_or(""))))
            .collect();
        for want in [("drain_requested", "dn-a"), ("drain", "dn-a")] {
            assert!(kinds.contains(&want), "{want:?} in {kinds:?}");
        }
        nn.shutdown().await;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn requests_are_bounded() -> Result<()> {
    bounded(180, async {
        let mut cfg = config(INTERVAL, Duration::ZERO);
        cfg.http_token = HttpToken::new("tok");
        let nn = start(cfg).await?;
        let big = vec![b'x'; 64 * 1024];
        let r = http_request(
            nn.http_addr(),
            "POST",
            "/api/nodes/dn-a/drain",
            &[("Authorization", "Bearer tok")],
            &big,
        )
        .await?;
        assert_eq!(r.status, 413);
        // A head that never ends is cut off; the port keeps serving.
        let mut slow = tokio::net::TcpStream::connect(nn.http_addr()).await?;
        tokio::io::AsyncWriteExt::write_all(&mut slow, b"GET / HTTP/1.1\r\nHost: x\r\n").await?;
        let mut rest = Vec::new();
        let read = tokio::time::timeout(
            Duration::from_secs(15),
            tokio::io::AsyncReadExt::read_to_end(&mut slow, &mut rest),
        )
        .await;
        assert!(
            read.is_ok(),
            "an unfinished request head is closed within the timeout"
        );
        let (status, _) = http_get(nn.http_addr(), "/healthz").await?;
        assert_eq!(status, 200);
        nn.shutdown().await;
        Ok(())
    })
    .await
}
