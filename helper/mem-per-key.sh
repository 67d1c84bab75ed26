#!/usr/bin/env bash
# helper/mem-per-key.sh: memory per element of redis-server, Valkey and a CHKV DataNode for
# the same load (strings, one big list, one big sorted set, many small sorted sets, small
# hashes, small sets or one big set), measured as RSS growth and used_memory growth.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ELEMENTS=1000000
SHAPE=strings
MEMBERS=10
VALKEY_BIN=$VALKEY_DEFAULT

usage() {
    cat <<EOF
Usage: helper/mem-per-key.sh [--shape strings|list|zset|zsets|hash|hashes|sets|set] [--elements N] [--members M]
                             [--valkey BIN | --no-valkey] [--help]

For redis-server, Valkey (the anchor build in ../shared/anchors, when present) and a CHKV
DataNode (\$CHKV_BIN, default \$ROOT/target/release/chkv-datanode, built with cargo when
missing), one at a time: start it fresh on a free 127.0.0.1 port, read the RSS of the empty
process (VmRSS in /proc/PID/status) and INFO memory used_memory, load the shape with
redis-cli --pipe, check it arrived whole, read RSS and used_memory again, stop it. Prints
bytes per element = (after - before) / N for both measures, and the ratios of chkv to each.

Shapes (N = --elements, default $ELEMENTS):
  strings  N keys: SET key:%012d val:%028d (16-byte keys, 32-byte values); checks DBSIZE
  list     one list of N elements: RPUSH list e:%012d (14-byte elements), 100 a command
           (the server's default list-max-listpack-size and list-compress-depth); checks LLEN
  zset     one sorted set of N members: ZADD zset SCORE m:%012d, 100 members a command,
           integer scores in a scattered order (each member inserted mid-set); checks ZCARD
  zsets    N/M sorted sets of M members (--members, default $MEMBERS): ZADD z:%012d with
           the same members and scores; checks DBSIZE and the ZCARD of the last key
  hash     one hash of N fields field:%012d (18 bytes) = value:%010d (16 bytes), 100 a
           command; checks HLEN
  hashes   N/10 hashes h:%010d of 10 fields field0..field9 = value:%05d; element = field;
           checks DBSIZE and HLEN
  sets     N/M sets s:%09d of M members (--members) m:%06d; checks DBSIZE and SCARD
  set      one set of N members member:%012d (19 bytes), 100 a command; checks SCARD

Options:
  --shape S      strings (default), list, zset, zsets, hash, hashes, sets or set
  --elements N   number of elements (keys, or members in all), at most 10^12
  --keys N       the same as --elements (strings' old name)
  --members M    members per key for --shape zsets and sets (default $MEMBERS)
  --valkey BIN   valkey-server to compare with (default $VALKEY_BIN)
  --no-valkey    redis-server and chkv only
  --help         this text
EOF
}

while [[ $# -gt 0 ]]; do
    case $1 in
        --keys | --elements)
            if ! [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || ((${#2} > 13 || $2 > 1000000000000)); then
                die "$1 needs an integer in 1..10^12"
            fi
            ELEMENTS=$2
            shift 2
            ;;
        --shape)
            case ${2:-} in
                strings | list | zset | zsets | hash | hashes | sets | set) SHAPE=$2 ;;
                *) die "--shape must be strings, list, zset, zsets, hash, hashes, sets or set" ;;
            esac
            shift 2
            ;;
        --members) posint "$1" "${2:-}"; MEMBERS=$2; shift 2 ;;
        --valkey) [[ -x "${2:-}" ]] || die "--valkey: '${2:-}' is not an executable"; VALKEY_BIN=$2; shift 2 ;;
        --no-valkey) VALKEY_BIN=""; shift ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
[[ $SHAPE == hashes ]] && MEMBERS=10
if [[ $SHAPE =~ ^(zsets|sets|hashes)$ ]] && ((ELEMENTS % MEMBERS != 0)); then
    die "--elements ($ELEMENTS) must be a multiple of --members ($MEMBERS)"
fi

need_cmd redis-server redis-server
need_cmd redis-cli redis-tools
need_cmd timeout coreutils
[[ -r /proc/self/status ]] || die "/proc/PID/status is needed to read RSS (Linux only)"
chkv_init
datanode_bin
if [[ -n "$VALKEY_BIN" && ! -x "$VALKEY_BIN" ]]; then
    log "no Valkey at $VALKEY_BIN: comparing with redis-server only (see --valkey)"
    VALKEY_BIN=""
fi

# gen_zadd KEYFMT KEYS MEMBERS BATCH: RESP ZADD commands for KEYS keys (printf(KEYFMT, k))
# of MEMBERS members each, at most BATCH pairs a command. Member j of key k is m:%012d of
# i = k*MEMBERS + j, its score (i * 7919) % (KEYS*MEMBERS): integers, inserted out of order.
gen_zadd() {
    LC_ALL=C awk -v kf="$1" -v keys="$2" -v per="$3" -v batch="$4" 'BEGIN {
        total = keys * per
        for (k = 0; k < keys; k++) {
            key = sprintf(kf, k)
            for (j = 0; j < per; j += batch) {
                n = (per - j < batch) ? per - j : batch
                printf "*%d\r\n$4\r\nZADD\r\n$%d\r\n%s\r\n", 2 + 2 * n, length(key), key
                for (x = 0; x < n; x++) {
                    i = k * per + j + x
                    s = sprintf("%d", (i * 7919) % total)
                    m = sprintf("m:%012d", i)
                    printf "$%d\r\n%s\r\n$%d\r\n%s\r\n", length(s), s, length(m), m
                }
            }
        }
    }'
}

# gen_rpush KEY N BATCH: RESP RPUSH commands putting e:%012d of 0..N-1 at the tail of KEY,
# at most BATCH elements a command.
gen_rpush() {
    LC_ALL=C awk -v key="$1" -v total="$2" -v batch="$3" 'BEGIN {
        for (i = 0; i < total; i += batch) {
            n = (total - i < batch) ? total - i : batch
            printf "*%d\r\n$5\r\nRPUSH\r\n$%d\r\n%s\r\n", 2 + n, length(key), key
            for (x = 0; x < n; x++) {
                e = sprintf("e:%012d", i + x)
                printf "$%d\r\n%s\r\n", length(e), e
            }
        }
    }'
}

# load NAME PORT: load the shape into 127.0.0.1:PORT and check it arrived whole.
load() {
    local name=$1 port=$2 got want keyspace
    case $SHAPE in
        strings)
            log "$name: loading $ELEMENTS keys (16-byte keys, 32-byte values) with redis-cli --pipe"
            gen_resp SET "key:%012d" "$ELEMENTS" "val:%028d" | pipe_load "$port" | sed "s/^/    /" >&2
            got=$(rcli "$port" DBSIZE 2>&1) || true
            [[ "$got" == "$ELEMENTS" ]] || die "$name: DBSIZE is '$got' after loading $ELEMENTS keys"
            keyspace=$(info_field "$port" keyspace db0)
            [[ "$keyspace" == "keys=$ELEMENTS,"* ]] || warn "$name: INFO keyspace db0 is '$keyspace', expected keys=$ELEMENTS,..."
            ;;
        list)
            log "$name: loading one list of $ELEMENTS elements with redis-cli --pipe"
            gen_rpush "list" "$ELEMENTS" 100 | pipe_load "$port" | sed "s/^/    /" >&2
            got=$(rcli "$port" LLEN list 2>&1) || true
            [[ "$got" == "$ELEMENTS" ]] || die "$name: LLEN is '$got' after loading $ELEMENTS elements"
            ;;
        zset)
            log "$name: loading one sorted set of $ELEMENTS members with redis-cli --pipe"
            gen_zadd "zset" 1 "$ELEMENTS" 100 | pipe_load "$port" | sed "s/^/    /" >&2
            got=$(rcli "$port" ZCARD zset 2>&1) || true
            [[ "$got" == "$ELEMENTS" ]] || die "$name: ZCARD is '$got' after loading $ELEMENTS members"
            ;;
        zsets)
            want=$((ELEMENTS / MEMBERS))
            log "$name: loading $want sorted sets of $MEMBERS members with redis-cli --pipe"
            gen_zadd "z:%012d" "$want" "$MEMBERS" 100 | pipe_load "$port" | sed "s/^/    /" >&2
            got=$(rcli "$port" DBSIZE 2>&1) || true
            [[ "$got" == "$want" ]] || die "$name: DBSIZE is '$got' after loading $want sorted sets"
            got=$(rcli "$port" ZCARD "$(printf 'z:%012d' $((want - 1)))" 2>&1) || true
            [[ "$got" == "$MEMBERS" ]] || die "$name: the last sorted set has '$got' members, not $MEMBERS"
            ;;
        hash)
            log "$name: loading one hash of $ELEMENTS fields with redis-cli --pipe"
            LC_ALL=C awk -v n="$ELEMENTS" 'BEGIN {
                for (i = 0; i < n; i += 100) {
                    c = (n - i < 100) ? n - i : 100
                    printf "*%d\r\n$4\r\nHSET\r\n$4\r\nhash\r\n", 2 * c + 2
                    for (f = i; f < i + c; f++) printf "$18\r\nfield:%012d\r\n$16\r\nvalue:%010d\r\n", f, f
                }
            }' | pipe_load "$port" | sed "s/^/    /" >&2
            got=$(rcli "$port" HLEN hash 2>&1) || true
            [[ "$got" == "$ELEMENTS" ]] || die "$name: HLEN is '$got' after loading $ELEMENTS fields"
            ;;
        hashes)
            want=$((ELEMENTS / 10))
            log "$name: loading $want hashes of 10 fields with redis-cli --pipe"
            LC_ALL=C awk -v n="$want" 'BEGIN {
                for (i = 0; i < n; i++) {
                    k = sprintf("h:%010d", i)
                    printf "*22\r\n$4\r\nHSET\r\n$%d\r\n%s\r\n", length(k), k
                    for (f = 0; f < 10; f++)
                        printf "$6\r\nfield%d\r\n$11\r\nvalue:%05d\r\n", f, (i * 10 + f) % 100000
                }
            }' | pipe_load "$port" | sed "s/^/    /" >&2
            got="$(rcli "$port" DBSIZE 2>&1)/$(rcli "$port" HLEN h:0000000000 2>&1)" || true
            [[ "$got" == "$want/10" ]] || die "$name: DBSIZE/HLEN is '$got', expected $want/10"
            ;;
        sets)
            want=$((ELEMENTS / MEMBERS))
            log "$name: loading $want sets of $MEMBERS members with redis-cli --pipe"
            LC_ALL=C awk -v n="$want" -v per="$MEMBERS" 'BEGIN {
                for (i = 0; i < n; i++) {
                    k = sprintf("s:%09d", i)
                    printf "*%d\r\n$4\r\nSADD\r\n$%d\r\n%s\r\n", per + 2, length(k), k
                    for (m = 0; m < per; m++) printf "$8\r\nm:%06d\r\n", (i * per + m) % 1000000
                }
            }' | pipe_load "$port" | sed "s/^/    /" >&2
            got="$(rcli "$port" DBSIZE 2>&1)/$(rcli "$port" SCARD s:000000000 2>&1)" || true
            [[ "$got" == "$want/$MEMBERS" ]] || die "$name: DBSIZE/SCARD is '$got', expected $want/$MEMBERS"
            ;;
        set)
            log "$name: loading one set of $ELEMENTS members with redis-cli --pipe"
            LC_ALL=C awk -v n="$ELEMENTS" 'BEGIN {
                for (i = 0; i < n; i += 100) {
                    c = (n - i < 100) ? n - i : 100
                    printf "*%d\r\n$4\r\nSADD\r\n$3\r\nset\r\n", c + 2
                    for (m = i; m < i + c; m++) printf "$19\r\nmember:%012d\r\n", m
                }
            }' | pipe_load "$port" | sed "s/^/    /" >&2
            got=$(rcli "$port" SCARD set 2>&1) || true
            [[ "$got" == "$ELEMENTS" ]] || die "$name: SCARD is '$got' after loading $ELEMENTS members"
            ;;
    esac
}

declare -A RSS0 RSS1 UM0 UM1 ENC

# measure NAME START_FUNCTION [ARGS...]: fresh server, measure empty, load, verify, measure,
# stop.
measure() {
    local name=$1 starter=$2 port pid t0
    shift 2
    port=$(free_port)
    "$starter" "$port" "$@"
    pid=$STARTED_PID
    sleep 1 # let the process finish its start-up allocations
    RSS0[$name]=$(rss_bytes "$pid")
    UM0[$name]=$(info_field "$port" memory used_memory)
    [[ "${UM0[$name]}" =~ ^[0-9]+$ ]] || die "$name: INFO memory has no used_memory field"
    log "$name empty: rss=${RSS0[$name]} used_memory=${UM0[$name]}"
    t0=$SECONDS
    load "$name" "$port"
    log "$name: loaded in $((SECONDS - t0))s"
    case $SHAPE in
        strings) ENC[$name]=$(rcli "$port" OBJECT ENCODING "key:000000000000") ;;
        list) ENC[$name]=$(rcli "$port" OBJECT ENCODING list) ;;
        zset) ENC[$name]=$(rcli "$port" OBJECT ENCODING zset) ;;
        zsets) ENC[$name]=$(rcli "$port" OBJECT ENCODING "z:000000000000") ;;
        hash) ENC[$name]=$(rcli "$port" OBJECT ENCODING hash) ;;
        hashes) ENC[$name]=$(rcli "$port" OBJECT ENCODING "h:0000000000") ;;
        sets) ENC[$name]=$(rcli "$port" OBJECT ENCODING "s:000000000") ;;
        set) ENC[$name]=$(rcli "$port" OBJECT ENCODING set) ;;
    esac
    sleep 1 # let background work (expiry cycles, allocator purges) settle
    RSS1[$name]=$(rss_bytes "$pid")
    UM1[$name]=$(info_field "$port" memory used_memory)
    log "$name loaded: rss=${RSS1[$name]} used_memory=${UM1[$name]} encoding=${ENC[$name]}"
    stop_pid "$pid"
}

SERVERS=(redis)
log "shape: $SHAPE, $ELEMENTS elements; chkv binary: $CHKV_BIN; redis: $(redis-server --version | awk '{print $3}')"
measure redis start_redis
if [[ -n "$VALKEY_BIN" ]]; then
    SERVERS+=(valkey)
    measure valkey start_valkey "$VALKEY_BIN"
fi
SERVERS+=(chkv)
measure chkv start_datanode

case $SHAPE in
    strings) what="$ELEMENTS keys, 16-byte keys, 32-byte values (48 bytes of payload per key)" ;;
    list) what="one list of $ELEMENTS elements (14-byte elements)" ;;
    zset) what="one sorted set of $ELEMENTS members (14-byte members, integer scores)" ;;
    zsets) what="$((ELEMENTS / MEMBERS)) sorted sets (14-byte keys) of $MEMBERS members (14-byte members, integer scores)" ;;
    hash) what="one hash of $ELEMENTS fields (18-byte fields, 16-byte values)" ;;
    hashes) what="$((ELEMENTS / 10)) hashes of 10 fields (6-byte fields, 11-byte values); element = field" ;;
    sets) what="$((ELEMENTS / MEMBERS)) sets of $MEMBERS members (8-byte members)" ;;
    set) what="one set of $ELEMENTS members (19-byte members)" ;;
esac
echo
echo "memory per element: $what"
{
    printf 'server\tencoding\trss empty\trss loaded\trss B/elem\tused_memory empty\tused_memory loaded\tused_memory B/elem\n'
    for s in "${SERVERS[@]}"; do
        awk -v s="$s" -v e="${ENC[$s]}" -v n="$ELEMENTS" -v r0="${RSS0[$s]}" -v r1="${RSS1[$s]}" -v u0="${UM0[$s]}" -v u1="${UM1[$s]}" 'BEGIN {
            printf "%s\t%s\t%.1f MiB\t%.1f MiB\t%.1f\t%.1f MiB\t%.1f MiB\t%.1f\n", s, e,
                r0 / 1048576, r1 / 1048576, (r1 - r0) / n, u0 / 1048576, u1 / 1048576, (u1 - u0) / n }'
    done
} | awk -F'\t' '
    { for (i = 1; i <= NF; i++) { cell[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) } nf = NF }
    END { for (r = 1; r <= NR; r++) { line = ""
            for (i = 1; i <= nf; i++) line = line sprintf(i == 1 ? "%-" w[i] "s" : "  %" w[i] "s", cell[r, i])
            print line } }'
for s in "${SERVERS[@]}"; do
    [[ $s == chkv ]] && continue
    awk -v s="$s" -v cr0="${RSS0[chkv]}" -v cr1="${RSS1[chkv]}" -v rr0="${RSS0[$s]}" -v rr1="${RSS1[$s]}" \
        -v cu0="${UM0[chkv]}" -v cu1="${UM1[chkv]}" -v ru0="${UM0[$s]}" -v ru1="${UM1[$s]}" 'BEGIN {
        rr = rr1 - rr0; ru = ru1 - ru0
        printf "chkv/%s: rss per element %s, used_memory per element %s\n", s,
            (rr > 0 ? sprintf("%.2fx", (cr1 - cr0) / rr) : "n/a"), (ru > 0 ? sprintf("%.2fx", (cu1 - cu0) / ru) : "n/a") }'
done
