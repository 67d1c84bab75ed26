//! The connection core against in-memory servers: an echo server (a request is an array of
//! bulk strings, which is also a valid reply, so each caller must get its own request back),
//! a silent one, and one that says what it is told to.

use super::*;
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::sync::oneshot;

/// Replies as raw bytes; RESP3 pushes (`>`) answer nothing and are counted.
#[derive(Default)]
struct Raw {
    pushes: Arc<AtomicUsize>,
}

type Reply = Result<Bytes, Ended>;

impl Codec for Raw {
    type Slot = oneshot::Sender<Reply>;
    type Reply = Bytes;
    type Error = Ended;

    fn error(_addr: SocketAddr, why: Ended) -> Ended {
        why
    }

    fn fail(slot: Self::Slot, error: &Ended) {
        let _ = slot.send(Err(error.clone()));
    }

    fn take(&mut self, buf: &mut BytesMut, len: usize) -> Result<Option<Bytes>, String> {
        let reply = buf.split_to(len).freeze();
        if reply.first() == Some(&b'>') {
            self.pushes.fetch_add(1, Relaxed);
            return Ok(None);
        }
        Ok(Some(reply))
    }

    fn offer(&mut self, _slot: &mut Self::Slot, reply: Bytes) -> Option<Bytes> {
        Some(reply)
    }

    fn complete(&mut self, slot: Self::Slot, reply: Bytes) {
        let _ = slot.send(Ok(reply));
    }
}

fn addr() -> SocketAddr {
    "127.0.0.1:1".parse().expect("addr")
}

fn options(timeout: Option<Duration>, when_dropped: WhenDropped) -> Options {
    Options {
        response_timeout: timeout,
        gather: Gather::WhenConcurrent,
        when_dropped,
    }
}

/// A connection over an in-memory stream; the server's end is returned.
fn connect(options: Options) -> (Handle<Raw>, DuplexStream, Arc<AtomicUsize>) {
    let (ours, theirs) = tokio::io::duplex(1 << 20);
    let (handle, queue) = channel::<Raw>(addr());
    let codec = Raw::default();
    let pushes = codec.pushes.clone();
    let (rd, wr) = tokio::io::split(ours);
    tokio::spawn(queue.serve(codec, rd, wr, BytesMut::new(), options));
    (handle, theirs, pushes)
}

fn request(body: &[u8]) -> Bytes {
    crate::resp::command(&[body])
}

fn send(handle: &Handle<Raw>, data: Bytes) -> oneshot::Receiver<Reply> {
    let (tx, rx) = oneshot::channel();
    assert!(handle.send(Job::new(data, tx)).is_ok(), "connection open");
    rx
}

async fn reply(rx: oneshot::Receiver<Reply>) -> Reply {
    tokio::time::timeout(Duration::from_secs(60), rx)
        .await
        .expect("answered in time")
        .expect("slot filled, not dropped")
}

#[tokio::test]
async fn many_callers_get_their_own_replies_large_ones_included() {
    let (handle, server, _) = connect(options(None, WhenDropped::Finish));
    let (mut srd, mut swr) = tokio::io::split(server);
    tokio::spawn(async move { tokio::io::copy(&mut srd, &mut swr).await });
    let mut tasks = Vec::new();
    for t in 0..8u8 {
        let handle = handle.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50usize {
                // Every seventh request is larger than a write batch.
                let len = if i % 7 == 3 { WRITE_BATCH + 11 } else { 1 + i };
                let body = vec![b'a' + t; len];
                let data = request(&body);
                let got = reply(send(&handle, data.clone())).await.expect("reply");
                assert_eq!(got, data);
            }
        }));
    }
    for t in tasks {
        t.await.expect("caller");
    }
    assert_eq!(handle.state().in_flight.load(Relaxed), 0);
}

#[tokio::test]
async fn pushes_answer_no_request() {
    let (handle, mut server, pushes) = connect(options(None, WhenDropped::Finish));
    let rx = send(&handle, request(b"x"));
    server
        .write_all(b">2\r\n$10\r\ninvalidate\r\n*-1\r\n+OK\r\n")
        .await
        .expect("write");
    assert_eq!(reply(rx).await, Ok(Bytes::from_static(b"+OK\r\n")));
    assert_eq!(pushes.load(Relaxed), 1);
}

#[tokio::test]
async fn an_overdue_reply_ends_the_connection_and_fails_what_waits() {
    let (handle, _server, _) = connect(options(
        Some(Duration::from_millis(200)),
        WhenDropped::Finish,
    ));
    let first = send(&handle, request(b"a"));
    let second = send(&handle, request(b"b"));
    assert!(matches!(reply(first).await, Err(Ended::Timeout(_))));
    assert!(matches!(reply(second).await, Err(Ended::Timeout(_))));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !handle.is_closed() {
        assert!(Instant::now() < deadline, "connection never ended");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(matches!(handle.state().error(), Some(Ended::Timeout(_))));
    assert!(handle
        .send(Job::new(request(b"c"), oneshot::channel().0))
        .is_err());
}

/// A request with a longer patience (a blocking command) or none is not timed out at the
/// connection's response timeout (100 ms; the replies come after 500 ms).
#[tokio::test]
async fn a_patient_request_extends_its_batch_deadline_and_forever_has_none() {
    let (handle, mut server, _) = connect(options(
        Some(Duration::from_millis(100)),
        WhenDropped::Finish,
    ));
    for (patience, answer) in [
        (Patience::Longer(Duration::from_secs(60)), &b":1\r\n"[..]),
        (Patience::Forever, &b":2\r\n"[..]),
    ] {
        let (tx, rx) = oneshot::channel();
        let mut job = Job::new(request(b"a"), tx);
        job.patience = patience;
        assert!(handle.send(job).is_ok());
        tokio::time::sleep(Duration::from_millis(500)).await;
        server.write_all(answer).await.expect("write");
        assert_eq!(reply(rx).await, Ok(Bytes::copy_from_slice(answer)));
    }
}

#[tokio::test]
async fn kill_fails_what_is_outstanding() {
    let (handle, _server, _) = connect(options(None, WhenDropped::Finish));
    let rx = send(&handle, request(b"a"));
    tokio::task::yield_now().await;
    handle.kill();
    assert_eq!(reply(rx).await, Err(Ended::Killed));
}

#[tokio::test]
async fn dropped_handles_finish_or_fail_outstanding_requests_as_configured() {
    // Finish: the reply that comes after the last handle is gone is still delivered.
    let (handle, mut server, _) = connect(options(None, WhenDropped::Finish));
    let rx = send(&handle, request(b"a"));
    drop(handle);
    tokio::time::sleep(Duration::from_millis(20)).await;
    server.write_all(b"+late\r\n").await.expect("write");
    assert_eq!(reply(rx).await, Ok(Bytes::from_static(b"+late\r\n")));
    // Fail: a silent server does not hold the caller.
    let (handle, _server, _) = connect(options(None, WhenDropped::Fail));
    let rx = send(&handle, request(b"a"));
    drop(handle);
    assert_eq!(reply(rx).await, Err(Ended::Closed));
}

#[tokio::test]
async fn malformed_and_unasked_replies_end_the_connection() {
    let (handle, mut server, _) = connect(options(None, WhenDropped::Finish));
    let rx = send(&handle, request(b"a"));
    server.write_all(b"?what\r\n").await.expect("write");
    assert!(matches!(reply(rx).await, Err(Ended::Protocol(_))));

    let (handle2, mut server, _) = connect(options(None, WhenDropped::Finish));
    server.write_all(b"+nobody asked\r\n").await.expect("write");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !handle2.is_closed() {
        assert!(Instant::now() < deadline, "connection never ended");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        handle2.state().error(),
        Some(Ended::Protocol("reply without a request".into()))
    );
    drop(handle);
}

#[tokio::test]
async fn a_server_that_closes_fails_outstanding_and_queued_requests() {
    let (handle, server, _) = connect(options(None, WhenDropped::Finish));
    let rx = send(&handle, request(b"a"));
    tokio::task::yield_now().await;
    drop(server);
    let got = reply(rx).await;
    assert!(
        matches!(got, Err(Ended::ClosedByPeer) | Err(Ended::Io(_))),
        "{got:?}"
    );
}

#[tokio::test]
async fn a_failed_open_fails_queued_requests_with_its_error() {
    let (handle, queue) = channel::<Raw>(addr());
    let rx = send(&handle, request(b"a"));
    queue.fail(Ended::Io("refused".into()));
    assert_eq!(reply(rx).await, Err(Ended::Io("refused".into())));
    assert!(handle.is_closed());
    assert!(handle.state().closed_within(Duration::from_secs(60)));
    assert!(!handle.state().connected());
}

#[test]
fn a_budget_refuses_what_would_pass_its_limit_and_gets_bytes_back_on_drop() {
    let budget = Budget::default();
    let a = budget.charge(400, 1000).expect("fits");
    let b = budget.charge(400, 1000).expect("fits");
    assert!(budget.charge(400, 1000).is_none(), "1200 > 1000");
    let unlimited = budget.charge(400, 0).expect("no limit");
    assert_eq!(budget.held(), 1200);
    drop((a, b, unlimited));
    assert_eq!(budget.held(), 0);
    let big = budget
        .charge(2000, 1000)
        .expect("nothing held: a large one goes");
    assert!(budget.charge(1, 1000).is_none());
    drop(big);
    assert_eq!(budget.held(), 0);
}

#[tokio::test]
async fn charged_bytes_are_given_back_once_written() {
    let (handle, _server, _) = connect(options(None, WhenDropped::Finish));
    let budget = Budget::default();
    let (tx, _rx) = oneshot::channel();
    let mut job = Job::new(request(b"fire and forget"), tx);
    job.hold = budget.charge(100, 1000);
    assert_eq!(budget.held(), 100);
    assert!(handle.send(job).is_ok());
    let deadline = Instant::now() + Duration::from_secs(60);
    while budget.held() != 0 {
        assert!(Instant::now() < deadline, "never given back");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
