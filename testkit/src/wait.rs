//! Time bounds for tests and their steps, and polling. Every bound is a liveness bound:
//! generous, so a loaded 2-core machine never fails a test that is merely slow.

use std::future::Future;
use std::time::Duration;

/// Upper bound for a whole test body.
pub const TEST_LIMIT: Duration = Duration::from_secs(180);
/// Upper bound for one network step (connect, one reply, EOF, a process writing its ports).
pub const STEP_LIMIT: Duration = Duration::from_secs(30);

/// Runs a test body, failing it instead of hanging when it takes longer than [`TEST_LIMIT`].
pub async fn bounded<T>(body: impl Future<Output = T>) -> T {
    bounded_for(TEST_LIMIT, body).await
}

/// Runs a test body, failing it instead of hanging when it takes longer than `limit`.
pub async fn bounded_for<T>(limit: Duration, body: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, body)
        .await
        .expect("test did not finish within its time limit")
}

/// Runs one step, failing with `what` when it takes longer than [`STEP_LIMIT`].
pub async fn step<T>(what: &str, fut: impl Future<Output = T>) -> T {
    step_for(STEP_LIMIT, what, fut).await
}

/// Runs one step, failing with `what` when it takes longer than `limit`.
pub async fn step_for<T>(limit: Duration, what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// Polls `check` every 20 ms until it returns true (`true`) or `limit` passes (`false`).
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
