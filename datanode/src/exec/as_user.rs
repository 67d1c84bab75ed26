//! Requests that run as a client's user on another node (`CLUSTER ASUSER`), and ACL checks.

use super::*;

// ---- requests that run as a client's user on another node ----
//
// A node checks a request against its client's user before forwarding it, and the owner runs
// what a peer sends without checking it again. That covers a request whose effects its
// arguments show; a script's (and a transaction's scripts') calls are known only when it
// runs. So a restricted user's EVAL/FCALL/transaction travels wrapped in the internal
// `CLUSTER ASUSER user cmd args...`, and the owner runs it as that user (users are the same
// on every node, see [`crate::sync`]): what the script calls is checked there as it would
// be here.

/// `req` as the client's user, when it must run as that user on the node it goes to.
pub(super) fn for_owner(session: &Session, req: &Request) -> Request {
    if session.perms.is_none() {
        return req.clone();
    }
    let mut args: Vec<&[u8]> = vec![b"CLUSTER", b"ASUSER", &session.user];
    args.extend(req.iter());
    Request::from_args(args)
}

/// The request a session plans itself: without the CLUSTER ASUSER wrapper when the session
/// already runs as the user it names (a client's, or a peer's inside [`Pending::AsUser`]).
pub(super) fn unwrapped(session: &Session, req: &Request) -> Request {
    if session.checked() && is_as_user(req) {
        return Request::from_args(req.iter().skip(3));
    }
    req.clone()
}

pub(super) fn is_as_user(req: &Request) -> bool {
    req.len() >= 4
        && req.arg(0).eq_ignore_ascii_case(b"cluster")
        && req.arg(1).eq_ignore_ascii_case(b"asuser")
}

/// Plans a peer's `CLUSTER ASUSER user cmd args...`: `cmd args...` as `user`. An unknown
/// user (deleted since) runs nothing.
pub(super) fn plan_as_user(
    node: &Node,
    session: &mut Session,
    routing: &Routing,
    req: &Request,
) -> Planned {
    let name = Bytes::copy_from_slice(req.arg(2));
    let Some(user) = node.acl.get(&name) else {
        return Planned::Now(Frame::err("ERR the user of this connection was deleted"));
    };
    let inner = Request::from_args(req.iter().skip(3));
    let saved = session.enter_user(name.clone(), user, node.acl.generation());
    let planned = plan_request(node, session, routing, &inner);
    session.leave_user(saved);
    match planned {
        Planned::Now(f) => Planned::Now(f),
        Planned::Later(p) => Planned::Later(Pending::AsUser {
            user: name,
            inner: Box::new(p),
        }),
    }
}

/// The client's permissions for `req`, checked before it may leave for another node (which
/// runs what a peer sends without checking it again): the denial, if any. Peer sessions
/// pass (the node they came from checked them).
pub(super) fn acl_denied(node: &Node, session: &mut Session, req: &Request) -> Option<Frame> {
    if !session.checked()
        || (session.perms.is_none() && session.acl_generation == node.acl.generation())
    {
        return None;
    }
    let (id, resolved) = crate::cmd::resolve(req)?;
    crate::cmd::acl_gate(node, session, id, resolved, req, now_ms()).err()
}

/// A transaction's commands checked before it is forwarded whole (a user changed since
/// they were queued, or MULTIEXEC sent by a client): the first denial aborts it.
pub(super) fn tx_acl_denied(node: &Node, session: &mut Session, cmds: &[Request]) -> Option<Frame> {
    let denied = cmds.iter().find_map(|c| acl_denied(node, session, c))?;
    let Frame::Error(e) = denied else {
        return Some(denied);
    };
    Some(Frame::error(format!(
        "EXECABORT Transaction discarded because of: {e}"
    )))
}
