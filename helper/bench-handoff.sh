#!/usr/bin/env bash
# helper/bench-handoff.sh: how fast slots move, and what clients see while they do.
#
# Loads --keys keys (32-byte values) into a 3-node cluster, then joins a 4th DataNode and
# later drains one (`k` on its admin port) while redis-benchmark SETs and GETs run at the
# same time against the cluster (through one DataNode's forwarding). Prints keys/s and MB/s
# moved, the time per change, and client throughput, p50, p99, p99.9 and max latency in
# steady state (with 3 nodes and with 4) and during each move, with any client errors.
#
#   helper/bench-handoff.sh [--keys 1000000] [--requests 400000]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KEYS=1000000
REQUESTS=400000
while (($#)); do
    case $1 in
    --keys) KEYS=$2; shift 2 ;;
    --requests) REQUESTS=$2; shift 2 ;;
    -h | --help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
    esac
done
need_cmd redis-cli redis-tools
need_cmd redis-benchmark redis-tools
need_cmd nc netcat-openbsd
need_cmd python3 python3
chkv_init
cluster_bins

NN_DN=$(free_port)
NN_CL=$(free_port)
NN_HTTP=$(free_port)
start_namenode "$NN_DN" "$NN_CL" "$NN_HTTP"

PORTS=()
ADMINS=()
PIDS_DN=()
# add_node [PORT ADMIN_PORT]: start a DataNode (on free ports unless given).
add_node() {
    local port=${1:-} admin=${2:-}
    [[ -n "$port" ]] || port=$(free_port)
    [[ -n "$admin" ]] || admin=$(free_port)
    start_datanode "$port" --namenode "127.0.0.1:$NN_DN" --admin-port "$admin"
    PORTS+=("$port")
    ADMINS+=("$admin")
    PIDS_DN+=("$STARTED_PID")
}

# wait_settled N [FILE]: every change done (no slot moving) and N nodes own slots, all 16384
# assigned; the time it saw that (seconds since the epoch) goes to FILE.
# One process polls the NameNode until then: starting python three times per poll, as
# this script once did, took about a core of the 2-core machine away from the servers
# while a join was measured.
wait_settled() {
    "$PYTHON" - "$NN_HTTP" "$1" "${2:-}" <<'PY' || die "the cluster did not settle with $1 owners"
import json, sys, time, urllib.request
port, want, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/cluster", timeout=5) as r:
        d = json.load(r)
    owners = sum(1 for n in d["nodes"] if n.get("slots", 0) > 0)
    if d["slots_moving"] == 0 and owners == want and d["slots_assigned"] == 16384:
        if out:
            with open(out, "w") as f:
                f.write(f"{time.time():.6f}\n")
        sys.exit(0)
    time.sleep(0.05)
sys.exit(1)
PY
}

admin_field() { # admin_field ADMIN_PORT FIELD
    printf 'status\r\nquit\r\n' | nc -q1 127.0.0.1 "$1" | tr -d '\r' |
        awk -v f="$2" '{ for (i = 1; i < NF; i++) if ($i == f) { print $(i + 1); exit } }'
}

# bench OUT: redis-benchmark SET and GET at the same time against node 0 (two processes of 25
# connections, so a move meets both; one after the other, the GETs ran after the move had
# ended); their full reports (with the latency distribution) in OUT.set and OUT.get, errors
# in OUT.err.
bench() {
    local t pids=()
    : >"$1.err"
    for t in set get; do
        redis-benchmark -h 127.0.0.1 -p "${PORTS[0]}" -t "$t" -c 25 -n $((REQUESTS / 2)) \
            -r "$KEYS" -d 32 >"$1.$t" 2>>"$1.err" &
        pids+=($!)
    done
    wait "${pids[@]}" || true
}

# stats OUT TEST: "rps p50 p99 p99.9 max" of TEST (SET or GET) from a report of bench.
# redis-benchmark lists percentiles at halving steps (..., 99.805%, 99.902%, ...): p99.9 is
# the latency of the first one at or above 99.9%, an upper bound.
stats() {
    python3 - "$1" "$2" <<'PY'
import re, sys
text = open(sys.argv[1], errors="replace").read().replace("\r", "\n")
part = text.split(f"====== {sys.argv[2]} ======", 1)
if len(part) < 2:
    print("- - - - -")
    sys.exit()
sec = part[1].split("======", 1)[0]
rps = re.search(r"throughput summary: ([\d.]+)", sec)
summ = re.search(r"avg\s+min\s+p50\s+p95\s+p99\s+max\s*\n\s*([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", sec)
p999 = next((v for p, v in re.findall(r"^([\d.]+)% <= ([\d.]+) milliseconds", sec, re.M) if float(p) >= 99.9), "-")
if rps and summ:
    print(f"{float(rps[1]):.0f} {summ[3]} {summ[5]} {p999} {summ[6]}")
else:
    print("- - - - -")
PY
}

# Nothing but the servers and the clients may run while a move is measured: python3 is
# resolved to its interpreter once (a version manager's shim is a shell script that forks
# several processes per call), and the 4th node's ports are picked now. Starting three
# pythons and their shims during the join took a tenth of the machine's CPU from the
# servers and made the join last 0.7 s instead of 0.4.
PYTHON=$(python3 -c 'import sys; print(sys.executable)')
JOIN_PORT=$(free_port)
JOIN_ADMIN=$(free_port)
for _ in 1 2 3; do add_node; done
wait_settled 3

log "loading $KEYS keys (32-byte values) through ${PORTS[0]}"
t0=$(date +%s.%N)
python3 -c "
import sys
out = sys.stdout.buffer
v = b'x' * 32
for i in range($KEYS):
    k = b'key:%d' % i
    out.write(b'*3\r\n\$3\r\nSET\r\n\$%d\r\n%s\r\n\$32\r\n%s\r\n' % (len(k), k, v))
" | pipe_load "${PORTS[0]}"
t1=$(date +%s.%N)
total=0
for p in "${PORTS[@]}"; do total=$((total + $(rcli "$p" DBSIZE))); done
((total == KEYS)) || die "loaded $total keys, expected $KEYS"
log "loaded in $(python3 -c "print(f'{$t1 - $t0:.1f}')") s"

log "baseline: redis-benchmark against ${PORTS[0]}"
bench "$CHKV_TMP/base.txt"

# --- join
log "join: a 4th DataNode while redis-benchmark runs"
# The poller starts first: python's own start-up (tens of milliseconds of CPU) once held a
# core for 4 ms at a time in the join, and the servers' threads waited for it.
wait_settled 4 "$CHKV_TMP/settled4" &
wp=$!
sleep 0.5
bench "$CHKV_TMP/join.txt" &
bp=$!
sleep 0.5
j0=$(date +%s.%N)
add_node "$JOIN_PORT" "$JOIN_ADMIN"
wait "$wp" || die "the cluster did not settle with 4 owners"
j1=$(cat "$CHKV_TMP/settled4")
wait "$bp"
joined=$(rcli "${PORTS[3]}" DBSIZE)
jbytes=0
for a in "${ADMINS[@]:0:3}"; do jbytes=$((jbytes + $(admin_field "$a" handed_over_bytes))); done

# --- steady state with 4 nodes: a join's latencies are compared with both the 3-node and
# the 4-node steady state, so what the move costs is not mistaken for what a 4th process on
# the same cores costs.
log "baseline with 4 nodes: redis-benchmark against ${PORTS[0]}"
bench "$CHKV_TMP/base4.txt"

# --- drain node 1
log "drain: k on node 1's admin port while redis-benchmark runs"
bench "$CHKV_TMP/drain.txt" &
bp=$!
sleep 0.5
summary=$(admin_drain "${ADMINS[1]}" 120 | tee "$CHKV_TMP/drain-admin.txt" | grep -m1 '^drained:' || true)
wait "$bp"
[[ -n "$summary" ]] || die "no drain summary; see $CHKV_TMP/drain-admin.txt"
wait_settled 3
# Every loaded key must still be there (redis-benchmark's own keys are key:000000NNNNNN,
# so they never collide with key:N): EXISTS in batches of 1000 through node 0.
total=$(python3 -c "
for s in range(0, $KEYS, 1000):
    print('EXISTS ' + ' '.join('key:%d' % i for i in range(s, min(s + 1000, $KEYS))))
" | redis-cli -h 127.0.0.1 -p "${PORTS[0]}" | awk '{ s += $1 } END { print s + 0 }')

python3 - "$j0" "$j1" "$joined" "$jbytes" "$summary" "$total" "$KEYS" <<'PY' >"$CHKV_TMP/moves.txt"
import re, sys
j0, j1, joined, jbytes, summary, total, keys = sys.argv[1:8]
jt = float(j1) - float(j0)
m = re.search(r"moved (\d+) slots and (\d+) keys in ([\d.]+) s \(([\d.]+) keys/s, ([\d.]+) MB/s\)", summary)
print(f"join   {jt:6.2f} s  {int(joined):>9} keys  {int(joined)/jt:>10.0f} keys/s  {int(jbytes)/jt/1048576:6.1f} MB/s")
if m:
    print(f"drain  {float(m[3]):6.2f} s  {int(m[2]):>9} keys  {float(m[4]):>10.0f} keys/s  {float(m[5]):6.1f} MB/s  ({m[1]} slots)")
print(f"loaded keys present after both changes: {total} of {keys}")
PY

echo
echo "Handoff with $KEYS keys (32-byte values), 3 DataNodes; time from the change to the NameNode"
echo "having published every move (join), or the drained node's own summary (drain):"
cat "$CHKV_TMP/moves.txt"
echo
printf '%-10s %-4s %10s %8s %8s %9s %8s %7s\n' phase test rps p50_ms p99_ms p99.9_ms max_ms errors
for phase in base join base4 drain; do
    f="$CHKV_TMP/$phase.txt"
    errs=$(grep -ci error "$f.err" || true)
    if ((errs > 0)); then
        echo "--- $phase: redis-benchmark reported errors:"
        head -5 "$f.err"
        cp -r "$CHKV_TMP" /tmp/bench-handoff-failed 2>/dev/null || true
    fi
    for t in SET GET; do
        read -r rps p50 p99 p999 max <<<"$(stats "$f.${t,,}" "$t")"
        printf '%-10s %-4s %10s %8s %8s %9s %8s %7s\n' "$phase" "$t" "$rps" "$p50" "$p99" \
            "$p999" "$max" "$errs"
    done
done
echo "(base: 3 nodes, base4: 4 nodes, no move; the latencies of join and drain cover the"
echo " whole benchmark run, the move included)"
