#!/usr/bin/env bash
# helper/big-slot.sh: a slot of big values drains intact (issue 11's 1.2 GB slot).
#
# Starts a NameNode and two DataNodes (release build) on free loopback ports, writes --values
# values of --mb MB each (random bytes) under one hash tag to the node that owns its slot,
# drains that node (`k` on its admin port) and checks on the other node that every value is
# there byte for byte (SHA-256), that the drain said "drained", and that the NameNode declared
# no node dead and suspected none meanwhile. Prints the drain's time and throughput, and each
# node's peak RSS (VmHWM) against what it held before: the memory a move costs beyond the
# data. Every wait is bounded; it stops what it started.
#
#   helper/big-slot.sh [--mb 400] [--values 3]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MB=400
VALUES=3
while (($#)); do
    case $1 in
    --mb) posint "$1" "${2:-}"; MB=$2; shift 2 ;;
    --values) posint "$1" "${2:-}"; VALUES=$2; shift 2 ;;
    -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
    esac
done
((MB <= 500)) || die "--mb: at most 500 (a value is one command, under proto-max-bulk-len)"
need_cmd redis-cli redis-tools
need_cmd python3 python3
need_cmd sha256sum coreutils
chkv_init
cluster_bins

NN_DN=$(free_port)
NN_CL=$(free_port)
NN_HTTP=$(free_port)
start_namenode "$NN_DN" "$NN_CL" "$NN_HTTP"
PORTS=()
ADMINS=()
PIDS=()
for _ in 1 2; do
    port=$(free_port)
    admin=$(free_port)
    start_datanode "$port" --namenode "127.0.0.1:$NN_DN" --admin-port "$admin"
    PORTS+=("$port")
    ADMINS+=("$admin")
    PIDS+=("$STARTED_PID")
done
wait_full_ring 2 "${PORTS[@]}"

# The owner of {big}'s slot: the node that answers a GET itself (no -MOVED with a plain
# connection: DataNodes forward, so ask CLUSTER KEYSLOT and CLUSTER SLOTS).
slot=$(rcli "${PORTS[0]}" CLUSTER KEYSLOT "{big}")
owner_port=$(rcli "${PORTS[0]}" CLUSTER SLOTS | python3 -c "
import sys
lines = [l.strip() for l in sys.stdin if l.strip()]
# redis-cli prints each range as: start, end, host, port, id (one per line, flattened)
i = 0
slot = $slot
while i + 3 < len(lines):
    lo, hi, port = int(lines[i]), int(lines[i + 1]), lines[i + 3]
    if lo <= slot <= hi:
        print(port)
        break
    i += 5
")
[[ -n "$owner_port" ]] || die "no owner for slot $slot in CLUSTER SLOTS"
if [[ $owner_port == "${PORTS[0]}" ]]; then FROM=0 TO=1; else FROM=1 TO=0; fi
log "slot $slot of {big} is on ${PORTS[$FROM]}; the drain moves it to ${PORTS[$TO]}"

declare -a SUMS
for ((i = 0; i < VALUES; i++)); do
    f="$CHKV_TMP/v$i"
    head -c "$((MB * 1024 * 1024))" /dev/urandom >"$f"
    SUMS[i]=$(sha256sum "$f" | cut -d' ' -f1)
    CHKV_CLI_TIMEOUT=300 rcli "${PORTS[$FROM]}" -x SET "{big}:v$i" <"$f" >/dev/null
    rm -f "$f"
    log "wrote {big}:v$i ($MB MB)"
done
for i in $(seq 0 99); do rcli "${PORTS[$FROM]}" SET "{big}:s$i" "$i" >/dev/null; done
rss=$(info_field "${PORTS[$FROM]}" memory used_memory_rss)
log "node ${PORTS[$FROM]} holds $(rcli "${PORTS[$FROM]}" DBSIZE) keys, RSS $((rss / 1048576)) MB"

# kB of a process's VmRSS or VmHWM (peak), 0 once it is gone.
mem_kb() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
# The peaks start over here (writing the values had its own: a 400 MB SET's query buffer).
for pid in "${PIDS[@]}"; do echo 5 >"/proc/$pid/clear_refs" || die "cannot reset the peak RSS of $pid"; done
rss_from=$(mem_kb "${PIDS[$FROM]}" VmRSS)
rss_to=$(mem_kb "${PIDS[$TO]}" VmRSS)
# The draining node exits when done: its peak is sampled until then.
(
    while [[ -e /proc/${PIDS[$FROM]}/status ]]; do
        hwm=$(mem_kb "${PIDS[$FROM]}" VmHWM)
        [[ -n $hwm && $hwm != 0 ]] && echo "$hwm" >"$CHKV_TMP/hwm_from"
        sleep 0.05
    done
) &
sampler=$!
log "drain: k on ${PORTS[$FROM]}'s admin port"
t0=$(date +%s.%N)
admin_drain "${ADMINS[$FROM]}" 600 >"$CHKV_TMP/drain.txt" || true
t1=$(date +%s.%N)
hwm_to=$(mem_kb "${PIDS[$TO]}" VmHWM)
for _ in $(seq 1 100); do [[ -e /proc/${PIDS[$FROM]}/status ]] || break; sleep 0.1; done
kill "$sampler" 2>/dev/null || true
wait "$sampler" 2>/dev/null || true
hwm_from=$(cat "$CHKV_TMP/hwm_from" 2>/dev/null || echo 0)
summary=$(grep -m1 -E '^(drained:|drain incomplete)' "$CHKV_TMP/drain.txt" || true)
log "drain summary: ${summary:-none}"
[[ $summary == drained:* ]] || die "the drain did not finish; see $CHKV_TMP/drain.txt"

fail=0
for ((i = 0; i < VALUES; i++)); do
    # --raw prints the bytes and a newline: the newline is cut off.
    timeout 300 redis-cli -h 127.0.0.1 -p "${PORTS[$TO]}" --raw GET "{big}:v$i" >"$CHKV_TMP/got"
    truncate -s "$((MB * 1024 * 1024))" "$CHKV_TMP/got"
    got=$(sha256sum "$CHKV_TMP/got" | cut -d' ' -f1)
    rm -f "$CHKV_TMP/got"
    if [[ $got == "${SUMS[i]}" ]]; then
        log "{big}:v$i intact on ${PORTS[$TO]}"
    else
        warn "{big}:v$i differs on ${PORTS[$TO]}"
        fail=1
    fi
done
small=0
for i in $(seq 0 99); do [[ $(rcli "${PORTS[$TO]}" GET "{big}:s$i") == "$i" ]] && small=$((small + 1)); done
((small == 100)) || { warn "$small of 100 small keys intact"; fail=1; }
dead=$(grep -c "declared dead" "$CHKV_TMP/namenode.log" || true)
suspected=$(grep -c "silent; probing" "$CHKV_TMP/namenode.log" || true)
secs=$(python3 -c "print(f'{$t1 - $t0:.1f}')")
total=$((MB * VALUES))
echo
echo "slot of $VALUES x $MB MB ($total MB) drained in $secs s ($(python3 -c "print(f'{$total / ($t1 - $t0):.0f}')") MB/s); values intact: $([[ $fail == 0 ]] && echo yes || echo NO)"
echo "nodes declared dead: $dead; silences probed: $suspected; drain: $summary"
mb() { echo $(($1 / 1024)); }
echo "sender: RSS $(mb "$rss_from") MB before, peak $(mb "$hwm_from") MB ($(mb $((hwm_from - rss_from))) MB above); receiver: RSS $(mb "$rss_to") MB before, peak $(mb "$hwm_to") MB (the data: $total MB)"
grep -h -e "declared dead" -e "silent; probing" "$CHKV_TMP/namenode.log" | sed 's/^/namenode: /' || true
((fail == 0 && dead == 0)) || die "the big slot did not move intact"
