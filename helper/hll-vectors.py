#!/usr/bin/env python3
"""Derives HyperLogLog test vectors from a running redis-server (7.0.15 for the checked-in
file): runs each case's commands, then records the key's bytes, PFCOUNT, and the bytes after
PFCOUNT (with the cached count). Writes one line per record:

    case NAME
    cmd ARG ARG ...          (arguments hex-encoded, `-` for an empty one)
    pfadd KEY PREFIX LO HI N (PFADD of PREFIX+i for i in LO..HI, N per command; `-` for
                              an empty prefix)
    bytes KEY HEX|fnv64:HEX  (sparse HLLs in full, dense ones by their FNV-1a 64 digest)
    count KEY N

Usage: helper/hll-vectors.py PORT > datanode/src/hll_vectors.txt
The unit test `hll::tests::redis_vectors` replays every case against CHKV's code.
"""
import socket, sys

port = int(sys.argv[1])
sock = socket.create_connection(("127.0.0.1", port))
f = sock.makefile("rb")

def cmd(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    sock.sendall(out)
    return read()

def read():
    line = f.readline()
    t, rest = line[:1], line[1:-2]
    if t == b"+":
        return rest.decode()
    if t == b"-":
        raise RuntimeError(rest.decode())
    if t == b":":
        return int(rest)
    if t == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data
    if t == b"*":
        return [read() for _ in range(int(rest))]
    raise RuntimeError(line)

def fnv(b):
    h = 0xcbf29ce484222325
    for x in b:
        h ^= x
        h = (h * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h

def enc(b):
    return b.hex() if len(b) < 12304 else "fnv64:%016x" % fnv(b)

def run(*args):
    print("cmd " + " ".join((a.encode() if isinstance(a, str) else a).hex() or "-" for a in args))
    cmd(*args)

def record(key):
    print("bytes %s %s" % (key, enc(cmd("GET", key))))
    print("count %s %d" % (key, cmd("PFCOUNT", key)))
    print("bytes %s %s" % (key, enc(cmd("GET", key))))

def pfadd(key, prefix, lo, hi, batch=1000):
    """PFADD of PREFIX+str(i) for i in lo..hi, BATCH per command: one `pfadd` line."""
    print("pfadd %s %s %d %d %d" % (key, prefix or "-", lo, hi, batch))
    elems = [prefix + str(i) for i in range(lo, hi)]
    for i in range(0, len(elems), batch):
        cmd("PFADD", key, *elems[i:i + batch])

cases = []
def case(fn):
    cases.append(fn)
    return fn

@case
def abc():
    run("PFADD", "k", "a", "b", "c"); record("k")

@case
def empty():
    run("PFADD", "k"); record("k")

@case
def tails():
    run("PFADD", "k", *([b"x" * n for n in range(41)] + [bytes(range(n)) for n in range(1, 30)])); record("k")

@case
def num100():
    pfadd("k", "", 0, 100); record("k")

@case
def seq1000():
    pfadd("k", "e", 0, 1000); record("k")

@case
def one_by_one():
    pfadd("k", "o", 0, 300, 1); record("k")

@case
def dense5000():
    pfadd("k", "e", 0, 5000); record("k")

@case
def dense100k():
    pfadd("k", "n", 0, 100000); record("k")

@case
def small_max():
    run("CONFIG", "SET", "hll-sparse-max-bytes", "200")
    pfadd("k", "s", 0, 300)
    run("CONFIG", "SET", "hll-sparse-max-bytes", "3000")
    record("k")

@case
def merge_sparse():
    pfadd("a{m}", "x", 0, 50)
    pfadd("b{m}", "y", 0, 50)
    run("PFMERGE", "d{m}", "a{m}", "b{m}")
    record("d{m}"); record("a{m}")

@case
def merge_dense():
    pfadd("a{m}", "e", 0, 5000)
    pfadd("b{m}", "x", 0, 100)
    run("PFMERGE", "b{m}", "a{m}")
    record("b{m}")

@case
def merge_empty():
    run("PFMERGE", "d{m}", "nothing{m}"); record("d{m}")

@case
def merge_high():
    pfadd("a{m}", "e", 0, 5000)
    run("SETRANGE", "a{m}", "16", b"\x3f\x0f")
    pfadd("b{m}", "x", 0, 10)
    run("PFMERGE", "b{m}", "a{m}")
    record("b{m}"); record("a{m}")

@case
def count_multi():
    pfadd("a{m}", "e", 0, 3000)
    pfadd("b{m}", "e", 2000, 6000)
    pfadd("c{m}", "z", 0, 10)
    print("multicount %d" % cmd("PFCOUNT", "a{m}", "b{m}", "c{m}"))

print("# HyperLogLog vectors from %s (helper/hll-vectors.py)" % cmd("INFO", "server").split(b"\r\n")[1].decode())
for c in cases:
    cmd("FLUSHALL")
    print("case " + c.__name__)
    c()
