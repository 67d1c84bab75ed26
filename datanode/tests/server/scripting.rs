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
    let sha = chkv_datanode::cmd::scripting::sha1hex(body.as_bytes());
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
