#!/usr/bin/env bash
# helper/mem-per-key.sh: memory per element of a CHKV DataNode, redis-server and Valkey for
# the same data (strings, small hashes, small sets, one big set), measured as RSS growth and
# used_memory growth over the element count.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N=1000000
SHAPES="string"
VALKEY=${VALKEY_BIN:-$(cd "$CHKV_ROOT/.." && pwd)/shared/anchors/valkey-8.0.1/valkey-server}

usage() {
    cat <<EOF
Usage: helper/mem-per-key.sh [--keys N] [--shapes LIST] [--help]

For each shape, and for redis-server, Valkey (\$VALKEY_BIN, default
../shared/anchors/valkey-8.0.1/valkey-server; skipped when missing) and a CHKV DataNode
(\$CHKV_BIN, default \$ROOT/target/release/chkv-datanode, built with cargo when missing;
run with --threads 1), one at a time: start it fresh on a free 127.0.0.1 port, read the
RSS of the empty process (VmRSS in /proc/PID/status) and INFO memory used_memory, load the
shape with redis-cli --pipe, check what was loaded, read RSS and used_memory again, stop
it. Prints bytes per element = (after - before) / elements for both measures, and the
ratios chkv/redis and chkv/valkey.

Shapes (N from --keys):
  string  N keys: SET key:%012d val:%028d (16-byte keys, 32-byte values); element = key
  hash    N keys h:%010d of 10 fields field0..field9 = value:%05d; element = field
  set     N/10 keys s:%09d of 10 members m:%06d; element = member
  bigset  one key of N members member:%012d (19 bytes); element = member

Options:
  --keys N       elements per shape (default $N; at most 10^9)
  --shapes LIST  comma-separated shapes, or "all" (default $SHAPES)
  --help         this text
EOF
}

while [[ $# -gt 0 ]]; do
    case $1 in
        --keys)
            if ! [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || ((${#2} > 10 || $2 > 1000000000)); then
                die "--keys needs an integer in 1..10^9"
            fi
            N=$2
            shift 2
            ;;
        --shapes)
            SHAPES=${2:?--shapes needs a list}
            shift 2
            ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
[[ "$SHAPES" == all ]] && SHAPES="string,hash,set,bigset"
IFS=, read -r -a SHAPE_LIST <<<"$SHAPES"
for s in "${SHAPE_LIST[@]}"; do
    [[ "$s" =~ ^(string|hash|set|bigset)$ ]] || die "unknown shape '$s' (see --help)"
done
((N >= 10)) || die "--keys must be at least 10"

need_cmd redis-server redis-server
need_cmd redis-cli redis-tools
need_cmd timeout coreutils
[[ -r /proc/self/status ]] || die "/proc/PID/status is needed to read RSS (Linux only)"
chkv_init
datanode_bin

SERVERS=(redis)
if [[ -x "$VALKEY" ]]; then
    SERVERS+=(valkey)
else
    warn "no Valkey at $VALKEY: comparing with redis-server only"
fi
SERVERS+=(chkv)

start_valkey() {
    local port=$1
    start_bg "valkey:$port" "$CHKV_TMP/valkey-$port.log" "$VALKEY" --save '' \
        --appendonly no --port "$port" --bind 127.0.0.1 --daemonize no --dir "$CHKV_TMP"
    wait_for_port "$port" "$CHKV_WAIT_TIMEOUT" "$STARTED_PID" "$CHKV_TMP/valkey-$port.log"
}

start_chkv() { start_datanode "$1" --threads 1; }

# gen SHAPE: the RESP commands that load SHAPE, on stdout.
gen() {
    case $1 in
        string) gen_resp SET "key:%012d" "$N" "val:%028d" ;;
        hash)
            LC_ALL=C awk -v n="$N" 'BEGIN {
                for (i = 0; i < n; i++) {
                    k = sprintf("h:%010d", i)
                    printf "*22\r\n$4\r\nHSET\r\n$%d\r\n%s\r\n", length(k), k
                    for (f = 0; f < 10; f++)
                        printf "$6\r\nfield%d\r\n$11\r\nvalue:%05d\r\n", f, (i * 10 + f) % 100000
                }
            }'
            ;;
        set)
            LC_ALL=C awk -v n="$((N / 10))" 'BEGIN {
                for (i = 0; i < n; i++) {
                    k = sprintf("s:%09d", i)
                    printf "*12\r\n$4\r\nSADD\r\n$%d\r\n%s\r\n", length(k), k
                    for (m = 0; m < 10; m++) printf "$8\r\nm:%06d\r\n", (i * 10 + m) % 1000000
                }
            }'
            ;;
        bigset)
            LC_ALL=C awk -v n="$N" 'BEGIN {
                for (i = 0; i < n; i += 100) {
                    c = (n - i < 100) ? n - i : 100
                    printf "*%d\r\n$4\r\nSADD\r\n$6\r\nbigset\r\n", c + 2
                    for (m = i; m < i + c; m++) printf "$19\r\nmember:%012d\r\n", m
                }
            }'
            ;;
    esac
}

# elements SHAPE: how many elements SHAPE loads.
elements() {
    case $1 in
        set) echo $((N / 10 * 10)) ;;
        hash) echo $((N * 10)) ;;
        *) echo "$N" ;;
    esac
}

# check SHAPE PORT: dies unless the server holds what gen loaded.
check() {
    local got want
    case $1 in
        string) got=$(rcli "$2" DBSIZE) want=$N ;;
        hash) got="$(rcli "$2" DBSIZE)/$(rcli "$2" HLEN h:0000000000)" want="$N/10" ;;
        set) got="$(rcli "$2" DBSIZE)/$(rcli "$2" SCARD s:000000000)" want="$((N / 10))/10" ;;
        bigset) got=$(rcli "$2" SCARD bigset) want=$N ;;
    esac
    [[ "$got" == "$want" ]] || die "$1 on port $2: holds '$got', expected '$want'"
}

declare -A RSS UM ENC

# measure SHAPE SERVER: fresh server, measure empty, load, verify, measure, stop.
measure() {
    local shape=$1 name=$2 port pid r0 u0 r1 u1 n t0
    port=$(free_port)
    "start_$name" "$port"
    pid=$STARTED_PID
    sleep 1 # let the process finish its start-up allocations
    r0=$(rss_bytes "$pid")
    u0=$(info_field "$port" memory used_memory)
    [[ "$u0" =~ ^[0-9]+$ ]] || die "$name: INFO memory has no used_memory field"
    t0=$SECONDS
    gen "$shape" | pipe_load "$port" | sed "s/^/    /" >&2
    check "$shape" "$port"
    sleep 2 # let background work (expiry cycles, allocator purges) settle
    r1=$(rss_bytes "$pid")
    u1=$(info_field "$port" memory used_memory)
    case $shape in
        string) ENC[$shape,$name]=$(rcli "$port" OBJECT ENCODING key:000000000000) ;;
        hash) ENC[$shape,$name]=$(rcli "$port" OBJECT ENCODING h:0000000000) ;;
        set) ENC[$shape,$name]=$(rcli "$port" OBJECT ENCODING s:000000000) ;;
        bigset) ENC[$shape,$name]=$(rcli "$port" OBJECT ENCODING bigset) ;;
    esac
    stop_pid "$pid"
    n=$(elements "$shape")
    RSS[$shape,$name]=$(awk -v a="$r0" -v b="$r1" -v n="$n" 'BEGIN { printf "%.1f", (b - a) / n }')
    UM[$shape,$name]=$(awk -v a="$u0" -v b="$u1" -v n="$n" 'BEGIN { printf "%.1f", (b - a) / n }')
    log "$shape/$name: loaded in $((SECONDS - t0))s; rss ${RSS[$shape,$name]} B/element, used_memory ${UM[$shape,$name]} B/element (${ENC[$shape,$name]})"
}

log "N=$N; shapes: ${SHAPE_LIST[*]}; servers: ${SERVERS[*]}; chkv binary: $CHKV_BIN"
for shape in "${SHAPE_LIST[@]}"; do
    for s in "${SERVERS[@]}"; do
        measure "$shape" "$s"
    done
done

echo
echo "memory per element (RSS growth / elements; used_memory growth / elements), N=$N"
{
    printf 'shape\tserver\tencoding\trss B/elem\tused_memory B/elem\tchkv/server (rss)\n'
    for shape in "${SHAPE_LIST[@]}"; do
        for s in "${SERVERS[@]}"; do
            ratio=$(awk -v c="${RSS[$shape,chkv]}" -v r="${RSS[$shape,$s]}" \
                'BEGIN { if (r > 0) printf "%.2fx", c / r; else print "n/a" }')
            printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$shape" "$s" "${ENC[$shape,$s]}" \
                "${RSS[$shape,$s]}" "${UM[$shape,$s]}" "$ratio"
        done
    done
} | awk -F'\t' '
    { for (i = 1; i <= NF; i++) { cell[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) } nf = NF }
    END { for (r = 1; r <= NR; r++) { line = ""
            for (i = 1; i <= nf; i++) line = line sprintf(i <= 3 ? "%-" w[i] "s  " : "%" w[i] "s  ", cell[r, i])
            print line } }'
