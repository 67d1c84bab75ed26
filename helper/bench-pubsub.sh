#!/usr/bin/env bash
# helper/bench-pubsub.sh: PUBLISH fan-out (1 publisher, N subscribers) against a CHKV
# DataNode, redis-server and Valkey in the same run, alternating, median of N rounds.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS=5
MESSAGES=20000
SUBSCRIBERS=100
SIZE=32
PIPELINES=(1 16)
PORTS=""
# The shared folder sits next to the main checkout, or two levels up from a worktree.
VALKEY=${VALKEY_BIN:-}
if [[ -z "$VALKEY" ]]; then
    for d in "$CHKV_ROOT/../shared" "$CHKV_ROOT/../../shared"; do
        [[ -x "$d/anchors/valkey-8.0.1/valkey-server" ]] && VALKEY="$d/anchors/valkey-8.0.1/valkey-server" && break
    done
fi

usage() {
    cat <<EOF
Usage: helper/bench-pubsub.sh [options]

Starts a CHKV DataNode (\$CHKV_BIN, default the release build), redis-server and Valkey
(\$VALKEY_BIN, default ../shared/anchors/valkey-8.0.1/valkey-server) on 127.0.0.1 and runs the pubsub_fanout example against
each, in a rotating order every round, for pipeline 1 and 16. Prints, per pipeline, the
median messages delivered per second of each server and the ratios chkv/redis and
chkv/valkey (>1: chkv faster).

Options:
  --runs N           rounds (default $RUNS)
  --messages N       messages published per run (default $MESSAGES)
  --subscribers N    subscribers (default $SUBSCRIBERS)
  --size N           payload bytes (default $SIZE)
  --ports A,B,C      ports for chkv, redis, valkey (default: free ports)
EOF
}

while [[ $# -gt 0 ]]; do
    case $1 in
    --runs) posint "$1" "${2:-}"; RUNS=$2; shift 2 ;;
    --messages) posint "$1" "${2:-}"; MESSAGES=$2; shift 2 ;;
    --subscribers) posint "$1" "${2:-}"; SUBSCRIBERS=$2; shift 2 ;;
    --size) posint "$1" "${2:-}"; SIZE=$2; shift 2 ;;
    --ports) PORTS=${2:-}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
    esac
done

chkv_init
[[ -x "$VALKEY" ]] || die "valkey-server not found at $VALKEY (set VALKEY_BIN)"
DRIVER="$(cargo_target)/release/examples/pubsub_fanout"
if [[ ! -x "$DRIVER" ]]; then
    log "building the driver: cargo build --release -p chkv-datanode --example pubsub_fanout"
    (cd "$CHKV_ROOT" && cargo build --release -p chkv-datanode --example pubsub_fanout) ||
        die "building pubsub_fanout failed"
fi

if [[ -n "$PORTS" ]]; then
    IFS=, read -r P_CHKV P_REDIS P_VALKEY <<<"$PORTS"
else
    P_CHKV=$(free_port)
    P_REDIS=$(free_port)
    P_VALKEY=$(free_port)
fi
start_datanode "$P_CHKV" --admin-port 0
start_redis "$P_REDIS"
start_bg "valkey-server:$P_VALKEY" "$CHKV_TMP/valkey.log" \
    "$VALKEY" --save '' --appendonly no --port "$P_VALKEY" --bind 127.0.0.1 --daemonize no \
    --dir "$CHKV_TMP"
wait_for_port "$P_VALKEY" "$CHKV_WAIT_TIMEOUT" "$STARTED_PID" "$CHKV_TMP/valkey.log"

declare -A PORT_OF=([chkv]=$P_CHKV [redis]=$P_REDIS [valkey]=$P_VALKEY)
ORDER=(chkv redis valkey)
log "$MESSAGES messages of $SIZE bytes to $SUBSCRIBERS subscribers, $RUNS rounds; machine: $(nproc) cores, shared"
printf '%-9s %14s %14s %14s %12s %12s\n' pipeline chkv redis valkey chkv/redis chkv/valkey
for p in "${PIPELINES[@]}"; do
    declare -A RES=([chkv]="" [redis]="" [valkey]="")
    for ((r = 0; r < RUNS; r++)); do
        for ((i = 0; i < 3; i++)); do
            s=${ORDER[$(((i + r) % 3))]}
            line=$("$DRIVER" --port "${PORT_OF[$s]}" --subscribers "$SUBSCRIBERS" \
                --messages "$MESSAGES" --pipeline "$p" --size "$SIZE")
            v=$(sed -n 's/.*delivered_per_sec=\([0-9]*\).*/\1/p' <<<"$line")
            log "p=$p round $r $s: $line"
            RES[$s]+="$v "
        done
    done
    # shellcheck disable=SC2086
    c=$(median ${RES[chkv]})
    # shellcheck disable=SC2086
    rd=$(median ${RES[redis]})
    # shellcheck disable=SC2086
    v=$(median ${RES[valkey]})
    printf '%-9s %14.0f %14.0f %14.0f %12.2f %12.2f\n' "$p" "$c" "$rd" "$v" \
        "$(awk -v a="$c" -v b="$rd" 'BEGIN { print a / b }')" \
        "$(awk -v a="$c" -v b="$v" 'BEGIN { print a / b }')"
done
