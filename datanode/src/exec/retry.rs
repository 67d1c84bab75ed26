//! Forwarded requests run to completion: retries after `-MOVED`, lost peers, leases, frozen slots.

use super::*;
use chkv_common::resp::ErrorKind;
use std::collections::HashMap;

/// How long a forwarded request may keep retrying (redirects during a move, a lost peer)
/// before the client gets `-TRYAGAIN`. Long enough to ride out a NameNode that is behind on
/// publishing moves, and a dead node's removal (about a second by default). Time spent
/// waiting for an owner's answer does not count (see [`retry_allowed`]).
pub(super) const RETRY_BUDGET: Duration = Duration::from_secs(5);
/// Longest a forwarded request is retried in all, answers included.
pub(super) const RETRY_LIMIT: Duration = Duration::from_secs(30);

/// Whether a forwarded request may be tried again, `elapsed` after it started, of which
/// `answered` went waiting for owners that answered (with `-MOVED`, or a refusal for want of
/// a lease). An owner that answers is working, however slowly: on a loaded machine one
/// answer can take seconds (the slot was frozen for a move meanwhile), and a request must
/// not be refused for following the redirect that answer names. Only the time spent
/// retrying (pauses, re-planning, lost connections) counts against [`RETRY_BUDGET`]; the
/// whole is bounded by [`RETRY_LIMIT`].
pub(super) fn retry_allowed(elapsed: Duration, answered: Duration) -> bool {
    elapsed < RETRY_LIMIT && elapsed.saturating_sub(answered) < RETRY_BUDGET
}

/// Runs `req` to completion with retries: planned again under the current table after a
/// `-MOVED` or a lost connection. Returns the encoded reply.
pub(super) fn run_with_retries<'a>(
    node: &'a Arc<Node>,
    session: &'a mut Session,
    mut req: Request,
    first: Option<oneshot::Receiver<PeerReply>>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Bytes> + Send + 'a>> {
    Box::pin(async move {
        let proto = session.proto;
        let started = tokio::time::Instant::now();
        let mut answered = Duration::ZERO;
        let mut rx = first;
        let mut redirect: Option<SocketAddr> = None;
        let mut last_err = String::new();
        let mut hops = 0u32;
        let mut failures = 0u32;
        let mut learned = Learned::default();
        while retry_allowed(started.elapsed(), answered) {
            let waiting = if let Some(rx) = rx.take() {
                rx
            } else if let Some(addr) = redirect.take() {
                node.peers.send_request(addr, proto, &req)
            } else {
                let routing = node.routing();
                // `req` is what goes to other nodes: a restricted user's script
                // wrapped in CLUSTER ASUSER. Here it is planned as the client's
                // request, under the session's own identity.
                let here = unwrapped(session, &req);
                match plan(node, session, &routing, &here) {
                    // A subscription's confirmation went to the outbox.
                    Planned::Now(_) if std::mem::take(&mut session.no_reply) => {
                        return Bytes::new()
                    }
                    Planned::Now(f) => return encoded(&f, proto),
                    Planned::Later(Pending::Remote { rx, wire }) => {
                        if let Some(sent) = Request::from_wire(&wire) {
                            req = sent;
                        }
                        rx
                    }
                    // Anything else resolves as it would have at first.
                    Planned::Later(p) => {
                        return Box::pin(resolve_one(node, session, p)).await;
                    }
                }
            };
            let asked = tokio::time::Instant::now();
            let reply = waiting.await;
            if matches!(reply, Ok(Ok(_))) {
                answered += asked.elapsed();
            }
            match reply {
                Ok(Ok(bytes)) => match on_reply(&bytes) {
                    OnReply::Relay => return bytes,
                    OnReply::Replan => {
                        // The owner refused without doing anything (it holds no lease):
                        // perhaps its slots have moved by now. Plan again after a pause.
                        last_err = String::from_utf8_lossy(&bytes).trim().to_string();
                        failures += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    OnReply::SendBody => {
                        // EVALSHA reached an owner without the script, but the client
                        // loaded it here (redis-py's Script: EVALSHA, then SCRIPT LOAD and
                        // EVALSHA again through the same node): send the body, which the
                        // owner then caches.
                        match evalsha_as_eval(node, &req) {
                            Some(eval) => req = eval,
                            None => return bytes,
                        }
                    }
                    OnReply::Follow { slot, addr } => {
                        last_err = String::from_utf8_lossy(&bytes).trim().to_string();
                        hops += 1;
                        let me = node.advertised_addr();
                        tracing::trace!(%me, to = %addr, hops, "forwarded request redirected");
                        if addr == me {
                            // Pointed back at us: our own view has moved on; plan again.
                            tokio::time::sleep(Duration::from_millis(2)).await;
                            continue;
                        }
                        // Follow it: a node that handed a slot over points at the node it
                        // handed it to, so redirects lead forward even while our own table
                        // from the NameNode lags behind.
                        learned.learn(slot, addr);
                        let here = unwrapped(session, &req);
                        let routing = node.routing();
                        let at = |s: u16| {
                            learned.get(s).or_else(|| match routing.owner(s) {
                                Owner::Local => Some(me),
                                Owner::Remote(o) => routing.addr(o),
                                Owner::Unassigned => None,
                            })
                        };
                        match common_owner(&request_slots(&here), at) {
                            Some(to) if to != me => {
                                redirect = Some(to);
                                // Pause now and then so two nodes that disagree cannot spin.
                                if hops.is_multiple_of(4) {
                                    tokio::time::sleep(Duration::from_millis(10)).await;
                                }
                            }
                            // Back to our own share: plan it again here.
                            Some(_) => {}
                            // Its keys are on several nodes now (a move in progress
                            // between its slots): a splittable command goes to each in
                            // shares; any other follows the redirect after a pause, so
                            // it is served once the move has put all its keys on one
                            // node (the redirects lead there even while our table lags
                            // behind) and gets `-TRYAGAIN` if the move outlasts the budget.
                            None if lookup(req.arg(0))
                                .is_some_and(|(_, spec)| route::splittable(spec.name)) =>
                            {
                                let pending = split_apart(node, proto, &req, at);
                                return Box::pin(resolve_one(node, session, pending)).await;
                            }
                            None => {
                                last_err = format!(
                                    "its keys are on several nodes while slot {slot} moves ({last_err})"
                                );
                                failures += 1;
                                redirect = Some(addr);
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                        }
                    }
                },
                Ok(Err(e)) => {
                    last_err = e.to_string();
                    failures += 1;
                    let backoff = 10u64 << failures.min(5);
                    tokio::time::sleep(Duration::from_millis(backoff)).await;
                }
                Err(_) => {
                    last_err = "forwarding connection dropped".into();
                    failures += 1;
                }
            }
        }
        let routing = node.routing();
        tracing::debug!(
            me = %node.advertised_addr(),
            epoch = routing.epoch,
            hops,
            failures,
            owners = ?req.iter().skip(1).take(1).map(|k| {
                let s = key_slot(k);
                (s, routing.owner(s), routing.owner_id(s).map(str::to_string))
            }).collect::<Vec<_>>(),
            last = %last_err,
            "forwarded request gave up"
        );
        encoded(
            &Frame::error(format!(
                "TRYAGAIN could not reach the slot owner: {last_err}"
            )),
            proto,
        )
    })
}

/// The owners `-MOVED` replies have named for a forwarded request's slots, the latest for
/// each slot: where the request's keys are while this node's table lags behind a move. At
/// most one entry per slot of the request.
#[derive(Default)]
pub(super) struct Learned(HashMap<u16, SocketAddr>);

impl Learned {
    pub(super) fn learn(&mut self, slot: u16, addr: SocketAddr) {
        self.0.insert(slot, addr);
    }

    pub(super) fn get(&self, slot: u16) -> Option<SocketAddr> {
        self.0.get(&slot).copied()
    }
}

/// The one address every slot of `slots` is at according to `at`, or `None` when they are
/// on different nodes (or one has no owner). A request follows a redirect whole only to
/// such an address: sent whole to the owner of one of its slots, a request whose other
/// slots are elsewhere would be redirected back and forth between the two for as long as
/// the move between them lasts, never served.
pub(super) fn common_owner(
    slots: &[u16],
    at: impl Fn(u16) -> Option<SocketAddr>,
) -> Option<SocketAddr> {
    let (first, rest) = slots.split_first()?;
    let addr = at(*first)?;
    rest.iter().all(|&s| at(s) == Some(addr)).then_some(addr)
}

/// EVALSHA (`_RO`) as EVAL (`_RO`) with the body this node has cached for its sha.
fn evalsha_as_eval(node: &Node, req: &Request) -> Option<Request> {
    let name = match req.arg(0) {
        n if n.eq_ignore_ascii_case(b"evalsha") => &b"EVAL"[..],
        n if n.eq_ignore_ascii_case(b"evalsha_ro") => &b"EVAL_RO"[..],
        _ => return None,
    };
    if req.len() < 3 {
        return None;
    }
    let body = node.scripting.script_body(req.arg(1))?;
    let mut args: Vec<&[u8]> = Vec::with_capacity(req.len());
    args.push(name);
    args.push(&body);
    args.extend(req.iter().skip(2));
    Some(Request::from_args(args))
}

/// What a forwarding node does with an owner's answer to a forwarded request.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum OnReply {
    /// Give it to the client: a result, or an error that is the client's answer.
    Relay,
    /// `-MOVED`: the slot's owner is at `addr` (see [`Learned`] for where the request goes).
    Follow { slot: u16, addr: SocketAddr },
    /// The owner holds no lease and did nothing: plan again after a pause.
    Replan,
    /// `-NOSCRIPT`: send an EVALSHA again as EVAL with the body cached here, if there is one.
    SendBody,
}

/// The retry policy of forwarded requests, as a function of the answer's error kind.
pub(super) fn on_reply(reply: &[u8]) -> OnReply {
    match ErrorKind::of_reply(reply) {
        None => OnReply::Relay,
        Some(ErrorKind::Moved { slot, addr }) => OnReply::Follow { slot, addr },
        Some(ErrorKind::TryAgain) if no_lease(reply) => OnReply::Replan,
        Some(ErrorKind::NoScript) => OnReply::SendBody,
        // ASK is never sent to a peer session (CHKV moves whole slots under a freeze), and
        // every other error is the request's answer: a client retries TRYAGAIN itself.
        Some(_) => OnReply::Relay,
    }
}

/// Whether an owner's reply is [`crate::lease::ERR_NO_LEASE`].
fn no_lease(reply: &[u8]) -> bool {
    let Frame::Error(text) = &crate::lease::ERR_NO_LEASE else {
        return false;
    };
    reply.first() == Some(&b'-') && reply[1..].starts_with(text.as_bytes())
}

/// Waits (at most [`crate::lease::WAIT_BUDGET`]) until this node holds its lease again, or
/// none of `slots` is its own any more (a new table sent them elsewhere). False when the
/// wait ran out.
pub(super) async fn wait_for_lease(node: &Arc<Node>, slots: &[u16]) -> bool {
    // A new table sent every slot elsewhere (noticed at the next poll).
    let moved_away = || {
        !slots.is_empty() && {
            let routing = node.routing();
            slots.iter().all(|&s| routing.owner(s) != Owner::Local)
        }
    };
    node.lease
        .wait_for(crate::lease::WAIT_BUDGET, || {
            (node.lease.check() || moved_away()).then_some(true)
        })
        .await
}

/// Waits until none of `req`'s slots is frozen (bounded; the request is planned again
/// afterwards either way).
pub(super) async fn wait_unfrozen(node: &Arc<Node>, req: &Request) {
    let slots = request_slots(req);
    let frozen = || slots.iter().any(|&s| node.handoff.is_frozen(s));
    let mut changes = node.handoff.watch_unfrozen();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while frozen() {
        if tokio::time::timeout_at(deadline, changes.changed())
            .await
            .is_err()
        {
            break;
        }
    }
}
