#!/usr/bin/env bash
# helper/chaos.sh: runs the fault tests against real binaries on loopback, many times each,
# and prints per test how many runs passed. Every test is bounded and stops its processes
# by itself; ports are free ones (port 0).
#
#   helper/chaos.sh              # 20 runs of each fault test
#   helper/chaos.sh --runs 5
#   helper/chaos.sh --busy       # with one core kept busy by a spinning shell meanwhile
#   helper/chaos.sh --only restart::   # only the tests whose name contains this
#
# Faults (test names in datanode/tests/):
#   SIGSTOP past detection, then SIGCONT     cluster flap::a_paused_node_that_resumes...
#   requests buffered on the paused node     cluster flap::requests_buffered_during_a_pause...
#   NameNode down 30 s (no request may fail)  cluster restart::thirty_seconds_without_a_namenode...
#   k, then NameNode kill -9 mid-drain       cluster restart::a_drain_outlives_its_namenode...
#   k, then SIGSTOP past detection mid-drain cluster flap::a_drain_paused_past_detection...
#   k, then SIGSTOP within detection         cluster flap::a_drain_paused_within_detection...
#   SIGTERM (drain, timeout, second signal,  cluster stop::
#     a client that does not read)
#   kill -9                                  cluster failure::
#   join, drain, join under traffic          handoff join_drain_join_under_traffic...
# Each test's own assertions are the history check: acknowledged writes present with their
# last value, no stale read, no deleted key back, counts exact, every slot served.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

RUNS=20
BUSY=0
ONLY=""
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS="$2"; shift 2 ;;
        --busy) BUSY=1; shift ;;
        --only) ONLY="$2"; shift 2 ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

echo "building the test binaries..."
# The tests start the real binaries, the NameNode's too, which `cargo test -p
# chkv-datanode` does not build: on a fresh target directory the NameNode tests failed.
cargo build -p chkv-namenode -p chkv-datanode >/dev/null 2>&1 ||
    { echo "cargo build failed" >&2; exit 1; }
built=$(cargo test -p chkv-datanode --no-run --message-format=json 2>/dev/null |
    grep -o '"executable":"[^"]*"' | sed 's/"executable":"//; s/"$//')
bin_of() { echo "$built" | grep "/deps/$1-" | head -1; }
CLUSTER=$(bin_of cluster)
HANDOFF=$(bin_of handoff)
[ -x "$CLUSTER" ] && [ -x "$HANDOFF" ] || { echo "test binaries not found" >&2; exit 1; }

busy_pid=""
cleanup() { if [ -n "$busy_pid" ]; then kill "$busy_pid" 2>/dev/null || true; fi; }
trap cleanup EXIT
if [ "$BUSY" = 1 ]; then
    sh -c 'while :; do :; done' &
    busy_pid=$!
    echo "one core kept busy by pid $busy_pid"
fi

logdir=$(mktemp -d -t chkv-chaos.XXXXXX)
total_fail=0
run_many() { # name binary filter
    local name="$1" bin="$2" filter="$3" pass=0 fail=0 i log
    if [ -n "$ONLY" ] && [[ "$filter" != *"$ONLY"* ]]; then
        return
    fi
    for i in $(seq 1 "$RUNS"); do
        # A name may hold a '/' ("SIGSTOP/SIGCONT"): not in a file name.
        log="$logdir/${name//\//-}.$i.log"
        if "$bin" --exact "$filter" --include-ignored --test-threads 1 >"$log" 2>&1 &&
            grep -q "test result: ok. 1 passed" "$log"; then
            pass=$((pass + 1))
        else
            fail=$((fail + 1))
            echo "  $name run $i FAILED (log $log)"
        fi
    done
    total_fail=$((total_fail + fail))
    printf '%-58s %3d/%d passed\n' "$name" "$pass" "$RUNS"
}

run_many "SIGSTOP past detection, SIGCONT" "$CLUSTER" \
    flap::a_paused_node_that_resumes_brings_back_no_deleted_or_old_key
run_many "requests buffered across SIGSTOP/SIGCONT" "$CLUSTER" \
    flap::requests_buffered_during_a_pause_never_see_the_old_data
run_many "NameNode down 30 s, no request fails" "$CLUSTER" \
    restart::thirty_seconds_without_a_namenode_cost_no_request
run_many "k, then NameNode kill -9 mid-drain" "$CLUSTER" \
    restart::a_drain_outlives_its_namenode_killed_mid_drain
run_many "k, then SIGSTOP mid-drain" "$CLUSTER" \
    flap::a_drain_paused_past_detection_leaves_every_key_reachable
run_many "k, then SIGSTOP within detection" "$CLUSTER" \
    flap::a_drain_paused_within_detection_finishes_and_loses_nothing
run_many "SIGTERM drains, nothing lost" "$CLUSTER" \
    stop::sigterm_drains_a_cluster_node_and_loses_nothing
run_many "SIGTERM bounded by --shutdown-timeout" "$CLUSTER" \
    stop::a_drain_on_sigterm_is_bounded_by_the_shutdown_timeout
run_many "second signal exits at once" "$CLUSTER" stop::a_second_signal_exits_at_once
run_many "SIGTERM with a client that does not read" "$CLUSTER" \
    stop::sigterm_exits_with_a_client_that_does_not_read
run_many "kill -9, keys become misses" "$CLUSTER" \
    failure::a_killed_datanode_leaves_the_ring_and_its_keys_become_misses
run_many "kill -9, node comes back empty" "$CLUSTER" \
    failure::a_killed_datanode_that_comes_back_gets_its_slots_back_empty
run_many "join, drain, join under traffic" "$HANDOFF" \
    join_drain_join_under_traffic_loses_nothing

echo "logs: $logdir"
[ "$total_fail" = 0 ]
