#!/usr/bin/env bash
# helper/bench-cluster.sh: redis-benchmark SET/GET against redis-server, a standalone
# DataNode, twemproxy in front of 3 redis-servers, one DataNode of a 3-node cluster (plain
# client: 2/3 of the keys forwarded) and the same cluster with redis-benchmark --cluster (the
# client routes by CLUSTER NODES); the targets alternate within each round, medians of the
# rounds in one table, and the ratio of forwarding through one DataNode to twemproxy; `cpu` is
# the CPU time per request of every process serving the target (a proxy and its 3
# redis-servers; all 3 DataNodes of the cluster), from /proc.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS=3
REQUESTS=200000
CLIENTS=50
KEYSPACE=1000000
SIZE=32
NODES=3
PIPELINES=(1 16)
TWEMPROXY=1

usage() {
    cat <<EOF
Usage: helper/bench-cluster.sh [options]

Starts, on free 127.0.0.1 ports: redis-server, a standalone chkv-datanode, and a
chkv-namenode with $NODES chkv-datanodes (release builds, built when missing). Then, per round
and per pipeline depth (-P 1 and -P 16), runs
  redis-benchmark -t <set, then get> -c $CLIENTS -n $REQUESTS -r $KEYSPACE -d $SIZE --csv -P <p>
against: redis (redis-server), standalone (the single DataNode), twemproxy (nutcracker,
ketama over 3 redis-servers: the one-entry-point design CHKV's forwarding competes with),
cluster-node (the first DataNode of the cluster, plain client, so about 2/3 of the
requests are forwarded) and cluster (the cluster with --cluster). FLUSHALL on every server
after every run. Prints the median rps, p50/p99 latency and CPU time per request (all the
target's processes: the proxy and its redis-servers, or the cluster's 3 DataNodes) of the
rounds, and cluster-node / twemproxy rps and CPU per test and pipeline.

Options:
  --runs N       rounds (default $RUNS)
  --requests N   requests per test, -n (default $REQUESTS)
  --clients N    connections, -c (default $CLIENTS)
  --no-twemproxy  leave twemproxy out (it needs Debian's nutcracker package)
  --out FILE     also write the table as markdown to FILE
  -h, --help     this text
EOF
}

OUT=""
while (($#)); do
    case $1 in
    --runs) posint "$1" "${2:-}"; RUNS=$2; shift 2 ;;
    --requests) posint "$1" "${2:-}"; REQUESTS=$2; shift 2 ;;
    --clients) posint "$1" "${2:-}"; CLIENTS=$2; shift 2 ;;
    --out) [[ -n "${2:-}" ]] || die "--out needs a file name"; OUT=$2; shift 2 ;;
    --no-twemproxy) TWEMPROXY=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
    esac
done

need_cmd redis-server redis-server
need_cmd redis-benchmark redis-tools
need_cmd redis-cli redis-tools
need_cmd timeout coreutils
need_cmd cargo "cargo (install Rust with rustup)"
((TWEMPROXY == 0)) || need_cmd nutcracker "nutcracker (or pass --no-twemproxy)"
chkv_init

cluster_bins

REDIS_PORT=$(free_port)
start_redis "$REDIS_PORT"
declare -A PIDS # target -> the pids serving it, for their CPU time
PIDS[redis]=$STARTED_PID
SOLO_PORT=$(free_port)
start_datanode "$SOLO_PORT"
PIDS[standalone]=$STARTED_PID

TWEM_BACKENDS=()
if ((TWEMPROXY)); then
    for ((i = 0; i < NODES; i++)); do
        port=$(free_port)
        start_redis "$port"
        TWEM_BACKENDS+=("$port")
        PIDS[twemproxy]+="$STARTED_PID "
    done
    TWEM_PORT=$(free_port)
    {
        echo "bench:"
        echo "  listen: 127.0.0.1:$TWEM_PORT"
        echo "  hash: fnv1a_64"
        echo "  distribution: ketama"
        echo "  redis: true"
        echo "  auto_eject_hosts: false"
        echo "  servers:"
        for port in "${TWEM_BACKENDS[@]}"; do echo "   - 127.0.0.1:$port:1"; done
    } >"$CHKV_TMP/nutcracker.yml"
    start_bg "nutcracker:$TWEM_PORT" "$CHKV_TMP/nutcracker.log" \
        nutcracker -c "$CHKV_TMP/nutcracker.yml" -s "$(free_port)" -a 127.0.0.1 \
        -o "$CHKV_TMP/nutcracker.out"
    wait_for_port "$TWEM_PORT" "$CHKV_WAIT_TIMEOUT" "$STARTED_PID" "$CHKV_TMP/nutcracker.out"
    PIDS[twemproxy]+="$STARTED_PID"
fi

NN_DN_PORT=$(free_port)
start_namenode "$NN_DN_PORT" "$(free_port)" "$(free_port)"
CLUSTER_PORTS=()
for ((i = 0; i < NODES; i++)); do
    port=$(free_port)
    start_datanode "$port" --namenode "127.0.0.1:$NN_DN_PORT" --admin-port "$(free_port)"
    CLUSTER_PORTS+=("$port")
    PIDS[cluster]+="$STARTED_PID "
done
PIDS[cluster-node]=${PIDS[cluster]}
wait_full_ring "$NODES" "${CLUSTER_PORTS[@]}"
NODE_PORT=${CLUSTER_PORTS[0]}
log "redis $REDIS_PORT, standalone $SOLO_PORT, cluster ${CLUSTER_PORTS[*]} (NameNode $NN_DN_PORT)"

RESULTS="$CHKV_TMP/results.csv" # target,pipeline,test,rps,p50,p99,cpu_us_per_req
TICKS_PER_SEC=$(getconf CLK_TCK)
: >"$RESULTS"

flush() {
    local port
    for port in "$@"; do
        [[ "$(rcli "$port" FLUSHALL)" == OK ]] || die "FLUSHALL on $port failed"
    done
}

# bench TARGET PIPELINE PORT [EXTRA...]: SET, then GET (one redis-benchmark each, so the CPU
# time of the target's processes is charged to each test).
bench() {
    local name=$1 pipeline=$2 port=$3 out row test t0 t1 summary=""
    shift 3
    local pids
    read -r -a pids <<<"${PIDS[$name]}"
    for test in set get; do
        local args=(-h 127.0.0.1 -p "$port" -t "$test" -c "$CLIENTS" -n "$REQUESTS" -r "$KEYSPACE"
            -d "$SIZE" -P "$pipeline" --csv "$@")
        t0=$(cpu_ticks "${pids[@]}")
        out=$(timeout 300 redis-benchmark "${args[@]}" 2>>"$CHKV_TMP/redis-benchmark.stderr") ||
            die "redis-benchmark against $name failed: redis-benchmark ${args[*]}"
        t1=$(cpu_ticks "${pids[@]}")
        # --cluster prints the masters it found before the CSV; keep the result row only.
        row=$(tr -d '\r' <<<"$out" | grep -E '^"(SET|GET)",' | tr -d '"' |
            awk -F, -v t="$name" -v p="$pipeline" -v ticks=$((t1 - t0)) -v hz="$TICKS_PER_SEC" \
                -v n="$REQUESTS" 'NF >= 8 { printf "%s,%s,%s,%s,%s,%s,%.2f\n", t, p, $1, $2, $5, $7, ticks * 1e6 / hz / n }')
        [[ "$(grep -c . <<<"$row")" == 1 ]] || die "unexpected output from $name: $out"
        printf '%s\n' "$row" >>"$RESULTS"
        summary+=$(awk -F, '{ printf "%s %.0f rps p50 %s p99 %s cpu %s us   ", $3, $4, $5, $6, $7 }' <<<"$row")
    done
    log "round $ROUND  -P $pipeline  $name: $summary"
}

# redis-benchmark --cluster reads CLUSTER NODES and sends each node only keys it owns (with
# a hash tag): check that it spread its writes over every node, without errors, before timing.
errors=$(timeout 60 redis-benchmark -h 127.0.0.1 -p "$NODE_PORT" --cluster -t set -n 3000 -r "$KEYSPACE" -q 2>&1 |
    grep -ci "error" || true)
((errors == 0)) || die "redis-benchmark --cluster reported errors"
for port in "${CLUSTER_PORTS[@]}"; do
    keys=$(rcli "$port" DBSIZE)
    ((keys > 0)) || die "redis-benchmark --cluster wrote no key to $port"
    log "--cluster check: $keys keys on $port"
done
flush "${CLUSTER_PORTS[@]}"

START=$SECONDS
for ((ROUND = 1; ROUND <= RUNS; ROUND++)); do
    for pipeline in "${PIPELINES[@]}"; do
        bench redis "$pipeline" "$REDIS_PORT"
        flush "$REDIS_PORT"
        bench standalone "$pipeline" "$SOLO_PORT"
        flush "$SOLO_PORT"
        if ((TWEMPROXY)); then
            bench twemproxy "$pipeline" "$TWEM_PORT"
            flush "${TWEM_BACKENDS[@]}"
        fi
        bench cluster-node "$pipeline" "$NODE_PORT"
        flush "${CLUSTER_PORTS[@]}"
        bench cluster "$pipeline" "$NODE_PORT" --cluster
        flush "${CLUSTER_PORTS[@]}"
    done
done
log "benchmarks done in $((SECONDS - START))s"

TABLE=$(awk -F, '
    function median(s,    n, a, i, j, v) {
        n = split(s, a, " ")
        for (i = 2; i <= n; i++) { v = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > v; j--) a[j + 1] = a[j]; a[j + 1] = v }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    { k = $1 SUBSEP $2 SUBSEP $3; rps[k] = rps[k] " " $4; p50[k] = p50[k] " " $5; p99[k] = p99[k] " " $6; cpu[k] = cpu[k] " " $7 }
    END {
        print "| pipeline | test | target | rps | p50 ms | p99 ms | cpu us/req |"
        print "|---:|---|---|---:|---:|---:|---:|"
        split("1 16", P, " "); split("SET GET", T, " "); split("redis standalone twemproxy cluster-node cluster", G, " ")
        for (i = 1; i <= 2; i++) for (t = 1; t <= 2; t++) for (g = 1; g <= 5; g++) {
            k = G[g] SUBSEP P[i] SUBSEP T[t]
            if (!(k in rps)) continue
            printf "| %s | %s | %s | %.0f | %.3f | %.3f | %.2f |\n", P[i], T[t], G[g], median(rps[k]), median(p50[k]), median(p99[k]), median(cpu[k])
        }
        for (i = 1; i <= 2; i++) for (t = 1; t <= 2; t++) {
            a = "cluster-node" SUBSEP P[i] SUBSEP T[t]; b = "twemproxy" SUBSEP P[i] SUBSEP T[t]
            if ((a in rps) && (b in rps))
                printf "| %s | %s | cluster-node / twemproxy | %.2fx | | | %.2fx |\n", P[i], T[t], median(rps[a]) / median(rps[b]), median(cpu[a]) / median(cpu[b])
        }
    }' "$RESULTS")
params="redis-benchmark -t set, then -t get, -c $CLIENTS -n $REQUESTS -r $KEYSPACE -d $SIZE, median of $RUNS alternating rounds; $(nproc) CPUs shared by the client and every server"
echo
echo "$params"
echo "$TABLE"
if [[ -n "$OUT" ]]; then
    printf '%s\n\n%s\n' "$params." "$TABLE" >"$OUT"
    log "table written to $OUT"
fi
