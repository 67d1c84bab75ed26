//! The DataNode's side of cluster trust (design: "Trust"; the exchange itself is in
//! `chkv_common::auth`).
//!
//! - [`check_config`]: refuses a node id that is not 1-64 printable bytes, and, for a node in
//!   a cluster without a cluster secret, any address beyond loopback.
//! - The peer handshake over RESP. A DataNode's connections to another (forwarding, handoff)
//!   open with `CLUSTER PEERHELLO <my-id> <nonce>`, answered with the acceptor's id, nonce and
//!   proof, then `CLUSTER PEERAUTH <proof>`. On success the connection is a *peer session*
//!   bound to the connector's node id: it needs no `requirepass` (so rotating the password
//!   never breaks links), and it alone may run internal commands (CLUSTER IMPORT, HANDOFF).
//! - [`may_receive`]: an authenticated peer may import into or hand over only slots this
//!   node is receiving from that very peer, by its current table.

use crate::cluster::Routing;
use crate::config::Config;
use crate::resp::{Frame, Request};
use chkv_common::auth::{
    check_node_id, decode32, nonce, require_loopback, ClusterSecret, Nonce, Purpose, Side,
    Transcript,
};
use std::net::SocketAddr;

/// Refuses settings that would let strangers in: see the module docs.
pub fn check_config(c: &Config) -> std::io::Result<()> {
    let invalid = |e: chkv_common::auth::AuthError| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())
    };
    if let Some(id) = &c.node_id {
        check_node_id(id).map_err(invalid)?;
    }
    if c.namenode.is_some() {
        let mut addrs = vec![
            (SocketAddr::new(c.bind, c.port), "client port"),
            (c.admin_addr, "admin port"),
        ];
        if let Some(a) = c.advertise {
            addrs.push((a, "advertised address"));
        }
        for (addr, what) in addrs {
            require_loopback(&c.cluster_secret, addr, what).map_err(invalid)?;
        }
    }
    Ok(())
}

/// Descriptors kept for listeners, peers, the NameNode link and logs, as Redis keeps 32.
pub const RESERVED_FDS: u64 = 32;

/// The open-file soft limit to ask for and the `maxclients` it allows: `maxclients` plus
/// [`RESERVED_FDS`], raised up to the hard limit; if that is not enough, `maxclients` is
/// lowered to fit (at least 1), as Redis does.
pub fn plan_fd_limit(maxclients: u64, soft: u64, hard: u64) -> (u64, u64) {
    let want = maxclients.saturating_add(RESERVED_FDS);
    if soft >= want {
        return (soft, maxclients);
    }
    let new_soft = want.min(hard).max(soft);
    let fits = new_soft.saturating_sub(RESERVED_FDS).max(1);
    (new_soft, maxclients.min(fits))
}

/// Reconciles `maxclients` with RLIMIT_NOFILE at start: raises the soft limit when it can,
/// else lowers `maxclients`, and logs either, so clients past the limit get Redis's
/// `-ERR max number of clients reached` instead of hanging on a failed accept.
pub fn reconcile_maxclients(c: &mut Config) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return;
    }
    let (soft, hard) = (lim.rlim_cur, lim.rlim_max);
    let (want_soft, maxclients) = plan_fd_limit(c.maxclients as u64, soft, hard);
    let mut got = soft;
    if want_soft > soft {
        let new = libc::rlimit {
            rlim_cur: want_soft,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } == 0 {
            got = want_soft;
            tracing::info!(from = soft, to = want_soft, "raised the open files limit");
        }
    }
    let (_, allowed) = plan_fd_limit(maxclients, got, got);
    if allowed < c.maxclients as u64 {
        tracing::warn!(
            requested = c.maxclients,
            maxclients = allowed,
            open_files_limit = got,
            "the open files limit is too low for maxclients; lowered maxclients (raise it with ulimit -n)"
        );
        c.maxclients = allowed as usize;
    }
}

/// A `PEERHELLO` answered, waiting for the connector's proof.
#[derive(Debug)]
pub struct PendingPeer(Transcript);

/// The connector's first request.
pub fn hello_request(my_id: &str, my_nonce: &Nonce) -> Request {
    Request::from_args([
        b"CLUSTER".as_slice(),
        b"PEERHELLO",
        my_id.as_bytes(),
        hex::encode(my_nonce).as_bytes(),
    ])
}

/// The connector checks the acceptor's answer to [`hello_request`] (a raw RESP reply) and
/// returns the acceptor's id and the `CLUSTER PEERAUTH` request proving our side.
pub fn answer_challenge(
    secret: &ClusterSecret,
    my_id: &str,
    my_nonce: &Nonce,
    reply: &[u8],
) -> Result<(String, Request), String> {
    if reply.first() == Some(&b'-') {
        return Err(String::from_utf8_lossy(&reply[..reply.len().min(200)])
            .trim()
            .to_string());
    }
    let parts = bulk_array(reply).ok_or("malformed PEERHELLO reply")?;
    let [id, their_nonce, proof] = parts.as_slice() else {
        return Err("PEERHELLO reply is not three strings".into());
    };
    let id = std::str::from_utf8(id).map_err(|_| "peer id is not UTF-8")?;
    check_node_id(id).map_err(|e| e.to_string())?;
    let text = |b: &[u8]| {
        std::str::from_utf8(b)
            .map(str::to_owned)
            .unwrap_or_default()
    };
    let t = Transcript {
        purpose: Purpose::Peer,
        connector: my_id.to_string(),
        acceptor: id.to_string(),
        connector_nonce: *my_nonce,
        acceptor_nonce: decode32(&text(their_nonce)).map_err(|e| e.to_string())?,
    };
    let proof = decode32(&text(proof)).map_err(|e| e.to_string())?;
    if !t.verify(secret, Side::Acceptor, &proof) {
        return Err("the peer does not know the cluster secret".into());
    }
    let mine = hex::encode(t.proof(secret, Side::Connector));
    let auth = Request::from_args([b"CLUSTER".as_slice(), b"PEERAUTH", mine.as_bytes()]);
    Ok((id.to_string(), auth))
}

/// The acceptor's answer to `CLUSTER PEERHELLO <id> <nonce>`: the reply, and the exchange to
/// finish at `PEERAUTH`.
pub fn challenge(
    secret: &ClusterSecret,
    my_id: &str,
    their_id: &[u8],
    their_nonce: &[u8],
) -> Result<(Frame, PendingPeer), Frame> {
    let bad = || Frame::err("ERR invalid PEERHELLO");
    let id = std::str::from_utf8(their_id).map_err(|_| bad())?;
    check_node_id(id).map_err(|_| bad())?;
    let their_nonce = std::str::from_utf8(their_nonce).map_err(|_| bad())?;
    let acceptor_nonce = nonce();
    let t = Transcript {
        purpose: Purpose::Peer,
        connector: id.to_string(),
        acceptor: my_id.to_string(),
        connector_nonce: decode32(their_nonce).map_err(|_| bad())?,
        acceptor_nonce,
    };
    let reply = Frame::Array(vec![
        Frame::bulk(my_id),
        Frame::bulk(hex::encode(acceptor_nonce)),
        Frame::bulk(hex::encode(t.proof(secret, Side::Acceptor))),
    ]);
    Ok((reply, PendingPeer(t)))
}

/// The acceptor checks `CLUSTER PEERAUTH <proof>`; returns the peer's id when it holds.
pub fn finish(secret: &ClusterSecret, pending: PendingPeer, proof: &[u8]) -> Option<String> {
    let proof = decode32(std::str::from_utf8(proof).ok()?).ok()?;
    pending
        .0
        .verify(secret, Side::Connector, &proof)
        .then_some(pending.0.connector)
}

/// Whether `peer` may hand `slot` to this node now: the table names `peer` as its owner (the
/// NameNode's table keeps the old owner until the handoff is confirmed), or `peer` already
/// handed it over (`adopted_from`: a batch retried after a lost reply). Before its first
/// table a node configured with a NameNode cannot tell (a joining node can be handed slots
/// before the welcome reaches it) and takes them from any authenticated peer; the table that
/// follows settles them. A standalone node receives nothing.
pub fn may_receive(routing: &Routing, peer: &str, slot: u16, adopted_from: Option<&str>) -> bool {
    if routing.standalone {
        return false;
    }
    !routing.has_table() || routing.owner_id(slot) == Some(peer) || adopted_from == Some(peer)
}

/// The elements of a RESP array of bulk strings (`*N` then N `$len` strings), or `None`.
fn bulk_array(reply: &[u8]) -> Option<Vec<&[u8]>> {
    fn line(buf: &[u8]) -> Option<(&[u8], &[u8])> {
        let end = memchr::memmem::find(buf, b"\r\n")?;
        Some((&buf[..end], &buf[end + 2..]))
    }
    let (head, mut rest) = line(reply)?;
    let n: usize = std::str::from_utf8(head.strip_prefix(b"*")?)
        .ok()?
        .parse()
        .ok()?;
    if n > 16 {
        return None;
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let (head, after) = line(rest)?;
        let len: usize = std::str::from_utf8(head.strip_prefix(b"$")?)
            .ok()?
            .parse()
            .ok()?;
        let data = after.get(..len)?;
        if after.get(len..len.checked_add(2)?)? != b"\r\n" {
            return None;
        }
        out.push(data);
        rest = &after[len + 2..];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::Protocol;

    fn secret() -> ClusterSecret {
        ClusterSecret::new(b"peer-secret-0123456789").expect("valid")
    }

    fn encode(f: &Frame) -> Vec<u8> {
        let mut out = bytes::BytesMut::new();
        f.encode(Protocol::Resp2, &mut out);
        out.to_vec()
    }

    #[test]
    fn the_two_sides_agree_and_strangers_fail() {
        let s = secret();
        let my_nonce = nonce();
        let hello = hello_request("dn-a", &my_nonce);
        let (reply, pending) = challenge(&s, "dn-b", hello.arg(2), hello.arg(3)).expect("hello");
        let (peer, auth) = answer_challenge(&s, "dn-a", &my_nonce, &encode(&reply)).expect("valid");
        assert_eq!(peer, "dn-b");
        assert_eq!(finish(&s, pending, auth.arg(2)).as_deref(), Some("dn-a"));

        // A connector with another secret refuses the acceptor's proof...
        let wrong = ClusterSecret::new(b"another-secret-012345").expect("valid");
        let (reply, pending) = challenge(&s, "dn-b", hello.arg(2), hello.arg(3)).expect("hello");
        assert!(answer_challenge(&wrong, "dn-a", &my_nonce, &encode(&reply)).is_err());
        // ...and its own proof (made with its secret) does not pass.
        let (reply_w, _) = challenge(&wrong, "dn-b", hello.arg(2), hello.arg(3)).expect("hello");
        let (_, auth_w) =
            answer_challenge(&wrong, "dn-a", &my_nonce, &encode(&reply_w)).expect("own");
        assert_eq!(finish(&s, pending, auth_w.arg(2)), None);
    }

    #[test]
    fn a_peer_hands_over_only_what_the_table_says_it_owns() {
        use chkv_common::proto::NodeInfo;
        use chkv_common::ring::NodeId;
        use chkv_common::{Slot, SlotTable};
        let info = |id: &str, port: u16| NodeInfo {
            id: NodeId::new(id),
            client_addr: SocketAddr::from(([127, 0, 0, 1], port)),
            admin_addr: SocketAddr::from(([127, 0, 0, 1], port + 1)),
            tls_port: None,
            since: 0,
        };
        let mut table = SlotTable::empty(5);
        let slot = |s: u16| Slot::new(s).expect("slot");
        table.assign(slot(0)..=slot(99), Some(&NodeId::new("dn-a")));
        table.assign(slot(100)..=slot(199), Some(&NodeId::new("dn-b")));
        let infos = [info("dn-a", 7000), info("dn-b", 7010)];
        let at_b = Routing::from_table(&table, &infos, "dn-b");
        // dn-a may hand dn-b its own slots, not dn-b's, nor unowned ones; others none.
        assert!(may_receive(&at_b, "dn-a", 5, None));
        assert!(!may_receive(&at_b, "dn-a", 150, None));
        assert!(!may_receive(&at_b, "dn-a", 500, None));
        assert!(!may_receive(&at_b, "dn-c", 5, None));
        // A batch retried after its flip: the slot came from dn-a already.
        assert!(may_receive(&at_b, "dn-a", 150, Some("dn-a")));
        assert!(!may_receive(&at_b, "dn-c", 150, Some("dn-a")));
        // Before a first table anything goes (the table that follows settles it); a
        // standalone node receives nothing.
        assert!(may_receive(&Routing::awaiting(), "dn-z", 5, None));
        assert!(!may_receive(&Routing::standalone(), "dn-a", 5, None));
    }

    #[test]
    fn maxclients_fits_the_open_files_limit() {
        // Enough already.
        assert_eq!(plan_fd_limit(10000, 65536, 65536), (65536, 10000));
        // Raised up to what is needed.
        assert_eq!(plan_fd_limit(10000, 1024, 1 << 20), (10032, 10000));
        // The hard limit caps it: maxclients shrinks to fit.
        assert_eq!(plan_fd_limit(10000, 1024, 4096), (4096, 4064));
        // Never below one client, never lowering the soft limit.
        assert_eq!(plan_fd_limit(10000, 16, 16), (16, 1));
        assert_eq!(
            plan_fd_limit(u64::MAX, 1024, u64::MAX),
            (u64::MAX, u64::MAX - 32)
        );
    }

    #[test]
    fn hostile_hellos_and_replies_are_refused() {
        let s = secret();
        assert!(challenge(&s, "me", b"", b"00").is_err());
        assert!(challenge(&s, "me", &[b'x'; 65], &[b'0'; 64]).is_err());
        assert!(challenge(&s, "me", b"a", b"zz").is_err());
        let n = nonce();
        for reply in [
            &b"-ERR unknown subcommand\r\n"[..],
            b"*3\r\n$1\r\na\r\n",
            b"*99999999999999999999\r\n",
            b"*3\r\n$5\r\nab\r\n",
            b"*1\r\n$-1\r\n",
        ] {
            assert!(answer_challenge(&s, "me", &n, reply).is_err(), "{reply:?}");
        }
    }
}
