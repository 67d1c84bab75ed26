// @generated from the DataNode's command table by the test
// `routing::tests::the_key_table_is_derived_from_the_datanodes_command_table`; do not edit.
// After a change to that table: CHKV_BLESS=1 cargo test -p chkv-client --lib key_table

//! Which arguments of a command are keys, for the client's routing.

/// The key positions of the command `lower` (a lower-case name): the first, the last
/// (negative: counted from the end, -1 the last argument) and the step, as the DataNode's
/// command table has them; for a command whose keys a count announces, the first of them.
/// `None`: no keys (the command goes to any node).
pub(super) fn key_range(lower: &[u8]) -> Option<(usize, isize, usize)> {
    Some(match lower {
        b"blpop" | b"brpop" | b"bzpopmax" | b"bzpopmin" => (1, -2, 1),
        b"del" | b"exists" | b"mget" | b"pfcount" | b"pfmerge" | b"sdiff" | b"sdiffstore"
        | b"sinter" | b"sinterstore" | b"ssubscribe" | b"sunion" | b"sunionstore" | b"touch"
        | b"unlink" | b"watch" => (1, -1, 1),
        b"mset" | b"msetnx" => (1, -1, 2),
        b"append" | b"bitcount" | b"bitfield" | b"bitfield_ro" | b"bitpos" | b"decr" | b"decrby"
        | b"dump" | b"expire" | b"expireat" | b"expiretime" | b"geoadd" | b"geodist" | b"geohash"
        | b"geopos" | b"georadius" | b"georadius_ro" | b"georadiusbymember"
        | b"georadiusbymember_ro" | b"geosearch" | b"get" | b"getbit" | b"getdel" | b"getex"
        | b"getrange" | b"getset" | b"hdel" | b"hexists" | b"hget" | b"hgetall" | b"hincrby"
        | b"hincrbyfloat" | b"hkeys" | b"hlen" | b"hmget" | b"hmset" | b"hrandfield" | b"hscan"
        | b"hset" | b"hsetnx" | b"hstrlen" | b"hvals" | b"incr" | b"incrby" | b"incrbyfloat"
        | b"lindex" | b"linsert" | b"llen" | b"lpop" | b"lpos" | b"lpush" | b"lpushx" | b"lrange"
        | b"lrem" | b"lset" | b"ltrim" | b"persist" | b"pexpire" | b"pexpireat" | b"pexpiretime"
        | b"pfadd" | b"psetex" | b"pttl" | b"restore" | b"restore-asking" | b"rpop" | b"rpush"
        | b"rpushx" | b"sadd" | b"scard" | b"set" | b"setbit" | b"setex" | b"setnx" | b"setrange"
        | b"sismember" | b"smembers" | b"smismember" | b"sort" | b"sort_ro" | b"spop" | b"spublish"
        | b"srandmember" | b"srem" | b"sscan" | b"strlen" | b"substr" | b"ttl" | b"type" | b"zadd"
        | b"zcard" | b"zcount" | b"zdiffstore" | b"zincrby" | b"zinterstore" | b"zlexcount"
        | b"zmscore" | b"zpopmax" | b"zpopmin" | b"zrandmember" | b"zrange" | b"zrangebylex"
        | b"zrangebyscore" | b"zrank" | b"zrem" | b"zremrangebylex" | b"zremrangebyrank"
        | b"zremrangebyscore" | b"zrevrange" | b"zrevrangebylex" | b"zrevrangebyscore"
        | b"zrevrank" | b"zscan" | b"zscore" | b"zunionstore" => (1, 1, 1),
        b"blmove" | b"brpoplpush" | b"copy" | b"geosearchstore" | b"lcs" | b"lmove" | b"rename"
        | b"renamenx" | b"rpoplpush" | b"smove" | b"zrangestore" => (1, 2, 1),
        b"bitop" => (2, -1, 1),
        b"lmpop" | b"memory" | b"object" | b"pfdebug" | b"sintercard" | b"zdiff" | b"zinter"
        | b"zintercard" | b"zmpop" | b"zunion" => (2, 2, 1),
        b"blmpop" | b"bzmpop" => (3, 3, 1),
        _ => return None,
    })
}
