//! The receiving side of a batch on one peer session, as plain data: whether its `HANDOFF`
//! may flip. A batch is the `IMPORTSTART`s, `IMPORT`s and `IMPORTPIECE`s a peer sends, ended
//! by its `HANDOFF` (flipped or refused; the next command starts a new batch). The flip is
//! refused, and the slots stay with their owner, when
//! - any import of the batch failed: part of its data is missing here;
//! - this node dropped its slots since the batch's first import ([`crate::lease`]'s reset
//!   count moved: it was declared dead, or a newer claim won): the batch's data went with
//!   them.
//!
//! The sender retries a refused batch from its `IMPORTSTART`s, which empty the slots here
//! first, so a refused batch leaves nothing that a later one could merge with.

/// One peer session's batch in progress.
#[derive(Debug, Default)]
pub struct Receiving {
    failed: bool,
    /// The reset count when the batch's first import was stored.
    resets: Option<u64>,
}

/// Why a `HANDOFF` is refused (its `-TRYAGAIN` text).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    ImportFailed,
    SlotsDropped,
}

impl Refusal {
    pub fn text(self) -> &'static str {
        match self {
            Refusal::ImportFailed => {
                "TRYAGAIN an import of this batch failed; the slots stay with their owner"
            }
            Refusal::SlotsDropped => {
                "TRYAGAIN this node dropped its slots since the batch was imported; the slots stay with their owner"
            }
        }
    }
}

impl Receiving {
    /// An import of the batch was stored (`ok`) or refused, while the reset count was
    /// `resets`.
    pub fn imported(&mut self, ok: bool, resets: u64) {
        if ok {
            self.resets.get_or_insert(resets);
        } else {
            self.failed = true;
        }
    }

    /// The batch's `HANDOFF`, with the reset count now: whether it may flip. Either way the
    /// batch ends.
    pub fn handoff(&mut self, resets: u64) -> Result<(), Refusal> {
        let batch = std::mem::take(self);
        if batch.failed {
            return Err(Refusal::ImportFailed);
        }
        if batch.resets.is_some_and(|r| r != resets) {
            return Err(Refusal::SlotsDropped);
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
        let mut r = Receiving::default();
        // Imported whole: flips.
        r.imported(true, 4);
        r.imported(true, 4);
        assert_eq!(r.handoff(4), Ok(()));
        // A batch of nothing (every key of its slots deleted): flips.
        assert_eq!(r.handoff(4), Ok(()));
        // One import failed: refused, even when a later one succeeded...
        r.imported(true, 4);
        r.imported(false, 4);
        r.imported(true, 4);
        assert!(r.failed());
        assert_eq!(r.handoff(4), Err(Refusal::ImportFailed));
        // ... and the next batch starts clean (the sender retries it from IMPORTSTART).
        assert!(!r.failed());
        r.imported(true, 4);
        assert_eq!(r.handoff(4), Ok(()));
        // This node dropped its slots between the first import and the flip (declared dead
        // and re-welcomed meanwhile): refused.
        r.imported(true, 4);
        r.imported(true, 5);
        assert_eq!(r.handoff(5), Err(Refusal::SlotsDropped));
        // Dropped before the first import: what was imported is here, so it flips.
        r.imported(true, 6);
        assert_eq!(r.handoff(6), Ok(()));
        // A repeated HANDOFF (the reply of the first was lost) is a batch of nothing.
        assert_eq!(r.handoff(7), Ok(()));
    }
}
