//! A connection's replies in request order ([`Replies`]), and the bounds on forwarded ones.

use super::*;

/// Bytes of replies a connection may hold while forwarded ones are on their way: the local
/// replies queued behind them plus the forwarded ones (estimated from the largest forwarded
/// reply it has had). Past it the connection stops parsing, waits for them, writes what it
/// has to its client and only then goes on, so a client that does not read its replies holds
/// back its own requests instead of making this node buffer the answers: the bound local
/// replies have by being written before more input is read.
pub const FORWARDED_BUDGET: usize = 4 << 20;
/// Forwarded requests on their way per connection at most, however small their replies.
pub const MAX_FORWARDED: usize = 1024;

/// Replies of a batch, in request order: encoded bytes and replies still on their way.
#[derive(Default)]
pub struct Replies {
    items: Vec<Item>,
    /// A blocking command is among them.
    blocks: bool,
    /// Replies still on their way.
    waiting: usize,
    /// Bytes of the ready replies queued between them.
    ready: usize,
    /// Largest forwarded reply seen on this connection (halved at each batch, so one huge
    /// value does not slow the connection for ever); `None` before the first.
    largest: Option<usize>,
}

/// What a forwarded reply is assumed to weigh before the connection has seen one.
const FIRST_REPLY_GUESS: usize = 256 << 10;

enum Item {
    Ready(Bytes),
    Waiting(Pending),
}

impl Replies {
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Queues what has been encoded so far (taking it out of `out`) and then a pending reply.
    pub fn push_pending(&mut self, out: &mut BytesMut, p: Pending) {
        if !out.is_empty() {
            self.ready = self.ready.saturating_add(out.len());
            self.items.push(Item::Ready(out.split().freeze()));
        }
        self.blocks |= p.blocks();
        self.items.push(Item::Waiting(p));
        self.waiting += 1;
    }

    /// Whether the replies on their way must be resolved and written before more requests
    /// are planned (see [`FORWARDED_BUDGET`]); `tail` is what was encoded after the last of
    /// them. Never while none is on its way.
    pub fn over_budget(&self, tail: usize) -> bool {
        // A blocking command's wait is handled by the connection on its own (it stops
        // planning after it anyway).
        if self.waiting == 0 || self.blocks {
            return false;
        }
        let each = self.largest.unwrap_or(FIRST_REPLY_GUESS).max(64);
        let held = self
            .waiting
            .saturating_mul(each)
            .saturating_add(self.ready)
            .saturating_add(tail);
        self.waiting >= MAX_FORWARDED || held >= FORWARDED_BUDGET
    }

    /// Whether a blocking command is waiting among these replies.
    pub fn blocks(&self) -> bool {
        self.blocks
    }

    /// Takes the last reply out when it is a blocking command's (so that the replies
    /// before it can be sent first).
    pub fn take_blocking(&mut self) -> Option<Pending> {
        match self.items.last() {
            Some(Item::Waiting(p)) if p.blocks() => {}
            _ => return None,
        }
        self.blocks = false;
        match self.items.pop() {
            Some(Item::Waiting(p)) => {
                self.waiting -= 1;
                Some(p)
            }
            _ => None,
        }
    }

    /// Resolves everything in order into `out`.
    pub async fn resolve_into(
        &mut self,
        node: &Arc<Node>,
        session: &mut Session,
        out: &mut BytesMut,
    ) {
        let tail = out.split();
        self.blocks = false;
        let mut largest = self.largest.map(|l| l / 2);
        for item in self.items.drain(..) {
            match item {
                Item::Ready(b) => out.extend_from_slice(&b),
                Item::Waiting(p) => {
                    let b = resolve_one(node, session, p).await;
                    largest = Some(largest.unwrap_or(0).max(b.len()));
                    out.extend_from_slice(&b);
                }
            }
        }
        self.waiting = 0;
        self.ready = 0;
        self.largest = largest;
        out.extend_from_slice(&tail);
    }
}
