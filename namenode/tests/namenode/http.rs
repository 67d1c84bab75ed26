//! The HTTP port: status text, cluster JSON, Prometheus metrics.

use std::time::Duration;

use anyhow::Result;
use serde_json::Value;

use crate::util::{bounded, config, http_get, start, FakeDataNode};

const INTERVAL: Duration = Duration::from_millis(100);

#[tokio::test]
async fn http_reports_the_cluster() -> Result<()> {
    bounded(20, async {
        let nn = start(config(INTERVAL, Duration::ZERO)).await?;
        let (_a, _) = FakeDataNode::join(nn.datanode_addr(), "dn-a", 7601, INTERVAL).await?;
        let (_b, table) = FakeDataNode::join(nn.datanode_addr(), "dn-b", 7602, INTERVAL).await?;
        // Let a heartbeat or two carry the load figures.
        tokio::time::sleep(INTERVAL * 3).await;

        let (status, body) = http_get(nn.http_addr(), "/cluster").await?;
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

        let (status, metrics) = http_get(nn.http_addr(), "/metrics").await?;
        assert_eq!(status, 200);
        let has = |line: &str| metrics.lines().any(|l| l == line);
        assert!(has(&format!("chkv_epoch {}", table.epoch())), "{metrics}");
        assert!(has("chkv_datanodes 2"), "{metrics}");
        assert!(has("chkv_slots_assigned 16384"), "{metrics}");
        assert!(has("chkv_datanode_keys{node=\"dn-a\"} 100"), "{metrics}");

        let (status, text) = http_get(nn.http_addr(), "/").await?;
        assert_eq!(status, 200);
        assert!(
            text.contains(&format!("epoch: {}", table.epoch())),
            "{text}"
        );
        assert!(text.contains("datanodes: 2 (2 alive)"), "{text}");

        let (status, _) = http_get(nn.http_addr(), "/nope").await?;
        assert_eq!(status, 404);
        nn.shutdown().await;
        Ok(())
    })
    .await
}
