//! Bitmaps, LCS and HyperLogLog through the `redis` crate and raw RESP: replies, error texts,
//! and HyperLogLog bytes that round-trip with Redis's format.

use crate::util::*;

#[tokio::test]
async fn bit_commands() {
    bounded(async {
        let s = start().await;
        let c = &mut connect(s.addr()).await;
        assert_eq!(val(c, &["SETBIT", "b", "100", "1"]).await, int(0));
        assert_eq!(val(c, &["SETBIT", "b", "100", "0"]).await, int(1));
        assert_eq!(val(c, &["STRLEN", "b"]).await, int(13));
        assert_eq!(val(c, &["SETBIT", "b", "7", "1"]).await, int(0));
        assert_eq!(val(c, &["GETBIT", "b", "7"]).await, int(1));
        assert_eq!(val(c, &["BITCOUNT", "b"]).await, int(1));
        assert_eq!(val(c, &["BITPOS", "b", "1"]).await, int(7));
        assert_eq!(
            val(c, &["BITPOS", "b", "0", "0", "-1", "BIT"]).await,
            int(0)
        );
        assert_eq!(
            q_err(c, &["SETBIT", "b", "4294967296", "1"]).await,
            "ERR bit offset is not an integer or out of range"
        );
        assert_eq!(
            q_err(c, &["SETBIT", "b", "1", "x"]).await,
            "ERR bit is not an integer or out of range"
        );
        assert_eq!(val(c, &["SET", "f", "foobar"]).await, OK);
        assert_eq!(val(c, &["BITCOUNT", "f", "1", "1"]).await, int(6));
        assert_eq!(val(c, &["BITCOUNT", "f", "5", "30", "BIT"]).await, int(17));
        assert_eq!(val(c, &["BITOP", "NOT", "n", "f"]).await, int(6));
        assert_eq!(val(c, &["BITOP", "XOR", "x", "n", "f"]).await, int(6));
        assert_eq!(val(c, &["GET", "x"]).await, bulk([0xffu8; 6]));
        assert_eq!(
            val(
                c,
                &[
                    "BITFIELD", "bf", "SET", "i8", "#0", "-2", "INCRBY", "i8", "0", "3", "GET",
                    "u4", "4"
                ]
            )
            .await,
            redis::Value::Array(vec![int(0), int(1), int(1)])
        );
        assert_eq!(
            val(
                c,
                &["BITFIELD", "bf", "OVERFLOW", "FAIL", "INCRBY", "i8", "0", "200"]
            )
            .await,
            redis::Value::Array(vec![NIL])
        );
        assert_eq!(
            q_err(c, &["BITFIELD_RO", "bf", "INCRBY", "i8", "0", "1"]).await,
            "ERR BITFIELD_RO only supports the GET subcommand"
        );
        assert_eq!(
            val(c, &["MSET", "l1", "ohmytext", "l2", "mynewtext"]).await,
            OK
        );
        assert_eq!(val(c, &["LCS", "l1", "l2"]).await, bulk("mytext"));
        assert_eq!(val(c, &["LCS", "l1", "l2", "LEN"]).await, int(6));
    })
    .await
}

#[tokio::test]
async fn lcs_idx_reply_shapes() {
    bounded(async {
        let s = start().await;
        let mut r = Raw::connect(s.addr()).await;
        r.cmd(&["MSET", "a", "ohmytext", "b", "mynewtext"]).await;
        let want2 = "*4\r\n$7\r\nmatches\r\n*1\r\n*3\r\n*2\r\n:4\r\n:7\r\n*2\r\n:5\r\n:8\r\n:4\r\n$3\r\nlen\r\n:6\r\n";
        let got = r
            .cmd(&["LCS", "a", "b", "IDX", "MINMATCHLEN", "3", "WITHMATCHLEN"])
            .await;
        assert_eq!(show(&got), show(want2.as_bytes()));
        r.cmd(&["HELLO", "3"]).await;
        let got = r.cmd(&["LCS", "a", "b", "IDX", "MINMATCHLEN", "3"]).await;
        let want3 = "%2\r\n$7\r\nmatches\r\n*1\r\n*2\r\n*2\r\n:4\r\n:7\r\n*2\r\n:5\r\n:8\r\n$3\r\nlen\r\n:6\r\n";
        assert_eq!(show(&got), show(want3.as_bytes()));
    })
    .await
}

#[tokio::test]
async fn hyperloglog_bytes_round_trip() {
    bounded(async {
        let s = start().await;
        let c = &mut connect(s.addr()).await;
        assert_eq!(val(c, &["PFADD", "h", "a", "b", "c"]).await, int(1));
        // The exact bytes redis-server 7.0.15 holds after the same PFADD.
        let redis_bytes: &[u8] =
            b"HYLL\x01\0\0\0\0\0\0\0\0\0\0\x80\x60\xf3\x80\x50\xb1\x84\x4b\xfb\x80\x42\x5a";
        assert_eq!(val(c, &["GET", "h"]).await, bulk(redis_bytes));
        assert_eq!(val(c, &["PFCOUNT", "h"]).await, int(3));
        // An HLL SET from Redis's bytes is one: with a stale cache, counted again.
        let set: redis::Value = redis::cmd("SET")
            .arg("copy")
            .arg(redis_bytes)
            .query_async(c)
            .await
            .expect("set");
        assert_eq!(set, OK);
        assert_eq!(val(c, &["PFCOUNT", "copy"]).await, int(3));
        assert_eq!(val(c, &["PFADD", "h2", "c", "d"]).await, int(1));
        assert_eq!(val(c, &["PFCOUNT", "h", "h2"]).await, int(4));
        assert_eq!(val(c, &["PFMERGE", "m", "h", "h2"]).await, OK);
        assert_eq!(val(c, &["PFCOUNT", "m"]).await, int(4));
        assert_eq!(val(c, &["SET", "s", "plain"]).await, OK);
        assert_eq!(
            q_err(c, &["PFADD", "s", "x"]).await,
            "WRONGTYPE Key is not a valid HyperLogLog string value."
        );
        // Bytes after the registers (with a stale cache, as after any PFADD that changed it).
        assert_eq!(val(c, &["PFADD", "t", "a", "b", "c"]).await, int(1));
        assert_eq!(val(c, &["APPEND", "t", "junk"]).await, int(31));
        assert_eq!(
            q_err(c, &["PFCOUNT", "t"]).await,
            "INVALIDOBJ Corrupted HLL object detected"
        );
        assert_eq!(
            val(c, &["CONFIG", "SET", "hll-sparse-max-bytes", "100"]).await,
            OK
        );
        let elems: Vec<String> = (0..200).map(|i| format!("e{i}")).collect();
        let mut args = vec!["PFADD".to_string(), "big".to_string()];
        args.extend(elems);
        let _: i64 = q(c, &args).await;
        assert_eq!(val(c, &["STRLEN", "big"]).await, int(12304));
        assert_eq!(
            val(c, &["PFDEBUG", "ENCODING", "big"]).await,
            redis::Value::SimpleString("dense".into())
        );
    })
    .await
}
