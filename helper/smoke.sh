#!/usr/bin/env bash
# helper/smoke.sh: end-to-end smoke test of a CHKV DataNode with redis-cli and nc.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    cat <<EOF
Usage: helper/smoke.sh [--port PORT] [--help]

Starts a DataNode (\$CHKV_BIN, default \$ROOT/target/release/chkv-datanode, built with
'cargo build --release -p chkv-datanode' when missing) on a free 127.0.0.1 port, drives it
with redis-cli and nc and asserts exact replies: PING, SET/GET, SET EX + TTL, EXPIRE/TTL/
PERSIST, INCR/INCRBY/DECR, MSET/MGET, DEL, EXISTS, TYPE, SCAN over 1000 keys, a 100000-command
redis-cli --pipe load, unknown command and wrong arity errors, malformed RESP and inline
commands over nc, then AUTH against a second DataNode started with --requirepass, and a
clean exit (status 0) of the DataNodes on SIGTERM.

Exits 1 at the first failed check, naming it.

Options:
  --port PORT   test an already running node on 127.0.0.1:PORT instead of starting one
                (no password); skips the --requirepass and exit-status checks, and
                deletes the keys it created (all prefixed smoke:<time>:<pid>:) afterwards
  --help        this text

Environment: CHKV_BIN (DataNode binary), CHKV_KEEP_TMP=1 (keep logs even on success).
EOF
}

PORT=""
while [[ $# -gt 0 ]]; do
    case $1 in
        --port)
            [[ $# -ge 2 && "$2" =~ ^[0-9]+$ ]] || die "--port needs a number"
            PORT=$2
            shift 2
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done

need_cmd redis-cli redis-tools
need_cmd nc netcat-openbsd
need_cmd timeout coreutils
chkv_init

# nc flavour: netcat-openbsd has -N (close the write side at stdin EOF, then read until the
# server closes); traditional/busybox netcat use -q SECS. -w bounds idle time either way.
if nc -h 2>&1 | grep -q -- '-N'; then
    NC_FLAGS=(-N -w 5)
else
    NC_FLAGS=(-q 1 -w 5)
fi

CHECKS=0
# vis TEXT: TEXT in double quotes with CR and LF made visible.
vis() {
    local s=$1
    s=${s//$'\r'/\\r}
    s=${s//$'\n'/\\n}
    printf '"%s"' "$s"
}
pass() {
    CHECKS=$((CHECKS + 1))
    printf '  ok   %s\n' "$1"
}
fail() {
    printf '  FAIL %s\n' "$1" >&2
    shift
    printf '       %s\n' "$@" >&2
    die "smoke check failed: see FAIL above"
}
# expect NAME EXPECTED ACTUAL: exact match.
expect() {
    if [[ "$3" == "$2" ]]; then pass "$1"; else fail "$1" "expected: $(vis "$2")" "got:      $(vis "$3")"; fi
}
# expect_contains NAME SUBSTRING ACTUAL
expect_contains() {
    if [[ "$3" == *"$2"* ]]; then pass "$1"; else fail "$1" "expected to contain: $(vis "$2")" "got: $(vis "$3")"; fi
}
# expect_range NAME LO HI ACTUAL: integer LO <= ACTUAL <= HI.
expect_range() {
    if [[ "$4" =~ ^-?[0-9]+$ ]] && (($2 <= $4 && $4 <= $3)); then pass "$1"; else fail "$1" "expected an integer in [$2, $3]" "got: $(vis "$4")"; fi
}

# c ARGS...: one redis-cli command against $PORT; prints the raw reply (errors included,
# since redis-cli prints them on stdout), or "<timeout>"/"<exit N>: ..." so a check fails
# with a readable message instead of aborting the script.
c() {
    local out rc=0
    out=$(timeout 10 redis-cli -h 127.0.0.1 -p "$PORT" "$@" 2>&1) || rc=$?
    if ((rc == 124)); then out="<timeout after 10s: redis-cli $*>"; elif ((rc != 0)); then out="<exit $rc> $out"; fi
    printf '%s' "$out"
}

# raw_nc BYTES: send BYTES (printf format) over a fresh TCP connection, print the reply.
raw_nc() {
    # shellcheck disable=SC2059
    printf "$1" | timeout 15 nc "${NC_FLAGS[@]}" 127.0.0.1 "$PORT" 2>&1 || true
}

OWN_NODE=1
if [[ -n "$PORT" ]]; then
    OWN_NODE=0
    port_open "$PORT" || die "nothing listens on 127.0.0.1:$PORT"
    log "testing the running node on 127.0.0.1:$PORT"
else
    datanode_bin
    log "DataNode binary: $CHKV_BIN"
    PORT=$(free_port)
    start_datanode "$PORT"
    NODE_PID=$STARTED_PID
fi

P="smoke:$(date +%s):$$:" # key prefix, unique per run
log "running checks against 127.0.0.1:$PORT (key prefix $P)"

echo "== basics"
expect "PING -> PONG" "PONG" "$(c PING)"
expect "PING msg -> msg" "hello" "$(c PING hello)"
expect "SET" "OK" "$(c SET "${P}k" "hello world")"
expect "GET" "hello world" "$(c GET "${P}k")"
expect "GET missing -> nil" "" "$(c GET "${P}missing")"
expect "SET overwrite" "OK" "$(c SET "${P}k" v2)"
expect "GET after overwrite" "v2" "$(c GET "${P}k")"
expect "TYPE string" "string" "$(c TYPE "${P}k")"
expect "TYPE missing -> none" "none" "$(c TYPE "${P}missing")"

echo "== expiry"
expect "SET EX" "OK" "$(c SET "${P}ex" v EX 100)"
expect_range "TTL after SET EX 100" 99 100 "$(c TTL "${P}ex")"
expect_range "PTTL after SET EX 100" 98000 100000 "$(c PTTL "${P}ex")"
expect "SET (no ttl)" "OK" "$(c SET "${P}p" v)"
expect "TTL no expiry -> -1" "-1" "$(c TTL "${P}p")"
expect "EXPIRE -> 1" "1" "$(c EXPIRE "${P}p" 50)"
expect_range "TTL after EXPIRE 50" 49 50 "$(c TTL "${P}p")"
expect "PERSIST -> 1" "1" "$(c PERSIST "${P}p")"
expect "TTL after PERSIST -> -1" "-1" "$(c TTL "${P}p")"
expect "PERSIST again -> 0" "0" "$(c PERSIST "${P}p")"
expect "TTL missing -> -2" "-2" "$(c TTL "${P}missing")"
expect "EXPIRE missing -> 0" "0" "$(c EXPIRE "${P}missing" 10)"
expect "SET PX 1" "OK" "$(c SET "${P}short" v PX 1)"
sleep 0.05
expect "GET after PX 1 expired -> nil" "" "$(c GET "${P}short")"

echo "== counters"
expect "SET n 10" "OK" "$(c SET "${P}n" 10)"
expect "INCR -> 11" "11" "$(c INCR "${P}n")"
expect "INCRBY 5 -> 16" "16" "$(c INCRBY "${P}n" 5)"
expect "DECR -> 15" "15" "$(c DECR "${P}n")"
expect "GET counter -> 15" "15" "$(c GET "${P}n")"
expect "INCR new key -> 1" "1" "$(c INCR "${P}n2")"
expect "INCR non-integer -> error" "ERR value is not an integer or out of range" "$(c INCR "${P}k")"

echo "== multi-key"
expect "MSET" "OK" "$(c MSET "${P}a" 1 "${P}b" 2 "${P}c" 3)"
expect "MGET (with a missing key)" $'1\n2\n\n3' "$(c MGET "${P}a" "${P}b" "${P}missing" "${P}c")"
expect "EXISTS 2 of 3 -> 2" "2" "$(c EXISTS "${P}a" "${P}b" "${P}missing")"
expect "DEL 2 of 3 -> 2" "2" "$(c DEL "${P}a" "${P}b" "${P}missing")"
expect "EXISTS after DEL -> 0" "0" "$(c EXISTS "${P}a")"
expect "GET after DEL -> nil" "" "$(c GET "${P}a")"
expect "MGET after DEL" $'\n\n3' "$(c MGET "${P}a" "${P}b" "${P}c")"

echo "== errors"
expect_contains "unknown command" "ERR unknown command" "$(c CHKVNOSUCHCOMMAND a b)"
expect "wrong arity (GET)" "ERR wrong number of arguments for 'get' command" "$(c GET)"
expect_contains "wrong arity (SET)" "wrong number of arguments" "$(c SET "${P}only-key")"
expect "still serving after errors" "PONG" "$(c PING)"

echo "== SCAN over 1000 keys"
out=$(gen_resp SET "${P}scan:%04d" 1000 "v%d" |
    timeout 60 redis-cli -h 127.0.0.1 -p "$PORT" --pipe 2>&1) || true
expect_contains "load 1000 keys with --pipe" "errors: 0, replies: 1000" "$out"
scan_file="$CHKV_TMP/scan-keys"
: >"$scan_file"
cursor=0
iterations=0
dbsize=$(c DBSIZE)
[[ "$dbsize" =~ ^[0-9]+$ ]] || fail "DBSIZE" "expected an integer" "got: $(vis "$dbsize")"
max_iterations=$((dbsize / 50 > 10000 ? dbsize / 50 : 10000))
while :; do
    reply=$(c SCAN "$cursor" MATCH "${P}scan:*" COUNT 100)
    [[ "$reply" =~ ^[0-9]+($'\n'|$) ]] || fail "SCAN reply" "expected a cursor line first" "got: $(vis "${reply:0:300}")"
    cursor=${reply%%$'\n'*}
    if [[ "$reply" == *$'\n'* ]]; then printf '%s\n' "${reply#*$'\n'}" >>"$scan_file"; fi
    iterations=$((iterations + 1))
    [[ "$cursor" == 0 ]] && break
    ((iterations < max_iterations)) || fail "SCAN terminates" "cursor not back to 0 after $max_iterations calls"
done
pass "SCAN cursor returned to 0 after $iterations calls"
expect "SCAN MATCH returned 1000 distinct keys" "1000" "$(sort -u "$scan_file" | grep -c . || true)"
expect "SCAN keys are the loaded keys" "" \
    "$(diff <(sort -u "$scan_file" | grep .) <(for ((i = 0; i < 1000; i++)); do printf '%s%04d\n' "${P}scan:" "$i"; done | sort) | head -n 5)"

echo "== pipelined load of 100000 SETs"
before=$(c DBSIZE)
[[ "$before" =~ ^[0-9]+$ ]] || fail "DBSIZE" "expected an integer" "got: $(vis "$before")"
out=$(gen_resp SET "${P}pipe:%06d" 100000 "value-%d" |
    timeout 120 redis-cli -h 127.0.0.1 -p "$PORT" --pipe 2>&1) || true
expect_contains "redis-cli --pipe summary" "errors: 0, replies: 100000" "$out"
expect "DBSIZE grew by 100000" "$((before + 100000))" "$(c DBSIZE)"
expect "GET a piped key" "value-4242" "$(c GET "${P}pipe:004242")"
expect "GET last piped key" "value-99999" "$(c GET "${P}pipe:099999")"

echo "== raw protocol over nc"
out=$(raw_nc '*abc\r\n')
expect_contains "malformed multibulk -> -ERR Protocol error" "-ERR Protocol error" "${out%%$'\n'*}"
[[ "$out" == "-ERR Protocol error"* ]] || fail "protocol error reply comes first" "got: $(vis "$out")"
out=$(raw_nc '*abc\r\nPING\r\n')
[[ "$out" == "-ERR Protocol error"* && "$out" != *"+PONG"* ]] ||
    fail "connection closed after a protocol error (PING after the garbage not answered)" "got: $(vis "$out")"
pass "connection closed after a protocol error"
expect "PING via redis-cli after a protocol error" "PONG" "$(c PING)"
expect "GET missing via nc -> \$-1 (nil, not empty)" "\$-1"$'\r' "$(raw_nc "GET ${P}missing\r\n")"
expect "SET empty value" "OK" "$(c SET "${P}empty" "")"
expect "GET empty value via nc -> \$0" "\$0"$'\r\n\r' "$(raw_nc "GET ${P}empty\r\n")"
expect "inline PING via nc" "+PONG"$'\r' "$(raw_nc 'PING\r\n')"
expect "inline SET/GET via nc" "+OK"$'\r\n'"\$6"$'\r\n'"inline"$'\r' \
    "$(raw_nc "SET ${P}inline inline\r\nGET ${P}inline\r\n")"
# shellcheck disable=SC2016 # the $ is RESP, not shell
expect "RESP PING via nc" "+PONG"$'\r' "$(raw_nc '*1\r\n$4\r\nPING\r\n')"

if ((OWN_NODE)); then
    echo "== AUTH (second DataNode with --requirepass)"
    APORT=$(free_port)
    start_datanode "$APORT" --requirepass secret
    AUTH_PID=$STARTED_PID
    out=$(timeout 10 redis-cli -h 127.0.0.1 -p "$APORT" GET foo 2>&1) || true
    expect_contains "GET without AUTH -> NOAUTH" "NOAUTH" "$out"
    out=$(timeout 10 redis-cli -h 127.0.0.1 -p "$APORT" -a secret --no-auth-warning PING 2>&1) || true
    expect "PING with -a secret -> PONG" "PONG" "$out"
    out=$(timeout 10 redis-cli -h 127.0.0.1 -p "$APORT" -a secret --no-auth-warning SET "${P}x" y 2>&1) || true
    expect "SET with -a secret -> OK" "OK" "$out"
    out=$(timeout 10 redis-cli -h 127.0.0.1 -p "$APORT" -a wrong --no-auth-warning PING 2>&1) || true
    expect_contains "wrong password -> WRONGPASS" "WRONGPASS" "$out"

    echo "== shutdown"
    stop_pid "$AUTH_PID"
    expect "DataNode (requirepass) exits 0 on SIGTERM" "0" "$STOP_STATUS"
    stop_pid "$NODE_PID"
    expect "DataNode exits 0 on SIGTERM" "0" "$STOP_STATUS"
else
    log "--port given: skipping the requirepass and shutdown checks"
    log "deleting the keys this run created"
    {
        gen_resp DEL "${P}pipe:%06d" 100000
        gen_resp DEL "${P}scan:%04d" 1000
        for k in k ex p n n2 c inline empty; do
            key="$P$k"
            # shellcheck disable=SC2016 # the $ is RESP, not shell
            printf '*2\r\n$3\r\nDEL\r\n$%d\r\n%s\r\n' "${#key}" "$key"
        done
    } | pipe_load "$PORT" >/dev/null
fi

echo "smoke: all $CHECKS checks passed"
