#!/usr/bin/env bash
# helper/bench-hit-ratio.sh: hit ratio and throughput of eviction policies under a Zipf
# read-through workload, redis-server (allkeys-lru, allkeys-lfu) against a CHKV DataNode
# (each of its policies), at the same maxmemory, in one run. Prints one table.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MAXMEMORY=20mb
KEYS=1000000
ZIPF=0.99
VALUE_SIZE=100
WARMUP=1000000
REQUESTS=2000000
CLIENTS=16
SEED=1
REDIS_POLICIES=(allkeys-lru allkeys-lfu)
CHKV_POLICIES=(allkeys-lru allkeys-lfu allkeys-random volatile-lru volatile-lfu volatile-random volatile-ttl noeviction)
TTL=86400

usage() {
    cat <<EOF
Usage: helper/bench-hit-ratio.sh [options]

A read-through cache workload (datanode/examples/zipf_load.rs): each request GETs a key
drawn from a Zipf distribution (s = $ZIPF) over $KEYS keys and SETs it ($VALUE_SIZE-byte
value) on a miss. For redis-server with ${REDIS_POLICIES[*]} and for a CHKV DataNode
(\$CHKV_BIN, default \$ROOT/target/release/chkv-datanode, built when missing) with each of
its policies, one at a time: start a fresh server on a free 127.0.0.1 port with the same
--maxmemory (default $MAXMEMORY: about 10% of the keys), run a warm-up of $WARMUP GETs, then
measure $REQUESTS GETs; read DBSIZE, INFO and RSS; stop it. Under volatile-* policies the
SETs carry a TTL of $TTL s (the policies only evict keys with one). The load generator is
built with cargo (release) unless \$ZIPF_BIN points at one.

Columns: keys held and used_memory at the end (accounting differs: redis counts its ~1 MB
baseline and client buffers, chkv only what its store holds), RSS, hit ratio = hits / GETs
in the measured phase, ops/s = (GETs + SETs) / s in the measured phase, keys evicted, and
errors (-OOM replies: writes the cache refused).

Options:
  --maxmemory SIZE   memory limit for every server (default $MAXMEMORY)
  --keys N           distinct keys (default $KEYS)
  --warmup N         GETs before measuring (default $WARMUP)
  --requests N       GETs measured (default $REQUESTS)
  --clients N        concurrent connections of the load generator (default $CLIENTS)
  --seed N           seed of the request sequence (default $SEED)
  --policies LIST    chkv policies to run, comma-separated (default: all)
  --help             this text
EOF
}


while [[ $# -gt 0 ]]; do
    case $1 in
        --maxmemory)
            [[ "${2:-}" =~ ^[0-9]+([kKmMgG][bB]?)?$ ]] || die "--maxmemory needs a size like 20mb, got '${2:-}'"
            MAXMEMORY=$2; shift 2 ;;
        --keys) posint "$1" "${2:-}"; KEYS=$2; shift 2 ;;
        --warmup) posint "$1" "${2:-}"; WARMUP=$2; shift 2 ;;
        --requests) posint "$1" "${2:-}"; REQUESTS=$2; shift 2 ;;
        --clients) posint "$1" "${2:-}"; CLIENTS=$2; shift 2 ;;
        --seed) posint "$1" "${2:-}"; SEED=$2; shift 2 ;;
        --policies)
            [[ "${2:-}" =~ ^[a-z,-]+$ ]] || die "--policies needs a comma-separated list"
            IFS=, read -r -a CHKV_POLICIES <<<"$2"; shift 2 ;;
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

# zipf_bin: the load generator, built (release) next to the datanode binary when missing.
zipf_bin() {
    if [[ -n "${ZIPF_BIN:-}" ]]; then
        [[ -x "$ZIPF_BIN" ]] || die "ZIPF_BIN=$ZIPF_BIN is not executable"
        return
    fi
    ZIPF_BIN="$(cargo_target)/release/examples/zipf_load"
    if [[ ! -x "$ZIPF_BIN" ]]; then
        need_cmd cargo "cargo (or install Rust with rustup)"
        log "building the load generator: cargo build --release -p chkv-datanode --example zipf_load"
        (cd "$CHKV_ROOT" && cargo build --release -p chkv-datanode --example zipf_load) ||
            die "building examples/zipf_load failed"
    fi
}
zipf_bin

ROWS="$CHKV_TMP/rows.tsv"
: >"$ROWS"

# run_one SERVER POLICY: fresh server, load, collect one row, stop it.
run_one() {
    local server=$1 policy=$2 port pid ttl=0 out line
    port=$(free_port)
    if [[ "$server" == redis ]]; then
        start_redis "$port" --maxmemory "$MAXMEMORY" --maxmemory-policy "$policy"
    else
        start_datanode "$port" --maxmemory "$MAXMEMORY" --maxmemory-policy "$policy" \
            --admin-port "$(free_port)"
    fi
    pid=$STARTED_PID
    [[ "$policy" == volatile-* ]] && ttl=$TTL
    log "$server $policy: $WARMUP warm-up + $REQUESTS measured GETs"
    local limit=$((120 + (WARMUP + REQUESTS) / 2000))
    out=$(timeout "$limit" "$ZIPF_BIN" --port "$port" --keys "$KEYS" --zipf "$ZIPF" \
        --value-size "$VALUE_SIZE" --warmup "$WARMUP" --requests "$REQUESTS" \
        --clients "$CLIENTS" --seed "$SEED" --ttl "$ttl" 2>>"$CHKV_TMP/zipf_load.stderr") ||
        die "zipf_load against $server $policy failed (see $CHKV_TMP/zipf_load.stderr)"
    line=$(grep '^hit_ratio=' <<<"$out") || die "no result line from zipf_load: $out"
    log "    $line"
    local keys used evicted rss
    keys=$(rcli "$port" DBSIZE)
    used=$(info_field "$port" memory used_memory)
    evicted=$(info_field "$port" stats evicted_keys)
    rss=$(rss_bytes "$pid")
    stop_pid "$pid"
    awk -v s="$server" -v p="$policy" -v k="$keys" -v u="$used" -v r="$rss" -v e="$evicted" -v l="$line" 'BEGIN {
        n = split(l, kv, " ")
        for (i = 1; i <= n; i++) { split(kv[i], x, "="); f[x[1]] = x[2] }
        printf "%s\t%s\t%d\t%.1f MiB\t%.1f MiB\t%.4f\t%.0f\t%d\t%d\n", s, p, k, u / 1048576, r / 1048576,
            f["hit_ratio"], f["ops_per_sec"], e, f["errors"] }' >>"$ROWS"
}

log "maxmemory $MAXMEMORY; $KEYS keys, s=$ZIPF, ${VALUE_SIZE}-byte values; chkv: $CHKV_BIN; redis: $(redis-server --version | awk '{print $3}')"
START=$SECONDS
for p in "${REDIS_POLICIES[@]}"; do run_one redis "$p"; done
for p in "${CHKV_POLICIES[@]}"; do run_one chkv "$p"; done
log "done in $((SECONDS - START))s"

echo
echo "Zipf read-through (s=$ZIPF) over $KEYS keys, ${VALUE_SIZE}-byte values, maxmemory $MAXMEMORY;" \
    "$CLIENTS clients; warm-up $WARMUP GETs, measured $REQUESTS GETs (seed $SEED);" \
    "$(nproc 2>/dev/null || echo '?') CPUs shared by the load generator and the server"
{
    printf 'server\tpolicy\tkeys held\tused_memory\trss\thit ratio\tops/s\tevicted\terrors\n'
    cat "$ROWS"
} | awk -F'\t' '
    { for (i = 1; i <= NF; i++) { cell[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) } nf = NF }
    END {
        for (r = 1; r <= NR; r++) {
            line = ""
            for (i = 1; i <= nf; i++) line = line sprintf(i <= 2 ? "%-" w[i] "s  " : "%" w[i] "s  ", cell[r, i])
            sub(/ +$/, "", line); print line
        }
    }'
# Best hit ratio per server among the runs that refused no write (noeviction keeps its first
# keys and refuses the rest: not a cache policy to compare).
awk -F'\t' '
    $9 > 0 { next }
    $1 == "redis" && $6 > rb { rb = $6; rp = $2 }
    $1 == "chkv" && $6 > cb { cb = $6; cp = $2 }
    END { if (rb > 0 && cb > 0) printf "best: chkv %s %.4f vs redis %s %.4f (%+.2f points)\n", cp, cb, rp, rb, (cb - rb) * 100 }' "$ROWS"
