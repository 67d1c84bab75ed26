//! The DataNode's optional HTTP port (`--http-port`, loopback by default): `GET /metrics` in
//! the Prometheus text format and `GET /healthz`.
//!
//! Nothing here runs per request on the data path: every figure is read when scraped from
//! the counters the node keeps anyway (the striped server and store counters, the
//! per-command table of [`crate::cmdstats`], the routing snapshot, the handoff progress).
//! Built with the `prometheus` crate (a fresh registry per scrape); the per-command latency
//! histograms are assembled from their bucket counts.

use crate::cmdstats::BUCKETS_US;
use crate::node::Node;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chkv_common::http::{HttpLimits, HttpServer};
use prometheus::proto::{Bucket, Histogram, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::warn;

const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serves the HTTP port on `listener` until `stop` fires.
pub async fn serve(listener: TcpListener, node: Arc<Node>, mut stop: watch::Receiver<bool>) {
    let router = Router::new()
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(healthz))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                "not found; try /metrics or /healthz\n",
            )
        })
        .with_state(node);
    let server = HttpServer::new(
        router,
        HttpLimits {
            max_connections: 16,
            max_in_flight: 8,
            ..HttpLimits::default()
        },
    );
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    conns.spawn(server.serve(stream));
                }
                Err(e) => {
                    warn!(error = %e, "accepting an HTTP connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.shutdown().await;
}

/// `ok` (200) while the node serves; `draining` (503) once a drain has started, so a load
/// balancer stops sending it new clients.
async fn healthz(State(node): State<Arc<Node>>) -> Response {
    if node.handoff.draining.load(Relaxed) {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response()
    } else {
        "ok\n".into_response()
    }
}

async fn metrics_page(State(node): State<Arc<Node>>) -> Response {
    match metrics(&node) {
        Ok(text) => ([(header::CONTENT_TYPE, PROMETHEUS)], text).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode metrics: {e}\n"),
        )
            .into_response(),
    }
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Every metric of `node`, in the Prometheus text format.
pub fn metrics(node: &Node) -> prometheus::Result<String> {
    let registry = Registry::new();
    let gauge = |name: &str, help: &str, value: u64| -> prometheus::Result<()> {
        let g = IntGauge::new(name, help)?;
        g.set(clamp(value));
        registry.register(Box::new(g))
    };
    let counter = |name: &str, help: &str, value: u64| -> prometheus::Result<()> {
        let c = IntCounter::new(name, help)?;
        c.inc_by(value);
        registry.register(Box::new(c))
    };
    let st = &node.stats;
    let db = &node.db;
    let cfg = node.config().clone();
    let routing = node.routing();
    gauge(
        "chkv_uptime_seconds",
        "Seconds since the DataNode started.",
        node.started.elapsed().as_secs(),
    )?;
    gauge(
        "chkv_connected_clients",
        "Client connections open now.",
        node.connected_clients() as u64,
    )?;
    gauge(
        "chkv_maxclients",
        "Most client connections allowed.",
        cfg.maxclients as u64,
    )?;
    counter(
        "chkv_connections_received_total",
        "Client connections accepted.",
        st.total_connections.get(),
    )?;
    counter(
        "chkv_connections_rejected_total",
        "Client connections refused at maxclients.",
        st.rejected_connections.get(),
    )?;
    counter(
        "chkv_commands_processed_total",
        "Requests processed (run here or forwarded).",
        st.total_commands.get(),
    )?;
    counter(
        "chkv_net_input_bytes_total",
        "Bytes read from clients.",
        st.net_input_bytes.get(),
    )?;
    counter(
        "chkv_net_output_bytes_total",
        "Bytes written to clients.",
        st.net_output_bytes.get(),
    )?;
    gauge("chkv_keys", "Keys held.", db.len())?;
    gauge(
        "chkv_keys_with_expiry",
        "Keys held that have a time to live.",
        db.volatile_len(),
    )?;
    gauge(
        "chkv_used_memory_bytes",
        "Memory accounted to the data (INFO used_memory).",
        db.used_memory(),
    )?;
    gauge(
        "chkv_maxmemory_bytes",
        "The memory limit (0: none).",
        cfg.eviction.maxmemory,
    )?;
    counter(
        "chkv_expired_keys_total",
        "Keys removed because their time to live ran out.",
        db.stats.expired_keys.get(),
    )?;
    counter(
        "chkv_evicted_keys_total",
        "Keys evicted to stay under maxmemory.",
        db.stats.evicted_keys.get(),
    )?;
    counter(
        "chkv_keyspace_hits_total",
        "Key lookups that found the key.",
        db.stats.keyspace_hits.get(),
    )?;
    counter(
        "chkv_keyspace_misses_total",
        "Key lookups that did not find the key.",
        db.stats.keyspace_misses.get(),
    )?;
    counter(
        "chkv_forwarded_requests_total",
        "Requests (or parts of split multi-key requests) forwarded to the owning DataNode.",
        st.forwarded_requests.get(),
    )?;
    let progress = &node.handoff.progress;
    counter(
        "chkv_handoff_keys_sent_total",
        "Keys handed to other DataNodes by slot moves (joins and drains).",
        progress.keys_sent_total.load(Relaxed),
    )?;
    counter(
        "chkv_handoff_bytes_sent_total",
        "Bytes of entries handed to other DataNodes by slot moves.",
        progress.bytes_sent_total.load(Relaxed),
    )?;
    counter(
        "chkv_handoff_pieces_sent_total",
        "Pieces of values too large for one transfer (above 4 MB) handed to other DataNodes.",
        progress.pieces_sent_total.load(Relaxed),
    )?;
    gauge(
        "chkv_cluster_enabled",
        "1 when the DataNode is in a cluster (has a slot table), 0 standalone.",
        u64::from(!routing.standalone),
    )?;
    gauge(
        "chkv_cluster_epoch",
        "Epoch of the slot table the DataNode applied.",
        if routing.standalone { 0 } else { routing.epoch },
    )?;
    gauge(
        "chkv_cluster_slots_owned",
        "Slots this DataNode owns in its table.",
        if routing.standalone {
            0
        } else {
            routing.my_slot_count() as u64
        },
    )?;
    gauge(
        "chkv_draining",
        "1 while the DataNode is draining.",
        u64::from(node.handoff.draining.load(Relaxed)),
    )?;

    // Per command: only those that have been called, so the output stays short.
    let table = crate::cmd::table();
    let opts = |name: &str, help: &str| Opts::new(name, help);
    let calls = IntCounterVec::new(
        opts(
            "chkv_command_calls_total",
            "Calls of each command that ran here.",
        ),
        &["cmd"],
    )?;
    let failed = IntCounterVec::new(
        opts(
            "chkv_command_failed_calls_total",
            "Calls of each command that ran and answered an error.",
        ),
        &["cmd"],
    )?;
    let rejected = IntCounterVec::new(
        opts(
            "chkv_command_rejected_calls_total",
            "Calls of each command refused before running (arity, NOAUTH, OOM).",
        ),
        &["cmd"],
    )?;
    let mut latency = MetricFamily::default();
    latency.set_name("chkv_command_duration_seconds".into());
    latency.set_help("Time each command took to run here.".into());
    latency.set_field_type(MetricType::HISTOGRAM);
    let mut samples = Vec::new();
    for (i, spec) in table.iter().enumerate() {
        let f = node.cmdstats.get(i);
        if f.calls == 0 && f.rejected == 0 {
            continue;
        }
        calls.with_label_values(&[spec.name]).inc_by(f.calls);
        failed.with_label_values(&[spec.name]).inc_by(f.failed);
        rejected.with_label_values(&[spec.name]).inc_by(f.rejected);
        let mut h = Histogram::default();
        h.set_sample_count(f.calls);
        h.set_sample_sum(f.micros as f64 / 1e6);
        h.set_bucket(
            BUCKETS_US
                .iter()
                .zip(f.buckets)
                .map(|(&le, count)| {
                    let mut b = Bucket::default();
                    b.set_upper_bound(le as f64 / 1e6);
                    // Buckets are summed apart from the count; never above it.
                    b.set_cumulative_count(count.min(f.calls));
                    b
                })
                .collect(),
        );
        let mut label = LabelPair::default();
        label.set_name("cmd".into());
        label.set_value(spec.name.into());
        let mut m = Metric::default();
        m.set_label(vec![label]);
        m.set_histogram(h);
        samples.push(m);
    }
    for vec in [calls, failed, rejected] {
        registry.register(Box::new(vec))?;
    }
    let mut families = registry.gather();
    if !samples.is_empty() {
        latency.set_metric(samples);
        families.push(latency);
    }
    TextEncoder::new().encode_to_string(&families)
}
