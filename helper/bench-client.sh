#!/usr/bin/env bash
# helper/bench-client.sh: SET/GET throughput of the chkv-client library against the `redis`
# crate's multiplexed connection (50 concurrent tasks each, same process, alternating rounds,
# medians), on
#   1. a standalone DataNode: both clients talk to the same node;
#   2. a NameNode + 3 DataNodes: the library routes each key to its owner, the redis crate
#      sends everything to one DataNode, which forwards what it does not own.
# Everything runs on free 127.0.0.1 ports; only the processes started here are stopped.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SECONDS_PER_RUN=3
ROUNDS=3
TASKS=50
NODES=3

usage() {
    cat <<EOF
Usage: helper/bench-client.sh [options]

Builds (release) chkv-namenode, chkv-datanode and the chkv-client bench example, starts a
standalone DataNode and a NameNode with $NODES DataNodes on free loopback ports, and runs
client/examples/bench.rs against both. Prints one table per target.

Options:
  --seconds N    seconds per run (default $SECONDS_PER_RUN)
  --rounds N     alternating rounds, medians reported (default $ROUNDS)
  --tasks N      concurrent tasks per client (default $TASKS)
  --out FILE     also write the tables as markdown to FILE
  -h, --help     this text
EOF
}

OUT=""
while (($#)); do
    case $1 in
    --seconds) posint "$1" "${2:-}"; SECONDS_PER_RUN=$2; shift 2 ;;
    --rounds) posint "$1" "${2:-}"; ROUNDS=$2; shift 2 ;;
    --tasks) posint "$1" "${2:-}"; TASKS=$2; shift 2 ;;
    --out) [[ -n "${2:-}" ]] || die "--out needs a file name"; OUT=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
    esac
done

need_cmd redis-cli redis-tools
need_cmd cargo "cargo (install Rust with rustup)"
chkv_init

cluster_bins
# A separate build: with --example, cargo builds only that target of every package named.
log "building: cargo build --release -p chkv-client --example bench"
(cd "$CHKV_ROOT" && cargo build --release -q -p chkv-client --example bench) || die "build failed"
BENCH_BIN="$(cargo_target)/release/examples/bench"

SOLO_PORT=$(free_port)
start_datanode "$SOLO_PORT" --admin-port "$(free_port)"

NN_DN_PORT=$(free_port)
NN_CLIENT_PORT=$(free_port)
start_namenode "$NN_DN_PORT" "$NN_CLIENT_PORT" "$(free_port)"
CLUSTER_PORTS=()
for ((i = 0; i < NODES; i++)); do
    port=$(free_port)
    start_datanode "$port" --namenode "127.0.0.1:$NN_DN_PORT" --admin-port "$(free_port)"
    CLUSTER_PORTS+=("$port")
done
wait_full_ring "$NODES" "${CLUSTER_PORTS[@]}"
log "standalone $SOLO_PORT; cluster ${CLUSTER_PORTS[*]} (NameNode watch port $NN_CLIENT_PORT)"

args=(--tasks "$TASKS" --seconds "$SECONDS_PER_RUN" --rounds "$ROUNDS")
STANDALONE=$(timeout 600 "$BENCH_BIN" --standalone "127.0.0.1:$SOLO_PORT" "${args[@]}") ||
    die "bench against the standalone DataNode failed"
CLUSTER=$(timeout 600 "$BENCH_BIN" --namenode "127.0.0.1:$NN_CLIENT_PORT" \
    --via "127.0.0.1:${CLUSTER_PORTS[0]}" "${args[@]}") ||
    die "bench against the cluster failed"

params="$TASKS tasks per client, ${SECONDS_PER_RUN}s per run, median of $ROUNDS alternating rounds, 32-byte values over 100000 keys; $(nproc) CPUs shared by the bench and every server"
echo
echo "$params"
echo
echo "$STANDALONE"
echo
echo "$CLUSTER"
if [[ -n "$OUT" ]]; then
    printf '%s.\n\n%s\n\n%s\n' "$params" "$STANDALONE" "$CLUSTER" >"$OUT"
    log "tables written to $OUT"
fi
