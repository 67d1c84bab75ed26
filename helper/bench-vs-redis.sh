#!/usr/bin/env bash
# helper/bench-vs-redis.sh: redis-benchmark against a CHKV DataNode, redis-server and Valkey,
# rotating between them, median of N rounds per cell, one comparison table.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS=5
REQ_P1=200000
REQ_P16=""
CLIENTS=50
KEYSPACE=1000000
OUT=""
TLS=0
CHKV_ARGS=""
PIPELINES=(1 16)
SIZES=(32 1024)
GROUPS_=(set,get,mset incr)
GROUPS_GIVEN=0
SIZES_GIVEN=0
CUSTOM=()  # --command lines, tested as groups "cmd:INDEX"
SCRIPTS=() # --script bodies, loaded on every server; __sha1__, __sha2__ ... in commands
VALKEY_BIN=$VALKEY_DEFAULT

usage() {
    cat <<EOF
Usage: helper/bench-vs-redis.sh [options]

Starts a CHKV DataNode (\$CHKV_BIN, default \$ROOT/target/release/chkv-datanode, built
with cargo when missing), redis-server and Valkey (--valkey, default the anchor build in
../shared/anchors) on free 127.0.0.1 ports and runs identical redis-benchmark runs against
each, rotating the order for every cell so no server always runs in another's wake, and
prints the median of the rounds:

  default groups: SET, GET, MSET (10 keys) with -d 32 and -d 1024, then INCR (size "-": -d
  does not apply); pipeline 1 and 16; -c $CLIENTS; -r $KEYSPACE (random keys). The tests of
  a group run in order, then FLUSHALL, so each group starts from an empty server: GET reads
  the keys SET just wrote (hits and misses mixed), LPOP pops what LPUSH pushed.

With --tls: CHKV's TLS port and redis-server's TLS port (redis-server built with TLS, as
Debian's is), both with certificates made for the run (openssl, in the run's temp dir) and
client certificates required, and CHKV's plaintext port of the same process (chkv-plain) for
the cost of TLS; Valkey is left out (the anchor build has no TLS). The default groups are
then SET and GET with -d 32 (--groups and --sizes still choose). "x chkv-plain" is chkv's
TLS rps / its plaintext rps.

Columns: requests/s per server (medians); x redis and x valkey = chkv rps / that server's
rps (>1: chkv faster); paired = the median over rounds of the same ratio within a round
(the servers of a round run seconds apart, so a slow spell of the machine weighs on both
sides); best = the same for each server's fastest round (interference from
other processes only ever slows a run down, so on a shared machine the fastest round is the
least disturbed); p99 latency in ms; server CPU time (user + system, from /proc) per
request (steadier than requests/s on a noisy machine).

Options:
  --runs N            rounds per cell, median taken (default $RUNS)
  --requests N        requests (-n) per test at pipeline 1 (default $REQ_P1)
  --requests-p16 N    requests per test at pipeline 16 (default 1000000, or 5x --requests
                      when only --requests is given)
  --clients N         parallel connections, -c (default $CLIENTS)
  --keyspace N        random key space, -r (default $KEYSPACE)
  --pipelines "P ..."  pipeline depths to run (default "${PIPELINES[*]}")
  --sizes "D ..."      value sizes to run (default "${SIZES[*]}")
  --groups "G ..."     test groups, each a comma-separated redis-benchmark -t list run in
                      order before a FLUSHALL (default "${GROUPS_[*]}"; e.g.
                      "lpush,lpop rpush,rpop lpush,lrange_100 zadd,zpopmin"); a group that is
                      only "incr" runs once with size "-"
  --command "LINE"    also run this command line (repeatable), redis-benchmark style:
                      every __rand_int__ becomes a random number below --keyspace, e.g.
                      "EVALSHA __sha1__ 1 counter:__rand_int__ 60". Several commands
                      separated by ";" form one unit sent in one write and counted as one
                      request ("MULTI;SET key:__rand_int__ xxx;INCR n:__rand_int__;EXEC"):
                      redis-benchmark cannot send those, so datanode/examples/loadgen.rs
                      (built on demand) runs them, with the same -c -n -P -r, checking every
                      reply; -P N then sends N units per round trip (CHKV_LOADGEN=BIN: use
                      that build instead). Size is "-". Without --groups, only the
                      --command lines run
  --script "LUA"      SCRIPT LOAD this script on every server first (repeatable); its SHA1
                      replaces __sha1__ (the second's __sha2__, ...) in --command lines
  --valkey BIN        valkey-server to compare with (default $VALKEY_BIN)
  --no-valkey         compare with redis-server only
  --chkv-args "ARGS"  extra chkv-datanode flags, e.g. "--threads 2"
  --tls               over TLS: chkv and redis on their TLS ports, plus chkv-plain (above)
  --out FILE          also write the table (with run parameters) as markdown to FILE
  --help              this text

Needs redis-server and redis-benchmark >= 7.0 (for --csv with latency percentiles).
Note: the benchmark client shares the machine's cores with the server under test.
EOF
}


while [[ $# -gt 0 ]]; do
    case $1 in
        --runs) posint "$1" "${2:-}"; RUNS=$2; shift 2 ;;
        --requests) posint "$1" "${2:-}"; REQ_P1=$2; shift 2 ;;
        --requests-p16) posint "$1" "${2:-}"; REQ_P16=$2; shift 2 ;;
        --clients) posint "$1" "${2:-}"; CLIENTS=$2; shift 2 ;;
        --keyspace) posint "$1" "${2:-}"; KEYSPACE=$2; shift 2 ;;
        --pipelines | --sizes)
            read -r -a list <<<"${2:-}"
            ((${#list[@]} > 0)) || die "$1 needs a list of positive integers"
            for x in "${list[@]}"; do posint "$1" "$x"; done
            if [[ $1 == --sizes ]]; then SIZES=("${list[@]}"); SIZES_GIVEN=1; else PIPELINES=("${list[@]}"); fi
            shift 2 ;;
        --groups)
            read -r -a GROUPS_ <<<"${2:-}"
            ((${#GROUPS_[@]} > 0)) || die "--groups needs a list of test groups"
            GROUPS_GIVEN=1
            shift 2 ;;
        --command) [[ -n "${2:-}" ]] || die "--command needs a command line"; CUSTOM+=("$2"); shift 2 ;;
        --script) [[ -n "${2:-}" ]] || die "--script needs a Lua script"; SCRIPTS+=("$2"); shift 2 ;;
        --valkey) [[ -x "${2:-}" ]] || die "--valkey: '${2:-}' is not an executable"; VALKEY_BIN=$2; shift 2 ;;
        --no-valkey) VALKEY_BIN=""; shift ;;
        --chkv-args) CHKV_ARGS=${2:-}; shift 2 ;;
        --tls) TLS=1; shift ;;
        --out) [[ -n "${2:-}" ]] || die "--out needs a file name"; OUT=$2; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
if ((TLS)); then
    ((GROUPS_GIVEN)) || GROUPS_=(set,get)
    ((SIZES_GIVEN)) || SIZES=(32)
fi
if ((${#CUSTOM[@]} > 0)); then
    ((GROUPS_GIVEN)) || GROUPS_=()
    for i in "${!CUSTOM[@]}"; do GROUPS_+=("cmd:$i"); done
fi
if [[ -z "$REQ_P16" ]]; then
    if ((REQ_P1 == 200000)); then REQ_P16=1000000; else REQ_P16=$((REQ_P1 * 5)); fi
fi

need_cmd redis-server redis-server
need_cmd redis-benchmark redis-tools
need_cmd redis-cli redis-tools
need_cmd timeout coreutils
if [[ -n "$OUT" ]]; then
    : >"$OUT" || die "cannot write --out file '$OUT'"
fi
chkv_init
datanode_bin
LOADGEN=${CHKV_LOADGEN:-}
if [[ "${CUSTOM[*]}" == *";"* && -z "$LOADGEN" ]]; then
    need_cmd cargo "cargo (install Rust with rustup)"
    log "building: cargo build --release -p chkv-datanode --example loadgen"
    (cd "$CHKV_ROOT" && cargo build --release -q -p chkv-datanode --example loadgen) ||
        die "building the load generator failed"
    LOADGEN="$(cargo_target)/release/examples/loadgen"
fi
if ((TLS)) && [[ "${CUSTOM[*]}" == *";"* ]]; then
    die "--tls: the load generator for ';' units speaks plaintext only"
fi

# custom_title LINE: the test name of a --command line, its command names joined by "/".
custom_title() {
    local cmd words title=""
    IFS=';' read -r -a cmds <<<"$1"
    for cmd in "${cmds[@]}"; do
        read -r -a words <<<"$cmd"
        ((${#words[@]})) && title+="${title:+/}${words[0]^^}"
    done
    printf '%s\n' "$title"
}

if [[ -n "$VALKEY_BIN" && ! -x "$VALKEY_BIN" ]]; then
    # In a git worktree, ../shared is beside the main checkout.
    common=$(git -C "$CHKV_ROOT" rev-parse --path-format=absolute --git-common-dir 2>/dev/null || true)
    [[ -n "$common" && -x "$common/../../shared/anchors/valkey-8.0.1/valkey-server" ]] &&
        VALKEY_BIN=$(cd "$common/../../shared/anchors/valkey-8.0.1" && pwd)/valkey-server
fi
if ((TLS)) && [[ -n "$VALKEY_BIN" ]]; then
    log "--tls: comparing with redis-server's TLS port only (the Valkey anchor has no TLS)"
    VALKEY_BIN=""
fi
if [[ -n "$VALKEY_BIN" && ! -x "$VALKEY_BIN" ]]; then
    log "no Valkey at $VALKEY_BIN: comparing with redis-server only (see --valkey)"
    VALKEY_BIN=""
fi
declare -A PORT PID TLSARGS
SERVERS=(chkv redis)
if ((TLS)); then
    # A CA, a server certificate for 127.0.0.1 and a client certificate, made for this run.
    CERTS="$CHKV_TMP/tls"
    make_test_certs "$CERTS" "chkv bench CA"
    CLIENT_TLS=(--tls --cacert "$CERTS/ca.crt" --cert "$CERTS/client.crt" --key "$CERTS/client.key")
    SERVER_TLS=(--tls-cert-file "$CERTS/server.crt" --tls-key-file "$CERTS/server.key" --tls-ca-cert-file "$CERTS/ca.crt")
    TLSARGS[chkv]="${CLIENT_TLS[*]}"
    TLSARGS[redis]="${CLIENT_TLS[*]}"
    # redis-server answers only on its TLS port; its plaintext port is there to be waited for.
    PORT[redis]=$(free_port)
    redis_plain=$(free_port)
    start_redis "$redis_plain" --tls-port "${PORT[redis]}" "${SERVER_TLS[@]}"
else
    PORT[redis]=$(free_port)
    start_redis "${PORT[redis]}"
fi
PID[redis]=$STARTED_PID
if [[ -n "$VALKEY_BIN" ]]; then
    SERVERS+=(valkey)
    PORT[valkey]=$(free_port)
    start_valkey "${PORT[valkey]}" "$VALKEY_BIN"
    PID[valkey]=$STARTED_PID
fi
PORT[chkv]=$(free_port)
read -r -a chkv_args <<<"$CHKV_ARGS"
if ((TLS)); then
    # One process: its TLS port is "chkv", its plaintext port "chkv-plain".
    PORT[chkv-plain]=${PORT[chkv]}
    PORT[chkv]=$(free_port)
    chkv_args+=(--tls-port "${PORT[chkv]}" "${SERVER_TLS[@]}")
    start_datanode "${PORT[chkv-plain]}" "${chkv_args[@]}"
    PID[chkv-plain]=$STARTED_PID
    SERVERS+=(chkv-plain)
else
    start_datanode "${PORT[chkv]}" "${chkv_args[@]}"
fi
PID[chkv]=$STARTED_PID
# tls_args SERVER: the client TLS flags for SERVER (none for plaintext servers), one a line.
tls_args() {
    local words=()
    [[ -n "${TLSARGS[$1]:-}" ]] || return 0
    read -r -a words <<<"${TLSARGS[$1]}"
    printf '%s\n' "${words[@]}"
}
for server in "${SERVERS[@]}"; do
    mapfile -t targs < <(tls_args "$server")
    [[ "$(rcli "${PORT[$server]}" "${targs[@]}" PING 2>&1)" == PONG ]] ||
        die "$server on 127.0.0.1:${PORT[$server]} does not answer PING"
done
for i in "${!SCRIPTS[@]}"; do
    sha=""
    for server in "${SERVERS[@]}"; do
        mapfile -t targs < <(tls_args "$server")
        got=$(rcli "${PORT[$server]}" "${targs[@]}" SCRIPT LOAD "${SCRIPTS[i]}" 2>&1)
        [[ "$got" =~ ^[0-9a-f]{40}$ ]] || die "SCRIPT LOAD on $server answered: $got"
        [[ -z "$sha" || "$got" == "$sha" ]] || die "SCRIPT LOAD on $server gave $got, another server $sha"
        sha=$got
    done
    log "script $((i + 1)) loaded everywhere: $sha"
    for j in "${!CUSTOM[@]}"; do CUSTOM[j]=${CUSTOM[j]//__sha$((i + 1))__/$sha}; done
done

RESULTS="$CHKV_TMP/results.csv" # server,pipeline,size,test,rps,p50_ms,p99_ms,cpu_us_per_req (one line per run)
: >"$RESULTS"
CSV_HEADER='"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"'

TICKS_PER_SEC=$(getconf CLK_TCK)

# bench SERVER PORT PIPELINE SIZE TESTS N: one redis-benchmark invocation per test (so the
# server's CPU time can be charged to each), in order, then FLUSHALL so the next group
# starts empty. Appends one results line per test.
bench() {
    local server=$1 port=$2 pipeline=$3 size=$4 tests=$5 n=$6 test pid
    pid=${PID[$server]}
    log "round $ROUND/$RUNS  $server  -P $pipeline  -d $size  -t $tests  -n $n"
    local summary=""
    for test in ${tests//,/ }; do
        local out rc=0 limit=$((60 + n / 2000)) # worst case 2000 req/s before we give up
        local targs
        mapfile -t targs < <(tls_args "$server")
        local args=(-h 127.0.0.1 -p "$port" "${targs[@]}" -c "$CLIENTS" -n "$n" -r "$KEYSPACE" -P "$pipeline" --csv)
        local tool=(redis-benchmark) title=""
        if [[ $test == cmd:* ]]; then
            local line=${CUSTOM[${test#cmd:}]} words
            title=$(custom_title "$line")
            if [[ $line == *";"* ]]; then
                tool=("$LOADGEN")
                args=(-h 127.0.0.1 -p "$port" -c "$CLIENTS" -n "$n" -r "$KEYSPACE" -P "$pipeline" --unit "$line")
            else
                read -r -a words <<<"$line"
                args+=("${words[@]}")
            fi
        else
            args+=(-t "$test")
        fi
        [[ "$size" != "-" ]] && args+=(-d "$size")
        local t0 t1
        t0=$(cpu_ticks "$pid")
        out=$(timeout "$limit" "${tool[@]}" "${args[@]}" 2>>"$CHKV_TMP/redis-benchmark.stderr") || rc=$?
        t1=$(cpu_ticks "$pid")
        if ((rc == 124)); then
            die "${tool[0]##*/} against $server timed out after ${limit}s (${tool[0]##*/} ${args[*]})"
        elif ((rc != 0)); then
            tail -n 5 "$CHKV_TMP/redis-benchmark.stderr" >&2
            die "${tool[0]##*/} against $server failed (exit $rc): ${tool[0]##*/} ${args[*]}"
        fi
        out=${out//$'\r'/}
        [[ "$(head -n 1 <<<"$out")" == "$CSV_HEADER" ]] ||
            die "unexpected redis-benchmark --csv output (need redis-benchmark >= 7.0): $(head -n 2 <<<"$out")"
        local row
        row=$(tail -n +2 <<<"$out" | awk -F'","' -v s="$server" -v p="$pipeline" -v d="$size" \
            -v ticks=$((t1 - t0)) -v hz="$TICKS_PER_SEC" -v n="$n" -v title="$title" '
            # LRANGE_* tests first fill the list: a row "LPUSH (needed to benchmark LRANGE)"
            # that is not the test (its CPU time still counts in the cell'"'"'s us/req).
            NF >= 8 && !/needed to benchmark/ {
                gsub(/"/, "")
                n_f = split($0, f, ",")
                t = f[1]; sub(/ .*/, "", t)           # "MSET (10 keys)" -> MSET
                t = toupper(t)
                if (title != "") {                    # a --command line: its own name
                    t = title
                    for (i = 2; i <= 8; i++) f[i] = f[n_f - 8 + i]
                }
                print s "," p "," d "," t "," f[2] "," f[5] "," f[7] "," ticks * 1e6 / hz / n
            }')
        [[ "$(grep -c . <<<"$row")" == 1 ]] ||
            die "expected one result row from redis-benchmark against $server, got: $out"
        printf '%s\n' "$row" >>"$RESULTS"
        summary+=$(awk -F, '{ printf "%s %.0f rps p99 %s ms cpu %.2f us/req   ", $4, $5, $7, $8 }' <<<"$row")
    done
    log "    $summary"
    local flushed fargs
    mapfile -t fargs < <(tls_args "$server")
    flushed=$(rcli "$port" "${fargs[@]}" FLUSHALL 2>&1) || true
    [[ "$flushed" == OK ]] || die "FLUSHALL on $server returned '$flushed'"
}

# pair PIPELINE SIZE TESTS N: the same run against every server, the order rotated by one
# each round, so no server always runs in another's wake.
pair() {
    local i n=${#SERVERS[@]} server
    for ((i = 0; i < n; i++)); do
        server=${SERVERS[$(((i + ROUND) % n))]}
        bench "$server" "${PORT[$server]}" "$@"
    done
}

for server in "${SERVERS[@]}"; do log "$server on 127.0.0.1:${PORT[$server]}"; done
log "runs=$RUNS clients=$CLIENTS keyspace=$KEYSPACE requests: P1=$REQ_P1 P16=$REQ_P16"
START=$SECONDS
for ((ROUND = 1; ROUND <= RUNS; ROUND++)); do
    for pipeline in "${PIPELINES[@]}"; do
        n=$REQ_P1
        ((pipeline == 1)) || n=$REQ_P16
        for group in "${GROUPS_[@]}"; do
            if [[ "$group" == incr || "$group" == cmd:* ]]; then
                pair "$pipeline" - "$group" "$n"
                continue
            fi
            for size in "${SIZES[@]}"; do
                pair "$pipeline" "$size" "$group" "$n"
            done
        done
    done
done
log "benchmarks done in $((SECONDS - START))s"

# Median per (server, pipeline, size, test) and metric, then one row per cell in the order
# the tests ran.
TESTS_IN_ORDER=$(for g in "${GROUPS_[@]}"; do
    if [[ $g == cmd:* ]]; then custom_title "${CUSTOM[${g#cmd:}]}"; else tr ',' '\n' <<<"$g" | tr '[:lower:]' '[:upper:]'; fi
done | awk '!seen[$0]++' | tr '\n' ' ')
TABLE="$CHKV_TMP/table.tsv"
awk -F, -v pipelines="${PIPELINES[*]}" -v sizes="${SIZES[*]}" -v tests="$TESTS_IN_ORDER" -v servers="${SERVERS[*]}" '
    function median(key,    n, i, j, v, a) {
        n = split(vals[key], a, " ")
        for (i = 2; i <= n; i++) {              # insertion sort, n is small
            v = a[i] + 0
            for (j = i - 1; j >= 1 && a[j] + 0 > v; j--) a[j + 1] = a[j]
            a[j + 1] = v
        }
        if (n == 0) return ""
        if (n % 2) return a[(n + 1) / 2] + 0
        return (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function best(key,    n, i, a, m) {
        n = split(vals[key], a, " ")
        m = ""
        for (i = 1; i <= n; i++) if (m == "" || a[i] + 0 > m) m = a[i] + 0
        return m
    }
    function ratio(x, y) { return (y + 0 > 0 && x != "") ? sprintf("%.2f", x / y) : "n/a" }
    # The median over rounds of chkv / that server in the same round: the servers of one
    # round run seconds apart, so a slow spell of the machine that spans a round slows
    # both sides of its ratio (a paired comparison), where the ratio of the medians pairs
    # rounds the noise treated differently.
    function paired(x, y,    n, m, i, a, b, r, out) {
        n = split(vals[x], a, " "); m = split(vals[y], b, " ")
        if (n == 0 || n != m) return "n/a"
        out = ""
        for (i = 1; i <= n; i++) {
            if (b[i] + 0 <= 0) return "n/a"
            out = out " " (a[i] / b[i])
        }
        vals["paired"] = out
        return sprintf("%.2f", median("paired"))
    }
    function num(x, fmt) { return x == "" ? "n/a" : sprintf(fmt, x) }
    {
        for (m = 5; m <= 8; m++) {
            key = $1 SUBSEP $2 SUBSEP $3 SUBSEP $4 SUBSEP m
            vals[key] = vals[key] " " $m
        }
        seen[$2 SUBSEP $3 SUBSEP $4] = 1
    }
    END {
        nsv = split(servers, SV, " ")
        head = "test\tpipeline\tsize"
        for (s = 1; s <= nsv; s++) head = head "\t" SV[s] " rps"
        for (s = 2; s <= nsv; s++) head = head "\tx " SV[s] "\tpaired x " SV[s] "\tbest x " SV[s]
        for (s = 1; s <= nsv; s++) head = head "\t" SV[s] " p99 ms"
        for (s = 1; s <= nsv; s++) head = head "\t" SV[s] " cpu us/req"
        print head
        np = split(pipelines, P, " "); ns = split(sizes, S, " "); nt = split(tests, T, " ")
        for (i = 1; i <= np; i++) for (k = 1; k <= nt; k++) {
            # Tests without a size (INCR, --command lines) ran with size "-".
            nd = ns + 1; for (x = 1; x <= ns; x++) D[x] = S[x]; D[nd] = "-"
            for (j = 1; j <= nd; j++) {
                if (!((P[i] SUBSEP D[j] SUBSEP T[k]) in seen)) continue
                base = SUBSEP P[i] SUBSEP D[j] SUBSEP T[k] SUBSEP
                row = T[k] "\t" P[i] "\t" D[j]
                for (s = 1; s <= nsv; s++) row = row "\t" num(median(SV[s] base 5), "%.0f")
                for (s = 2; s <= nsv; s++)
                    row = row "\t" ratio(median(SV[1] base 5), median(SV[s] base 5)) "\t" paired(SV[1] base 5, SV[s] base 5) "\t" ratio(best(SV[1] base 5), best(SV[s] base 5))
                for (s = 1; s <= nsv; s++) row = row "\t" num(median(SV[s] base 7), "%.3f")
                for (s = 1; s <= nsv; s++) row = row "\t" num(median(SV[s] base 8), "%.2f")
                print row
            }
        }
    }' "$RESULTS" >"$TABLE"

params="redis-benchmark$( ((TLS)) && echo ' --tls (chkv and redis: TLS ports, client certificates; chkv-plain: the same chkv process, plaintext port)') -c $CLIENTS -r $KEYSPACE, -n $REQ_P1 (P1) / $REQ_P16 (P16), median of $RUNS alternating rounds; $(nproc 2>/dev/null || echo '?') CPUs shared by client and servers"
legend="x redis / x valkey = chkv rps / that server's rps (>1: chkv faster), of the medians; paired = the median of the rounds' own ratios; best = the same for each server's best round (noise only slows a run down, so the best round is the least disturbed); cpu = server CPU time (user + system) per request"
((TLS)) && legend+="; x chkv-plain = chkv's TLS rps / its plaintext rps (<1: what TLS costs)"
versions="chkv: $CHKV_BIN${CHKV_ARGS:+ $CHKV_ARGS}$(git -C "$CHKV_ROOT" rev-parse --short HEAD 2>/dev/null | sed 's/^/ @ /' || true); redis: $(redis-server --version | awk '{print $3}')${VALKEY_BIN:+; valkey: $("$VALKEY_BIN" --version | awk '{print $3}')}"

echo
echo "$params"
echo "$versions"
echo "$legend"
awk -F'\t' '
    { for (i = 1; i <= NF; i++) { cell[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) } nf = NF }
    END {
        for (r = 1; r <= NR; r++) {
            line = ""
            for (i = 1; i <= nf; i++) line = line sprintf(i <= 1 ? "%-" w[i] "s" : "  %" w[i] "s", cell[r, i])
            print line
            if (r == 1) { line = ""; for (i = 1; i <= nf; i++) { d = sprintf("%" w[i] "s", ""); gsub(/ /, "-", d); line = line (i > 1 ? "  " : "") d } print line }
        }
    }' "$TABLE"

if [[ -n "$OUT" ]]; then
    {
        echo "# chkv-datanode vs ${SERVERS[*]:1} ($(date -u +%Y-%m-%dT%H:%MZ))"
        echo
        echo "$params."
        echo "$versions."
        echo "$legend."
        echo
        awk -F'\t' '{ line = "|"; for (i = 1; i <= NF; i++) line = line " " $i " |"; print line
                      if (NR == 1) { line = "|"; for (i = 1; i <= NF; i++) line = line (i <= 1 ? "---|" : "---:|"); print line } }' "$TABLE"
    } >"$OUT"
    log "markdown table written to $OUT"
fi
