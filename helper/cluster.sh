#!/usr/bin/env bash
# helper/cluster.sh: build and run a local CHKV cluster (one NameNode, N DataNodes) on
# 127.0.0.1, print how to connect, and stop everything on Ctrl-C.
#
#   helper/cluster.sh                 # NameNode + 3 DataNodes, until Ctrl-C
#   helper/cluster.sh --nodes 5
#   helper/cluster.sh --check         # start, verify with redis-cli, stop (CI smoke test)
#   helper/cluster.sh add             # (another shell) one more DataNode for the running cluster
#   helper/cluster.sh drain N         # (another shell) drain DataNode N (`k` on its admin port)
#   helper/cluster.sh status          # (another shell) the running cluster's nodes
#
# Ports (defaults): NameNode 10101 (DataNodes), 10102 (clients), 10180 (HTTP);
# DataNode i: RESP 10100+10*i, admin 20000+i; when any of them is taken (another cluster is
# running), free ports for everything. Each cluster gets a name of its own (--cluster-name),
# so a node never joins another local cluster, even on a port mix-up. A DataNode that dies is reported and the
# others keep running (try the README's crash experiment with kill -9). Logs are kept under
# target/chkv-cluster/ while it runs, and removed on a clean stop (Ctrl-C with no node lost).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The running cluster's directory (logs and the `nodes` file) is named here, so `add`,
# `drain` and `status` in another shell find it.
CLUSTER_HOME="$(cargo_target)/chkv-cluster"
CURRENT="$CLUSTER_HOME/current"

# running_dir: the running cluster's directory, or die.
running_dir() {
    local dir
    [[ -f "$CURRENT" ]] && dir=$(<"$CURRENT")
    [[ -n "${dir:-}" && -f "$dir/nodes" ]] ||
        die "no local cluster is running (start one with helper/cluster.sh)"
    pid_alive "$(awk '$1 == "namenode" { print $5 }' "$dir/nodes")" ||
        die "the cluster in $dir is not running any more (its NameNode is gone)"
    echo "$dir"
}

# The `nodes` file: "namenode DN_PORT CLIENT_PORT HTTP_PORT PID" and one
# "datanode INDEX PORT ADMIN_PORT PID" per DataNode ever started.
cmd_status() {
    local dir
    dir=$(running_dir)
    local kind a b c pid
    while read -r kind a b c pid; do
        local state=running
        pid_alive "$pid" || state=gone
        if [[ $kind == namenode ]]; then
            echo "NameNode      DataNodes 127.0.0.1:$a  clients 127.0.0.1:$b  http://127.0.0.1:$c/  pid $pid  $state"
        else
            echo "DataNode $a    127.0.0.1:$b  admin 127.0.0.1:$c  pid $pid  $state"
        fi
    done <"$dir/nodes"
}

cmd_add() {
    local dir nn_port index port admin
    dir=$(running_dir)
    nn_port=$(awk '$1 == "namenode" { print $2 }' "$dir/nodes")
    index=$(awk '$1 == "datanode" { n = $2 + 1 > n ? $2 + 1 : n } END { print n + 0 }' "$dir/nodes")
    # Reuse the running cluster's directory for the log and its list of ports handed out,
    # without taking over its cleanup: the running script stops this node too.
    CHKV_TMP=$dir
    port=$(free_port)
    admin=$(free_port)
    cluster_bins
    # The secret the running cluster was started with (created once, kept under target/),
    # and its name.
    start_datanode "$port" --namenode "127.0.0.1:$nn_port" --admin-port "$admin" \
        --cluster-secret-file "$(cluster_secret_file)" --cluster-name "$(<"$dir/cluster-name")"
    echo "datanode $index $port $admin $STARTED_PID" >>"$dir/nodes"
    # Leave it running when this script exits.
    CHKV_PIDS=()
    log "DataNode $index joined: 127.0.0.1:$port, admin 127.0.0.1:$admin, pid $STARTED_PID"
}

cmd_drain() {
    local n=$1 dir admin line
    dir=$(running_dir)
    admin=$(awk -v n="$n" '$1 == "datanode" && $2 == n { print $4 }' "$dir/nodes")
    [[ -n "$admin" ]] || die "no DataNode $n in this cluster (see helper/cluster.sh status)"
    log "draining DataNode $n through its admin port 127.0.0.1:$admin"
    exec 3<>"/dev/tcp/127.0.0.1/$admin" || die "DataNode $n's admin port 127.0.0.1:$admin does not answer"
    # Tells the running script this node leaves on purpose (before it is gone).
    echo "drained $n" >>"$dir/nodes"
    printf 'k\n' >&3
    # The node reports progress and closes the connection when it has drained and exits.
    while IFS= read -r -t 120 line <&3; do
        printf '%s\n' "${line%$'\r'}"
    done
    exec 3<&-
}

case "${1:-}" in
status) cmd_status; exit 0 ;;
add) cmd_add; exit 0 ;;
drain)
    [[ $# -eq 2 && "$2" =~ ^[0-9]+$ ]] || die "usage: helper/cluster.sh drain N (N from helper/cluster.sh status)"
    cmd_drain "$2"
    exit 0
    ;;
esac

NODES=3
BASE_PORT=10100
ADMIN_BASE=20000
NN_DN_PORT=10101
NN_CLIENT_PORT=10102
NN_HTTP_PORT=10180
CHECK=0
FREE_PORTS=0

usage() {
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
    cat <<USAGE
Options:
  --nodes N         DataNodes to start (default $NODES)
  --base-port P     RESP port of the first DataNode (default $BASE_PORT; then +10 each)
  --admin-base P    admin port of the first DataNode (default $ADMIN_BASE; then +1 each)
  --namenode-port P NameNode ports P (DataNodes), P+1 (clients), P+2 (HTTP)
  --free-ports      pick free ports for everything instead of the defaults
  --check           start, wait for the ring, check with redis-cli, then stop
  -h, --help        this text
USAGE
}

while (($#)); do
    case $1 in
    --nodes) NODES=$2; shift 2 ;;
    --base-port) BASE_PORT=$2; shift 2 ;;
    --admin-base) ADMIN_BASE=$2; shift 2 ;;
    --namenode-port) NN_DN_PORT=$2; NN_CLIENT_PORT=$(($2 + 1)); NN_HTTP_PORT=$(($2 + 2)); shift 2 ;;
    --free-ports) FREE_PORTS=1; shift ;;
    --check) CHECK=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
    esac
done
[[ "$NODES" =~ ^[1-9][0-9]*$ ]] || die "--nodes takes a positive number"

mkdir -p "$CLUSTER_HOME"
CHKV_TMP_PARENT=$CLUSTER_HOME chkv_init
cluster_bins

# The fixed ports only when nobody listens on any of them: a second cluster started beside a
# running one takes free ports instead of reaching the running one's nodes.
if ((!FREE_PORTS)); then
    for p in "$NN_DN_PORT" "$NN_CLIENT_PORT" "$NN_HTTP_PORT" \
        $(for ((i = 0; i < NODES; i++)); do echo $((BASE_PORT + 10 * i)) $((ADMIN_BASE + i)); done); do
        if port_open "$p"; then
            log "port $p is taken (another cluster running?): using free ports instead"
            FREE_PORTS=1
            break
        fi
    done
fi
if ((FREE_PORTS)); then
    NN_DN_PORT=$(free_port)
    NN_CLIENT_PORT=$(free_port)
    NN_HTTP_PORT=$(free_port)
fi

# Members prove this secret to the NameNode and to each other (README, "Security").
SECRET_FILE=$(cluster_secret_file)
# Local clusters share that secret; their names keep them apart.
CLUSTER_NAME="local-$(date +%s)-$$"
echo "$CLUSTER_NAME" >"$CHKV_TMP/cluster-name"
start_namenode "$NN_DN_PORT" "$NN_CLIENT_PORT" "$NN_HTTP_PORT" --cluster-secret-file "$SECRET_FILE" \
    --cluster-name "$CLUSTER_NAME"
echo "namenode $NN_DN_PORT $NN_CLIENT_PORT $NN_HTTP_PORT $STARTED_PID" >"$CHKV_TMP/nodes"

DN_PORTS=()
for ((i = 0; i < NODES; i++)); do
    if ((FREE_PORTS)); then
        port=$(free_port)
        admin=$(free_port)
    else
        port=$((BASE_PORT + 10 * i))
        admin=$((ADMIN_BASE + i))
    fi
    start_datanode "$port" --namenode "127.0.0.1:$NN_DN_PORT" --admin-port "$admin" \
        --cluster-secret-file "$SECRET_FILE" --cluster-name "$CLUSTER_NAME"
    echo "datanode $i $port $admin $STARTED_PID" >>"$CHKV_TMP/nodes"
    DN_PORTS+=("$port")
done

wait_full_ring "$NODES" "${DN_PORTS[@]}"

cat <<INFO

CHKV cluster is up: NameNode + $NODES DataNodes on 127.0.0.1.
  NameNode:   DataNodes 127.0.0.1:$NN_DN_PORT, watchers 127.0.0.1:$NN_CLIENT_PORT, status http://127.0.0.1:$NN_HTTP_PORT/
  DataNodes:  ${DN_PORTS[*]}
  Connect:    redis-cli -p ${DN_PORTS[0]}          (any DataNode serves any key)
              redis-cli -c -p ${DN_PORTS[0]} CLUSTER SLOTS
  Secret:     $SECRET_FILE (--cluster-secret-file for nodes that join this cluster)
  Name:       $CLUSTER_NAME (--cluster-name for nodes that join this cluster)
  Logs:       $CHKV_TMP
  More:       helper/cluster.sh add | drain N | status   (from another shell)
INFO

if ((CHECK)); then
    p0=${DN_PORTS[0]}
    for i in $(seq 1 200); do
        [[ $(redis-cli -p "$p0" SET "check:$i" "v$i") == OK ]] || die "SET check:$i via $p0 failed"
    done
    for port in "${DN_PORTS[@]}"; do
        for i in 1 57 200; do
            got=$(redis-cli -p "$port" GET "check:$i")
            [[ $got == "v$i" ]] || die "GET check:$i via $port gave '$got'"
        done
    done
    total=0
    for port in "${DN_PORTS[@]}"; do
        n=$(redis-cli -p "$port" DBSIZE)
        total=$((total + n))
    done
    ((total == 200)) || die "keys across nodes: $total, expected 200"
    got=$(redis-cli -c -p "$p0" GET "check:7")
    [[ $got == "v7" ]] || die "redis-cli -c GET check:7 gave '$got'"
    log "check passed: 200 keys written through $p0, read through every node, spread over $NODES nodes"

    # The subcommands, as another shell would use them: add a node, drain the first one.
    echo "$CHKV_TMP" >"$CURRENT"
    "$0" add || die "helper/cluster.sh add failed"
    added=$(awk '$1 == "datanode" && $2 == '"$NODES"' { print $3 }' "$CHKV_TMP/nodes")
    wait_full_ring $((NODES + 1)) "${DN_PORTS[@]}" "$added"
    drain_pid=$(awk '$1 == "datanode" && $2 == 0 { print $5 }' "$CHKV_TMP/nodes")
    "$0" drain 0 || die "helper/cluster.sh drain 0 failed"
    for ((n = 0; n < 100; n++)); do
        pid_alive "$drain_pid" || break
        sleep 0.1
    done
    stop_pid "$drain_pid"
    [[ $STOP_STATUS == 0 ]] || die "the drained DataNode exited with status $STOP_STATUS"
    p1=$added
    for i in $(seq 1 200); do
        got=$(redis-cli -p "$p1" GET "check:$i")
        [[ $got == "v$i" ]] || die "after add and drain: GET check:$i via $p1 gave '$got'"
    done
    # The added node is ours to stop (it is not a child of this shell).
    added_pid=$(awk '$1 == "datanode" && $2 == '"$NODES"' { print $5 }' "$CHKV_TMP/nodes")
    CHKV_PIDS+=("$added_pid")
    rm -f "$CURRENT"
    log "check passed: add joined a node, drain 0 moved its slots away and it exited 0; all 200 keys readable"
    exit 0
fi

echo "$CHKV_TMP" >"$CURRENT"
# Ctrl-C is the normal way to stop: a clean stop removes the logs unless a node was lost.
LOST=0
trap 'log "stopping the cluster"; rm -f "$CURRENT"; exit $((LOST ? 1 : 0))' INT TERM
echo "Press Ctrl-C to stop the cluster."
declare -A SEEN_GONE INDEX_OF DRAINED
while :; do
    # Nodes added from another shell (helper/cluster.sh add) are stopped with the others.
    while read -r kind index port _ pid; do
        if [[ $kind == drained ]]; then
            DRAINED[$index]=1
            continue
        fi
        [[ $kind == datanode ]] || continue
        INDEX_OF[$pid]=$index
        if [[ -z "${CHKV_PID_NAME[$pid]:-}" && -z "${SEEN_GONE[$pid]:-}" ]]; then
            CHKV_PIDS+=("$pid")
            CHKV_PID_NAME[$pid]="chkv-datanode:$port"
        fi
    done <"$CHKV_TMP/nodes"
    for i in "${!CHKV_PIDS[@]}"; do
        pid=${CHKV_PIDS[i]}
        if [[ -z "$pid" ]] || pid_alive "$pid"; then
            continue
        fi
        name=${CHKV_PID_NAME[$pid]:-pid $pid}
        status=0
        wait "$pid" 2>/dev/null || status=$?
        # A DataNode drained with `k` (helper/cluster.sh drain N) hands its slots over and
        # exits 0; anything else lost what it held. Either way the others keep running.
        drained=${DRAINED[${INDEX_OF[$pid]:-none}]:-}
        if [[ $name == chkv-datanode:* && ($status == 0 || -n "$drained") ]]; then
            log "$name drained and exited; the cluster goes on without it"
        elif [[ $name == chkv-namenode ]]; then
            LOST=1
            warn "$name exited (status $status): DataNodes keep serving with their last table, but nothing can join or leave; log: $CHKV_TMP/namenode.log"
        else
            LOST=1
            warn "$name exited (status $status); the other nodes keep running; log: $CHKV_TMP/datanode-${name#chkv-datanode:}.log"
        fi
        SEEN_GONE[$pid]=1
        CHKV_PIDS[i]=""
        unset "CHKV_PID_NAME[$pid]"
    done
    sleep 1
done
