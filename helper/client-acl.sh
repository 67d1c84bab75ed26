#!/usr/bin/env bash
# helper/client-acl.sh: a real client against a DataNode: redis-py's own ACL tests (its test
# suite, from the redis-py source release) over plaintext, then redis-py over TLS
# (rediss://) logging in as an ACL user, with mutual TLS and certificates made for the run.
set -euo pipefail
# shellcheck shell=bash source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REDIS_PY=8.1.0
# redis-py's ACL tests that a server of Redis 7 semantics runs (the others need Redis 8
# and skip themselves). redis-server 7.0.15 passes 32 of them (6 test 7.2 behaviour).
FLOOR=38

usage() {
    cat <<EOF
Usage: helper/client-acl.sh [--floor N]

Starts a DataNode (\$CHKV_BIN, default target/release/chkv-datanode, built when missing)
with a plaintext port and a TLS port (client certificates required), then:
  1. redis-py $REDIS_PY's ACL tests (pytest tests/test_commands.py and
     tests/test_asyncio/test_commands.py -k acl) against the plaintext port; fails below
     --floor passes (default $FLOOR);
  2. redis-py with rediss://USER:PASS@... on the TLS port as a user limited to
     '~app:* +get +set +ping': SET/GET app:1 work, other keys and commands get NOPERM.
Installs what it needs with pip into a virtual environment in its temp dir (pytest,
pytest-asyncio, pytest-timeout, redis-py; the source release for its tests).
EOF
}

while [[ $# -gt 0 ]]; do
    case $1 in
        --floor) posint "$1" "${2:-}"; FLOOR=$2; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done

need_cmd python3 python3
need_cmd openssl openssl
chkv_init
datanode_bin

log "python environment (pip: redis==$REDIS_PY, pytest)"
python3 -m venv "$CHKV_TMP/venv" >"$CHKV_TMP/pip.log" 2>&1 ||
    die "python3 -m venv failed (apt-get install -y python3-venv): $(tail -n 3 "$CHKV_TMP/pip.log")"
PY="$CHKV_TMP/venv/bin/python"
"$PY" -m pip install -q "redis==$REDIS_PY" pytest pytest-asyncio pytest-timeout packaging \
    hatchling >>"$CHKV_TMP/pip.log" 2>&1 || die "pip install failed: $(tail -n 5 "$CHKV_TMP/pip.log")"
"$PY" -m pip download -q --no-deps --no-binary :all: --no-build-isolation "redis==$REDIS_PY" \
    -d "$CHKV_TMP/src" >>"$CHKV_TMP/pip.log" 2>&1 ||
    die "pip download of the redis-py source failed: $(tail -n 5 "$CHKV_TMP/pip.log")"
tar -xzf "$CHKV_TMP/src/redis-$REDIS_PY.tar.gz" -C "$CHKV_TMP/src"
SUITE="$CHKV_TMP/src/redis-$REDIS_PY"

CERTS="$CHKV_TMP/tls"
make_test_certs "$CERTS" "chkv test CA"

port=$(free_port)
tls_port=$(free_port)
start_datanode "$port" --tls-port "$tls_port" --tls-cert-file "$CERTS/server.crt" \
    --tls-key-file "$CERTS/server.key" --tls-ca-cert-file "$CERTS/ca.crt"

log "redis-py's ACL tests against 127.0.0.1:$port"
out="$CHKV_TMP/pytest.log"
rc=0
(cd "$SUITE" && timeout 900 "$PY" -m pytest tests/test_commands.py tests/test_asyncio/test_commands.py \
    -k acl --redis-url="redis://127.0.0.1:$port" -q -p no:cacheprovider -W ignore -rfs) >"$out" 2>&1 || rc=$?
summary=$(grep -E '^[0-9]+ (passed|failed)|^=+ .*(passed|failed)' "$out" | tail -n 1 | tr -d '=')
passed=$(grep -oE '[0-9]+ passed' <<<"$summary" | grep -oE '[0-9]+' || echo 0)
log "redis-py ACL tests: $summary"
if ((passed < FLOOR)); then
    grep -E '^(FAILED|ERROR)' "$out" | head -n 20 >&2 || tail -n 20 "$out" >&2
    die "redis-py ACL tests: $passed passed, below the floor of $FLOOR (pytest exit $rc)"
fi

log "redis-py over TLS (rediss://) as a restricted ACL user on 127.0.0.1:$tls_port"
CERTS="$CERTS" PORT="$tls_port" "$PY" - <<'EOF' || die "redis-py over TLS failed"
import os
import redis

certs, port = os.environ["CERTS"], int(os.environ["PORT"])
tls = dict(ssl_ca_certs=f"{certs}/ca.crt", ssl_certfile=f"{certs}/client.crt",
           ssl_keyfile=f"{certs}/client.key")
admin = redis.Redis.from_url(f"rediss://127.0.0.1:{port}/0", **tls)
assert admin.acl_setuser("app", enabled=True, passwords=["+app-secret"], keys=["app:*"],
                         commands=["+get", "+set", "+ping"])
app = redis.Redis.from_url(f"rediss://app:app-secret@127.0.0.1:{port}/0", **tls)
assert app.ping()
assert app.set("app:1", "hello")
assert app.get("app:1") == b"hello"
for denied in (lambda: app.get("other"), lambda: app.delete("app:1")):
    try:
        denied()
    except redis.exceptions.NoPermissionError:
        pass
    else:
        raise AssertionError("NOPERM expected")
assert admin.acl_whoami() == "default"
try:
    redis.Redis.from_url(f"rediss://app:wrong@127.0.0.1:{port}/0", **tls).ping()
except redis.exceptions.AuthenticationError:
    pass
else:
    raise AssertionError("a wrong password must fail")
print("rediss:// with an ACL user: ok")
EOF
log "all client checks passed"
