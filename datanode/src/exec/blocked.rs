//! Blocking commands that follow their keys' slot from node to node.

use super::*;

/// Quick re-routes of a blocking command in a row (redirects, lost connections) before the
/// client gets `-TRYAGAIN`; a wait that lasted starts the count again.
const BLOCKING_HOPS: u32 = 50;

/// Waits for a blocking command, here or on its owner, and runs it again where its keys
/// are whenever their slot moves (see [`crate::blocking`]): with the time left of its
/// timeout, forwarded to the new owner, or answered `-MOVED` on a cluster-aware
/// connection. Returns the encoded reply.
pub(super) async fn resolve_blocking(
    node: &Arc<Node>,
    session: &mut Session,
    first: Pending,
) -> Bytes {
    let proto = session.proto;
    let mut p = first;
    let mut hops = 0u32;
    loop {
        let started = std::time::Instant::now();
        let again = match p {
            Pending::Blocked(mut b) => match b.wait().await {
                crate::blocking::Wake::Reply(f) => return encoded(&f, proto),
                crate::blocking::Wake::Moved => b.request_again(),
            },
            Pending::RemoteBlocked {
                req,
                addr,
                conn,
                id,
                rx,
            } => {
                // Counted as blocked here while it waits there; CLIENT UNBLOCK here
                // unblocks it there by its id on that connection.
                let guard = match id.await {
                    Ok(Ok(b)) => match parse_reply(&b) {
                        Ok(Some((Frame::Integer(peer_client_id), _))) => {
                            Some(node.blocking.remote_blocked(
                                &session.client,
                                crate::blocking::RemoteBlocked {
                                    addr,
                                    peer_client_id,
                                },
                            ))
                        }
                        _ => None,
                    },
                    _ => None,
                };
                let reply = rx.await;
                drop(guard);
                drop(conn);
                let again = crate::blocking::with_remaining_timeout(&req, started.elapsed());
                match reply {
                    Ok(Ok(bytes)) => match moved_target(&bytes) {
                        None => return bytes,
                        Some(to) if to != node.advertised_addr() => {
                            // Follow the redirect: the node that had the slot knows where
                            // it went, even while our own table lags.
                            hops = if started.elapsed() > Duration::from_secs(1) {
                                0
                            } else {
                                hops + 1
                            };
                            if hops > BLOCKING_HOPS {
                                return encoded(&blocking_tryagain(), proto);
                            }
                            if hops.is_multiple_of(4) {
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                            p = forward_blocking(node, proto, to, &again);
                            continue;
                        }
                        Some(_) => again,
                    },
                    _ => {
                        tokio::time::sleep(Duration::from_millis(10u64 << hops.min(5))).await;
                        again
                    }
                }
            }
            other => return resolve_one(node, session, other).await,
        };
        hops = if started.elapsed() > Duration::from_secs(1) {
            0
        } else {
            hops + 1
        };
        if hops > BLOCKING_HOPS {
            return encoded(&blocking_tryagain(), proto);
        }
        let routing = node.routing();
        p = match plan(node, session, &routing, &again) {
            Planned::Now(f) => return encoded(&f, proto),
            Planned::Later(p) if p.blocks() => p,
            Planned::Later(p) => return Box::pin(resolve_one(node, session, p)).await,
        };
    }
}

fn blocking_tryagain() -> Frame {
    Frame::err("TRYAGAIN the keys' slot kept moving while the command was blocked")
}
