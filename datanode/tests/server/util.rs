//! Helpers shared by the integration tests: an in-process DataNode per test, a `redis` crate
//! connection, and a raw TCP client that reads whole RESP replies as bytes.

use bytes::{Bytes, BytesMut};
use chkv_datanode::config::Config;
use chkv_datanode::server::{self, ServerHandle};
use redis::aio::MultiplexedConnection;
use redis::{FromRedisValue, RedisError, ToRedisArgs};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub use chkv_testkit::wait::{bounded, eventually, step, STEP_LIMIT};

/// The default configuration on a free port of 127.0.0.1.
pub fn config() -> Config {
    Config {
        port: 0,
        ..Config::default()
    }
}

/// Starts a DataNode with the default configuration on a free port.
pub async fn start() -> ServerHandle {
    start_with(config()).await
}

/// Starts a DataNode with `config` (its port should be 0).
pub async fn start_with(config: Config) -> ServerHandle {
    step("starting the server", server::start(config))
        .await
        .expect("server starts")
}

pub fn url(addr: SocketAddr) -> String {
    format!("redis://{addr}/")
}

/// A multiplexed `redis` crate connection to `addr`.
pub async fn connect(addr: SocketAddr) -> MultiplexedConnection {
    connect_url(&url(addr)).await
}

pub async fn connect_url(url: &str) -> MultiplexedConnection {
    try_connect_url(url)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"))
}

pub async fn try_connect_url(url: &str) -> redis::RedisResult<MultiplexedConnection> {
    let client = redis::Client::open(url)?;
    // The crate's defaults (1 s to connect, 500 ms per reply) fail requests that are merely
    // slow on a loaded machine, and a timed-out write may still have applied.
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(STEP_LIMIT))
        .set_response_timeout(Some(STEP_LIMIT));
    step(
        "redis connect",
        client.get_multiplexed_async_connection_with_config(&config),
    )
    .await
}

/// Builds a command from its name and arguments.
pub fn cmd<A: ToRedisArgs>(args: &[A]) -> redis::Cmd {
    let mut c = redis::Cmd::new();
    for a in args {
        c.arg(a);
    }
    c
}

/// Runs a command that must succeed and converts its reply.
pub async fn q<T: FromRedisValue, A: ToRedisArgs + std::fmt::Debug>(
    con: &mut MultiplexedConnection,
    args: &[A],
) -> T {
    try_q(con, args)
        .await
        .unwrap_or_else(|e| panic!("{args:?} failed: {e}"))
}

pub async fn try_q<T: FromRedisValue, A: ToRedisArgs + std::fmt::Debug>(
    con: &mut MultiplexedConnection,
    args: &[A],
) -> redis::RedisResult<T> {
    step(&format!("{args:?}"), cmd(args).query_async(con)).await
}

/// Runs a command that must fail with a server error and returns the error's full text
/// (`ERR syntax error`), as the server sent it after the `-`.
pub async fn q_err<A: ToRedisArgs + std::fmt::Debug>(
    con: &mut MultiplexedConnection,
    args: &[A],
) -> String {
    match try_q::<redis::Value, A>(con, args).await {
        Ok(v) => panic!("{args:?} should fail, got {v:?}"),
        Err(e) => error_text(&e),
    }
}

/// The text of a server error: its code and detail joined by a space, as on the wire.
pub fn error_text(e: &RedisError) -> String {
    let code = e
        .code()
        .unwrap_or_else(|| panic!("not a server error: {e}"));
    match e.detail() {
        Some(d) => format!("{code} {d}"),
        None => code.to_string(),
    }
}

/// Encodes a request as a RESP multibulk.
pub fn resp<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        let a = a.as_ref();
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Length of the first complete RESP2/RESP3 reply in `b`, or `None` when it is incomplete.
pub fn reply_len(b: &[u8]) -> Option<usize> {
    fn line_end(b: &[u8], at: usize) -> Option<usize> {
        b.get(at..)?
            .windows(2)
            .position(|w| w == b"\r\n")
            .map(|i| at + i + 2)
    }
    fn one(b: &[u8], at: usize) -> Option<usize> {
        let kind = *b.get(at)?;
        let end = line_end(b, at)?;
        let num = || -> i64 {
            std::str::from_utf8(&b[at + 1..end - 2])
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("bad length line in {:?}", show(&b[at..end])))
        };
        match kind {
            b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => Some(end),
            b'$' | b'=' | b'!' => {
                let n = num();
                if n < 0 {
                    return Some(end);
                }
                let stop = end + n as usize + 2;
                (b.len() >= stop).then_some(stop)
            }
            b'*' | b'~' | b'>' | b'%' => {
                let per = if kind == b'%' { 2 } else { 1 };
                let mut p = end;
                for _ in 0..num().max(0) * per {
                    p = one(b, p)?;
                }
                Some(p)
            }
            _ => panic!("not a RESP reply: {:?}", show(&b[at..])),
        }
    }
    one(b, 0)
}

/// Bytes as an escaped string, for assertion messages.
pub fn show(b: &[u8]) -> String {
    b.escape_ascii().to_string()
}

/// A plain TCP client that speaks raw bytes and reads whole RESP replies.
pub struct Raw {
    pub sock: TcpStream,
    buf: BytesMut,
}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Raw {
        let sock = step("tcp connect", TcpStream::connect(addr))
            .await
            .expect("tcp connect");
        Raw {
            sock,
            buf: BytesMut::new(),
        }
    }

    pub async fn send(&mut self, data: &[u8]) {
        step("send", self.sock.write_all(data))
            .await
            .expect("write to the server");
    }

    /// Reads one more chunk into the buffer; `false` on EOF (or a reset, which is how a close
    /// with unread input looks).
    async fn fill(&mut self) -> bool {
        self.buf.reserve(64 * 1024);
        match step("read", self.sock.read_buf(&mut self.buf)).await {
            Ok(0) => false,
            Ok(_) => true,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => false,
            Err(e) => panic!("read failed: {e}"),
        }
    }

    /// Reads exactly one reply and returns its bytes.
    pub async fn reply(&mut self) -> Bytes {
        loop {
            if let Some(n) = reply_len(&self.buf) {
                return self.buf.split_to(n).freeze();
            }
            if !self.fill().await {
                panic!("EOF before a complete reply; got {:?}", show(&self.buf));
            }
        }
    }

    /// Sends raw bytes and reads one reply.
    pub async fn call(&mut self, data: &[u8]) -> Bytes {
        self.send(data).await;
        self.reply().await
    }

    /// Sends a command and reads its reply.
    pub async fn cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Bytes {
        self.call(&resp(args)).await
    }

    /// Reads everything until the server closes the connection.
    pub async fn read_to_eof(&mut self) -> Bytes {
        while self.fill().await {}
        self.buf.split().freeze()
    }

    /// Reads whatever arrives within `wait`, without requiring EOF.
    pub async fn read_for(&mut self, wait: Duration) -> Bytes {
        let _ = tokio::time::timeout(wait, async { while self.fill().await {} }).await;
        self.buf.split().freeze()
    }
}

/// Asserts that a fresh connection to `addr` gets PONG.
pub async fn assert_alive(addr: SocketAddr) {
    let mut c = Raw::connect(addr).await;
    assert_eq!(
        c.cmd(&["PING"]).await,
        "+PONG\r\n",
        "server no longer answers"
    );
}

/// One field of an INFO text (`used_memory_rss`), parsed.
pub fn info_field<T: std::str::FromStr>(info: &str, name: &str) -> T {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("INFO has no {name}: {info}"))
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("INFO {name} is not a number: {info}"))
}

/// Waits until INFO on `addr` says `n` clients are blocked, failing after `limit`.
pub async fn blocked_clients_within(addr: SocketAddr, n: usize, limit: Duration) {
    let c = &mut connect(addr).await;
    let ok = eventually(limit, || {
        let mut c = c.clone();
        async move {
            let info: String = q(&mut c, &["INFO", "clients"]).await;
            info_field::<usize>(&info, "blocked_clients") == n
        }
    })
    .await;
    assert!(ok, "{addr} never had {n} blocked clients");
}

/// Waits until INFO on `addr` says `n` clients are blocked.
pub async fn blocked_clients(addr: SocketAddr, n: usize) {
    blocked_clients_within(addr, n, STEP_LIMIT).await
}

/// Runs a command that must succeed and returns its reply as a [`redis::Value`].
pub async fn val<A: ToRedisArgs + std::fmt::Debug>(
    con: &mut MultiplexedConnection,
    args: &[A],
) -> redis::Value {
    q(con, args).await
}

pub fn bulk(s: impl AsRef<[u8]>) -> redis::Value {
    redis::Value::BulkString(s.as_ref().to_vec())
}

pub fn int(i: i64) -> redis::Value {
    redis::Value::Int(i)
}

pub const OK: redis::Value = redis::Value::Okay;
pub const NIL: redis::Value = redis::Value::Nil;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}
