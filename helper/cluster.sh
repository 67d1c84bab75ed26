#!/usr/bin/env bash
# helper/cluster.sh: build and run a local CHKV cluster (one NameNode, N DataNodes) on
# 127.0.0.1, print how to connect, and stop everything on Ctrl-C.
#
#   helper/cluster.sh                 # NameNode + 3 DataNodes, until Ctrl-C
#   helper/cluster.sh --nodes 5
#   helper/cluster.sh --check         # start, verify with redis-cli, stop (CI smoke test)
#
# Ports (defaults): NameNode 10101 (DataNodes), 10102 (clients), 10180 (HTTP);
# DataNode i: RESP 10100+10*i, admin 20000+i.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NODES=3
BASE_PORT=10100
ADMIN_BASE=20000
NN_DN_PORT=10101
NN_CLIENT_PORT=10102
NN_HTTP_PORT=10180
CHECK=0
FREE_PORTS=0

usage() {
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
    cat <<USAGE
Options:
  --nodes N         DataNodes to start (default $NODES)
  --base-port P     RESP port of the first DataNode (default $BASE_PORT; then +10 each)
  --free-ports      pick free ports for everything instead of the defaults
  --check           start, wait for the ring, check with redis-cli, then stop
  -h, --help        this text
USAGE
}

while (($#)); do
    case $1 in
    --nodes) NODES=$2; shift 2 ;;
    --base-port) BASE_PORT=$2; shift 2 ;;
    --free-ports) FREE_PORTS=1; shift ;;
    --check) CHECK=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
    esac
done
[[ "$NODES" =~ ^[1-9][0-9]*$ ]] || die "--nodes takes a positive number"

chkv_init
cluster_bins

if ((FREE_PORTS)); then
    NN_DN_PORT=$(free_port)
    NN_CLIENT_PORT=$(free_port)
    NN_HTTP_PORT=$(free_port)
fi

# Members prove this secret to the NameNode and to each other (README, "Security").
SECRET_FILE=$(cluster_secret_file)
start_namenode "$NN_DN_PORT" "$NN_CLIENT_PORT" "$NN_HTTP_PORT" --cluster-secret-file "$SECRET_FILE"

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
        --cluster-secret-file "$SECRET_FILE"
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
  Logs:       $CHKV_TMP
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
    exit 0
fi

echo "Press Ctrl-C to stop the cluster."
while :; do
    for i in "${!CHKV_PIDS[@]}"; do
        pid=${CHKV_PIDS[i]}
        if [[ -z "$pid" ]] || pid_alive "$pid"; then
            continue
        fi
        name=${CHKV_PID_NAME[$pid]:-pid $pid}
        status=0
        wait "$pid" 2>/dev/null || status=$?
        # A DataNode drained with `k` on its admin port hands its slots over and exits 0;
        # the cluster goes on without it. Any other exit is a failure.
        if [[ $name == chkv-datanode:* && $status == 0 ]]; then
            log "$name drained and exited; the cluster goes on without it"
            CHKV_PIDS[i]=""
            unset "CHKV_PID_NAME[$pid]"
        else
            die "$name exited (status $status); see $CHKV_TMP"
        fi
    done
    sleep 1
done
