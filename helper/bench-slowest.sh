#!/usr/bin/env bash
# helper/bench-slowest.sh: the slowest single command while one key grows to millions of
# elements and (for a sorted set) is popped down again, or one slot to millions of keys,
# CHKV against redis-server and Valkey: where a resize or a rebuild of a whole collection or
# table would stall the server.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REQUESTS=2000000
CLIENTS=4
RUNS=1
TESTS=(sadd zadd hset zpopmin tagset)
VALKEY_BIN=$VALKEY_DEFAULT

usage() {
    cat <<EOF
Usage: helper/bench-slowest.sh [--requests N] [--clients C] [--runs R] [--tests "T ..."]
                               [--valkey BIN | --no-valkey] [--help]

For each test, a fresh CHKV DataNode (\$CHKV_BIN, default \$ROOT/target/release/chkv-datanode,
built with cargo when missing), redis-server and Valkey (the anchor build in ../shared) in
turn, on free 127.0.0.1 ports; redis-benchmark -c C -P 1 -n N grows one key and prints the
slowest request (its max latency) with the throughput and p99. At pipeline 1 with a few
clients every request is timed on its own, so a command that stalls the server (a whole
table rehashed, a collection rebuilt) shows as the max.

Tests (N = --requests, default $REQUESTS; random members out of 10^8, so about N of them):
  sadd     SADD myset element:__rand_int__   (one set grows to about N members)
  zadd     ZADD myzset 0 element:__rand_int__ (one sorted set grows to about N members)
  hset     HSET myhash element:__rand_int__ 32-byte-value (one hash grows to about N fields)
  zpopmin  the sorted set is first loaded to about N members (pipeline 64, not timed), then
           ZPOPMIN myzset N times at pipeline 1: the set shrinks to empty
  tagset   SET {t}key:__rand_int__ 32-byte-value (about N keys under one hash tag: one slot's
           key table grows; elements = DBSIZE)

Options:
  --requests N   requests per test (default $REQUESTS)
  --clients C    redis-benchmark -c (default $CLIENTS)
  --runs R       rounds (each server once a round, the order rotated; default $RUNS)
  --tests "T ..." which tests (default "${TESTS[*]}")
  --valkey BIN   valkey-server to compare with (default $VALKEY_BIN)
  --no-valkey    redis-server and chkv only
  --help         this text
EOF
}

while [[ $# -gt 0 ]]; do
    case $1 in
        --requests) posint "$1" "${2:-}"; REQUESTS=$2; shift 2 ;;
        --clients) posint "$1" "${2:-}"; CLIENTS=$2; shift 2 ;;
        --runs) posint "$1" "${2:-}"; RUNS=$2; shift 2 ;;
        --tests)
            read -r -a TESTS <<<"${2:-}"
            ((${#TESTS[@]} > 0)) || die "--tests needs a list"
            for t in "${TESTS[@]}"; do
                [[ $t =~ ^(sadd|zadd|hset|zpopmin|tagset)$ ]] || die "unknown test '$t' (sadd, zadd, hset, zpopmin, tagset)"
            done
            shift 2 ;;
        --valkey) [[ -x "${2:-}" ]] || die "--valkey: '${2:-}' is not an executable"; VALKEY_BIN=$2; shift 2 ;;
        --no-valkey) VALKEY_BIN=""; shift ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done

need_cmd redis-server redis-server
need_cmd redis-benchmark redis-tools
need_cmd redis-cli redis-tools
chkv_init
datanode_bin
SERVERS=(chkv redis)
if [[ -n "$VALKEY_BIN" && -x "$VALKEY_BIN" ]]; then
    SERVERS+=(valkey)
else
    log "no Valkey: comparing with redis-server only"
fi

# start NAME PORT: a fresh server of that name. Sets STARTED_PID.
start() {
    case $1 in
        chkv) start_datanode "$2" --admin-port "$(free_port)" ;;
        redis) start_redis "$2" ;;
        valkey) start_valkey "$2" "$VALKEY_BIN" ;;
    esac
}

# bench PORT ARGS...: redis-benchmark's CSV line for the run: "name","rps","avg","min","p50",
# "p95","p99","max".
bench() {
    local port=$1
    shift
    redis-benchmark -h 127.0.0.1 -p "$port" --csv "$@" | tail -1
}

printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' test server round elements rps "p99 ms" "max ms" >"$CHKV_TMP/results"
for ((round = 1; round <= RUNS; round++)); do
    for t in "${TESTS[@]}"; do
        n=${#SERVERS[@]}
        for ((i = 0; i < n; i++)); do
            s=${SERVERS[(i + round - 1) % n]}
            port=$(free_port)
            start "$s" "$port"
            pid=$STARTED_PID
            common=(-c "$CLIENTS" -n "$REQUESTS" -r 100000000)
            case $t in
                sadd) line=$(bench "$port" "${common[@]}" -P 1 -t sadd); len=$(rcli "$port" SCARD myset) ;;
                zadd) line=$(bench "$port" "${common[@]}" -P 1 -t zadd); len=$(rcli "$port" ZCARD myzset) ;;
                hset) line=$(bench "$port" "${common[@]}" -P 1 -t hset -d 32); len=$(rcli "$port" HLEN myhash) ;;
                tagset)
                    line=$(bench "$port" "${common[@]}" -P 1 SET '{t}key:__rand_int__' 0123456789abcdef0123456789abcdef)
                    len=$(rcli "$port" DBSIZE)
                    ;;
                zpopmin)
                    redis-benchmark -h 127.0.0.1 -p "$port" -c 50 -n "$REQUESTS" -r 100000000 -P 64 -t zadd -q >/dev/null
                    len=$(rcli "$port" ZCARD myzset)
                    line=$(bench "$port" "${common[@]}" -P 1 -t zpopmin)
                    left=$(rcli "$port" ZCARD myzset)
                    [[ "$left" == 0 ]] || warn "$s: $left members left after the pops"
                    ;;
            esac
            stop_pid "$pid"
            IFS=, read -r _ rps _ _ _ _ p99 max <<<"${line//\"/}"
            log "$t $s round $round: $len elements, $rps rps, p99 $p99 ms, max $max ms"
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$s" "$round" "$len" "$rps" "$p99" "$max" >>"$CHKV_TMP/results"
        done
    done
done
echo
echo "redis-benchmark -c $CLIENTS -P 1 -n $REQUESTS; chkv: $CHKV_BIN; one row per server and round"
column -t -s $'\t' "$CHKV_TMP/results"
