#!/usr/bin/env bash
# helper/bench-maxmemory.sh: a CHKV DataNode at its memory limit. (1) RSS against maxmemory
# while 2,000,000 SETs of 1 KiB values go through each allkeys policy, none of them refused;
# (2) SET/GET throughput with eviction active against the same node without a limit.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MAXMEMORY=100mb
WRITES=2000000
VALUE_SIZE=1024
POLICIES=(allkeys-lru allkeys-lfu allkeys-random)
RUNS=3
REQUESTS=500000
CLIENTS=50
KEYSPACE=1000000
PIPELINES=(1 16)
RSS_FACTOR=1.25

usage() {
    cat <<EOF
Usage: helper/bench-maxmemory.sh [options]

Part 1, RSS: for each policy (${POLICIES[*]}), a fresh CHKV DataNode (\$CHKV_BIN, default
\$ROOT/target/release/chkv-datanode, built when missing) on a free 127.0.0.1 port with
--maxmemory $MAXMEMORY takes $WRITES SETs of $VALUE_SIZE-byte values on distinct random keys
(redis-benchmark -P 16 -c $CLIENTS; redis-benchmark stops at the first error reply, so a
complete run means no write was refused). RSS is sampled every 0.2 s; the peak must stay
within $RSS_FACTOR x maxmemory + the RSS of the empty process.

Part 2, throughput: redis-benchmark -t set,get -d $VALUE_SIZE -r $KEYSPACE -c $CLIENTS,
-n $REQUESTS at pipeline 1 and 5 times that at pipeline 16, against a node without a limit and
against nodes at --maxmemory $MAXMEMORY with each policy, each first filled with $KEYSPACE
SETs (about 10 times the limit, so every measured SET evicts); $RUNS alternating rounds,
median. With a limit most GETs miss (the node holds about a tenth of the keys).

Options:
  --maxmemory SIZE   limit (default $MAXMEMORY)
  --writes N         SETs in part 1 (default $WRITES)
  --runs N           rounds in part 2 (default $RUNS)
  --requests N       requests per test in part 2 (default $REQUESTS)
  --skip-rss         only part 2
  --skip-throughput  only part 1
  --help             this text
EOF
}

DO_RSS=1
DO_TPUT=1
while [[ $# -gt 0 ]]; do
    case $1 in
        --maxmemory)
            [[ "${2:-}" =~ ^[0-9]+([kKmMgG][bB]?)?$ ]] || die "--maxmemory needs a size like 100mb, got '${2:-}'"
            MAXMEMORY=$2; shift 2 ;;
        --writes) posint "$1" "${2:-}"; WRITES=$2; shift 2 ;;
        --runs) posint "$1" "${2:-}"; RUNS=$2; shift 2 ;;
        --requests) posint "$1" "${2:-}"; REQUESTS=$2; shift 2 ;;
        --skip-rss) DO_RSS=0; shift ;;
        --skip-throughput) DO_TPUT=0; shift ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done

need_cmd redis-benchmark redis-tools
need_cmd redis-cli redis-tools
need_cmd timeout coreutils
[[ -r /proc/self/status ]] || die "/proc/PID/status is needed to read RSS (Linux only)"
chkv_init
datanode_bin

# node PORT [ARGS...]: a fresh DataNode; sets NODE_PID.
node() {
    local port=$1
    shift
    start_datanode "$port" --admin-port "$(free_port)" "$@"
    NODE_PID=$STARTED_PID
}

# The limit in bytes, with redis.conf units (k = 1000, kb = 1024, ...).
limit_bytes=$(awk -v s="$MAXMEMORY" 'BEGIN {
    n = s + 0; u = tolower(s); sub(/^[0-9]+/, "", u)
    m[""] = 1; m["b"] = 1; m["k"] = 1000; m["kb"] = 1024; m["m"] = 1000000; m["mb"] = 1048576
    m["g"] = 1000000000; m["gb"] = 1073741824
    printf "%d\n", n * m[u] }')
((limit_bytes > 0)) || die "--maxmemory must be positive"

if ((DO_RSS)); then
    RSS_ROWS="$CHKV_TMP/rss.tsv"
    : >"$RSS_ROWS"
    for policy in "${POLICIES[@]}"; do
        port=$(free_port)
        node "$port" --maxmemory "$MAXMEMORY" --maxmemory-policy "$policy"
        sleep 1 # let start-up allocations settle
        rss0=$(rss_bytes "$NODE_PID")
        samples="$CHKV_TMP/rss-$policy.txt"
        # shellcheck disable=SC2016 # expanded by the inner bash
        start_bg "rss-sampler" "$samples" bash -c \
            'while [[ -r /proc/$1/status ]]; do awk "/^VmRSS:/ { print \$2 * 1024 }" /proc/$1/status; sleep 0.2; done' \
            _ "$NODE_PID"
        sampler=$STARTED_PID
        log "$policy: $WRITES SETs of $VALUE_SIZE bytes, maxmemory $MAXMEMORY"
        t0=$SECONDS
        rc=0
        out=$(timeout $((120 + WRITES / 5000)) redis-benchmark -h 127.0.0.1 -p "$port" -t set \
            -n "$WRITES" -d "$VALUE_SIZE" -r 1000000000 -c "$CLIENTS" -P 16 --csv 2>"$CHKV_TMP/rb-$policy.err") || rc=$?
        secs=$((SECONDS - t0))
        refused=no
        if ((rc != 0)) || ! grep -q '^"SET"' <<<"$out"; then
            refused=yes
            warn "$policy: redis-benchmark stopped (exit $rc): $(tr '\r' '\n' <"$CHKV_TMP/rb-$policy.err" | grep -v '^$' | tail -n 1)"
        fi
        sleep 1
        stop_pid "$sampler"
        rss1=$(rss_bytes "$NODE_PID")
        peak=$(sort -n "$samples" | tail -n 1)
        [[ "$peak" =~ ^[0-9]+$ ]] || peak=$rss1
        ((rss1 > peak)) && peak=$rss1
        used=$(info_field "$port" memory used_memory)
        evicted=$(info_field "$port" stats evicted_keys)
        keys=$(rcli "$port" DBSIZE)
        stop_pid "$NODE_PID"
        awk -v p="$policy" -v r0="$rss0" -v pk="$peak" -v r1="$rss1" -v u="$used" -v l="$limit_bytes" \
            -v k="$keys" -v e="$evicted" -v f="$RSS_FACTOR" -v s="$secs" -v refused="$refused" 'BEGIN {
            bound = f * l + r0
            printf "%s\t%.1f MiB\t%.1f MiB\t%.1f MiB\t%.1f MiB\t%.2f\t%.1f MiB\t%s\t%d\t%d\t%s\t%d\n", p, r0 / 1048576,
                pk / 1048576, r1 / 1048576, u / 1048576, (pk - r0) / l, bound / 1048576,
                (pk <= bound ? "yes" : "NO"), k, e, refused, s }' >>"$RSS_ROWS"
    done
fi

if ((DO_TPUT)); then
    TPUT="$CHKV_TMP/tput.csv" # config,pipeline,test,rps
    : >"$TPUT"
    CONFIGS=(none "${POLICIES[@]}")
    for ((round = 1; round <= RUNS; round++)); do
        for cfg in "${CONFIGS[@]}"; do
            port=$(free_port)
            if [[ "$cfg" == none ]]; then
                node "$port"
            else
                node "$port" --maxmemory "$MAXMEMORY" --maxmemory-policy "$cfg"
            fi
            # Fill first (not measured), so that a limited node evicts from the first
            # measured request on.
            timeout $((120 + KEYSPACE / 1000)) redis-benchmark -h 127.0.0.1 -p "$port" -t set \
                -n "$KEYSPACE" -d "$VALUE_SIZE" -r "$KEYSPACE" -c "$CLIENTS" -P 16 -q \
                >/dev/null 2>>"$CHKV_TMP/rb-tput.err" || die "filling $cfg failed (see $CHKV_TMP/rb-tput.err)"
            for pipeline in "${PIPELINES[@]}"; do
                n=$REQUESTS
                ((pipeline == 1)) || n=$((REQUESTS * 5))
                log "round $round/$RUNS  $cfg  -P $pipeline  -n $n"
                out=$(timeout $((120 + n / 1000)) redis-benchmark -h 127.0.0.1 -p "$port" \
                    -t set,get -n "$n" -d "$VALUE_SIZE" -r "$KEYSPACE" -c "$CLIENTS" \
                    -P "$pipeline" --csv 2>>"$CHKV_TMP/rb-tput.err") ||
                    die "redis-benchmark against $cfg failed (see $CHKV_TMP/rb-tput.err)"
                tr -d '"\r' <<<"$out" | awk -F, -v c="$cfg" -v p="$pipeline" \
                    '$1 == "SET" || $1 == "GET" { print c "," p "," $1 "," $2 }' >>"$TPUT"
            done
            stop_pid "$NODE_PID"
        done
    done
fi

table() {
    awk -F'\t' '
        { for (i = 1; i <= NF; i++) { cell[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) } nf = NF }
        END {
            for (r = 1; r <= NR; r++) {
                line = ""
                for (i = 1; i <= nf; i++) line = line sprintf(i == 1 ? "%-" w[i] "s  " : "%" w[i] "s  ", cell[r, i])
                sub(/ +$/, "", line); print line
            }
        }'
}

echo
echo "chkv: $CHKV_BIN; $(nproc 2>/dev/null || echo '?') CPUs shared by redis-benchmark and the node"
if ((DO_RSS)); then
    echo
    echo "RSS at --maxmemory $MAXMEMORY: $WRITES SETs of $VALUE_SIZE-byte values on distinct keys" \
        "(redis-benchmark -P 16 -c $CLIENTS); bound = $RSS_FACTOR x maxmemory + empty RSS"
    {
        printf 'policy\tempty rss\tpeak rss\tfinal rss\tused_memory\t(peak-empty)/maxmemory\tbound\twithin\tkeys\tevicted\trefused\tseconds\n'
        cat "$RSS_ROWS"
    } | table
fi
if ((DO_TPUT)); then
    echo
    echo "Throughput: redis-benchmark -t set,get -d $VALUE_SIZE -r $KEYSPACE -c $CLIENTS" \
        "-n $REQUESTS (P1) / $((REQUESTS * 5)) (P16) after a fill of $KEYSPACE SETs," \
        "median of $RUNS rounds; ratio = rps / rps without a limit"
    awk -F, -v configs="none ${POLICIES[*]}" -v pipelines="${PIPELINES[*]}" '
        function median(k,    n, a, i, j, v) {
            n = split(vals[k], a, " ")
            for (i = 2; i <= n; i++) { v = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > v; j--) a[j + 1] = a[j]; a[j + 1] = v }
            if (n == 0) return 0
            return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        }
        { vals[$1 SUBSEP $2 SUBSEP $3] = vals[$1 SUBSEP $2 SUBSEP $3] " " $4 }
        END {
            print "config\tpipeline\tSET rps\tSET ratio\tGET rps\tGET ratio"
            nc = split(configs, C, " "); np = split(pipelines, P, " ")
            for (j = 1; j <= np; j++) {
                bs = median("none" SUBSEP P[j] SUBSEP "SET"); bg = median("none" SUBSEP P[j] SUBSEP "GET")
                for (i = 1; i <= nc; i++) {
                    s = median(C[i] SUBSEP P[j] SUBSEP "SET"); g = median(C[i] SUBSEP P[j] SUBSEP "GET")
                    printf "%s\t%s\t%.0f\t%s\t%.0f\t%s\n", (C[i] == "none" ? "no limit" : C[i] " " "'"$MAXMEMORY"'"), P[j],
                        s, (bs > 0 ? sprintf("%.2f", s / bs) : "n/a"), g, (bg > 0 ? sprintf("%.2f", g / bg) : "n/a")
                }
            }
        }' "$TPUT" | table
fi
