//! A minimal HTTP/1.1 responder for humans and Prometheus: `GET /` (text status),
//! `GET /cluster` (JSON), `GET /metrics` (Prometheus text format).
//!
//! Three read-only pages do not justify a web framework: this reads one request head,
//! answers, and closes the connection (`Connection: close`), which every browser, `curl` and
//! Prometheus scraper handles. The pages are rendered by pure functions of a [`Snapshot`],
//! tested without sockets.

use std::fmt::Write as _;
use std::time::Duration;

use chkv_common::SLOT_COUNT;
use serde::Serialize;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tracing::debug;

use crate::membership::ClusterStatus;
use crate::server::{read_line, Snapshot, StatusSource};

/// The whole request head must arrive this soon.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest request line or header line.
const MAX_HEAD_LINE: usize = 8192;
/// Most header lines read before giving up on a request.
const MAX_HEADERS: usize = 100;

/// An answer, before it is written.
#[derive(Debug, PartialEq, Eq)]
struct Response {
    status: u16,
    content_type: &'static str,
    body: String,
    /// `Allow` header for 405s.
    allow: Option<&'static str>,
}

impl Response {
    fn new(status: u16, content_type: &'static str, body: String) -> Response {
        Response {
            status,
            content_type,
            body,
            allow: None,
        }
    }

    fn text(status: u16, body: &str) -> Response {
        Response::new(status, TEXT, format!("{body}\n"))
    }

    /// The bytes on the wire; `head_only` for HEAD requests.
    fn encode(&self, head_only: bool) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            _ => "Service Unavailable",
        };
        let mut head = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            self.content_type,
            self.body.len()
        );
        if let Some(allow) = self.allow {
            let _ = write!(head, "Allow: {allow}\r\n");
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        if !head_only {
            out.extend_from_slice(self.body.as_bytes());
        }
        out
    }
}

const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";
const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serves one request on `stream`, then closes it.
pub(crate) async fn serve(stream: TcpStream, status: StatusSource) {
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    let head = tokio::time::timeout(REQUEST_TIMEOUT, async {
        let mut line = Vec::new();
        if !read_line(&mut rd, &mut line, MAX_HEAD_LINE).await? {
            return Ok(None);
        }
        let request_line = String::from_utf8_lossy(&line).into_owned();
        // Headers are read only to get past them; nothing here depends on one.
        for _ in 0..MAX_HEADERS {
            if !read_line(&mut rd, &mut line, MAX_HEAD_LINE).await? || line.trim_ascii().is_empty()
            {
                return Ok(Some(request_line));
            }
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "too many headers",
        ))
    })
    .await;
    let request_line = match head {
        Ok(Ok(Some(line))) => line,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => return debug!("http request: {e}"),
        Err(_) => return debug!("http request head timed out"),
    };

    let mut parts = request_line.split_ascii_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let head_only = method == "HEAD";
    let response = match route(method, target) {
        Err(response) => response,
        Ok(page) => match status.snapshot().await {
            Some(snapshot) => render(page, &snapshot),
            None => Response::text(503, "shutting down"),
        },
    };
    let _ = tokio::time::timeout(REQUEST_TIMEOUT, async {
        wr.write_all(&response.encode(head_only)).await?;
        wr.shutdown().await
    })
    .await;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Page {
    Status,
    Cluster,
    Metrics,
}

/// Which page `method target` asks for, or the error response.
fn route(method: &str, target: &str) -> Result<Page, Response> {
    if method.is_empty() || !target.starts_with('/') {
        return Err(Response::text(400, "bad request"));
    }
    if method != "GET" && method != "HEAD" {
        let mut response = Response::text(405, "only GET and HEAD");
        response.allow = Some("GET, HEAD");
        return Err(response);
    }
    let path = target.split(['?', '#']).next().unwrap_or(target);
    match path {
        "/" => Ok(Page::Status),
        "/cluster" => Ok(Page::Cluster),
        "/metrics" => Ok(Page::Metrics),
        _ => Err(Response::text(
            404,
            "not found; try /, /cluster or /metrics",
        )),
    }
}

fn render(page: Page, snapshot: &Snapshot) -> Response {
    match page {
        Page::Status => Response::new(200, TEXT, status_page(snapshot)),
        Page::Cluster => {
            #[derive(Serialize)]
            struct Cluster<'a> {
                #[serde(flatten)]
                status: &'a ClusterStatus,
                watchers: usize,
            }
            let cluster = Cluster {
                status: &snapshot.status,
                watchers: snapshot.watchers,
            };
            match serde_json::to_string_pretty(&cluster) {
                Ok(mut body) => {
                    body.push('\n');
                    Response::new(200, JSON, body)
                }
                Err(e) => Response::text(503, &format!("cannot encode cluster state: {e}")),
            }
        }
        Page::Metrics => Response::new(200, PROMETHEUS, metrics(snapshot)),
    }
}

fn status_page(snapshot: &Snapshot) -> String {
    let s = &snapshot.status;
    let alive = s.nodes.iter().filter(|n| n.state == "alive").count();
    let mut out = String::new();
    let _ = writeln!(out, "CHKV NameNode");
    let _ = writeln!(out, "state: {}", s.state);
    let _ = writeln!(out, "epoch: {}", s.epoch);
    let _ = writeln!(out, "datanodes: {} ({alive} alive)", s.nodes.len());
    let _ = writeln!(out, "slots assigned: {} of {SLOT_COUNT}", s.slots_assigned);
    let _ = writeln!(out, "watchers: {}", snapshot.watchers);
    let _ = writeln!(out, "declared dead: {}", s.declared_dead_total);
    for n in &s.nodes {
        let _ = writeln!(
            out,
            "{} client={} admin={} {}{} slots={} keys={} used_memory={} epoch_seen={}",
            n.id,
            n.client_addr,
            n.admin_addr,
            n.state,
            if n.connected { "" } else { " (disconnected)" },
            n.slots,
            n.stats.keys,
            n.stats.used_memory,
            n.epoch_seen,
        );
    }
    out
}

/// The Prometheus text exposition format.
fn metrics(snapshot: &Snapshot) -> String {
    let s = &snapshot.status;
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, kind: &str, samples: &[(Option<&str>, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (node, value) in samples {
            match node {
                Some(node) => {
                    let _ = writeln!(out, "{name}{{node=\"{}\"}} {value}", label(node));
                }
                None => {
                    let _ = writeln!(out, "{name} {value}");
                }
            }
        }
    };
    gauge(
        "chkv_epoch",
        "Epoch of the published slot table.",
        "gauge",
        &[(None, s.epoch)],
    );
    gauge(
        "chkv_datanodes",
        "DataNodes in the ring.",
        "gauge",
        &[(None, s.nodes.len() as u64)],
    );
    gauge(
        "chkv_datanodes_suspect",
        "DataNodes being probed after silence or a lost connection.",
        "gauge",
        &[(
            None,
            s.nodes.iter().filter(|n| n.state != "alive").count() as u64,
        )],
    );
    gauge(
        "chkv_slots_assigned",
        "Slots with an owner in the published table.",
        "gauge",
        &[(None, s.slots_assigned as u64)],
    );
    gauge(
        "chkv_slots_moving",
        "Slot moves ordered and not yet confirmed (joins and drains under way).",
        "gauge",
        &[(None, s.slots_moving as u64)],
    );
    gauge(
        "chkv_watchers",
        "Clients watching the ring.",
        "gauge",
        &[(None, snapshot.watchers as u64)],
    );
    gauge(
        "chkv_datanodes_declared_dead_total",
        "DataNodes declared dead since this NameNode started.",
        "counter",
        &[(None, s.declared_dead_total)],
    );
    let per_node = |f: &dyn Fn(&crate::membership::NodeStatus) -> u64| -> Vec<(Option<&str>, u64)> {
        s.nodes
            .iter()
            .map(|n| (Some(n.id.as_str()), f(n)))
            .collect()
    };
    gauge(
        "chkv_datanode_up",
        "1 when the DataNode is alive, 0 while it is being probed.",
        "gauge",
        &per_node(&|n| u64::from(n.state == "alive")),
    );
    gauge(
        "chkv_datanode_slots",
        "Slots the DataNode owns in the published table.",
        "gauge",
        &per_node(&|n| n.slots as u64),
    );
    gauge(
        "chkv_datanode_keys",
        "Keys the DataNode reported in its last heartbeat.",
        "gauge",
        &per_node(&|n| n.stats.keys),
    );
    gauge(
        "chkv_datanode_used_memory_bytes",
        "Memory the DataNode reported in its last heartbeat.",
        "gauge",
        &per_node(&|n| n.stats.used_memory),
    );
    gauge(
        "chkv_datanode_ops",
        "Operations the DataNode reported in its last heartbeat.",
        "gauge",
        &per_node(&|n| n.stats.ops),
    );
    out
}

/// A label value escaped as the exposition format requires.
fn label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::{NodeStats, NodeStatus};
    use chkv_common::NodeId;

    fn snapshot() -> Snapshot {
        let node = |id: &str, slots| NodeStatus {
            id: NodeId::from(id),
            client_addr: "127.0.0.1:10100".parse().expect("valid"),
            admin_addr: "127.0.0.1:20000".parse().expect("valid"),
            state: "alive",
            connected: true,
            last_heartbeat_ms_ago: Some(12),
            last_heard_ms_ago: 12,
            epoch_seen: 5,
            slots,
            stats: NodeStats {
                keys: 42,
                used_memory: 4096,
                ops: 7,
            },
        };
        Snapshot {
            status: ClusterStatus {
                state: "running",
                epoch: 5,
                nodes: vec![node("dn-a", 8000), node("dn\"b", 8384)],
                slots_assigned: 16384,
                ranges: vec![(0, 7999, NodeId::from("dn-a"))],
                declared_dead_total: 1,
                slots_moving: 12,
                draining: vec![],
            },
            watchers: 2,
        }
    }

    #[test]
    fn routes() {
        assert_eq!(route("GET", "/"), Ok(Page::Status));
        assert_eq!(route("HEAD", "/cluster?pretty"), Ok(Page::Cluster));
        assert_eq!(route("GET", "/metrics"), Ok(Page::Metrics));
        assert_eq!(route("GET", "/nope").map_err(|r| r.status), Err(404));
        assert_eq!(route("POST", "/").map_err(|r| r.status), Err(405));
        assert_eq!(route("", "").map_err(|r| r.status), Err(400));
        assert_eq!(route("GET", "http://x/").map_err(|r| r.status), Err(400));
    }

    #[test]
    fn responses_are_framed() {
        let r = Response::text(404, "not found");
        let wire = String::from_utf8(r.encode(false)).expect("utf8");
        assert!(wire.starts_with("HTTP/1.1 404 Not Found\r\n"), "{wire}");
        assert!(wire.contains("Content-Length: 10\r\n"));
        assert!(wire.ends_with("\r\n\r\nnot found\n"));
        let head = String::from_utf8(r.encode(true)).expect("utf8");
        assert!(head.ends_with("\r\n\r\n"));
    }

    #[test]
    fn metrics_have_the_expected_series() {
        let text = metrics(&snapshot());
        for line in [
            "chkv_epoch 5",
            "chkv_datanodes 2",
            "chkv_slots_assigned 16384",
            "chkv_watchers 2",
            "chkv_datanode_keys{node=\"dn-a\"} 42",
            "chkv_datanode_keys{node=\"dn\\\"b\"} 42",
            "# TYPE chkv_datanodes_declared_dead_total counter",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }

    #[test]
    fn cluster_json_and_status_page() {
        let r = render(Page::Cluster, &snapshot());
        assert_eq!(r.content_type, JSON);
        let v: serde_json::Value = serde_json::from_str(&r.body).expect("json");
        assert_eq!(v["epoch"], 5);
        assert_eq!(v["watchers"], 2);
        assert_eq!(v["nodes"][0]["id"], "dn-a");
        assert_eq!(v["nodes"][0]["keys"], 42);
        assert_eq!(v["ranges"][0][2], "dn-a");
        let page = status_page(&snapshot());
        assert!(page.contains("epoch: 5\n"));
        assert!(page.contains("datanodes: 2 (2 alive)\n"));
    }
}
