//! Scheduling helpers for tasks on a tokio runtime.

use std::future::poll_fn;
use std::task::Poll;

/// Lets every task that is ready to run on this worker run before the caller continues,
/// without polling the I/O driver first: the connection that gathers replies (or requests)
/// for one write calls it so that the other ready connections add theirs.
///
/// `tokio::task::yield_now` is not that: it defers the wake-up until the worker has run out
/// of tasks and polled the driver, an extra `epoll_wait` for every round of readiness
/// (measured: 290,199 against 180,612 `epoll_wait`s for 400,000 requests at pipeline 1,
/// redis-server 160,699). Here the task wakes itself while it runs, and tokio puts a task
/// woken that way at the back of the run queue, behind the tasks already ready. The driver
/// is still polled every `event_interval` tasks, so I/O is not starved.
pub async fn let_ready_run() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use std::sync::{Arc, Mutex};

    /// The tasks that were ready when the caller yielded run before it continues.
    #[tokio::test(flavor = "current_thread")]
    async fn ready_tasks_run_first() {
        let order = Arc::new(Mutex::new(Vec::new()));
        let spawned: Vec<_> = (0..3)
            .map(|i| {
                let order = order.clone();
                tokio::spawn(async move { order.lock().unwrap().push(i) })
            })
            .collect();
        let_ready_run().await;
        order.lock().unwrap().push(99);
        for t in spawned {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 99]);
    }

    /// The driver is not polled on the way: a task whose socket became readable meanwhile
    /// is not woken before the caller continues (with `tokio::task::yield_now` it is).
    /// Both are spawned tasks, as connections are.
    #[tokio::test(flavor = "current_thread")]
    async fn the_io_driver_is_not_polled_first() {
        let (a, b) = tokio::net::UnixStream::pair().unwrap();
        let woken = Arc::new(AtomicBool::new(false));
        let reader = tokio::spawn({
            let woken = woken.clone();
            async move {
                b.readable().await.unwrap();
                woken.store(true, SeqCst);
            }
        });
        let caller = tokio::spawn({
            let woken = woken.clone();
            async move {
                // A Unix socket's write is in the peer's queue when it returns.
                assert_eq!(a.try_write(b"x").unwrap(), 1);
                let_ready_run().await;
                woken.load(SeqCst)
            }
        });
        assert!(
            !caller.await.unwrap(),
            "the driver was polled before the caller went on"
        );
        reader.await.unwrap();
        assert!(woken.load(SeqCst));
    }
}
