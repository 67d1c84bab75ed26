#!/usr/bin/env bash
# helper/bench-bits.sh: bitmap, HyperLogLog and whole-collection reads with redis-benchmark
# against a CHKV DataNode, redis-server and Valkey in the same run, alternating, median of N
# rounds.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS=3
REQ=200000
CLIENTS=50
BASE=""
ONLY=""
VALKEY=${VALKEY_BIN:-$(cd "$CHKV_ROOT/.." && pwd)/shared/anchors/valkey-8.0.1/valkey-server}

usage() {
    cat <<EOF
Usage: helper/bench-bits.sh [--runs N] [--requests N] [--help]

Starts a CHKV DataNode (\$CHKV_BIN, default the release build), redis-server and Valkey
(\$VALKEY_BIN, default ../shared/anchors/valkey-8.0.1/valkey-server; skipped when missing)
on free 127.0.0.1 ports and runs, at pipeline 1 and 16, -c $CLIENTS:

  BITCOUNT, SETBIT and GETBIT on one 1 MB string of random bytes (redis-benchmark's
  __rand_int__ is zero-padded, which bit offsets refuse, so one offset in the middle), PFADD
  of random elements (-r 1000000) into one HyperLogLog and PFCOUNT of it; HGETALL of a
  10-field hash (field0..field9 = value:00000..) and SMEMBERS of a 100-member set
  (member:000..member:099).

Each cell runs against every server in turn (the order rotates each round); the table shows
the median requests/s per server and CHKV's ratio to each reference (>1: CHKV faster).

Options:
  --runs N       rounds (default $RUNS)
  --requests N   requests per run at pipeline 1, 5x that at pipeline 16 (BITCOUNT: a fiftieth)
  --ports BASE   listen on BASE, BASE+1, BASE+2 instead of free ports
  --tests LIST   comma-separated subset of BITCOUNT-1MB, SETBIT-1MB, GETBIT-1MB, PFADD,
                 PFCOUNT, HGETALL-10, SMEMBERS-100 (default all)
EOF
}

while [[ $# -gt 0 ]]; do
    case $1 in
        --runs) posint "$1" "${2:-}"; RUNS=$2; shift 2 ;;
        --requests) posint "$1" "${2:-}"; REQ=$2; shift 2 ;;
        --ports) posint "$1" "${2:-}"; BASE=$2; shift 2 ;;
        --tests) ONLY=${2:?--tests needs a list}; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
need_cmd redis-benchmark redis-tools
need_cmd python3 python3
chkv_init
datanode_bin

SERVERS=(chkv redis)
declare -A PORT
port_no() { if [[ -n "$BASE" ]]; then echo $((BASE + $1)); else free_port; fi; }
PORT[chkv]=$(port_no 0)
start_datanode "${PORT[chkv]}" --admin-port "$(port_no 3)"
PORT[redis]=$(port_no 1)
start_redis "${PORT[redis]}"
if [[ -x "$VALKEY" ]]; then
    PORT[valkey]=$(port_no 2)
    start_bg "valkey:${PORT[valkey]}" "$CHKV_TMP/valkey.log" "$VALKEY" --save '' \
        --appendonly no --port "${PORT[valkey]}" --bind 127.0.0.1 --dir "$CHKV_TMP"
    wait_for_port "${PORT[valkey]}" "$CHKV_WAIT_TIMEOUT" "$STARTED_PID" "$CHKV_TMP/valkey.log"
    SERVERS+=(valkey)
else
    warn "no Valkey at $VALKEY: comparing with redis-server only"
fi

# The same 1 MB of random bytes on every server.
SEED=$RANDOM
for s in "${SERVERS[@]}"; do
    python3 - "${PORT[$s]}" "$SEED" <<'PY'
import random, socket, sys
random.seed(int(sys.argv[2]))
v = random.randbytes(1 << 20)
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
c.sendall(b"*3\r\n$3\r\nSET\r\n$7\r\nbits:1m\r\n$%d\r\n%s\r\n" % (len(v), v))
assert c.recv(5) == b"+OK\r\n"
def cmd(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    c.sendall(out)
cmd("DEL", "h10", "s100")
cmd("HSET", "h10", *[x for f in range(10) for x in ("field%d" % f, "value:%05d" % f)])
cmd("SADD", "s100", *["member:%03d" % m for m in range(100)])
got = b""
while got.count(b"\r\n") < 3:
    got += c.recv(100)
assert got.split(b"\r\n")[1:3] == [b":10", b":100"], got
PY
done

RESULTS="$CHKV_TMP/results.csv"
: >"$RESULTS"
# run SERVER NAME PIPELINE N ARGS...: one redis-benchmark run; appends "server,name,P,rps".
run() {
    local s=$1 name=$2 p=$3 n=$4 out rps
    shift 4
    out=$(timeout 300 redis-benchmark -h 127.0.0.1 -p "${PORT[$s]}" -c "$CLIENTS" -n "$n" \
        -P "$p" -r 1000000 --csv "$@" 2>/dev/null | tr -d '\r"' | tail -n 1)
    rps=$(cut -d, -f2 <<<"$out")
    [[ "$rps" =~ ^[0-9.]+$ ]] || die "redis-benchmark against $s gave '$out'"
    echo "$s,$name,$p,$rps" >>"$RESULTS"
    log "round $ROUND  $s  $name  -P $p  $rps rps"
}

TESTS=("BITCOUNT-1MB|50|BITCOUNT bits:1m"
    "SETBIT-1MB|1|SETBIT bits:1m 4000007 1"
    "GETBIT-1MB|1|GETBIT bits:1m 4000007"
    "PFADD|1|PFADD hll __rand_int__"
    "PFCOUNT|1|PFCOUNT hll"
    "HGETALL-10|1|HGETALL h10"
    "SMEMBERS-100|1|SMEMBERS s100")
if [[ -n "$ONLY" ]]; then
    keep=()
    for t in "${TESTS[@]}"; do
        [[ ",$ONLY," == *",${t%%|*},"* ]] && keep+=("$t")
    done
    ((${#keep[@]} > 0)) || die "--tests: none of '$ONLY' is a test (see --help)"
    TESTS=("${keep[@]}")
fi
for ((ROUND = 1; ROUND <= RUNS; ROUND++)); do
    for p in 1 16; do
        for t in "${TESTS[@]}"; do
            IFS='|' read -r name div cmd <<<"$t"
            n=$((REQ / div))
            ((p == 1)) || n=$((n * 5))
            read -r -a args <<<"$cmd"
            k=${#SERVERS[@]}
            for ((i = 0; i < k; i++)); do
                run "${SERVERS[$(((i + ROUND) % k))]}" "$name" "$p" "$n" "${args[@]}"
            done
        done
    done
done

printf '\n%-14s %3s' test P
for s in "${SERVERS[@]}"; do printf ' %12s' "$s"; done
for s in "${SERVERS[@]:1}"; do printf ' %12s' "chkv/$s"; done
printf '\n'
for p in 1 16; do
    for t in "${TESTS[@]}"; do
        name=${t%%|*}
        printf '%-14s %3s' "$name" "$p"
        declare -A med=()
        for s in "${SERVERS[@]}"; do
            # shellcheck disable=SC2046
            med[$s]=$(median $(awk -F, -v s="$s" -v t="$name" -v p="$p" \
                '$1 == s && $2 == t && $3 == p { print $4 }' "$RESULTS"))
            printf ' %12.0f' "${med[$s]}"
        done
        for s in "${SERVERS[@]:1}"; do
            printf ' %12.2f' "$(awk -v a="${med[chkv]}" -v b="${med[$s]}" 'BEGIN { print a / b }')"
        done
        printf '\n'
        unset med
    done
done
printf '\nmedians of %d rounds, -c %d, %d requests at -P 1 (BITCOUNT: %d); shared machine.\n' \
    "$RUNS" "$CLIENTS" "$REQ" "$((REQ / 50))"
