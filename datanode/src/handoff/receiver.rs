//! The receiving side of a batch on one peer session, as plain data: whether its `HANDOFF`
//! may flip. A batch is the `IMPORTSTART`s, `IMPORT`s and `IMPORTPIECE`s a peer sends, ended
//! by its `HANDOFF` (flipped or refused; the next command starts a new batch). The flip is
//! refused, and the slots stay with their owner, when
//! - no import of the batch arrived on this session: every attempt starts with an
//!   `IMPORTSTART` per slot on the connection its `HANDOFF` follows on, so the batch's
//!   imports went on another connection (it ended mid-batch), and what arrived of them is
//!   unknown here;
//! - any import of the batch failed: part of its data is missing here;
//! - this node dropped its slots since the batch's first import ([`crate::lease`]'s reset
//!   count moved: it was declared dead, or a newer claim won): the batch's data went with
//!   them;
//! - a `HANDOFFCHECK` ran since the batch's first import (the fence moved): a sender that
//!   lost the reply of a `HANDOFF` asked whether it was taken, was told no, and serves the
//!   slots again; a `HANDOFF` still on its way (in a connection that ended, read late) must
//!   not take them now.
//!
//! The sender retries a refused batch from its `IMPORTSTART`s, which empty the slots here
//! first, so a refused batch leaves nothing that a later one could merge with.

/// One peer session's batch in progress.
#[derive(Debug, Default)]
pub struct Receiving {
    failed: bool,
    /// The reset count and the fence when the batch's first import was stored.
    first: Option<Marks>,
}

/// Counters a batch's flip must find unchanged since its first import.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marks {
    /// The lease's reset count (this node dropped its slots when it moves).
    pub resets: u64,
    /// The handoff fence (a `HANDOFFCHECK` ran when it moves).
    pub fence: u64,
}

/// Why a `HANDOFF` is refused (its `-TRYAGAIN` text).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    NoImport,
    ImportFailed,
    SlotsDropped,
    Fenced,
}

impl Refusal {
    pub fn text(self) -> &'static str {
        match self {
            Refusal::NoImport => {
                "TRYAGAIN no import of this batch arrived on this connection; the slots stay with their owner"
            }
            Refusal::ImportFailed => {
                "TRYAGAIN an import of this batch failed; the slots stay with their owner"
            }
            Refusal::SlotsDropped => {
                "TRYAGAIN this node dropped its slots since the batch was imported; the slots stay with their owner"
            }
            Refusal::Fenced => {
                "TRYAGAIN a handoff check ran since the batch was imported; the slots stay with their owner"
            }
        }
    }
}

impl Receiving {
    /// An import of the batch was stored (`ok`) or refused, with the counters then.
    pub fn imported(&mut self, ok: bool, marks: Marks) {
        if ok {
            self.first.get_or_insert(marks);
        } else {
            self.failed = true;
        }
    }

    /// The batch's `HANDOFF`, with the counters now: whether it may flip. Either way the
    /// batch ends.
    pub fn handoff(&mut self, now: Marks) -> Result<(), Refusal> {
        let batch = std::mem::take(self);
        if batch.failed {
            return Err(Refusal::ImportFailed);
        }
        let Some(first) = batch.first else {
            return Err(Refusal::NoImport);
        };
        if first.resets != now.resets {
            return Err(Refusal::SlotsDropped);
        }
        if first.fence != now.fence {
            return Err(Refusal::Fenced);
        }
        Ok(())
    }

    /// Whether an import of the batch in progress failed.
    pub fn failed(&self) -> bool {
        self.failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_flips_only_whole_and_on_slots_never_dropped_since() {
        let m = |resets, fence| Marks { resets, fence };
        let mut r = Receiving::default();
        // Imported whole: flips.
        r.imported(true, m(4, 0));
        r.imported(true, m(4, 0));
        assert_eq!(r.handoff(m(4, 0)), Ok(()));
        // A HANDOFF with no import before it on this session (the batch's imports went on a
        // connection that ended; a repeated HANDOFF): refused. A batch of nothing (every key
        // of its slots deleted) still has its IMPORTSTARTs.
        assert_eq!(r.handoff(m(4, 0)), Err(Refusal::NoImport));
        r.imported(true, m(4, 0));
        assert_eq!(r.handoff(m(4, 0)), Ok(()));
        // One import failed: refused, even when a later one succeeded...
        r.imported(true, m(4, 0));
        r.imported(false, m(4, 0));
        r.imported(true, m(4, 0));
        assert!(r.failed());
        assert_eq!(r.handoff(m(4, 0)), Err(Refusal::ImportFailed));
        // ... and the next batch starts clean (the sender retries it from IMPORTSTART).
        assert!(!r.failed());
        r.imported(true, m(4, 0));
        assert_eq!(r.handoff(m(4, 0)), Ok(()));
        // This node dropped its slots between the first import and the flip (declared dead
        // and re-welcomed meanwhile): refused.
        r.imported(true, m(4, 0));
        r.imported(true, m(5, 0));
        assert_eq!(r.handoff(m(5, 0)), Err(Refusal::SlotsDropped));
        // Dropped before the first import: what was imported is here, so it flips.
        r.imported(true, m(6, 0));
        assert_eq!(r.handoff(m(6, 0)), Ok(()));
        // A handoff check ran after the first import (a late HANDOFF of an attempt its
        // sender was told did not flip): refused.
        r.imported(true, m(6, 0));
        assert_eq!(r.handoff(m(6, 1)), Err(Refusal::Fenced));
        // A check before the first import: the batch is newer than the check, it flips.
        r.imported(true, m(6, 1));
        assert_eq!(r.handoff(m(6, 1)), Ok(()));
    }
}
