#!/usr/bin/env bash
# helper/dashboard-check.sh: the NameNode's dashboard in headless Chromium, during a drain.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    cat <<EOF
Usage: helper/dashboard-check.sh [--out FILE.png] [--keys N] [--help]

Starts a NameNode (with an HTTP API token) and 4 DataNodes (release builds, free 127.0.0.1
ports), loads N keys (default 600000) through one DataNode, then drains one node through
the HTTP API (POST /api/nodes/{id}/drain) and, while its slots move:
  - saves the dashboard as the NameNode serves it at that moment,
  - has headless Chromium render it (--screenshot FILE.png) and dump its DOM, and asserts
    the DOM has the ring (<svg id="ring">), moves in flight, 4 node rows, the draining node
    marked "draining", and the drain in the event log,
  - has Chromium load the live dashboard too (ring and node rows present).
Then waits for the drain to finish and checks that no key was lost (DBSIZE on the 3 nodes
left adds up to N) and that the drained DataNode exited by itself.

The page is saved during the drain and rendered from that copy because a drain is fast
(hundreds of thousands of keys a second) and Chromium takes seconds to start; the page has
no script and no external asset, so the copy renders exactly as the live page did.

Installs Chromium with apt-get when it is missing (as root, or with passwordless sudo).

Options:
  --out FILE   where to write the screenshot (default: target/dashboard.png); the
               committed docs/dashboard.png is made with --out docs/dashboard.png
  --keys N     keys to load before the drain (default 600000)
  --help       this text

Environment: CHKV_KEEP_TMP=1 keeps the logs, the saved page and the DOM dumps.
EOF
}

OUT=""
KEYS=600000
while (($#)); do
    case $1 in
        --out)
            [[ $# -ge 2 ]] || die "--out needs a file name"
            OUT=$2
            shift 2
            ;;
        --keys)
            [[ $# -ge 2 ]] || die "--keys needs a number"
            posint --keys "$2"
            KEYS=$2
            shift 2
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
[[ -n "$OUT" ]] || OUT="$(cargo_target)/dashboard.png"
[[ "$OUT" == /* ]] || OUT="$PWD/$OUT"

# Tools: Debian's chromium, curl, python3 (JSON), redis-cli.
install_missing() {
    local pkgs=("$@")
    ((${#pkgs[@]})) || return 0
    command -v apt-get >/dev/null 2>&1 || die "missing: ${pkgs[*]}; install them (apt-get not available)"
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null 2>&1 || die "missing: ${pkgs[*]}; need root or sudo to apt-get install them"
        sudo=(sudo -n)
    fi
    log "installing: ${pkgs[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${pkgs[@]}" >/dev/null
}
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
install_missing "${missing[@]}"
need_cmd chromium chromium
need_cmd curl curl
need_cmd python3 python3
need_cmd redis-cli redis-tools
need_cmd redis-benchmark redis-tools

chkv_init
cluster_bins

# chrome ARGS...: headless Chromium, isolated from any profile, bounded in time.
chrome() {
    local profile
    profile=$(mktemp -d "$CHKV_TMP/chromium.XXXXXX")
    timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --disable-dev-shm-usage --hide-scrollbars --user-data-dir="$profile" \
        --window-size=1400,1000 "$@" 2>>"$CHKV_TMP/chromium.log"
}

# json EXPR: evaluates a Python expression over the JSON on stdin (bound to `d`).
json() { python3 -c "import json, sys; d = json.load(sys.stdin); print($1)"; }

TOKEN_FILE="$CHKV_TMP/http-token"
(umask 077 && od -An -tx1 -N16 /dev/urandom | tr -d ' \n' >"$TOKEN_FILE")
NN_DN=$(free_port)
NN_CL=$(free_port)
NN_HTTP=$(free_port)
HTTP="http://127.0.0.1:$NN_HTTP"
start_bg "chkv-namenode" "$CHKV_TMP/namenode.log" "$NN_BIN" --bind 127.0.0.1 \
    --datanode-port "$NN_DN" --client-port "$NN_CL" --http-port "$NN_HTTP" \
    --http-token-file "$TOKEN_FILE"
NN_PID=$STARTED_PID
wait_for_port "$NN_HTTP" "$CHKV_WAIT_TIMEOUT" "$NN_PID" "$CHKV_TMP/namenode.log"

PORTS=()
declare -A PID_OF
for _ in 1 2 3 4; do
    port=$(free_port)
    admin=$(free_port)
    start_bg "chkv-datanode:$port" "$CHKV_TMP/datanode-$port.log" "$CHKV_BIN" \
        --bind 127.0.0.1 --port "$port" --admin-port "$admin" --threads 1 \
        --namenode "127.0.0.1:$NN_DN"
    PID_OF[$port]=$STARTED_PID
    wait_for_port "$port" "$CHKV_WAIT_TIMEOUT" "$STARTED_PID" "$CHKV_TMP/datanode-$port.log"
    PORTS+=("$port")
done
wait_full_ring 4 "${PORTS[@]}"
log "4 DataNodes in the ring; loading $KEYS keys through 127.0.0.1:${PORTS[0]}"
gen_resp SET "dash:%d" "$KEYS" "value-%060d" | pipe_load "${PORTS[0]}" >/dev/null

# The heartbeats carry the key counts the dashboard shows: wait until they add up.
deadline=$((SECONDS + 30))
until [[ "$(curl -sf "$HTTP/api/nodes" | json 'sum(n["keys"] for n in d)')" == "$KEYS" ]]; do
    ((SECONDS < deadline)) || die "the NameNode's key counts did not reach $KEYS within 30 s"
    sleep 0.3
done
# Light traffic (GETs only, so the key count stays exact) for the ops/s columns.
start_bg "redis-benchmark" "$CHKV_TMP/benchmark.log" redis-benchmark -h 127.0.0.1 \
    -p "${PORTS[0]}" -t get -n 50000000 -c 4 -r "$KEYS" -q
BENCH_PID=$STARTED_PID
sleep 3 # two heartbeats with traffic, for ops/s

VICTIM_PORT=${PORTS[1]}
VICTIM=$(curl -sf "$HTTP/api/nodes" |
    json "[n['id'] for n in d if n['client_addr'] == '127.0.0.1:$VICTIM_PORT'][0]")
VICTIM_KEYS=$(curl -sf "$HTTP/api/nodes" | json "[n['keys'] for n in d if n['id'] == '$VICTIM'][0]")
log "draining $VICTIM (127.0.0.1:$VICTIM_PORT, $VICTIM_KEYS keys) through the HTTP API"

# Without the token the API refuses.
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$HTTP/api/nodes/$VICTIM/drain")
[[ "$code" == 401 ]] || die "a drain without the token answered $code, not 401"
code=$(curl -s -o "$CHKV_TMP/drain.json" -w '%{http_code}' -X POST \
    -H "Authorization: Bearer $(cat "$TOKEN_FILE")" "$HTTP/api/nodes/$VICTIM/drain")
[[ "$code" == 202 ]] || die "the drain request answered $code: $(cat "$CHKV_TMP/drain.json")"

# Save the page as soon as the moves show, while they are in flight.
DURING="$CHKV_TMP/during.html"
deadline=$((SECONDS + 20))
while :; do
    curl -sf "$HTTP/" -o "$DURING" || true
    grep -q 'class="moving"' "$DURING" 2>/dev/null && break
    ((SECONDS < deadline)) || die "no move in flight seen on the dashboard within 20 s of the drain request"
done
log "dashboard saved during the drain; rendering it in headless Chromium"

DOM="$CHKV_TMP/during.dom.html"
mkdir -p "$(dirname "$OUT")"
rm -f "$OUT"
chrome --screenshot="$OUT" "file://$DURING" >/dev/null
[[ -s "$OUT" ]] || die "Chromium wrote no screenshot (see $CHKV_TMP/chromium.log)"
chrome --dump-dom "file://$DURING" >"$DOM"
CHECKS=0
check() {
    local what=$1
    shift
    if "$@"; then
        CHECKS=$((CHECKS + 1))
    else
        die "dashboard check failed: $what"
    fi
}
count() { grep -o -- "$1" "$2" | wc -l | tr -d ' '; }
check "the ring is drawn (svg#ring with slot arcs)" grep -q '<svg id="ring"' "$DOM"
check "slot arcs on the ring" test "$(count 'class="slots"' "$DOM")" -gt 4
check "moves in flight on the ring" grep -q 'class="moving"' "$DOM"
check "4 node rows" test "$(count 'class="node-row"' "$DOM")" -eq 4
check "the victim's row says draining" python3 - "$DOM" "$VICTIM" <<'PY'
import re, sys
dom, victim = open(sys.argv[1]).read(), sys.argv[2]
row = re.search(r'<tr class="node-row" data-node="%s".*?</tr>' % re.escape(victim), dom)
sys.exit(0 if row and ">draining<" in row.group(0) else 1)
PY
check "the drain in the event log" python3 - "$DOM" "$VICTIM" <<'PY'
import re, sys
dom, victim = open(sys.argv[1]).read(), sys.argv[2]
full = re.findall(r'<tr class="event" data-kind="drain".*?</tr>', dom, re.S)
sys.exit(0 if full and all(victim in r for r in full) else 1)
PY

stop_pid "$BENCH_PID"
LIVE="$CHKV_TMP/live.dom.html"
chrome --dump-dom "$HTTP/" >"$LIVE"
check "the live page renders the ring" grep -q '<svg id="ring"' "$LIVE"
check "the live page lists the nodes" test "$(count 'class="node-row"' "$LIVE")" -ge 3

# The drain finishes: the node exits by itself, and every key is on the 3 nodes left.
deadline=$((SECONDS + 60))
while pid_alive "${PID_OF[$VICTIM_PORT]}"; do
    ((SECONDS < deadline)) || die "the drained DataNode did not exit within 60 s"
    sleep 0.2
done
stop_pid "${PID_OF[$VICTIM_PORT]}"
check "the drained DataNode exited with status 0" test "$STOP_STATUS" -eq 0
total=0
for port in "${PORTS[@]}"; do
    [[ "$port" == "$VICTIM_PORT" ]] && continue
    n=$(rcli "$port" DBSIZE)
    total=$((total + n))
done
check "no key lost in the drain ($total of $KEYS)" test "$total" -eq "$KEYS"
check "the NameNode lists 3 nodes after the drain" \
    test "$(curl -sf "$HTTP/api/nodes" | json 'len(d)')" -eq 3

log "$CHECKS checks passed; screenshot: $OUT"
echo "dashboard-check: $CHECKS passed, 0 failed"
