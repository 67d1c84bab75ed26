//! Serving an axum [`Router`] on accepted connections, with bounds (feature `http`). Used by
//! the NameNode's and the DataNodes' HTTP ports, so both have the same limits and the same
//! behaviour under abuse.
//!
//! Bounds: at most [`HttpLimits::max_connections`] open connections (more are answered 503
//! and closed), a request head must arrive within [`HttpLimits::header_timeout`] and be at
//! most 16 KiB, a request is answered within [`HttpLimits::request_timeout`] (else 503),
//! bodies are limited to [`HttpLimits::max_body`] bytes (else 413), at most
//! [`HttpLimits::max_in_flight`] requests run at once (the others wait), and a keep-alive
//! connection is closed gracefully after [`HttpLimits::lifetime`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::Router;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::Semaphore;
use tower::limit::ConcurrencyLimitLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

/// Largest request head.
const MAX_HEAD: usize = 16 * 1024;

/// The limits of one HTTP port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    pub max_connections: usize,
    pub max_in_flight: usize,
    pub max_body: usize,
    pub header_timeout: Duration,
    pub request_timeout: Duration,
    pub lifetime: Duration,
}

impl Default for HttpLimits {
    fn default() -> HttpLimits {
        HttpLimits {
            max_connections: 64,
            max_in_flight: 32,
            max_body: 4096,
            header_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            lifetime: Duration::from_secs(60),
        }
    }
}

/// A router wrapped in the limits, ready to serve connections.
#[derive(Clone)]
pub struct HttpServer {
    router: Router,
    limits: HttpLimits,
    connections: Arc<Semaphore>,
}

impl HttpServer {
    pub fn new(router: Router, limits: HttpLimits) -> HttpServer {
        let router = router
            .layer(DefaultBodyLimit::max(limits.max_body))
            .layer(RequestBodyLimitLayer::new(limits.max_body))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::SERVICE_UNAVAILABLE,
                limits.request_timeout,
            ))
            .layer(ConcurrencyLimitLayer::new(limits.max_in_flight.max(1)));
        HttpServer {
            router,
            limits,
            connections: Arc::new(Semaphore::new(limits.max_connections.max(1))),
        }
    }

    /// Serves HTTP/1.1 on `stream` until the client closes it or its lifetime is over.
    /// `stream` is a TCP connection or a TLS session over one.
    pub fn serve<S>(&self, stream: S) -> impl Future<Output = ()> + Send + 'static
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let permit = self.connections.clone().try_acquire_owned();
        let router = self.router.clone();
        let limits = self.limits;
        async move {
            let Ok(_permit) = permit else {
                let mut stream = stream;
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    stream.write_all(
                        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 17\r\nConnection: close\r\n\r\ntoo many clients\n",
                    ),
                )
                .await;
                return;
            };
            let service = hyper_util::service::TowerToHyperService::new(router);
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_buf_size(MAX_HEAD)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => return,
                () = tokio::time::sleep(limits.lifetime) => {}
            }
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(limits.request_timeout, conn).await;
        }
    }
}
