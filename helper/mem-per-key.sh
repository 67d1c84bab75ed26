#!/usr/bin/env bash
# helper/mem-per-key.sh: memory per key of redis-server and a CHKV DataNode for the same
# load (N keys of 16 bytes with 32-byte values), measured as RSS growth and used_memory growth.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KEYS=1000000

usage() {
    cat <<EOF
Usage: helper/mem-per-key.sh [--keys N] [--help]

For redis-server, then a CHKV DataNode (\$CHKV_BIN, default
\$ROOT/target/release/chkv-datanode, built with cargo when missing), one at a time:
start it fresh on a free 127.0.0.1 port, read the RSS of the empty process (VmRSS in
/proc/PID/status) and INFO memory used_memory, load N keys with redis-cli --pipe
(SET key:%012d val:%028d: 16-byte keys, 32-byte values), check DBSIZE == N, read RSS and
used_memory again, stop it. Prints bytes per key = (after - before) / N for both measures,
and the ratios chkv/redis.

Options:
  --keys N   number of keys (default $KEYS, at most 10^12 so keys stay 16 bytes)
  --help     this text
EOF
}

while [[ $# -gt 0 ]]; do
    case $1 in
        --keys)
            if ! [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || ((${#2} > 13 || $2 > 1000000000000)); then
                die "--keys needs an integer in 1..10^12"
            fi
            KEYS=$2
            shift 2
            ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done

need_cmd redis-server redis-server
need_cmd redis-cli redis-tools
need_cmd timeout coreutils
[[ -r /proc/self/status ]] || die "/proc/PID/status is needed to read RSS (Linux only)"
chkv_init
datanode_bin

declare -A RSS0 RSS1 UM0 UM1

# measure NAME START_FUNCTION: fresh server, measure empty, load, verify, measure, stop.
measure() {
    local name=$1 starter=$2 port pid got keyspace
    port=$(free_port)
    "$starter" "$port"
    pid=$STARTED_PID
    sleep 1 # let the process finish its start-up allocations
    RSS0[$name]=$(rss_bytes "$pid")
    UM0[$name]=$(info_field "$port" memory used_memory)
    [[ "${UM0[$name]}" =~ ^[0-9]+$ ]] || die "$name: INFO memory has no used_memory field"
    log "$name empty: rss=${RSS0[$name]} used_memory=${UM0[$name]}"
    log "$name: loading $KEYS keys (16-byte keys, 32-byte values) with redis-cli --pipe"
    local t0=$SECONDS
    gen_resp SET "key:%012d" "$KEYS" "val:%028d" | pipe_load "$port" | sed "s/^/    /" >&2
    got=$(rcli "$port" DBSIZE 2>&1) || true
    [[ "$got" == "$KEYS" ]] || die "$name: DBSIZE is '$got' after loading $KEYS keys"
    keyspace=$(info_field "$port" keyspace db0)
    [[ "$keyspace" == "keys=$KEYS,"* ]] || warn "$name: INFO keyspace db0 is '$keyspace', expected keys=$KEYS,..."
    log "$name: loaded in $((SECONDS - t0))s, DBSIZE=$got"
    sleep 1 # let background work (expiry cycles, allocator purges) settle
    RSS1[$name]=$(rss_bytes "$pid")
    UM1[$name]=$(info_field "$port" memory used_memory)
    log "$name loaded: rss=${RSS1[$name]} used_memory=${UM1[$name]}"
    stop_pid "$pid"
}

log "keys: $KEYS; chkv binary: $CHKV_BIN; redis: $(redis-server --version | awk '{print $3}')"
measure redis start_redis
measure chkv start_datanode

echo
echo "memory per key: $KEYS keys, 16-byte keys, 32-byte values (48 bytes of payload per key)"
{
    printf 'server\trss empty\trss loaded\trss B/key\tused_memory empty\tused_memory loaded\tused_memory B/key\n'
    for s in redis chkv; do
        awk -v s="$s" -v n="$KEYS" -v r0="${RSS0[$s]}" -v r1="${RSS1[$s]}" -v u0="${UM0[$s]}" -v u1="${UM1[$s]}" 'BEGIN {
            printf "%s\t%.1f MiB\t%.1f MiB\t%.1f\t%.1f MiB\t%.1f MiB\t%.1f\n", s,
                r0 / 1048576, r1 / 1048576, (r1 - r0) / n, u0 / 1048576, u1 / 1048576, (u1 - u0) / n }'
    done
} | awk -F'\t' '
    { for (i = 1; i <= NF; i++) { cell[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) } nf = NF }
    END { for (r = 1; r <= NR; r++) { line = ""
            for (i = 1; i <= nf; i++) line = line sprintf(i == 1 ? "%-" w[i] "s" : "  %" w[i] "s", cell[r, i])
            print line } }'
awk -v n="$KEYS" -v cr0="${RSS0[chkv]}" -v cr1="${RSS1[chkv]}" -v rr0="${RSS0[redis]}" -v rr1="${RSS1[redis]}" \
    -v cu0="${UM0[chkv]}" -v cu1="${UM1[chkv]}" -v ru0="${UM0[redis]}" -v ru1="${UM1[redis]}" 'BEGIN {
    rr = rr1 - rr0; ru = ru1 - ru0
    printf "chkv/redis: rss per key %s, used_memory per key %s\n",
        (rr > 0 ? sprintf("%.2fx", (cr1 - cr0) / rr) : "n/a"), (ru > 0 ? sprintf("%.2fx", (cu1 - cu0) / ru) : "n/a") }'
