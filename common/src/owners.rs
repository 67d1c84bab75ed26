//! The owner of every slot as an index into some list of nodes: the one slot map behind the
//! NameNode's [`SlotTable`](crate::SlotTable) (indexes into its node ids), the DataNode's
//! routing (into its table's members) and the client library's routes (into its pools).
//! Plain data: who the indexes name is the holder's business.

use crate::{NodeId, SlotTable, SLOT_COUNT};

/// The entry of a slot nobody owns.
pub const UNOWNED: u16 = u16::MAX;

/// One owner index (or [`UNOWNED`]) per slot, 16384 entries.
#[derive(Clone, PartialEq, Eq)]
pub struct SlotOwners(Box<[u16]>);

impl std::fmt::Debug for SlotOwners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.runs()).finish()
    }
}

impl Default for SlotOwners {
    fn default() -> SlotOwners {
        SlotOwners::none()
    }
}

impl SlotOwners {
    /// No slot has an owner.
    pub fn none() -> SlotOwners {
        SlotOwners(vec![UNOWNED; SLOT_COUNT].into_boxed_slice())
    }

    /// Node `index` owns every slot.
    pub fn all(index: u16) -> SlotOwners {
        SlotOwners(vec![index; SLOT_COUNT].into_boxed_slice())
    }

    /// The owners a NameNode's table gives, as indexes into the caller's node list:
    /// `index_of` finds each of the table's nodes there (`None`: not known here, so its slots
    /// are unowned).
    pub fn of_table(table: &SlotTable, index_of: impl FnMut(&NodeId) -> Option<u16>) -> SlotOwners {
        let ours: Vec<Option<u16>> = table.nodes().iter().map(index_of).collect();
        let mut owners = SlotOwners::none();
        for (first, last, index) in table.ranges() {
            owners.fill(first, last, ours.get(index as usize).copied().flatten());
        }
        owners
    }

    /// The owner of `slot`; `None` when nobody owns it or the slot is out of range.
    #[inline]
    pub fn get(&self, slot: u16) -> Option<u16> {
        match self.0.get(slot as usize) {
            None | Some(&UNOWNED) => None,
            Some(&o) => Some(o),
        }
    }

    /// Gives `slot` to `owner` (or to nobody); a slot out of range is ignored.
    pub fn set(&mut self, slot: u16, owner: Option<u16>) {
        if let Some(o) = self.0.get_mut(slot as usize) {
            *o = owner.unwrap_or(UNOWNED);
        }
    }

    /// Gives the slots `first..=last` (cut to the slot range) to `owner` (or to nobody).
    pub fn fill(&mut self, first: u16, last: u16, owner: Option<u16>) {
        let last = (last as usize).min(SLOT_COUNT - 1);
        if let Some(run) = self.0.get_mut(first as usize..=last) {
            run.fill(owner.unwrap_or(UNOWNED));
        }
    }

    /// How many slots node `index` owns.
    pub fn count_of(&self, index: u16) -> usize {
        self.0.iter().filter(|&&o| o == index).count()
    }

    /// How many slots have an owner.
    pub fn assigned(&self) -> usize {
        self.0.iter().filter(|&&o| o != UNOWNED).count()
    }

    /// The owner of the lowest owned slot.
    pub fn first_owner(&self) -> Option<u16> {
        self.0.iter().copied().find(|&o| o != UNOWNED)
    }

    /// For each of `nodes` indexes, whether it owns at least one slot.
    pub fn owning(&self, nodes: usize) -> Vec<bool> {
        let mut owns = vec![false; nodes];
        for &o in self.0.iter() {
            if let Some(flag) = owns.get_mut(o as usize) {
                *flag = true;
            }
        }
        owns
    }

    /// Maximal runs of consecutive slots with the same owner, in slot order:
    /// `(first slot, last slot, owner)`. Unowned slots are in no run.
    pub fn runs(&self) -> Vec<(u16, u16, u16)> {
        runs_of(&self.0)
    }
}

/// Maximal runs of equal owners in `owners` (one entry per slot, [`UNOWNED`] for none).
pub(crate) fn runs_of(owners: &[u16]) -> Vec<(u16, u16, u16)> {
    let mut runs: Vec<(u16, u16, u16)> = Vec::new();
    for (slot, &owner) in owners.iter().enumerate() {
        let slot = slot as u16;
        match runs.last_mut() {
            Some((_, end, index)) if *index == owner && *end + 1 == slot => *end = slot,
            _ if owner == UNOWNED => {}
            _ => runs.push((slot, slot, owner)),
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_owners_and_counts() {
        let mut o = SlotOwners::none();
        assert_eq!((o.assigned(), o.first_owner(), o.runs()), (0, None, vec![]));
        o.fill(0, 99, Some(2));
        o.fill(100, 16383, Some(0));
        o.set(50, None);
        o.set(16384, Some(1)); // out of range: ignored
        assert_eq!(o.get(49), Some(2));
        assert_eq!(o.get(50), None);
        assert_eq!(o.get(16384), None);
        assert_eq!(o.assigned(), 16383);
        assert_eq!(
            (o.count_of(2), o.count_of(0), o.count_of(1)),
            (99, 16284, 0)
        );
        assert_eq!(o.first_owner(), Some(2));
        assert_eq!(o.owning(3), vec![true, false, true]);
        assert_eq!(o.runs(), vec![(0, 49, 2), (51, 99, 2), (100, 16383, 0)]);
        // A run past the last slot is cut, one of an unknown owner is unowned.
        let (a, b) = (NodeId::new("a"), NodeId::new("b"));
        let slot = |n| crate::Slot::new(n).expect("in range");
        let mut table = SlotTable::empty(1);
        table.assign(slot(0)..=slot(9), Some(&a));
        table.assign(slot(10)..=slot(16383), Some(&b));
        let p = SlotOwners::of_table(&table, |id| (id == &b).then_some(7));
        assert_eq!(p.runs(), vec![(10, 16383, 7)]);
        assert_eq!(SlotOwners::all(3).runs(), vec![(0, 16383, 3)]);
    }
}
