//! Forwarded and split replies keep the protocol of the client's connection: RESP3 after
//! `HELLO 3`, RESP2 otherwise, on the same node at the same time.

use crate::util::*;

fn bulk_bytes(v: &str) -> String {
    format!("${}\r\n{v}\r\n", v.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resp3_connections_get_resp3_from_forwarded_and_split_requests() {
    bounded(async {
        let cluster = Cluster::start(3).await;
        let addrs = cluster.addrs();
        let map = SlotMap::of(addrs[0]).await;
        let foreign = map.keys_of(addrs[1], "r3:", 2);
        let other = map.keys_of(addrs[2], "r3:", 1).remove(0);
        let mine = map.keys_of(addrs[0], "r3:", 1).remove(0);

        let mut r3 = Raw::connect(addrs[0]).await;
        let hello = r3.cmd(&["HELLO", "3"]).await;
        assert!(
            hello.starts_with(b"%"),
            "HELLO 3 answers a map: {}",
            show(&hello)
        );
        let mut r2 = Raw::connect(addrs[0]).await;

        // A missing key owned by another node: RESP3 null, RESP2 null bulk.
        assert_eq!(r3.cmd(&["GET", &foreign[0]]).await, "_\r\n");
        assert_eq!(r2.cmd(&["GET", &foreign[0]]).await, "$-1\r\n");
        assert_eq!(r3.cmd(&["EXISTS", &foreign[0]]).await, ":0\r\n");

        assert_eq!(r3.cmd(&["SET", &foreign[0], "one"]).await, "+OK\r\n");
        assert_eq!(r3.cmd(&["SET", &other, "three"]).await, "+OK\r\n");
        assert_eq!(r3.cmd(&["SET", &mine, "mine"]).await, "+OK\r\n");
        assert_eq!(
            r3.cmd(&["GET", &foreign[0]]).await,
            bulk_bytes("one").as_str()
        );

        // Split over three owners, with a miss on one of them, merged in key order.
        let want3 = format!(
            "*5\r\n{}_\r\n{}{}_\r\n",
            bulk_bytes("one"),
            bulk_bytes("three"),
            bulk_bytes("mine")
        );
        let want2 = want3.replace("_\r\n", "$-1\r\n");
        let mget = [
            "MGET",
            &foreign[0],
            &foreign[1],
            &other,
            &mine,
            "r3:nowhere",
        ];
        assert_eq!(show(&r3.cmd(&mget).await), show(want3.as_bytes()));
        assert_eq!(show(&r2.cmd(&mget).await), show(want2.as_bytes()));

        // Other forwarded replies: integers, a bulk then a null, an error.
        assert_eq!(r3.cmd(&["PEXPIRE", &foreign[0], "100000"]).await, ":1\r\n");
        assert_eq!(
            r3.cmd(&["GETDEL", &foreign[0]]).await,
            bulk_bytes("one").as_str()
        );
        assert_eq!(r3.cmd(&["GETDEL", &foreign[0]]).await, "_\r\n");
        assert_eq!(
            r3.cmd(&["INCRBYFLOAT", &other, "1"]).await,
            "-ERR value is not a valid float\r\n"
        );
        cluster.shutdown().await;
    })
    .await;
}
