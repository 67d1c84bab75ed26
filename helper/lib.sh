# shellcheck shell=bash
# helper/lib.sh: functions shared by the helper scripts. Source it, don't run it:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   chkv_init                      # temp dir + EXIT/INT/TERM trap
#   port=$(free_port)
#   start_redis "$port"            # sets STARTED_PID, waits until the port listens
#   start_datanode "$port" --requirepass secret
#   cluster_bins; start_namenode "$dn_port" "$client_port" "$http_port"
#   wait_full_ring 3 "${datanode_ports[@]}"
#
# Every process started here is recorded in CHKV_PIDS; on exit the trap stops exactly
# those pids (SIGTERM, up to 10 s, then SIGKILL) and reaps them. Nothing else is touched.
# Servers only ever bind 127.0.0.1. Logs and server output go to a temp dir that is
# removed on success and kept (its path printed) on failure.

if [[ -n "${CHKV_LIB_LOADED:-}" ]]; then
    return 0
fi
CHKV_LIB_LOADED=1

CHKV_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHKV_SCRIPT="$(basename "${0:-helper}")"
CHKV_PIDS=()              # pids this script started, in start order
declare -A CHKV_PID_NAME  # pid -> human name, for messages
CHKV_TMP=""               # per-run temp dir (chkv_init)
STARTED_PID=""            # pid of the last process started by start_bg/start_redis/start_datanode
# shellcheck disable=SC2034 # read by the scripts that source this file
STOP_STATUS=""            # exit status of the last process stopped by stop_pid
CHKV_WAIT_TIMEOUT="${CHKV_WAIT_TIMEOUT:-10}"   # seconds to wait for a port to listen
CHKV_STOP_TIMEOUT="${CHKV_STOP_TIMEOUT:-10}"   # seconds to wait for a process to exit after SIGTERM

log() { printf '[%s %s] %s\n' "$CHKV_SCRIPT" "$(date +%H:%M:%S)" "$*" >&2; }
warn() { printf '[%s %s] WARNING: %s\n' "$CHKV_SCRIPT" "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    printf '[%s %s] ERROR: %s\n' "$CHKV_SCRIPT" "$(date +%H:%M:%S)" "$*" >&2
    exit 1
}

# need_cmd CMD [DEBIAN_PACKAGE]: fail with an install hint when CMD is not on PATH.
need_cmd() {
    local cmd=$1 pkg=${2:-$1}
    command -v "$cmd" >/dev/null 2>&1 ||
        die "'$cmd' not found on PATH; install it, e.g.: apt-get install -y $pkg"
}

# posint FLAG VALUE: die unless VALUE is a positive integer (option checking).
posint() { [[ "$2" =~ ^[1-9][0-9]*$ ]] || die "$1 needs a positive integer, got '$2'"; }

# chkv_init: create the temp dir and install the cleanup trap. Call once, from the main
# shell (not inside $(...)), before starting anything.
chkv_init() {
    # CHKV_TMP_PARENT: where the temp dir goes (default $TMPDIR or /tmp).
    CHKV_TMP="$(mktemp -d "${CHKV_TMP_PARENT:-${TMPDIR:-/tmp}}/chkv-${CHKV_SCRIPT%.sh}.XXXXXX")"
    : >"$CHKV_TMP/ports"
    trap chkv_cleanup EXIT
    trap 'log "interrupted"; exit 130' INT
    trap 'log "terminated"; exit 143' TERM
}

chkv_cleanup() {
    local rc=$? pid
    set +e
    trap - EXIT INT TERM
    # Stop in reverse start order; only pids we started ourselves.
    local i
    for ((i = ${#CHKV_PIDS[@]} - 1; i >= 0; i--)); do
        pid=${CHKV_PIDS[i]}
        [[ -n "$pid" ]] && stop_pid "$pid"
    done
    if [[ -n "$CHKV_TMP" && -d "$CHKV_TMP" ]]; then
        if ((rc == 0)) && [[ -z "${CHKV_KEEP_TMP:-}" ]]; then
            rm -rf -- "$CHKV_TMP"
        else
            log "logs kept in $CHKV_TMP"
        fi
    fi
    exit "$rc"
}

# pid_alive PID: true while PID runs (a zombie waiting to be reaped counts as dead).
pid_alive() {
    local pid=$1 stat
    if [[ -r "/proc/$pid/stat" ]]; then
        stat=$(<"/proc/$pid/stat") 2>/dev/null || return 1
        stat=${stat##*) }          # the field after "(comm) " is the state
        [[ "${stat:0:1}" != "Z" ]]
    else
        kill -0 "$pid" 2>/dev/null
    fi
}

# stop_pid PID: SIGTERM, wait up to CHKV_STOP_TIMEOUT s, then SIGKILL; reap it and set
# STOP_STATUS to its exit status (128+signal when killed). Forgets PID afterwards.
stop_pid() {
    local pid=$1 name=${CHKV_PID_NAME[$1]:-pid $1} n
    local tries=$((CHKV_STOP_TIMEOUT * 10))
    if pid_alive "$pid"; then
        log "stopping $name (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for ((n = 0; n < tries; n++)); do
            pid_alive "$pid" || break
            sleep 0.1
        done
        if pid_alive "$pid"; then
            warn "$name (pid $pid) still running ${CHKV_STOP_TIMEOUT}s after SIGTERM; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    STOP_STATUS=0
    # shellcheck disable=SC2034
    wait "$pid" 2>/dev/null || STOP_STATUS=$?
    local i
    for i in "${!CHKV_PIDS[@]}"; do
        [[ "${CHKV_PIDS[i]}" == "$pid" ]] && CHKV_PIDS[i]=""
    done
    unset "CHKV_PID_NAME[$pid]"
    return 0
}

# free_port: print a TCP port that is free on 127.0.0.1 and was not handed out before by
# this script (remembered in $CHKV_TMP/ports, so it works from inside $(...)).
free_port() {
    local used="" port n
    [[ -n "$CHKV_TMP" && -f "$CHKV_TMP/ports" ]] && used=$(tr '\n' ' ' <"$CHKV_TMP/ports")
    if command -v python3 >/dev/null 2>&1; then
        # shellcheck disable=SC2086
        port=$(python3 - $used <<'PY'
import socket, sys
used = set(sys.argv[1:])
for _ in range(100):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    if str(p) not in used:
        print(p)
        sys.exit(0)
sys.exit(1)
PY
        ) || die "free_port: python3 could not find a free port"
    else
        # No python3: probe random ports below the usual ephemeral range; a refused
        # connection means nobody listens there.
        port=""
        for ((n = 0; n < 200; n++)); do
            local p=$((20000 + RANDOM % 12000))
            [[ " $used " == *" $p "* ]] && continue
            if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
                port=$p
                break
            fi
        done
        [[ -n "$port" ]] || die "free_port: no free port found after 200 probes"
    fi
    [[ -n "$CHKV_TMP" ]] && echo "$port" >>"$CHKV_TMP/ports"
    echo "$port"
}

# port_open PORT: true when something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# pid_listens PID PORT: true when PID itself has a TCP socket listening on PORT (so we never
# mistake another process that grabbed the port for ours). Needs Linux /proc; elsewhere it
# falls back to port_open.
pid_listens() {
    local pid=$1 port=$2 hex fd link inodes=""
    [[ -r /proc/net/tcp && -d "/proc/$pid/fd" ]] || {
        port_open "$port"
        return
    }
    printf -v hex '%04X' "$port"
    for fd in "/proc/$pid/fd/"*; do
        link=$(readlink "$fd" 2>/dev/null) || continue
        [[ "$link" == socket:\[*\] ]] && inodes+="${link//[^0-9]/} "
    done
    [[ -n "$inodes" ]] || return 1
    cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk -v hex=":$hex" -v inodes=" $inodes" '
        $4 == "0A" && substr($2, length($2) - 4) == hex && index(inodes, " " $10 " ") { found = 1 }
        END { exit !found }'
}

# wait_for_port PORT [TIMEOUT_S] [PID] [LOGFILE]: wait until 127.0.0.1:PORT accepts
# connections (and, given PID, until PID is the one listening there); fail early if PID
# dies, fail after TIMEOUT_S (default CHKV_WAIT_TIMEOUT).
wait_for_port() {
    local port=$1 timeout=${2:-$CHKV_WAIT_TIMEOUT} pid=${3:-} logf=${4:-} n
    for ((n = 0; n < timeout * 10; n++)); do
        if [[ -n "$pid" ]]; then
            if pid_listens "$pid" "$port" && port_open "$port"; then
                return 0
            fi
        elif port_open "$port"; then
            return 0
        fi
        if [[ -n "$pid" ]] && ! pid_alive "$pid"; then
            [[ -n "$logf" && -f "$logf" ]] && tail -n 20 "$logf" >&2
            die "process ${CHKV_PID_NAME[$pid]:-$pid} exited before listening on 127.0.0.1:$port"
        fi
        sleep 0.1
    done
    [[ -n "$logf" && -f "$logf" ]] && tail -n 20 "$logf" >&2
    if [[ -n "$pid" ]]; then
        die "timed out after ${timeout}s waiting for ${CHKV_PID_NAME[$pid]:-pid $pid} to listen on 127.0.0.1:$port"
    fi
    die "timed out after ${timeout}s waiting for 127.0.0.1:$port to accept connections"
}

# start_bg NAME LOGFILE CMD [ARGS...]: start CMD in the background (stdin /dev/null,
# stdout+stderr to LOGFILE), record its pid, set STARTED_PID.
start_bg() {
    local name=$1 logf=$2
    shift 2
    local cmdline
    cmdline=$(printf '%q ' "$@")
    log "starting $name: ${cmdline% } (log: $logf)"
    "$@" </dev/null >"$logf" 2>&1 &
    STARTED_PID=$!
    CHKV_PIDS+=("$STARTED_PID")
    CHKV_PID_NAME[$STARTED_PID]=$name
}

# start_redis PORT [EXTRA_REDIS_ARGS...]: a throwaway redis-server on 127.0.0.1:PORT
# without persistence; waits until it listens. Sets STARTED_PID.
start_redis() {
    local port=$1
    shift
    need_cmd redis-server redis-server
    start_bg "redis-server:$port" "$CHKV_TMP/redis-$port.log" \
        redis-server --save '' --appendonly no --port "$port" --bind 127.0.0.1 \
        --daemonize no --dir "$CHKV_TMP" "$@"
    wait_for_port "$port" "$CHKV_WAIT_TIMEOUT" "$STARTED_PID" "$CHKV_TMP/redis-$port.log"
    log "redis-server listening on 127.0.0.1:$port (pid $STARTED_PID)"
}

# VALKEY_DEFAULT: the Valkey build the benchmarks compare with: $VALKEY_BIN, else the anchor
# in ../shared beside the repository (or beside its parent, for a git worktree under wt/).
VALKEY_DEFAULT="${VALKEY_BIN:-$CHKV_ROOT/../shared/anchors/valkey-8.0.1/valkey-server}"
if [[ -z "${VALKEY_BIN:-}" && ! -x "$VALKEY_DEFAULT" ]]; then
    VALKEY_DEFAULT="$CHKV_ROOT/../../shared/anchors/valkey-8.0.1/valkey-server"
fi

# start_valkey PORT BIN [EXTRA_ARGS...]: a throwaway valkey-server (BIN) on 127.0.0.1:PORT
# without persistence; waits until it listens. Sets STARTED_PID.
start_valkey() {
    local port=$1 bin=$2
    shift 2
    start_bg "valkey-server:$port" "$CHKV_TMP/valkey-$port.log" \
        "$bin" --save '' --appendonly no --port "$port" --bind 127.0.0.1 \
        --daemonize no --dir "$CHKV_TMP" "$@"
    wait_for_port "$port" "$CHKV_WAIT_TIMEOUT" "$STARTED_PID" "$CHKV_TMP/valkey-$port.log"
    log "valkey-server listening on 127.0.0.1:$port (pid $STARTED_PID)"
}

# cargo_target: the workspace's cargo target directory, absolute.
cargo_target() {
    local target=${CARGO_TARGET_DIR:-$CHKV_ROOT/target}
    [[ "$target" == /* ]] || target="$CHKV_ROOT/$target"
    printf '%s\n' "$target"
}

# cluster_bins: build the release NameNode and DataNode (cargo does nothing when they are
# fresh); sets NN_BIN and CHKV_BIN (exported). With CHKV_PREBUILT=DIR, the binaries of DIR are
# used instead and nothing is built (to compare two builds with one script).
cluster_bins() {
    if [[ -n "${CHKV_PREBUILT:-}" ]]; then
        NN_BIN="$CHKV_PREBUILT/chkv-namenode"
        CHKV_BIN="$CHKV_PREBUILT/chkv-datanode"
        [[ -x "$NN_BIN" && -x "$CHKV_BIN" ]] || die "CHKV_PREBUILT=$CHKV_PREBUILT: no chkv-namenode and chkv-datanode there"
        export CHKV_BIN
        return
    fi
    need_cmd cargo "cargo (install Rust with rustup)"
    local target
    target=$(cargo_target)
    log "building: cargo build --release -p chkv-namenode -p chkv-datanode"
    (cd "$CHKV_ROOT" && cargo build --release -q -p chkv-namenode -p chkv-datanode) ||
        die "build failed"
    NN_BIN="$target/release/chkv-namenode"
    CHKV_BIN="$target/release/chkv-datanode"
    export CHKV_BIN
}

# start_namenode DN_PORT CLIENT_PORT HTTP_PORT [FLAGS...]: run $NN_BIN (cluster_bins) on
# 127.0.0.1 with FLAGS; waits until its DataNode and watcher ports listen. Sets STARTED_PID.
start_namenode() {
    start_bg "chkv-namenode" "$CHKV_TMP/namenode.log" "$NN_BIN" --bind 127.0.0.1 \
        --datanode-port "$1" --client-port "$2" --http-port "$3" "${@:4}"
    wait_for_port "$1" "$CHKV_WAIT_TIMEOUT" "$STARTED_PID" "$CHKV_TMP/namenode.log"
    wait_for_port "$2" "$CHKV_WAIT_TIMEOUT" "$STARTED_PID" "$CHKV_TMP/namenode.log"
}

# cluster_secret_file: a cluster secret for local clusters, created once (32 random bytes
# as hex, mode 600) under the cargo target directory; prints its path.
cluster_secret_file() {
    local file
    file="$(cargo_target)/chkv-cluster-secret"
    if [[ ! -s $file ]]; then
        mkdir -p "$(dirname "$file")"
        (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$file")
    fi
    chmod 600 "$file"
    printf '%s\n' "$file"
}

# wait_full_ring NODES PORT...: wait (up to 20 s) until every DataNode at PORT reports
# cluster_state:ok with NODES known nodes, i.e. it has the whole ring.
wait_full_ring() {
    local nodes=$1 port info deadline=$((SECONDS + 20))
    shift
    for port in "$@"; do
        while :; do
            info=$(rcli "$port" CLUSTER INFO 2>/dev/null | tr -d '\r' || true)
            if grep -q "cluster_state:ok" <<<"$info" && grep -q "cluster_known_nodes:$nodes" <<<"$info"; then
                break
            fi
            ((SECONDS < deadline)) || die "DataNode $port did not receive the full ring within 20 s"
            sleep 0.2
        done
    done
}

# datanode_bin: resolve CHKV_BIN (env override) or the release binary of the workspace,
# building it with cargo when it is missing.
datanode_bin() {
    if [[ -n "${CHKV_BIN:-}" ]]; then
        if [[ "$CHKV_BIN" != */* ]]; then
            CHKV_BIN=$(command -v "$CHKV_BIN") || die "CHKV_BIN: '$CHKV_BIN' not found on PATH"
        fi
        [[ -x "$CHKV_BIN" && -f "$CHKV_BIN" ]] || die "CHKV_BIN=$CHKV_BIN is not an executable file"
    else
        CHKV_BIN="$(cargo_target)/release/chkv-datanode"
        if [[ ! -x "$CHKV_BIN" ]]; then
            need_cmd cargo "cargo (or install Rust with rustup)"
            log "$CHKV_BIN missing; building: cargo build --release -p chkv-datanode"
            (cd "$CHKV_ROOT" && cargo build --release -p chkv-datanode) ||
                die "cargo build --release -p chkv-datanode failed"
            [[ -x "$CHKV_BIN" ]] || die "build finished but $CHKV_BIN does not exist"
        fi
    fi
    export CHKV_BIN
}

# start_datanode PORT [EXTRA_DATANODE_ARGS...]: run $CHKV_BIN on 127.0.0.1:PORT; waits
# until it listens. Sets STARTED_PID.
start_datanode() {
    local port=$1
    shift
    datanode_bin
    start_bg "chkv-datanode:$port" "$CHKV_TMP/datanode-$port.log" \
        "$CHKV_BIN" --bind 127.0.0.1 --port "$port" "$@"
    wait_for_port "$port" "$CHKV_WAIT_TIMEOUT" "$STARTED_PID" "$CHKV_TMP/datanode-$port.log"
    log "chkv-datanode listening on 127.0.0.1:$port (pid $STARTED_PID)"
}

# admin_drain ADMIN_PORT TIMEOUT: `k` on a DataNode's admin port; prints what the node says
# until its summary ("drained: ..." or "drain incomplete ...") or until it closes the
# connection. A read waits at most TIMEOUT seconds.
admin_drain() {
    python3 - "$1" "$2" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=int(sys.argv[2]))
s.sendall(b"k\r\n")
buf = b""
while b"drained:" not in buf and b"drain incomplete" not in buf:
    chunk = s.recv(65536)
    if not chunk:
        break
    buf += chunk
print(buf.decode(errors="replace").replace("\r", ""))
PY
}

# rcli PORT ARGS...: redis-cli against 127.0.0.1:PORT, bounded by CHKV_CLI_TIMEOUT (30 s).
# make_test_certs DIR CA_NAME: a CA, a server and a client certificate (both for 127.0.0.1 and
# localhost, 2 days) made by openssl into DIR (ca.crt, server.crt/.key, client.crt/.key), for
# a test or benchmark run; dies with openssl's last lines on failure.
make_test_certs() {
    local dir=$1 ca_name=$2
    need_cmd openssl openssl
    mkdir -p "$dir"
    (
        cd "$dir"
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=$ca_name" \
            -keyout ca.key -out ca.crt
        for who in server client; do
            openssl req -newkey rsa:2048 -nodes -subj "/CN=$who" -keyout "$who.key" -out "$who.csr"
            printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$who.ext"
            openssl x509 -req -in "$who.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
                -extfile "$who.ext" -out "$who.crt"
        done
    ) >"$dir/openssl.log" 2>&1 || die "openssl failed: $(tail -n 5 "$dir/openssl.log")"
}

rcli() {
    local port=$1
    shift
    timeout "${CHKV_CLI_TIMEOUT:-30}" redis-cli -h 127.0.0.1 -p "$port" "$@"
}

# info_field PORT SECTION FIELD: one field of INFO SECTION (e.g. memory used_memory).
info_field() {
    rcli "$1" INFO "$2" | tr -d '\r' | awk -F: -v f="$3" '$1 == f { print $2; exit }'
}

# rss_bytes PID: resident set size of PID in bytes (VmRSS from /proc/PID/status).
rss_bytes() {
    local kb
    kb=$(awk '$1 == "VmRSS:" { print $2; exit }' "/proc/$1/status") ||
        die "cannot read /proc/$1/status"
    [[ "$kb" =~ ^[0-9]+$ ]] || die "no VmRSS in /proc/$1/status"
    echo $((kb * 1024))
}

# gen_resp CMD KEYFMT N [VALFMT]: write N RESP commands "CMD key [value]" to stdout for
# i = 0..N-1, key = printf(KEYFMT, i), value = printf(VALFMT, i). Feed to redis-cli --pipe.
gen_resp() {
    LC_ALL=C awk -v cmd="$1" -v kf="$2" -v n="$3" -v vf="${4:-}" 'BEGIN {
        for (i = 0; i < n; i++) {
            k = sprintf(kf, i)
            if (vf != "") {
                v = sprintf(vf, i)
                printf "*3\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(cmd), cmd, length(k), k, length(v), v
            } else {
                printf "*2\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(cmd), cmd, length(k), k
            }
        }
    }'
}

# pipe_load PORT: redis-cli --pipe from stdin into 127.0.0.1:PORT; prints redis-cli's summary
# ("errors: E, replies: R") and fails unless errors is 0.
pipe_load() {
    local out
    out=$(timeout "${CHKV_PIPE_TIMEOUT:-300}" redis-cli -h 127.0.0.1 -p "$1" --pipe 2>&1) ||
        die "redis-cli --pipe failed: $out"
    printf '%s\n' "$out" | tail -n 1
    [[ "$out" == *"errors: 0,"* ]] || die "redis-cli --pipe reported errors: $out"
}

# cpu_ticks PID...: user + system CPU time of the PIDs so far, summed, in clock ticks
# (getconf CLK_TCK a second).
cpu_ticks() {
    local pid total=0
    for pid in "$@"; do
        total=$((total + $(awk '{ print $14 + $15 }' "/proc/$pid/stat")))
    done
    echo "$total"
}

# median NUM...: median of the arguments (mean of the middle two for an even count).
median() {
    printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END {
        if (NR == 0) { print "n/a"; exit }
        if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2
    }'
}
