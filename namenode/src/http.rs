//! The NameNode's HTTP port, on axum: a dashboard for people, a JSON API for tools, and
//! Prometheus metrics.
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the dashboard: the ring, the nodes, the event log; refreshes itself every 2 s |
//! | `GET /api/cluster` (and `/cluster`) | the whole state as JSON |
//! | `GET /api/nodes` | the members, with their operations per second |
//! | `GET /api/events` | the event log, oldest first |
//! | `POST /api/nodes/{id}/drain` | asks a node to drain; needs `Authorization: Bearer TOKEN` |
//! | `GET /metrics` | Prometheus text format |
//! | `GET /healthz` | `ok` while the core answers |
//!
//! Every page is a pure function of a [`Snapshot`] (tested without sockets); the handlers only
//! fetch one from the core. The dashboard is one HTML document with inline CSS and SVG and no
//! script or external asset, so it works offline and behind any proxy; every string that came
//! from a DataNode (ids above all) is HTML-escaped.
//!
//! Bounds (enforced by `chkv_common::http::HttpServer`): at most [`MAX_CONNECTIONS`] open
//! connections (more are answered 503 and closed), a request head must arrive within
//! [`HEADER_TIMEOUT`], a request is answered within [`REQUEST_TIMEOUT`], bodies are limited
//! to [`MAX_BODY`] bytes, at most [`MAX_IN_FLIGHT`] requests run at once, and a connection
//! is closed after [`CONNECTION_LIFETIME`].

use std::fmt::Write as _;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chkv_common::http::{HttpLimits, HttpServer};
use chkv_common::{NodeId, SLOT_COUNT};
use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};
use serde::Serialize;

use crate::activity::LoggedEvent;
use crate::config::HttpToken;
use crate::membership::{ClusterStatus, DrainRefused, NodeStatus};
use crate::server::{Snapshot, StatusSource};

/// Open HTTP connections at most.
pub const MAX_CONNECTIONS: usize = 64;
/// Requests being answered at once at most (the others wait).
pub const MAX_IN_FLIGHT: usize = 32;
/// Largest request body accepted (no route needs one).
pub const MAX_BODY: usize = 4096;
/// A request head must arrive this soon.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// A request must be answered this soon.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A keep-alive connection is closed (gracefully) after this long.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// How often the dashboard reloads itself, in seconds.
const REFRESH_SECS: u32 = 2;
/// Events the dashboard lists (the API gives them all).
const DASHBOARD_EVENTS: usize = 40;

const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The HTTP port: the router below behind the shared bounds.
pub(crate) fn server(status: StatusSource, token: Option<HttpToken>) -> HttpServer {
    HttpServer::new(
        router(Shared { status, token }),
        HttpLimits {
            max_connections: MAX_CONNECTIONS,
            max_in_flight: MAX_IN_FLIGHT,
            max_body: MAX_BODY,
            header_timeout: HEADER_TIMEOUT,
            request_timeout: REQUEST_TIMEOUT,
            lifetime: CONNECTION_LIFETIME,
        },
    )
}

#[derive(Clone)]
struct Shared {
    status: StatusSource,
    token: Option<HttpToken>,
}

fn router(shared: Shared) -> Router {
    Router::new()
        .route("/", get(dashboard_page))
        .route("/cluster", get(cluster_json))
        .route("/api/cluster", get(cluster_json))
        .route("/api/nodes", get(nodes_json))
        .route("/api/events", get(events_json))
        .route("/api/nodes/{id}/drain", post(drain))
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .with_state(shared)
}

/// A JSON error body: `{"error": message}`.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    #[derive(Serialize)]
    struct Error {
        error: String,
    }
    (
        status,
        Json(Error {
            error: message.into(),
        }),
    )
        .into_response()
}

fn shutting_down() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the NameNode is shutting down",
    )
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        "not found; try /, /api/cluster, /api/nodes, /api/events, /metrics or /healthz\n",
    )
        .into_response()
}

async fn healthz(State(s): State<Shared>) -> Response {
    match s.status.snapshot().await {
        Some(_) => "ok\n".into_response(),
        None => shutting_down(),
    }
}

async fn dashboard_page(State(s): State<Shared>) -> Response {
    match s.status.snapshot().await {
        Some(snapshot) => Html(dashboard(&snapshot, unix_ms())).into_response(),
        None => shutting_down(),
    }
}

async fn cluster_json(State(s): State<Shared>) -> Response {
    match s.status.snapshot().await {
        Some(snapshot) => Json(ClusterJson::of(&snapshot)).into_response(),
        None => shutting_down(),
    }
}

async fn nodes_json(State(s): State<Shared>) -> Response {
    match s.status.snapshot().await {
        Some(snapshot) => Json(nodes(&snapshot)).into_response(),
        None => shutting_down(),
    }
}

async fn events_json(State(s): State<Shared>) -> Response {
    match s.status.snapshot().await {
        Some(snapshot) => Json(snapshot.events).into_response(),
        None => shutting_down(),
    }
}

async fn metrics_page(State(s): State<Shared>) -> Response {
    let Some(snapshot) = s.status.snapshot().await else {
        return shutting_down();
    };
    match metrics(&snapshot) {
        Ok(text) => ([(header::CONTENT_TYPE, PROMETHEUS)], text).into_response(),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode metrics: {e}"),
        ),
    }
}

async fn drain(State(s): State<Shared>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let Some(token) = &s.token else {
        return error(
            StatusCode::FORBIDDEN,
            "drains over HTTP are disabled: start the NameNode with --http-token-file FILE \
             (or CHKV_HTTP_TOKEN) and send Authorization: Bearer TOKEN",
        );
    };
    let offered = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
    if !offered.is_some_and(|t| token.matches(t)) {
        let mut response = error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong token: send Authorization: Bearer TOKEN",
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        return response;
    }
    match s.status.drain(NodeId::new(id.clone())).await {
        None => shutting_down(),
        Some(Ok(())) => {
            #[derive(Serialize)]
            struct Accepted {
                draining: String,
                message: &'static str,
            }
            (
                StatusCode::ACCEPTED,
                Json(Accepted {
                    draining: id,
                    message: "the node was told to drain; follow it in /api/events",
                }),
            )
                .into_response()
        }
        Some(Err(refused)) => {
            let status = match refused {
                DrainRefused::Unknown(_) => StatusCode::NOT_FOUND,
                DrainRefused::AlreadyDraining(_) | DrainRefused::NotConnected(_) => {
                    StatusCode::CONFLICT
                }
                DrainRefused::Starting => StatusCode::SERVICE_UNAVAILABLE,
            };
            error(status, refused.to_string())
        }
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `/api/cluster`: the state machine's view plus what only the server knows.
#[derive(Serialize)]
struct ClusterJson<'a> {
    #[serde(flatten)]
    status: &'a ClusterStatus,
    watchers: usize,
}

impl<'a> ClusterJson<'a> {
    fn of(snapshot: &'a Snapshot) -> ClusterJson<'a> {
        ClusterJson {
            status: &snapshot.status,
            watchers: snapshot.watchers,
        }
    }
}

/// One entry of `/api/nodes`.
#[derive(Serialize)]
struct NodeJson<'a> {
    #[serde(flatten)]
    node: &'a NodeStatus,
    draining: bool,
    ops_per_sec: f64,
}

fn nodes(snapshot: &Snapshot) -> Vec<NodeJson<'_>> {
    snapshot
        .status
        .nodes
        .iter()
        .enumerate()
        .map(|(i, node)| NodeJson {
            node,
            draining: snapshot.status.draining.contains(&node.id),
            ops_per_sec: snapshot.ops_per_sec.get(i).copied().unwrap_or(0.0),
        })
        .collect()
}

// ---- Prometheus ----

/// The metrics in the Prometheus text format, built on the `prometheus` crate from one
/// snapshot. Per-node series are labelled with the node's id and client address.
fn metrics(snapshot: &Snapshot) -> prometheus::Result<String> {
    let s = &snapshot.status;
    let registry = Registry::new();
    let gauge = |name: &str, help: &str, value: u64| -> prometheus::Result<()> {
        let g = IntGauge::new(name, help)?;
        g.set(i64::try_from(value).unwrap_or(i64::MAX));
        registry.register(Box::new(g))
    };
    gauge("chkv_epoch", "Epoch of the published slot table.", s.epoch)?;
    gauge(
        "chkv_datanodes",
        "DataNodes in the ring.",
        s.nodes.len() as u64,
    )?;
    gauge(
        "chkv_datanodes_suspect",
        "DataNodes being probed after silence or a lost connection.",
        s.nodes.iter().filter(|n| n.state != "alive").count() as u64,
    )?;
    gauge(
        "chkv_datanodes_draining",
        "DataNodes draining (leaving once their slots have moved).",
        s.draining.len() as u64,
    )?;
    gauge(
        "chkv_slots_assigned",
        "Slots with an owner in the published table.",
        s.slots_assigned as u64,
    )?;
    gauge(
        "chkv_slots_moving",
        "Slot moves ordered and not yet confirmed (joins and drains under way).",
        s.slots_moving as u64,
    )?;
    gauge(
        "chkv_watchers",
        "Clients watching the ring.",
        snapshot.watchers as u64,
    )?;
    let dead = IntCounter::new(
        "chkv_datanodes_declared_dead_total",
        "DataNodes declared dead since this NameNode started.",
    )?;
    dead.inc_by(s.declared_dead_total);
    registry.register(Box::new(dead.clone()))?;

    const LABELS: &[&str] = &["node", "addr"];
    let per_node = |name: &str, help: &str, f: &dyn Fn(usize, &NodeStatus) -> i64| {
        let vec = IntGaugeVec::new(Opts::new(name, help), LABELS)?;
        for (i, n) in s.nodes.iter().enumerate() {
            let addr = n.client_addr.to_string();
            vec.with_label_values(&[n.id.as_str(), addr.as_str()])
                .set(f(i, n));
        }
        registry.register(Box::new(vec))
    };
    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    per_node(
        "chkv_datanode_up",
        "1 when the DataNode is alive, 0 while it is being probed.",
        &|_, n| i64::from(n.state == "alive"),
    )?;
    per_node(
        "chkv_datanode_draining",
        "1 while the DataNode is draining.",
        &|_, n| i64::from(s.draining.contains(&n.id)),
    )?;
    per_node(
        "chkv_datanode_slots",
        "Slots the DataNode owns in the published table.",
        &|_, n| n.slots as i64,
    )?;
    per_node(
        "chkv_datanode_keys",
        "Keys the DataNode reported in its last heartbeat.",
        &|_, n| clamp(n.stats.keys),
    )?;
    per_node(
        "chkv_datanode_used_memory_bytes",
        "Memory the DataNode reported in its last heartbeat.",
        &|_, n| clamp(n.stats.used_memory),
    )?;
    per_node(
        "chkv_datanode_ops_per_second",
        "Operations per second between the DataNode's last two heartbeats.",
        &|i, _| snapshot.ops_per_sec.get(i).map_or(0, |r| *r as i64),
    )?;
    per_node(
        "chkv_datanode_last_heartbeat_age_milliseconds",
        "Milliseconds since the DataNode's last message.",
        &|_, n| clamp(n.last_heard_ms_ago),
    )?;
    let ops = IntCounterVec::new(
        Opts::new(
            "chkv_datanode_ops_total",
            "Commands the DataNode has processed since it started, as of its last heartbeat.",
        ),
        LABELS,
    )?;
    for n in &s.nodes {
        let addr = n.client_addr.to_string();
        ops.with_label_values(&[n.id.as_str(), addr.as_str()])
            .inc_by(n.stats.ops);
    }
    registry.register(Box::new(ops))?;
    TextEncoder::new().encode_to_string(&registry.gather())
}

// ---- The dashboard ----

/// `text` with `& < > " '` escaped, safe in HTML text and in quoted attributes.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// At most `max` characters of `text`, with an ellipsis when cut (before escaping).
fn short(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

/// Colours for owners, in member order; distinct on white and for common colour blindness.
const PALETTE: &[&str] = &[
    "#4e79a7", "#59a14f", "#e15759", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#ff9da7",
    "#f28e2b", "#bab0ac",
];
const UNASSIGNED: &str = "#e5e7eb";
const MOVING: &str = "#f59e0b";

fn colour(index: usize) -> &'static str {
    PALETTE[index % PALETTE.len()]
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// `1234567` as `1,234,567`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `HH:MM:SS` (UTC) of a Unix time in milliseconds.
fn clock(unix_ms: u64) -> String {
    let secs = unix_ms / 1000 % 86_400;
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

fn ago(ms: Option<u64>) -> String {
    match ms {
        None => "never".into(),
        Some(ms) if ms < 10_000 => format!("{:.1} s ago", ms as f64 / 1000.0),
        Some(ms) => format!("{} s ago", ms / 1000),
    }
}

/// Geometry of the ring picture.
const SIZE: f64 = 440.0;
const CENTRE: f64 = SIZE / 2.0;
const OUTER: f64 = 190.0;
const INNER: f64 = 135.0;
const MOVE_INNER: f64 = 196.0;
const MOVE_OUTER: f64 = 212.0;
const SHARE_INNER: f64 = 104.0;
const SHARE_OUTER: f64 = 114.0;

/// The point at `slot` (a fraction of the circle, clockwise from the top) on radius `r`.
fn point(slot: f64, r: f64) -> (f64, f64) {
    let angle = slot / SLOT_COUNT as f64 * std::f64::consts::TAU;
    (CENTRE + r * angle.sin(), CENTRE - r * angle.cos())
}

/// An SVG path for the band between radii `r0 < r1` over slots `first..=last`.
fn band(first: u16, last: u16, r0: f64, r1: f64) -> String {
    let mut d = String::new();
    // Arcs of more than a quarter turn are drawn in pieces, so a full circle still draws.
    let (mut from, end) = (f64::from(first), f64::from(last) + 1.0);
    let step = SLOT_COUNT as f64 / 4.0;
    while from < end {
        let to = (from + step).min(end);
        let (a, b) = (point(from, r1), point(to, r1));
        let (c, e) = (point(to, r0), point(from, r0));
        let _ = write!(
            d,
            "M{:.2} {:.2}A{r1} {r1} 0 0 1 {:.2} {:.2}L{:.2} {:.2}A{r0} {r0} 0 0 0 {:.2} {:.2}Z",
            a.0, a.1, b.0, b.1, c.0, c.1, e.0, e.1
        );
        from = to;
    }
    d
}

/// The ring: slots coloured by owner, moves in flight as an amber band outside it.
fn ring_svg(snapshot: &Snapshot) -> String {
    let s = &snapshot.status;
    let index_of = |id: &NodeId| s.nodes.iter().position(|n| &n.id == id);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg id="ring" xmlns="http://www.w3.org/2000/svg" width="{SIZE}" height="{SIZE}" viewBox="0 0 {SIZE} {SIZE}" role="img" aria-label="slot ring">"#
    );
    let _ = write!(
        svg,
        r#"<circle cx="{CENTRE}" cy="{CENTRE}" r="{:.1}" fill="none" stroke="{UNASSIGNED}" stroke-width="{:.1}"/>"#,
        (OUTER + INNER) / 2.0,
        OUTER - INNER
    );
    for (first, last, owner) in &s.ranges {
        let fill = index_of(owner).map_or("#9ca3af", colour);
        let _ = write!(
            svg,
            r#"<path class="slots" d="{}" fill="{fill}"><title>slots {first}–{last}: {}</title></path>"#,
            band(*first, *last, INNER, OUTER),
            esc(owner.as_str())
        );
    }
    for (first, last, from, to) in &s.moving {
        let _ = write!(
            svg,
            r#"<path class="moving" d="{}" fill="{MOVING}"><title>moving slots {first}–{last}: {} → {}</title></path>"#,
            band(*first, *last, MOVE_INNER, MOVE_OUTER),
            esc(from.as_str()),
            esc(to.as_str())
        );
    }
    // Inside, each owner's share as one arc: the outer ring shows where slots are, this one
    // how many each node has.
    let mut at = 0usize;
    for (i, n) in s.nodes.iter().enumerate() {
        if n.slots == 0 {
            continue;
        }
        let last = (at + n.slots).min(SLOT_COUNT) - 1;
        let _ = write!(
            svg,
            r#"<path class="share" d="{}" fill="{}" opacity="0.85"><title>{}: {} slots</title></path>"#,
            band(at as u16, last as u16, SHARE_INNER, SHARE_OUTER),
            colour(i),
            esc(n.id.as_str()),
            n.slots
        );
        at = last + 1;
        if at >= SLOT_COUNT {
            break;
        }
    }
    // Ticks at every 4096 slots; slot 0 is at the top, slots run clockwise.
    for q in 0..4u32 {
        let slot = f64::from(q) * SLOT_COUNT as f64 / 4.0;
        let (a, b) = (point(slot, INNER - 7.0), point(slot, INNER - 1.0));
        let _ = write!(
            svg,
            r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#9ca3af"/>"##,
            a.0, a.1, b.0, b.1,
        );
    }
    let _ = write!(
        svg,
        r#"<text x="{CENTRE}" y="{:.1}" class="tick">slot 0</text>"#,
        CENTRE - INNER + 16.0
    );
    let _ = write!(
        svg,
        r#"<text x="{CENTRE}" y="{:.1}" class="big">epoch {}</text><text x="{CENTRE}" y="{:.1}" class="small">{} / {} slots owned</text>"#,
        CENTRE - 4.0,
        s.epoch,
        CENTRE + 20.0,
        grouped(s.slots_assigned as u64),
        grouped(SLOT_COUNT as u64),
    );
    if s.slots_moving > 0 {
        let _ = write!(
            svg,
            r#"<text x="{CENTRE}" y="{:.1}" class="small warn">{} slots moving</text>"#,
            CENTRE + 40.0,
            grouped(s.slots_moving as u64)
        );
    }
    svg.push_str("</svg>");
    svg
}

const STYLE: &str = r#"
*{box-sizing:border-box}
body{margin:0;font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;background:#f3f4f6;color:#111827}
header{background:#111827;color:#f9fafb;padding:14px 28px;display:flex;align-items:center;gap:28px;flex-wrap:wrap}
header h1{font-size:20px;margin:0;font-weight:650;letter-spacing:.3px}
.stat{display:flex;flex-direction:column}
.stat b{font-size:18px}
.stat span{font-size:11px;text-transform:uppercase;letter-spacing:.6px;color:#9ca3af}
.pill{padding:3px 10px;border-radius:999px;font-size:12px;font-weight:600}
.ok{background:#dcfce7;color:#166534}.warn-pill{background:#fef3c7;color:#92400e}.bad{background:#fee2e2;color:#991b1b}
main{display:grid;grid-template-columns:480px 1fr;gap:20px;padding:20px 28px}
section{background:#fff;border-radius:10px;box-shadow:0 1px 3px rgba(0,0,0,.08);padding:16px 18px}
section h2{margin:0 0 10px;font-size:13px;text-transform:uppercase;letter-spacing:.7px;color:#6b7280}
#ring text{text-anchor:middle;fill:#374151}
#ring .big{font-size:26px;font-weight:650}
#ring .small{font-size:13px;fill:#6b7280}
#ring .warn{fill:#b45309;font-weight:600}
#ring .tick{font-size:10px;fill:#9ca3af}
.legend{display:flex;gap:14px;flex-wrap:wrap;font-size:12px;color:#4b5563;margin-top:6px}
.sw{display:inline-block;width:11px;height:11px;border-radius:3px;vertical-align:-1px;margin-right:5px}
table{border-collapse:collapse;width:100%}
th{text-align:left;font-size:11px;text-transform:uppercase;letter-spacing:.5px;color:#6b7280;border-bottom:1px solid #e5e7eb;padding:6px 8px}
td{padding:7px 8px;border-bottom:1px solid #f3f4f6;white-space:nowrap}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
td.id{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12px}
.bar{display:inline-block;height:6px;border-radius:3px;vertical-align:middle;margin-left:6px}
.events{grid-column:1 / span 2}
.events td{font-size:13px}
.rep{color:#6b7280;font-size:12px}
.kind{display:inline-block;min-width:92px;text-align:center;padding:1px 8px;border-radius:999px;font-size:11px;font-weight:600;background:#e5e7eb;color:#374151}
.kind-join,.kind-rejoin,.kind-recovered{background:#dcfce7;color:#166534}
.kind-drain,.kind-drain_requested,.kind-move,.kind-left{background:#fef3c7;color:#92400e}
.kind-dead,.kind-connection_lost,.kind-suspect{background:#fee2e2;color:#991b1b}
.kind-epoch,.kind-startup{background:#dbeafe;color:#1e40af}
footer{padding:0 28px 18px;color:#9ca3af;font-size:12px}
"#;

/// The dashboard page at `now_ms` (Unix milliseconds).
fn dashboard(snapshot: &Snapshot, now_ms: u64) -> String {
    let s = &snapshot.status;
    let alive = s.nodes.iter().filter(|n| n.state == "alive").count();
    let mut page = String::with_capacity(64 * 1024);
    let _ = write!(
        page,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="{REFRESH_SECS}"><meta name="viewport" content="width=device-width,initial-scale=1"><title>CHKV cluster · epoch {}</title><style>{STYLE}</style></head><body>"#,
        s.epoch
    );
    let (state_class, state_text) = match (s.state, alive == s.nodes.len()) {
        ("running", true) if s.slots_moving == 0 => ("ok", "healthy".to_string()),
        ("running", true) => ("warn-pill", "rebalancing".to_string()),
        ("running", false) => ("bad", format!("{} suspect", s.nodes.len() - alive)),
        (other, _) => ("warn-pill", other.to_string()),
    };
    let _ = write!(
        page,
        r#"<header><h1>CHKV cluster</h1><span class="pill {state_class}" id="state">{}</span>"#,
        esc(&state_text)
    );
    let stat = |page: &mut String, value: &str, label: &str| {
        let _ = write!(
            page,
            r#"<div class="stat"><b>{}</b><span>{label}</span></div>"#,
            esc(value)
        );
    };
    // Figures the DataNodes reported: saturating, whatever they said.
    let keys = s
        .nodes
        .iter()
        .fold(0u64, |a, n| a.saturating_add(n.stats.keys));
    let memory = s
        .nodes
        .iter()
        .fold(0u64, |a, n| a.saturating_add(n.stats.used_memory));
    let ops: f64 = snapshot.ops_per_sec.iter().sum();
    stat(&mut page, &s.epoch.to_string(), "epoch");
    stat(
        &mut page,
        &format!("{alive} / {}", s.nodes.len()),
        "nodes alive",
    );
    stat(
        &mut page,
        &grouped(s.slots_assigned as u64),
        "slots assigned",
    );
    stat(&mut page, &grouped(s.slots_moving as u64), "slots moving");
    stat(&mut page, &grouped(keys), "keys");
    stat(&mut page, &human_bytes(memory), "memory");
    stat(&mut page, &grouped(ops as u64), "ops/s");
    stat(&mut page, &snapshot.watchers.to_string(), "watchers");
    page.push_str("</header><main>");

    // The ring.
    page.push_str(r#"<section class="ring"><h2>Slot ring</h2>"#);
    page.push_str(&ring_svg(snapshot));
    page.push_str(r#"<div class="legend">"#);
    for (i, n) in s.nodes.iter().enumerate() {
        let _ = write!(
            page,
            r#"<span title="{}"><i class="sw" style="background:{}"></i>{}</span>"#,
            esc(n.id.as_str()),
            colour(i),
            esc(&short(n.id.as_str(), 12))
        );
    }
    let _ = write!(
        page,
        r#"<span><i class="sw" style="background:{MOVING}"></i>moving</span><span><i class="sw" style="background:{UNASSIGNED}"></i>unassigned</span></div></section>"#
    );

    // The nodes.
    let _ = write!(
        page,
        r#"<section class="nodes"><h2>DataNodes</h2><table id="nodes"><thead><tr><th>node</th><th>address</th><th>state</th><th class="num">slots</th><th class="num">keys</th><th class="num">memory</th><th class="num">ops/s</th><th class="num">last heartbeat</th></tr></thead><tbody>"#
    );
    let most_slots = s.nodes.iter().map(|n| n.slots).max().unwrap_or(0).max(1);
    for (i, n) in s.nodes.iter().enumerate() {
        let draining = s.draining.contains(&n.id);
        let (class, state) = match (n.state, draining, n.connected) {
            (_, _, false) => ("bad", "disconnected"),
            ("alive", true, _) => ("warn-pill", "draining"),
            ("alive", false, _) => ("ok", "alive"),
            (_, _, _) => ("bad", "suspect"),
        };
        let width = (n.slots as f64 / most_slots as f64 * 70.0).round();
        let _ = write!(
            page,
            r#"<tr class="node-row" data-node="{id}"><td class="id" title="{id}"><i class="sw" style="background:{colour}"></i>{short}</td><td>{addr}</td><td><span class="pill {class}">{state}</span></td><td class="num">{slots}<i class="bar" style="width:{width}px;background:{colour}"></i></td><td class="num">{keys}</td><td class="num">{memory}</td><td class="num">{ops}</td><td class="num">{beat}</td></tr>"#,
            id = esc(n.id.as_str()),
            colour = colour(i),
            short = esc(&short(n.id.as_str(), 16)),
            addr = esc(&n.client_addr.to_string()),
            slots = grouped(n.slots as u64),
            keys = grouped(n.stats.keys),
            memory = human_bytes(n.stats.used_memory),
            ops = grouped(snapshot.ops_per_sec.get(i).copied().unwrap_or(0.0) as u64),
            beat = ago(n.last_heartbeat_ms_ago),
        );
    }
    if s.nodes.is_empty() {
        page.push_str(r#"<tr><td colspan="8">no DataNode has registered yet</td></tr>"#);
    }
    page.push_str("</tbody></table>");
    if !s.moving.is_empty() {
        page.push_str(r#"<h2 style="margin-top:18px">Moves in flight</h2><table id="moves"><thead><tr><th>slots</th><th>from</th><th>to</th></tr></thead><tbody>"#);
        let mut pairs: Vec<(&NodeId, &NodeId, usize)> = Vec::new();
        for (first, last, from, to) in &s.moving {
            let n = usize::from(last - first) + 1;
            match pairs.iter_mut().find(|(f, t, _)| *f == from && *t == to) {
                Some(p) => p.2 += n,
                None => pairs.push((from, to, n)),
            }
        }
        for (from, to, n) in pairs {
            let _ = write!(
                page,
                r#"<tr><td class="num" style="text-align:left">{}</td><td class="id" title="{}">{}</td><td class="id" title="{}">{}</td></tr>"#,
                grouped(n as u64),
                esc(from.as_str()),
                esc(&short(from.as_str(), 16)),
                esc(to.as_str()),
                esc(&short(to.as_str(), 16))
            );
        }
        page.push_str("</tbody></table>");
    }
    page.push_str("</section>");

    // The event log, newest first.
    page.push_str(r#"<section class="events"><h2>Events (newest first)</h2><table id="events"><thead><tr><th>time (UTC)</th><th>event</th><th>node</th><th>what</th></tr></thead><tbody>"#);
    for e in snapshot.events.iter().rev().take(DASHBOARD_EVENTS) {
        event_row(&mut page, e);
    }
    if snapshot.events.is_empty() {
        page.push_str(r#"<tr><td colspan="4">nothing has happened yet</td></tr>"#);
    }
    let _ = write!(
        page,
        r#"</tbody></table></section></main><footer>NameNode page generated at {} UTC · refreshes every {REFRESH_SECS} s · JSON: <code>/api/cluster</code>, <code>/api/nodes</code>, <code>/api/events</code> · Prometheus: <code>/metrics</code></footer></body></html>"#,
        clock(now_ms)
    );
    page
}

fn event_row(page: &mut String, e: &LoggedEvent) {
    let node = e.node.as_ref().map_or("", NodeId::as_str);
    let _ = write!(
        page,
        r#"<tr class="event" data-kind="{kind}"><td>{time}</td><td><span class="kind kind-{kind}">{label}</span></td><td class="id" title="{node}">{short}</td><td>{detail}</td></tr>"#,
        kind = e.kind,
        label = e.kind.replace('_', " "),
        time = clock(e.unix_ms),
        node = esc(node),
        short = esc(&short(node, 16)),
        detail = if e.repeats > 1 {
            format!(
                "{} <span class=\"rep\">×{}</span>",
                esc(&e.detail),
                e.repeats
            )
        } else {
            esc(&e.detail)
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::NodeStats;

    fn node(id: &str, slots: usize) -> NodeStatus {
        NodeStatus {
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
        }
    }

    const HOSTILE: &str = "<script>alert('x')</script>\"&";

    fn snapshot() -> Snapshot {
        Snapshot {
            status: ClusterStatus {
                state: "running",
                epoch: 5,
                nodes: vec![node("dn-a", 8000), node(HOSTILE, 8384)],
                slots_assigned: 16384,
                ranges: vec![
                    (0, 7999, NodeId::from("dn-a")),
                    (8000, 16383, NodeId::from(HOSTILE)),
                ],
                declared_dead_total: 1,
                slots_moving: 12,
                moving: vec![(8000, 8011, NodeId::from(HOSTILE), NodeId::from("dn-a"))],
                draining: vec![NodeId::from(HOSTILE)],
            },
            watchers: 2,
            events: vec![LoggedEvent {
                seq: 1,
                unix_ms: 3_723_000,
                kind: "drain",
                node: Some(NodeId::from(HOSTILE)),
                detail: format!("draining {HOSTILE}"),
                repeats: 1,
            }],
            ops_per_sec: vec![1500.0, 2.5],
        }
    }

    #[test]
    fn dashboard_escapes_every_datanode_string() {
        let page = dashboard(&snapshot(), 0);
        assert!(!page.contains("<script"), "unescaped id in the page");
        assert!(!page.contains("alert('x')"));
        assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;&amp;"));
        assert_eq!(page.matches(r#"class="node-row""#).count(), 2);
        assert!(page.contains(r#"<svg id="ring""#));
        assert!(page.contains(r#"class="moving""#));
        assert!(page.contains(r#"data-kind="drain""#));
        assert!(page.contains("01:02:03"), "event time");
        assert!(page.contains(">draining<"));
        assert!(!page.contains("<script"));
    }

    #[test]
    fn ring_bands_cover_their_slots() {
        // A full circle is drawn in four quarter arcs.
        assert_eq!(band(0, 16383, INNER, OUTER).matches('M').count(), 4);
        assert_eq!(band(0, 99, INNER, OUTER).matches('M').count(), 1);
        let (x, y) = point(0.0, OUTER);
        assert!((x - CENTRE).abs() < 1e-9 && (y - (CENTRE - OUTER)).abs() < 1e-9);
        let (x, _) = point(SLOT_COUNT as f64 / 4.0, OUTER);
        assert!((x - (CENTRE + OUTER)).abs() < 1e-9);
    }

    #[test]
    fn formatting() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(1234567), "1,234,567");
        assert_eq!(grouped(100), "100");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
        assert_eq!(clock(86_400_000 + 3_723_000), "01:02:03");
        assert_eq!(short("abcdef", 4), "abc…");
        assert_eq!(esc("a\u{7}b"), "a\u{fffd}b");
    }

    #[test]
    fn metrics_are_typed_and_labelled() {
        let text = metrics(&snapshot()).expect("encodes");
        for line in [
            "chkv_epoch 5",
            "chkv_datanodes 2",
            "chkv_slots_assigned 16384",
            "chkv_watchers 2",
            "# TYPE chkv_datanodes_declared_dead_total counter",
            "# TYPE chkv_datanode_ops_total counter",
            "# TYPE chkv_datanode_keys gauge",
            "chkv_datanode_keys{addr=\"127.0.0.1:10100\",node=\"dn-a\"} 42",
            "chkv_datanode_ops_total{addr=\"127.0.0.1:10100\",node=\"dn-a\"} 7",
            "chkv_datanode_ops_per_second{addr=\"127.0.0.1:10100\",node=\"dn-a\"} 1500",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        // The hostile id is escaped as the exposition format requires.
        assert!(
            text.contains(r#"node="<script>alert('x')</script>\"&""#),
            "{text}"
        );
    }

    #[test]
    fn api_shapes() {
        let snap = snapshot();
        let v = serde_json::to_value(ClusterJson::of(&snap)).expect("json");
        assert_eq!(v["epoch"], 5);
        assert_eq!(v["watchers"], 2);
        assert_eq!(v["nodes"][0]["keys"], 42);
        assert_eq!(v["moving"][0][0], 8000);
        let v = serde_json::to_value(nodes(&snap)).expect("json");
        assert_eq!(v[0]["ops_per_sec"], 1500.0);
        assert_eq!(v[1]["draining"], true);
        assert_eq!(v[1]["id"], HOSTILE);
    }
}
