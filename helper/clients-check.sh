#!/usr/bin/env bash
# helper/clients-check.sh: real clients (redis-py) against a 3-node CHKV cluster of real
# binaries while a fourth node joins and the first one drains (run by CI).
#
# Starts a NameNode and 3 DataNodes on free 127.0.0.1 ports, runs helper/clients_check.py
# (transactional pipelines, a WATCH loop under contention, a Lua lock release, a Lua
# token-bucket limiter; every count exact, see its docstring) against all of them; once
# every client worker has done some operations, starts a fourth DataNode, waits until the
# ring has it, drains DataNode 0 through its admin port (`k`) and waits for it to exit 0;
# then the clients do some more operations through the remaining nodes and check their
# results through each of them. Exits non-zero at the first failure.
#
# Needs python3 with the `redis` package (pip install redis). Environment: CHKV_KEEP_TMP=1
# keeps the logs even on success.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

case "${1:-}" in
-h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
"") ;;
*) die "unknown option $1 (see --help)" ;;
esac

need_cmd python3 python3
python3 -c 'import redis' 2>/dev/null || die "python3 has no 'redis' package: pip install redis"
need_cmd redis-cli redis-tools

chkv_init
cluster_bins
SECRET_FILE=$(cluster_secret_file)
NN_DN=$(free_port)
start_namenode "$NN_DN" "$(free_port)" "$(free_port)" --cluster-secret-file "$SECRET_FILE"
PORTS=()
ADMINS=()
PIDS=()
# --shutdown-timeout 2: SIGTERM (the cleanup at exit) drains a node for at most 2 s, so the
# last nodes, with nowhere to hand their slots, stop quickly. The drain under test is `k`.
add_node() {
    local port admin
    port=$(free_port)
    admin=$(free_port)
    start_datanode "$port" --namenode "127.0.0.1:$NN_DN" --admin-port "$admin" \
        --cluster-secret-file "$SECRET_FILE" --shutdown-timeout 2
    PORTS+=("$port")
    ADMINS+=("$admin")
    PIDS+=("$STARTED_PID")
}
for _ in 1 2 3; do add_node; done
wait_full_ring 3 "${PORTS[@]}"
log "cluster up: DataNodes ${PORTS[*]}"

CTL="$CHKV_TMP/control"
mkdir -p "$CTL"
start_bg "clients" "$CHKV_TMP/clients.log" \
    python3 -u "$CHKV_ROOT/helper/clients_check.py" --ports "$(IFS=,; echo "${PORTS[*]}")" \
    --drain-port "${PORTS[0]}" --control "$CTL"
CLIENTS=$STARTED_PID

# wait_for FILE SECONDS WHAT: until the clients write FILE (they must still run meanwhile).
wait_for() {
    local deadline=$((SECONDS + $2))
    until [[ -e "$CTL/$1" ]]; do
        if ! pid_alive "$CLIENTS"; then
            cat "$CHKV_TMP/clients.log" >&2
            die "the clients stopped before $3"
        fi
        ((SECONDS < deadline)) || die "the clients did not get $3 within $2 s"
        sleep 0.2
    done
}
wait_for ready 300 "ready"

# A node joins while the clients run.
add_node
wait_full_ring 4 "${PORTS[@]}"
printf '%s\n' "${PORTS[3]}" >"$CTL/joined.tmp"
mv "$CTL/joined.tmp" "$CTL/joined"
log "DataNode ${PORTS[3]} joined; draining DataNode ${PORTS[0]} (admin ${ADMINS[0]})"

# And another drains (its slots may still be moving to the new node: the moves overlap).
: >"$CTL/draining"
exec 3<>"/dev/tcp/127.0.0.1/${ADMINS[0]}" || die "admin port ${ADMINS[0]} does not answer"
printf 'k\n' >&3
last=""
while IFS= read -r -t 300 line <&3; do
    last=${line%$'\r'}
done
exec 3<&-
log "admin: $last"
[[ $last == drained:* ]] || die "the drain did not report its end (last line: '$last')"
for ((n = 0; n < 600; n++)); do
    pid_alive "${PIDS[0]}" || break
    sleep 0.1
done
stop_pid "${PIDS[0]}"
[[ $STOP_STATUS == 0 ]] || die "the drained DataNode exited with status $STOP_STATUS"
wait_full_ring 3 "${PORTS[@]:1}"
: >"$CTL/done"
log "DataNode ${PORTS[0]} drained and exited 0; the clients finish through ${PORTS[*]:1}"

status=0
wait "$CLIENTS" || status=$?
CHKV_PIDS=("${CHKV_PIDS[@]/#$CLIENTS/}")
cat "$CHKV_TMP/clients.log"
((status == 0)) || die "client checks failed (exit $status)"
log "redis-py clients exact through a join and a drain"
