#!/usr/bin/env bash
# helper/suite-floors.sh: runs Redis 7.0.15's own test suite against a standalone DataNode, one
# unit per line of .ci/suite-floors, and fails when a unit passes fewer tests than its floor.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    cat <<EOF
Usage: helper/suite-floors.sh [--floors FILE] [--suite DIR] [--port PORT] [--help]

Starts a standalone DataNode (\$CHKV_BIN, default \$ROOT/target/release/chkv-datanode, built
when missing) on a free 127.0.0.1 port, runs every unit named in the floors file with
Redis's own test suite (DIR/run.sh, default ../shared/redis-tests beside the repository), and
prints a table: unit, passes, floor, redis-server's passes (from the suite's README) and the
share of them. Exits 1 when any unit is below its floor or could not run.

Options:
  --floors FILE  the floors file (default .ci/suite-floors): lines "unit/NAME MIN_PASSES"
  --suite DIR    the folder holding run.sh and README.md of the Redis suite
  --port PORT    test a DataNode already running on 127.0.0.1:PORT instead of starting one
  --help         this text

Needs tclsh (apt-get install -y tcl).
EOF
}

FLOORS="$CHKV_ROOT/.ci/suite-floors"
SUITE="$(cd "$CHKV_ROOT/.." && pwd)/shared/redis-tests"
PORT=""
while [[ $# -gt 0 ]]; do
    case $1 in
        --floors) FLOORS=${2:?--floors needs a file}; shift 2 ;;
        --suite) SUITE=${2:?--suite needs a folder}; shift 2 ;;
        --port)
            [[ $# -ge 2 && "$2" =~ ^[0-9]+$ ]] || die "--port needs a number"
            PORT=$2
            shift 2
            ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done

[[ -f "$FLOORS" ]] || die "floors file $FLOORS not found"
[[ -x "$SUITE/run.sh" || -f "$SUITE/run.sh" ]] || die "Redis suite not found: $SUITE/run.sh"
need_cmd tclsh tcl

units=()
declare -A floor
while read -r unit min _; do
    [[ -z "$unit" || "$unit" == \#* ]] && continue
    [[ "$min" =~ ^[0-9]+$ ]] || die "$FLOORS: '$unit' needs a whole-number floor, got '$min'"
    units+=("$unit")
    floor[$unit]=$min
done <"$FLOORS"
if ((${#units[@]} == 0)); then
    log "no units in $FLOORS; nothing to check"
    exit 0
fi

# redis-server's passes per unit, from the suite's README table.
declare -A reference
while read -r unit n; do
    reference[$unit]=$n
done < <(awk -F'|' '{ for (i = 2; i + 1 <= NF; i += 2) { u = $i; n = $(i + 1); gsub(/ /, "", u); gsub(/ /, "", n); if (u ~ /^unit\// && n ~ /^[0-9]+$/) print u, n } }' "$SUITE/README.md")

chkv_init
if [[ -z "$PORT" ]]; then
    datanode_bin
    PORT=$(free_port)
    start_datanode "$PORT" --admin-port "$(free_port)"
fi

log "running ${#units[@]} units against 127.0.0.1:$PORT"
out="$CHKV_TMP/suite.out"
# The Tcl harness listens on a port just below --baseport (default 21111) for its test
# clients, checked free and then bound: two suite runs on one machine at the default collide
# ("couldn't open socket: address already in use") and every unit of the later one fails to
# start. A base port picked at random per run keeps concurrent runs apart. It stays below the
# kernel's ephemeral range (32768 and up here): a base of 48000 put the harness's port where an
# outgoing connection of another program held 127.0.0.1:47968 as its local port, and every unit
# failed to start ("address already in use") although the harness's own check had passed.
BASEPORT=$((22000 + (RANDOM % 100) * 100))
REDIS_SUITE_LOGDIR="$CHKV_TMP/suite-logs" REDIS_SUITE_EXTRA_ARGS="${REDIS_SUITE_EXTRA_ARGS:-} --baseport $BASEPORT" \
    bash "$SUITE/run.sh" 127.0.0.1 "$PORT" "${units[@]}" >"$out" || true

declare -A passed
while read -r unit rest; do
    unit=${unit%:}
    [[ "$rest" =~ passed=([0-9]+) ]] && passed[$unit]=${BASH_REMATCH[1]}
done < <(grep '^unit/' "$out")

bad=0
printf '%-28s %7s %6s %7s %6s\n' unit passed floor redis share
for unit in "${units[@]}"; do
    p=${passed[$unit]:-}
    ref=${reference[$unit]:-}
    share=-
    [[ -n "$p" && -n "$ref" && "$ref" -gt 0 ]] && share="$((p * 100 / ref))%"
    printf '%-28s %7s %6s %7s %6s' "$unit" "${p:-none}" "${floor[$unit]}" "${ref:--}" "$share"
    if [[ -z "$p" || "$p" -lt "${floor[$unit]}" ]]; then
        printf '   BELOW FLOOR\n'
        bad=1
    else
        printf '\n'
    fi
done
grep -E '^total:' "$out" || true # not the suite's own "N passed, M failed" line: our verdict is the floors
if ((bad)); then
    warn "suite logs kept in $CHKV_TMP/suite-logs"
    die "a unit passed fewer tests than its floor in $FLOORS"
fi
log "every unit at or above its floor"
