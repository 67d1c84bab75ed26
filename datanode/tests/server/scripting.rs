//! Lua scripts over TCP, as applications use them: a lock released only by its owner, a
//! token-bucket rate limiter, both sent as client libraries do: EVALSHA, and EVAL when the
//! server answers NOSCRIPT.

use crate::util::*;
use redis::aio::MultiplexedConnection;

/// EVALSHA, falling back to EVAL on NOSCRIPT, like redis-py's and redis-rs's `Script`.
async fn run_script(
    c: &mut MultiplexedConnection,
    body: &str,
    keys: &[&str],
    args: &[&str],
) -> i64 {
    let sha = chkv_datanode::lua::sha1hex(body.as_bytes());
    let mut cmd = vec![sha.as_str(), ""];
    let n = keys.len().to_string();
    cmd[1] = &n;
    cmd.extend_from_slice(keys);
    cmd.extend_from_slice(args);
    let mut evalsha = vec!["EVALSHA"];
    evalsha.extend_from_slice(&cmd);
    match try_q::<i64, _>(c, &evalsha).await {
        Ok(v) => v,
        Err(e) if error_text(&e).starts_with("NOSCRIPT") => {
            let mut eval = vec!["EVAL", body];
            eval.extend_from_slice(&cmd[1..]);
            q(c, &eval).await
        }
        Err(e) => panic!("EVALSHA failed: {e}"),
    }
}

const RELEASE: &str = r#"
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
else
    return 0
end"#;

/// Tokens refill at ARGV[1] per second up to ARGV[2]; ARGV[3] is now in ms. Returns 1 when
/// a token was taken, 0 when the bucket is empty.
const BUCKET: &str = r#"
local rate = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local state = redis.call('get', KEYS[1])
local tokens, last = cap, now
if state then
    local sep = string.find(state, ':')
    tokens = tonumber(string.sub(state, 1, sep - 1))
    last = tonumber(string.sub(state, sep + 1))
end
tokens = math.min(cap, tokens + (now - last) * rate / 1000)
local allowed = 0
if tokens >= 1 then
    tokens = tokens - 1
    allowed = 1
end
redis.call('set', KEYS[1], tokens .. ':' .. now, 'PX', 60000)
return allowed"#;

#[tokio::test]
async fn lock_release_only_by_its_owner() {
    bounded(async {
        let s = start().await;
        let c = &mut connect(s.addr()).await;
        let acquired: Option<String> = q(c, &["SET", "lock", "me", "NX", "PX", "30000"]).await;
        assert_eq!(acquired.as_deref(), Some("OK"));
        let n = run_script(c, RELEASE, &["lock"], &["someone-else"]).await;
        assert_eq!(n, 0);
        assert_eq!(val(c, &["GET", "lock"]).await, bulk("me"));
        let n = run_script(c, RELEASE, &["lock"], &["me"]).await;
        assert_eq!(n, 1);
        assert_eq!(val(c, &["EXISTS", "lock"]).await, int(0));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn token_bucket_admits_exactly_its_capacity() {
    bounded(async {
        let s = start().await;
        // A fixed clock passed in: no refill, so exactly `cap` of the calls are admitted,
        // however the concurrent clients interleave.
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let addr = s.addr();
            tasks.push(tokio::spawn(async move {
                let c = &mut connect(addr).await;
                let mut admitted = 0;
                for _ in 0..25 {
                    admitted +=
                        run_script(c, BUCKET, &["bucket"], &["10", "50", "1700000000000"]).await;
                }
                admitted
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.expect("client");
        }
        assert_eq!(total, 50);
    })
    .await;
}

/// Spins for at most two minutes (a bound in case a test fails before killing it) without
/// writing, so SCRIPT KILL / FUNCTION KILL may stop it.
const SPIN: &str = "local t0 = tonumber(redis.call('time')[1]) \
    while tonumber(redis.call('time')[1]) - t0 < 120 do end return 'done'";

/// Polls PING on `c` until it answers `-BUSY`.
async fn until_busy(c: &mut Raw) {
    let deadline = tokio::time::Instant::now() + STEP_LIMIT;
    while !c.cmd(&["PING"]).await.starts_with(b"-BUSY") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the running script never made the node busy"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// A script past `busy-reply-threshold` makes other clients get -BUSY, and SCRIPT KILL
/// reaches the node and stops it, with a single worker thread serving every connection
/// (the script moves off it).
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn busy_script_is_killed_on_a_single_worker() {
    bounded(async {
        let s = start().await;
        let mut admin = Raw::connect(s.addr()).await;
        assert_eq!(
            admin
                .cmd(&["CONFIG", "SET", "busy-reply-threshold", "20"])
                .await,
            "+OK\r\n"
        );
        let mut runner = Raw::connect(s.addr()).await;
        // The script and a PING behind it in one pipeline: the PING is answered after the
        // script ends, on the same connection.
        let mut pipeline = resp(&["EVAL", SPIN, "0"]);
        pipeline.extend(resp(&["PING"]));
        runner.send(&pipeline).await;
        until_busy(&mut admin).await;
        // Only the allowed commands run; a queued one aborts the transaction.
        let mut other = Raw::connect(s.addr()).await;
        assert_eq!(other.cmd(&["MULTI"]).await, "+OK\r\n");
        assert!(other.cmd(&["SET", "k", "v"]).await.starts_with(b"-BUSY"));
        let info = admin.cmd(&["FUNCTION", "STATS"]).await;
        assert!(show(&info).contains("EVAL"), "{}", show(&info));
        assert!(admin
            .cmd(&["FUNCTION", "KILL"])
            .await
            .starts_with(b"-BUSY Redis is busy running a script. You can only call SCRIPT KILL"));
        assert_eq!(admin.cmd(&["SCRIPT", "KILL"]).await, "+OK\r\n");
        let killed = runner.reply().await;
        assert!(
            show(&killed).contains("killed by user"),
            "{}",
            show(&killed)
        );
        assert_eq!(runner.reply().await, "+PONG\r\n");
        assert_eq!(admin.cmd(&["PING"]).await, "+PONG\r\n");
        assert!(other.cmd(&["EXEC"]).await.starts_with(b"-EXECABORT"));
        assert_eq!(other.cmd(&["GET", "k"]).await, "$-1\r\n");
    })
    .await;
}

/// Before the threshold, a long script does not hold up clients of other keys; FUNCTION
/// KILL stops a function (and not an EVAL); pcall cannot swallow the kill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_function_is_killed_and_others_keep_running() {
    bounded(async {
        let s = start().await;
        let mut admin = Raw::connect(s.addr()).await;
        let lib = format!(
            "#!lua name=spin\nredis.register_function('spin', function() \
             local f = function() {SPIN} end while 1 do pcall(f) end end)"
        );
        assert_eq!(
            admin.cmd(&["FUNCTION", "LOAD", &lib]).await,
            "$4\r\nspin\r\n"
        );
        let mut runner = Raw::connect(s.addr()).await;
        runner.send(&resp(&["FCALL", "spin", "0"])).await;
        // Registered as running once it has run a little: until then FUNCTION KILL says
        // there is nothing to kill.
        let mut other = Raw::connect(s.addr()).await;
        let deadline = tokio::time::Instant::now() + STEP_LIMIT;
        loop {
            // Meanwhile (threshold 5 s by default) other keys are served.
            assert_eq!(other.cmd(&["SET", "x", "1"]).await, "+OK\r\n");
            assert!(admin.cmd(&["SCRIPT", "KILL"]).await.starts_with(b"-"));
            if admin.cmd(&["FUNCTION", "KILL"]).await == "+OK\r\n" {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "FUNCTION KILL never found the function running"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let reply = runner.reply().await;
        assert!(show(&reply).contains("killed by user"), "{}", show(&reply));
        assert_eq!(admin.cmd(&["PING"]).await, "+PONG\r\n");
    })
    .await;
}
