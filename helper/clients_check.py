#!/usr/bin/env python3
"""helper/clients_check.py: redis-py against a CHKV cluster while it changes.

Run by helper/clients-check.sh, which starts the cluster, adds a node and drains another
while this runs. Four workloads, each in several threads, send every operation to a node
picked in rotation (every node, the joining and the draining one included), through plain
redis-py clients as an application would write them:

  pipeline  redis-py's transactional pipeline() (MULTI ... EXEC): INCR, RPUSH, SET, GET of
            the worker's own keys; every reply exact, the log ends as 0..n-1, nothing lost
            or doubled.
  watch     optimistic locking: WATCH a shared counter, GET, MULTI, SET +1, EXEC, retried
            on WatchError by all workers at once; the counter ends exactly at the number
            of increments.
  lock      SET NX PX to take a lock, a read-modify-write under it, and a Lua script
            (register_script: EVALSHA, EVAL on NOSCRIPT) that deletes the lock only if it
            still holds our token: every release of our own token returns 1, of another
            token 0; the protected counter ends exact.
  bucket    a token-bucket rate limiter in Lua on a logical clock (phases of frozen time,
            refilled between phases): in each phase exactly as many requests are granted
            as tokens exist, never one more.

Exactness under a node that exits: redis-py's own retries are off (they would re-send a
non-idempotent command whose reply was lost). A connection that breaks is allowed only to
the draining node, after its drain was started; an operation whose outcome is then unknown
is resolved through another node with the operation's own record (the pipeline's log, the
counter's set of applied ids, the lock's token, the limiter's request ids), so every count
stays exact. Any other error fails the run.

Control files in --control DIR: this writes `ready` once every worker has done --min-ops
operations; the harness writes `joined` (the new node's port), `draining` (before the drain
starts) and `done` (after the drained node exited); each worker then does --min-ops more
operations and stops. Exits 0 when every check passed, 1 otherwise.
"""

import argparse
import os
import sys
import threading
import time

import redis
from redis.backoff import NoBackoff
from redis.exceptions import WatchError
from redis.retry import Retry

LOST = (redis.ConnectionError, redis.TimeoutError)
# RESP3 (protocol=3) from redis-py 5 on: odd workers use it, even ones RESP2.
RESP3 = int(redis.__version__.split(".")[0]) >= 5

RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""

# KEYS[1] the bucket (tokens, ts), KEYS[2] the answers by request id (so a request sent
# again after a lost reply gets the same answer and takes no second token).
# ARGV: capacity, tokens per second, now (seconds), tokens wanted, request id.
BUCKET = """
local done = redis.call('hget', KEYS[2], ARGV[5])
if done then return tonumber(done) end
local cap, rate = tonumber(ARGV[1]), tonumber(ARGV[2])
local now, want = tonumber(ARGV[3]), tonumber(ARGV[4])
local b = redis.call('hmget', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1]) or cap
local ts = tonumber(b[2]) or now
if now > ts then
    tokens = math.min(cap, tokens + (now - ts) * rate)
    ts = now
end
local granted = 0
if want <= tokens then
    tokens = tokens - want
    granted = 1
end
redis.call('hset', KEYS[1], 'tokens', tokens, 'ts', ts)
redis.call('hset', KEYS[2], ARGV[5], granted)
return granted
"""
CAPACITY = 40
RATE = 5  # tokens per (logical) second
STEP = 3  # logical seconds between phases: 15 tokens refilled


class Failure(Exception):
    pass


def expect(cond, what):
    if not cond:
        raise Failure(what)


class Run:
    """What all workers share: the nodes, the control files, the stop signal, failures."""

    def __init__(self, args):
        self.ports = [int(p) for p in args.ports.split(",")]
        self.drain_port = args.drain_port
        self.control = args.control
        self.min_ops = args.min_ops
        self.lock = threading.Lock()
        self.failures = []
        self.stop = threading.Event()
        self.joined = None
        self.workers = []

    def flag(self, name):
        return os.path.exists(os.path.join(self.control, name))

    def nodes(self):
        if self.joined is None and self.flag("joined"):
            with open(os.path.join(self.control, "joined")) as f:
                self.joined = int(f.read().strip())
        return self.ports + ([self.joined] if self.joined is not None else [])

    def fail(self, what):
        with self.lock:
            self.failures.append(what)
        self.stop.set()


class Worker(threading.Thread):
    """One client thread: a redis-py client per node, operations in rotation over the nodes."""

    kind = "?"

    def __init__(self, run, wid):
        super().__init__(daemon=True, name=f"{self.kind}-{wid}")
        self.run_ = run
        self.wid = wid
        self.clients = {}
        self.dead = set()
        self.ops = 0
        self.ops_after_done = 0
        self.lost = 0
        self.resolved_applied = 0
        self.by_port = {}
        self.in_window = 0
        self.turn = wid

    def client(self, port):
        if port not in self.clients:
            extra = {"protocol": 3 if self.wid % 2 else 2} if RESP3 else {}
            self.clients[port] = redis.Redis(
                host="127.0.0.1",
                port=port,
                decode_responses=True,
                socket_timeout=120,
                socket_connect_timeout=30,
                retry=Retry(NoBackoff(), 0),
                **extra,
            )
        return self.clients[port]

    def pick(self):
        live = [p for p in self.run_.nodes() if p not in self.dead]
        expect(live, "no node left to talk to")
        self.turn += 1
        return live[self.turn % len(live)]

    def lost_conn(self, port, err):
        """A connection broke: allowed only to the draining node, once its drain began."""
        if port != self.run_.drain_port:
            raise Failure(f"connection to node {port} (not draining) failed: {err!r}")
        if not self.run_.flag("draining"):
            raise Failure(f"connection to node {port} failed before its drain: {err!r}")
        self.dead.add(port)
        self.lost += 1

    def attempt(self, fn):
        """Runs fn(client) on the next node: (True, result), or (False, None) when the
        connection broke (the outcome is unknown)."""
        port = self.pick()
        try:
            r = fn(self.client(port))
        except LOST as e:
            self.lost_conn(port, e)
            return False, None
        except WatchError as e:
            # redis-py turns a connection lost while watching into a WatchError.
            if "occurred while watching" in str(e):
                self.lost_conn(port, e)
                return False, None
            raise
        self.by_port[port] = self.by_port.get(port, 0) + 1
        return True, r

    def surely(self, fn):
        """fn(client) on nodes that answer, for resolving an unknown outcome."""
        while True:
            ok, r = self.attempt(fn)
            if ok:
                return r

    def run(self):
        try:
            self.loop()
        except Failure as e:
            self.run_.fail(f"{self.name}: {e}")
        except Exception as e:  # anything unexpected, e.g. a -ERR reply
            self.run_.fail(f"{self.name}: unexpected {type(e).__name__}: {e}")

    def loop(self):
        j = 0
        while not self.run_.stop.is_set():
            done = self.run_.flag("done")
            window = self.run_.flag("ready") and not done
            self.op(j)
            j += 1
            self.ops += 1
            if window:
                self.in_window += 1
            if done:
                self.ops_after_done += 1
                if self.ops_after_done >= self.run_.min_ops:
                    return

    def op(self, j):
        raise NotImplementedError


class Pipeline(Worker):
    kind = "pipeline"

    def keys(self):
        tag = f"{{cc:pl:{self.wid}}}"
        return f"{tag}:n", f"{tag}:log", f"{tag}:last"

    def op(self, j):
        n, log, last = self.keys()

        def tx(r):
            p = r.pipeline()  # transaction=True: MULTI ... EXEC
            p.incr(n)
            p.rpush(log, j)
            p.set(last, j)
            p.get(last)
            return p.execute()

        while True:
            ok, res = self.attempt(tx)
            if ok:
                expect(res == [j + 1, j + 1, True, str(j)], f"op {j}: EXEC replied {res!r}")
                return
            tail = self.surely(lambda r: r.lindex(log, -1))
            if tail == str(j):
                self.resolved_applied += 1
                return
            expect(tail == (str(j - 1) if j else None), f"op {j}: log ends with {tail!r}")

    def check(self, r):
        n, log, last = self.keys()
        want = [str(i) for i in range(self.ops)]
        got = r.lrange(log, 0, -1)
        expect(got == want, f"log has {len(got)} entries, not 0..{self.ops - 1} in order")
        expect(r.get(n) == str(self.ops), f"counter {r.get(n)!r}, want {self.ops}")
        expect(r.get(last) == str(self.ops - 1), f"last {r.get(last)!r}")


WATCHED = "{cc:watch}"
APPLIED = "{cc:watch}:applied"


class Watch(Worker):
    kind = "watch"
    conflicts = 0

    def op(self, j):
        opid = f"{self.wid}:{j}"

        def tx(r):
            with r.pipeline() as pipe:
                pipe.watch(WATCHED)
                # Applied already (an EXEC whose reply was lost)? Then done.
                if pipe.sismember(APPLIED, opid):
                    return "applied"
                v = int(pipe.get(WATCHED) or 0)
                pipe.multi()
                pipe.set(WATCHED, v + 1)
                pipe.sadd(APPLIED, opid)
                res = pipe.execute()
                expect(res == [True, 1], f"op {j}: EXEC replied {res!r}")
                return "done"

        while True:
            try:
                ok, res = self.attempt(tx)
            except WatchError:
                self.conflicts += 1
                continue
            if ok:
                if res == "applied":
                    self.resolved_applied += 1
                return


LOCK = "{cc:lock}"
GUARDED = "{cc:lock}:count"
HOLDERS = "{cc:lock}:holders"


class Lock(Worker):
    kind = "lock"
    waits = 0

    def __init__(self, run, wid):
        super().__init__(run, wid)
        # register_script: EVALSHA, and SCRIPT LOAD + EVALSHA on NOSCRIPT.
        self.release = redis.Redis().register_script(RELEASE)

    def op(self, j):
        token = f"w{self.wid}:{j}"
        # Take the lock; a lost reply is resolved by reading who holds it.
        while True:
            ok, got = self.attempt(lambda r: r.set(LOCK, token, nx=True, px=300_000))
            if not ok:
                got = self.surely(lambda r: r.get(LOCK)) == token
            if got:
                break
            self.waits += 1
            time.sleep(0.002)
        # A foreign token never releases it.
        ok, n = self.attempt(lambda r: self.release(keys=[LOCK], args=["x" + token], client=r))
        expect(not ok or n == 0, f"op {j}: release with another token returned {n!r}")
        # Read-modify-write that only the lock makes safe; the SET is idempotent.
        v = int(self.surely(lambda r: r.get(GUARDED)) or 0)
        self.surely(lambda r: r.set(GUARDED, v + 1))
        self.surely(lambda r: r.sadd(HOLDERS, token))
        while True:
            ok, n = self.attempt(lambda r: self.release(keys=[LOCK], args=[token], client=r))
            if ok:
                expect(n == 1, f"op {j}: release of our own lock returned {n!r}")
                return
            if self.surely(lambda r: r.get(LOCK)) != token:
                self.resolved_applied += 1
                return


BUCKET_KEY = "{cc:bucket}"
ANSWERS = "{cc:bucket}:answers"


class Bucket(Worker):
    """Phases of frozen logical time: each worker asks for one token at a time until denied,
    then all meet at a barrier and the clock moves STEP seconds."""

    kind = "bucket"

    def __init__(self, run, wid, shared):
        super().__init__(run, wid)
        self.shared = shared
        self.limiter = redis.Redis().register_script(BUCKET)

    def ask(self, now, want, rid):
        args = [CAPACITY, RATE, now, want, rid]
        ok, g = self.attempt(lambda r: self.limiter(keys=[BUCKET_KEY, ANSWERS], args=args, client=r))
        if not ok:
            g = self.surely(lambda r: self.limiter(keys=[BUCKET_KEY, ANSWERS], args=args, client=r))
        expect(g in (0, 1), f"limiter answered {g!r}")
        return g

    def loop(self):
        sh = self.shared
        phase = 0
        while not sh["stop"]:
            now = 1000 + STEP * phase
            # More than the capacity is never granted.
            expect(self.ask(now, CAPACITY + 1, f"big:{phase}:{self.wid}") == 0, "oversized request granted")
            j = 0
            granted = 0
            while True:
                g = self.ask(now, 1, f"{phase}:{self.wid}:{j}")
                j += 1
                self.ops += 1
                if self.run_.flag("ready") and not self.run_.flag("done"):
                    self.in_window += 1
                if not g:
                    break
                granted += 1
            with sh["lock"]:
                sh["granted"][phase] = sh["granted"].get(phase, 0) + granted
            sh["barrier"].wait(timeout=600)
            phase += 1

    def op(self, j):
        raise NotImplementedError


def bucket_phase_end(run, sh, workers):
    """Barrier action: runs once per phase when all bucket workers arrived."""
    phase = sh["phase"]
    want = CAPACITY if phase == 0 else min(CAPACITY, STEP * RATE)
    if sh["granted"].get(phase, 0) != want:
        run.fail(f"bucket phase {phase}: granted {sh['granted'].get(phase, 0)}, want exactly {want}")
        sh["stop"] = True
    sh["phase"] += 1
    if run.stop.is_set():
        sh["stop"] = True
    if run.flag("done"):
        sh["after_done"] += 1
        if sh["after_done"] >= 3 and all(w.ops >= run.min_ops for w in workers):
            sh["stop"] = True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ports", required=True, help="comma-separated RESP ports of the DataNodes")
    ap.add_argument("--drain-port", type=int, required=True, help="the node that will be drained")
    ap.add_argument("--control", required=True, help="directory of the control files")
    ap.add_argument("--min-ops", type=int, default=30, help="operations per worker before ready and after done")
    ap.add_argument("--deadline", type=float, default=900, help="seconds the whole run may take")
    args = ap.parse_args()
    run = Run(args)

    # Start from a clean slate (a previous run on the same ports is not expected, but cheap).
    first = redis.Redis(host="127.0.0.1", port=run.ports[1], decode_responses=True)
    for k in [WATCHED, APPLIED, LOCK, GUARDED, HOLDERS, BUCKET_KEY, ANSWERS]:
        first.delete(k)
    for i in range(4):
        first.delete(*[f"{{cc:pl:{i}}}:{s}" for s in ("n", "log", "last")])

    workers = [Pipeline(run, i) for i in range(4)]
    workers += [Watch(run, i) for i in range(6)]
    workers += [Lock(run, i) for i in range(4)]
    shared = {"lock": threading.Lock(), "granted": {}, "phase": 0, "after_done": 0, "stop": False}
    buckets = [Bucket(run, i, shared) for i in range(4)]
    shared["barrier"] = threading.Barrier(len(buckets), action=lambda: bucket_phase_end(run, shared, buckets))
    workers += buckets
    run.workers = workers
    started = time.monotonic()
    for w in workers:
        w.start()

    deadline = started + args.deadline
    wrote_ready = False
    while any(w.is_alive() for w in workers):
        if run.stop.is_set():
            for w in buckets:
                shared["stop"] = True
            shared["barrier"].abort()
            break
        if time.monotonic() > deadline:
            run.fail(f"not finished within {args.deadline:.0f} s")
            shared["barrier"].abort()
            break
        if not wrote_ready and all(w.ops >= args.min_ops for w in workers):
            with open(os.path.join(args.control, "ready"), "w") as f:
                f.write("ready\n")
            wrote_ready = True
            print(f"ready after {time.monotonic() - started:.1f} s", flush=True)
        time.sleep(0.05)
    for w in workers:
        w.join(timeout=5)

    if not run.failures:
        try:
            final_checks(run, workers, shared)
        except Failure as e:
            run.fail(f"final check: {e}")

    elapsed = time.monotonic() - started
    for kind in ("pipeline", "watch", "lock", "bucket"):
        ws = [w for w in workers if w.kind == kind]
        extra = ""
        if kind == "watch":
            extra = f", {sum(w.conflicts for w in ws)} WatchError retries"
        if kind == "lock":
            extra = f", {sum(w.waits for w in ws)} waits for the lock"
        if kind == "bucket":
            extra = f", {shared['phase']} phases"
        print(
            f"{kind:8} {sum(w.ops for w in ws):6} ops ({sum(w.in_window for w in ws)} during join/drain), "
            f"{sum(w.lost for w in ws)} connections lost to the drained node, "
            f"{sum(w.resolved_applied for w in ws)} unknown outcomes found applied{extra}",
            flush=True,
        )
    used = sorted({p for w in workers for p in w.by_port})
    print(f"nodes used: {used}; {elapsed:.1f} s", flush=True)
    if run.failures:
        for f in run.failures:
            print(f"FAILED: {f}", file=sys.stderr, flush=True)
        sys.exit(1)
    print("all client checks passed", flush=True)


def final_checks(run, workers, shared):
    live = [p for p in run.nodes() if p != run.drain_port]
    for port in live:
        r = redis.Redis(host="127.0.0.1", port=port, decode_responses=True, socket_timeout=120)
        for w in workers:
            if isinstance(w, Pipeline):
                try:
                    w.check(r)
                except Failure as e:
                    raise Failure(f"via {port}, pipeline worker {w.wid}: {e}")
        watch_ops = sum(w.ops for w in workers if isinstance(w, Watch))
        expect(r.get(WATCHED) == str(watch_ops), f"via {port}: watched counter {r.get(WATCHED)!r}, want {watch_ops}")
        expect(r.scard(APPLIED) == watch_ops, f"via {port}: {r.scard(APPLIED)} applied ids, want {watch_ops}")
        lock_ops = sum(w.ops for w in workers if isinstance(w, Lock))
        expect(r.get(GUARDED) == str(lock_ops), f"via {port}: guarded counter {r.get(GUARDED)!r}, want {lock_ops}")
        expect(r.scard(HOLDERS) == lock_ops, f"via {port}: {r.scard(HOLDERS)} lock holders, want {lock_ops}")
        expect(r.exists(LOCK) == 0, f"via {port}: the lock is still held")
        phases = shared["phase"]
        granted = CAPACITY + (phases - 1) * min(CAPACITY, STEP * RATE)
        yes = sum(1 for v in r.hvals(ANSWERS) if v == "1")
        expect(yes == granted, f"via {port}: limiter granted {yes} in {phases} phases, want exactly {granted}")
    # Every node served clients: the three first ones, the joined one (the drained one
    # until it left).
    used = {p for w in workers for p in w.by_port}
    expect(set(run.nodes()) <= used, f"nodes used {sorted(used)}, want all of {run.nodes()}")
    for kind in ("pipeline", "watch", "lock", "bucket"):
        n = sum(w.in_window for w in workers if w.kind == kind)
        expect(n > 0, f"no {kind} operation ran while the node joined and the other drained")


if __name__ == "__main__":
    main()
