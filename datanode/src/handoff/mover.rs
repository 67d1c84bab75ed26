//! The sending side of a move as plain data, in the style of the NameNode's `membership.rs`:
//! which slots of an order go in which batch ([`split_order`], [`Batches`]), and what each
//! batch does after each attempt at copying it ([`BatchMove`]): events in, actions out, time a
//! parameter. No I/O and no clock here; `handoff.rs` executes the actions (freeze, copy and
//! flip, wait, release) and feeds back how each attempt ended, so the tests below drive every
//! sequence of refusals, lapsed leases, lost connections, partial batches and repeated orders
//! without a socket.
//!
//! A batch's life: frozen, then copied and flipped until one attempt moves it, is refused for
//! good, or has been refused for [`TRYAGAIN_BUDGET`] (the new owner's table is behind, or one
//! side's lease lapsed: both pass within seconds). It stays frozen between attempts, so each
//! attempt sends the same entries and what an earlier one imported is only overwritten with
//! the same values (and replaced at once: every slot's import starts with `IMPORTSTART`).
//! After a move the moved slots are flipped to the new owner before anything is unfrozen, so
//! no request runs here on a slot that is no longer this node's; the slots of the batch the
//! attempt did not take (its bytes ran out first) are unfrozen and stay, and the clients
//! blocked on their keys are served. After a failure every slot stays and is unfrozen; the
//! NameNode orders the move again.
//!
//! One failure is different: the connection ended after the batch's `HANDOFF` was sent.
//! The new owner may have taken the slots (and serves them) or not, and serving them here
//! in doubt would make two owners. The batch stays frozen and the new owner is asked
//! (`CLUSTER HANDOFFCHECK`, on a new connection) until it answers: took them all (the batch
//! moved), or none, which also fences any `HANDOFF` of the batch still on its way (read
//! late from the connection that ended: refused, see `receiver`), so the slots are this
//! node's again. A new owner that left the cluster meanwhile is waited out for a lease
//! (it serves nothing after its lease; see [`crate::lease`]); one that cannot be reached
//! is asked again, however long that takes: safety before liveness.

use std::time::{Duration, Instant};

/// Longest a batch is retried while the new owner answers `-TRYAGAIN` or this node's lease
/// has lapsed.
pub const TRYAGAIN_BUDGET: Duration = Duration::from_secs(5);
/// Pause between those attempts.
pub const TRYAGAIN_PAUSE: Duration = Duration::from_millis(50);
/// Keys per batch: small enough that a frozen slot waits a few milliseconds at most.
pub const BATCH_KEYS: usize = 2000;
/// Slots per batch at most.
pub const BATCH_SLOTS: usize = 64;
/// Pause between handoff checks that got no answer.
pub const CHECK_PAUSE: Duration = Duration::from_millis(100);

/// Longest the NameNode goes untold of slots that moved while more batches of the same
/// order follow: their reports go together. Each report makes the NameNode publish a new
/// table, which every DataNode and client then installs, and one per batch (a few
/// milliseconds each) cost the cluster as much CPU as the copy itself (see
/// [`Reports`]).
pub const REPORT_EVERY: Duration = Duration::from_millis(25);

/// Splits an order's slots into those this node owns (to move, in order) and those it no
/// longer owns, grouped by the node that owns them now (`owner` gives `Ok(())` for a slot
/// of this node's, `Err(Some(id))` for another's, `Err(None)` for nobody's). An order is
/// repeated when the NameNode gave up waiting for it; the slots an earlier copy of it moved
/// are reported done again, towards where they went, and not moved twice.
pub fn split_order(
    slots: impl IntoIterator<Item = u16>,
    owner: impl Fn(u16) -> Result<(), Option<String>>,
) -> (Vec<u16>, Vec<(String, Vec<u16>)>) {
    let (mut mine, mut elsewhere) = (Vec::new(), Vec::<(String, Vec<u16>)>::new());
    for s in slots {
        match owner(s) {
            Ok(()) => mine.push(s),
            Err(Some(id)) => match elsewhere.iter_mut().find(|(o, _)| *o == id) {
                Some((_, v)) => v.push(s),
                None => elsewhere.push((id, vec![s])),
            },
            Err(None) => {}
        }
    }
    (mine, elsewhere)
}

/// The batches of one order: whole slots, at most [`BATCH_SLOTS`] and [`BATCH_KEYS`] keys
/// each (at least one slot). A batch may take fewer slots than it was given (its bytes ran
/// out first); those go first in the next.
pub struct Batches {
    slots: Vec<u16>,
    next: usize,
}

impl Batches {
    pub fn new(slots: Vec<u16>) -> Batches {
        Batches { slots, next: 0 }
    }

    /// The next batch, by the slots' key counts now; `None` when every slot has moved.
    pub fn next(&self, keys_in: impl Fn(u16) -> usize) -> Option<Vec<u16>> {
        let first = *self.slots.get(self.next)?;
        let mut batch = vec![first];
        let mut keys = keys_in(first);
        for &s in &self.slots[self.next + 1..] {
            let n = keys_in(s);
            if batch.len() >= BATCH_SLOTS || keys + n > BATCH_KEYS {
                break;
            }
            keys += n;
            batch.push(s);
        }
        Some(batch)
    }

    /// The first `taken` slots of the last batch moved.
    pub fn took(&mut self, taken: usize) {
        self.next = (self.next + taken).min(self.slots.len());
    }
}

/// The slots an order has moved that the NameNode has not been told of yet. The first
/// report goes at once; later ones are gathered for [`REPORT_EVERY`] and sent together, and
/// everything gathered goes before any wait (a batch whose new owner is behind, or whose
/// flip is in doubt, may wait long) and when the order ends. A report that is late changes
/// nothing but when tables change: the slots were flipped here and on the new owner
/// already, a node whose table is behind is redirected (`-MOVED`), and a report lost
/// altogether is sent again by the next NameNode session
/// ([`crate::ownership::Ownership::releases`]). Reports are looked at when a batch has
/// moved and before a wait, not during a copy: a long copy (a large slot) holds what was
/// gathered in the [`REPORT_EVERY`] before it until it ends.
///
/// Measured with `helper/bench-handoff.sh` (1M keys, 2 cores, four runs each): a drain of
/// 340,000 keys reported after every batch of 2,000 keys made the NameNode publish about 170
/// tables in half a second (a third of a core), and clients' p99 during the drain was
/// 2.2-2.8 ms (steady 0.9-1.3 ms); gathered, 1.6-2.1 ms, and joins took 0.76-0.83 s instead
/// of 0.99-1.10 s.
#[derive(Debug, Default)]
pub struct Reports {
    pending: Vec<u16>,
    last: Option<Instant>,
}

impl Reports {
    /// `slots` moved.
    pub fn add(&mut self, slots: Vec<u16>) {
        self.pending.extend(slots);
    }

    /// What to report at `now`: everything gathered, if nothing was reported in the last
    /// [`REPORT_EVERY`]; else nothing yet.
    pub fn due(&mut self, now: Instant) -> Vec<u16> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < REPORT_EVERY => Vec::new(),
            _ => self.take(now),
        }
    }

    /// Everything gathered, now (before a wait, and when the order ends).
    pub fn take(&mut self, now: Instant) -> Vec<u16> {
        if self.pending.is_empty() {
            return Vec::new();
        }
        self.last = Some(now);
        std::mem::take(&mut self.pending)
    }
}

/// How one attempt at copying and flipping a batch ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// The new owner took the batch's first `taken` slots (all, or fewer when the batch's
    /// bytes ran out first), holding `keys` keys.
    Moved { taken: usize, keys: u64 },
    /// The new owner answered `-TRYAGAIN`: its table does not show this node owning the
    /// batch yet, or its own lease lapsed.
    TryAgain,
    /// This node's lease lapsed: what it holds may not be its to hand over.
    NoLease,
    /// Anything else: refused for good, or the connection failed before the `HANDOFF`
    /// was sent.
    Failed,
    /// The connection failed after the `HANDOFF` of the first `taken` slots (holding
    /// `keys` keys) was sent: the new owner may have taken them or not.
    InDoubt { taken: usize, keys: u64 },
}

/// What the new owner answered a handoff check ([`Action::Check`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// It took every slot asked about.
    Took,
    /// It took none, and no `HANDOFF` sent before the check can take them now.
    NotTaken,
    /// No answer (the connection failed, an error, an answer that is neither all nor
    /// none).
    Unclear,
    /// This node's table no longer names the new owner: it was declared dead or drained.
    /// It serves nothing once its lease has run out; `wait` is that long, at most.
    TargetLeft { wait: Duration },
}

/// What the executor does for a batch, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Requests for these slots wait from now on.
    Freeze(Vec<u16>),
    /// Copy the batch and flip it on the new owner; how it ended comes back as an
    /// [`Attempt`].
    Copy,
    /// Ask the new owner whether it took these slots (and fence a `HANDOFF` of them still
    /// on its way); the answer comes back as an [`Answer`].
    Check(Vec<u16>),
    /// Ask the lease to renew now rather than at its next tick.
    RenewLease,
    /// Wait this long before the next action.
    Wait(Duration),
    /// These slots are the new owner's: route them there from now on.
    Flip(Vec<u16>),
    /// Requests for these slots run (or are forwarded) again.
    Unfreeze(Vec<u16>),
    /// Free the data of these slots (moved).
    DropData(Vec<u16>),
    /// Serve the clients blocked on keys of these slots (they stay here).
    ServeBlocked(Vec<u16>),
    /// Tell the NameNode these slots moved.
    ReportDone(Vec<u16>),
    /// The batch is over: how many of its slots moved and their keys, or `None` (it failed
    /// and every slot stays here).
    Done(Option<(usize, u64)>),
}

/// One batch's move (see the module docs).
#[derive(Debug)]
pub struct BatchMove {
    slots: Vec<u16>,
    started: Instant,
    done: bool,
    /// The slots (the first `taken`) and keys of a `HANDOFF` whose outcome is unknown.
    in_doubt: Option<(usize, u64)>,
}

impl BatchMove {
    /// Starts moving `slots` at `now`: freeze them, then a first attempt.
    pub fn start(slots: Vec<u16>, now: Instant) -> (BatchMove, Vec<Action>) {
        let actions = vec![Action::Freeze(slots.clone()), Action::Copy];
        let m = BatchMove {
            slots,
            started: now,
            done: false,
            in_doubt: None,
        };
        (m, actions)
    }

    /// What to do after an attempt ended as `attempt` at `now`. Nothing once the batch is
    /// over (a late or repeated outcome changes nothing).
    pub fn on(&mut self, attempt: Attempt, now: Instant) -> Vec<Action> {
        if self.done || self.in_doubt.is_some() {
            return Vec::new();
        }
        let in_budget = now.saturating_duration_since(self.started) < TRYAGAIN_BUDGET;
        match attempt {
            Attempt::TryAgain if in_budget => vec![Action::Wait(TRYAGAIN_PAUSE), Action::Copy],
            Attempt::NoLease if in_budget => vec![
                Action::RenewLease,
                Action::Wait(TRYAGAIN_PAUSE),
                Action::Copy,
            ],
            // At least one slot moves in an attempt that succeeds; a claim of none (or of
            // more than the batch) is a failure, so an order always makes progress or stops.
            Attempt::Moved { taken, keys } if taken > 0 && taken <= self.slots.len() => {
                self.moved(taken, keys)
            }
            // Frozen until the new owner says whether it took them.
            Attempt::InDoubt { taken, keys } if taken > 0 && taken <= self.slots.len() => {
                self.in_doubt = Some((taken, keys));
                vec![Action::Check(self.slots[..taken].to_vec())]
            }
            _ => self.failed(),
        }
    }

    /// What to do after the new owner answered a check as `answer`. Nothing unless a
    /// `HANDOFF` is in doubt.
    pub fn checked(&mut self, answer: Answer) -> Vec<Action> {
        let Some((taken, keys)) = self.in_doubt.filter(|_| !self.done) else {
            return Vec::new();
        };
        match answer {
            Answer::Took => self.moved(taken, keys),
            Answer::NotTaken => self.failed(),
            Answer::Unclear => vec![
                Action::Wait(CHECK_PAUSE),
                Action::Check(self.slots[..taken].to_vec()),
            ],
            Answer::TargetLeft { wait } => {
                let mut out = vec![Action::Wait(wait)];
                out.extend(self.failed());
                out
            }
        }
    }

    /// The first `taken` slots moved: flipped before anything is unfrozen.
    fn moved(&mut self, taken: usize, keys: u64) -> Vec<Action> {
        self.done = true;
        let (moved, kept) = self.slots.split_at(taken);
        let mut out = vec![
            Action::Flip(moved.to_vec()),
            Action::Unfreeze(self.slots.clone()),
            Action::DropData(moved.to_vec()),
        ];
        if !kept.is_empty() {
            out.push(Action::ServeBlocked(kept.to_vec()));
        }
        out.push(Action::ReportDone(moved.to_vec()));
        out.push(Action::Done(Some((taken, keys))));
        out
    }

    /// Every slot stays here.
    fn failed(&mut self) -> Vec<Action> {
        self.done = true;
        vec![
            Action::Unfreeze(self.slots.clone()),
            Action::ServeBlocked(self.slots.clone()),
            Action::Done(None),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn reports_go_at_once_then_together_and_before_every_wait() {
        let t0 = Instant::now();
        let mut r = Reports::default();
        assert!(r.due(t0).is_empty());
        // The first batch is reported at once.
        r.add(vec![1, 2]);
        assert_eq!(r.due(t0), vec![1, 2]);
        // Batches that follow within REPORT_EVERY wait...
        r.add(vec![3]);
        assert!(r.due(t0 + ms(5)).is_empty());
        r.add(vec![4, 5]);
        assert!(r.due(t0 + REPORT_EVERY - ms(1)).is_empty());
        // ... and go together once it has passed.
        assert_eq!(r.due(t0 + REPORT_EVERY), vec![3, 4, 5]);
        assert!(r.due(t0 + REPORT_EVERY * 3).is_empty());
        // Before a wait (and when the order ends) everything goes, however recent.
        r.add(vec![6]);
        assert!(r.due(t0 + REPORT_EVERY + ms(1)).is_empty());
        assert_eq!(r.take(t0 + REPORT_EVERY + ms(2)), vec![6]);
        assert!(r.take(t0 + REPORT_EVERY + ms(3)).is_empty());
        // Nothing was reported by that empty take: the next report is not held back by it.
        r.add(vec![7]);
        assert!(r.due(t0 + REPORT_EVERY * 2 + ms(1)).is_empty());
        assert_eq!(r.due(t0 + REPORT_EVERY * 2 + ms(2)), vec![7]);
    }

    #[test]
    fn a_batch_that_moves_at_once_flips_before_it_unfreezes() {
        let t0 = Instant::now();
        let (mut m, a) = BatchMove::start(vec![1, 2, 3], t0);
        assert_eq!(a, vec![Freeze(vec![1, 2, 3]), Copy]);
        let a = m.on(Attempt::Moved { taken: 3, keys: 40 }, t0 + ms(3));
        assert_eq!(
            a,
            vec![
                Flip(vec![1, 2, 3]),
                Unfreeze(vec![1, 2, 3]),
                DropData(vec![1, 2, 3]),
                ReportDone(vec![1, 2, 3]),
                Done(Some((3, 40))),
            ]
        );
        // A repeated outcome (a reply read twice) changes nothing.
        assert!(m.on(Attempt::Failed, t0 + ms(4)).is_empty());
        assert!(m
            .on(Attempt::Moved { taken: 3, keys: 40 }, t0 + ms(4))
            .is_empty());
    }

    #[test]
    fn refusals_are_retried_frozen_within_the_budget_then_the_batch_stays() {
        let t0 = Instant::now();
        let (mut m, _) = BatchMove::start(vec![7], t0);
        // The new owner's table is behind, then this node's lease lapses for a moment: the
        // batch stays frozen and is copied again.
        assert_eq!(
            m.on(Attempt::TryAgain, t0 + ms(10)),
            vec![Wait(TRYAGAIN_PAUSE), Copy]
        );
        assert_eq!(
            m.on(Attempt::NoLease, t0 + ms(70)),
            vec![RenewLease, Wait(TRYAGAIN_PAUSE), Copy]
        );
        assert_eq!(
            m.on(Attempt::TryAgain, t0 + ms(130)),
            vec![Wait(TRYAGAIN_PAUSE), Copy]
        );
        // ... until it works.
        let a = m.on(Attempt::Moved { taken: 1, keys: 5 }, t0 + ms(190));
        assert_eq!(a.last(), Some(&Done(Some((1, 5)))));
        // A new owner that stays behind past the budget: the batch is unfrozen and stays.
        let (mut m, _) = BatchMove::start(vec![7, 8], t0);
        assert_eq!(
            m.on(Attempt::TryAgain, t0 + TRYAGAIN_BUDGET - ms(1)).len(),
            2
        );
        assert_eq!(
            m.on(Attempt::TryAgain, t0 + TRYAGAIN_BUDGET),
            vec![Unfreeze(vec![7, 8]), ServeBlocked(vec![7, 8]), Done(None)]
        );
        // So does a lease that does not come back.
        let (mut m, _) = BatchMove::start(vec![9], t0);
        assert_eq!(
            m.on(Attempt::NoLease, t0 + TRYAGAIN_BUDGET + ms(1)),
            vec![Unfreeze(vec![9]), ServeBlocked(vec![9]), Done(None)]
        );
    }

    #[test]
    fn a_lost_connection_or_a_refusal_leaves_every_slot_here_at_once() {
        let t0 = Instant::now();
        let (mut m, _) = BatchMove::start(vec![4, 5], t0);
        assert_eq!(
            m.on(Attempt::Failed, t0),
            vec![Unfreeze(vec![4, 5]), ServeBlocked(vec![4, 5]), Done(None)]
        );
        // Whatever comes after (a retry timer firing, a late reply): nothing.
        assert!(m.on(Attempt::TryAgain, t0 + ms(1)).is_empty());
        assert!(m
            .on(Attempt::Moved { taken: 2, keys: 1 }, t0 + ms(2))
            .is_empty());
    }

    #[test]
    fn a_handoff_in_doubt_stays_frozen_until_the_new_owner_answers() {
        let t0 = Instant::now();
        let in_doubt = Attempt::InDoubt { taken: 2, keys: 9 };
        // The connection ended after the HANDOFF of slots 20 and 21 (of 20..=22) was sent:
        // nothing is unfrozen, the new owner is asked about those two.
        let (mut m, _) = BatchMove::start(vec![20, 21, 22], t0);
        assert_eq!(m.on(in_doubt, t0), vec![Check(vec![20, 21])]);
        // No answer (it cannot be reached): asked again, whatever the time, frozen all along;
        // attempts and timers of the copy change nothing meanwhile.
        for _ in 0..3 {
            assert_eq!(
                m.checked(Answer::Unclear),
                vec![Wait(CHECK_PAUSE), Check(vec![20, 21])]
            );
        }
        assert!(m.on(Attempt::Failed, t0 + TRYAGAIN_BUDGET * 10).is_empty());
        assert!(m.on(Attempt::TryAgain, t0 + ms(1)).is_empty());
        // It took them: the batch moved like any other, the third slot stays.
        assert_eq!(
            m.checked(Answer::Took),
            vec![
                Flip(vec![20, 21]),
                Unfreeze(vec![20, 21, 22]),
                DropData(vec![20, 21]),
                ServeBlocked(vec![22]),
                ReportDone(vec![20, 21]),
                Done(Some((2, 9))),
            ]
        );
        assert!(m.checked(Answer::NotTaken).is_empty());
        // It took none (and the check fenced the HANDOFF): every slot is this node's again.
        let (mut m, _) = BatchMove::start(vec![20, 21, 22], t0);
        m.on(in_doubt, t0);
        assert_eq!(
            m.checked(Answer::NotTaken),
            vec![
                Unfreeze(vec![20, 21, 22]),
                ServeBlocked(vec![20, 21, 22]),
                Done(None)
            ]
        );
        // It left the cluster: its lease is waited out before the slots are served here.
        let (mut m, _) = BatchMove::start(vec![20, 21, 22], t0);
        m.on(in_doubt, t0);
        let wait = ms(4000);
        assert_eq!(
            m.checked(Answer::TargetLeft { wait }),
            vec![
                Wait(wait),
                Unfreeze(vec![20, 21, 22]),
                ServeBlocked(vec![20, 21, 22]),
                Done(None)
            ]
        );
        // A check answered while nothing is in doubt changes nothing; a claim of nothing
        // (or of more than the batch) in doubt is a plain failure.
        let (mut m, _) = BatchMove::start(vec![20], t0);
        assert!(m.checked(Answer::Took).is_empty());
        for taken in [0, 2] {
            let (mut m, _) = BatchMove::start(vec![20], t0);
            let a = m.on(Attempt::InDoubt { taken, keys: 0 }, t0);
            assert_eq!(a.last(), Some(&Done(None)), "taken {taken}");
        }
    }

    #[test]
    fn a_partial_batch_keeps_the_slots_it_did_not_take_and_serves_their_clients() {
        let t0 = Instant::now();
        let (mut m, _) = BatchMove::start(vec![10, 11, 12], t0);
        assert_eq!(
            m.on(Attempt::Moved { taken: 1, keys: 2 }, t0),
            vec![
                Flip(vec![10]),
                Unfreeze(vec![10, 11, 12]),
                DropData(vec![10]),
                ServeBlocked(vec![11, 12]),
                ReportDone(vec![10]),
                Done(Some((1, 2))),
            ]
        );
        // A claim of nothing moved, or of more than the batch, is a failure: no slot is
        // flipped or dropped on a claim that cannot be true, and the order cannot spin.
        for taken in [0, 4] {
            let (mut m, _) = BatchMove::start(vec![10, 11, 12], t0);
            let a = m.on(Attempt::Moved { taken, keys: 0 }, t0);
            assert_eq!(a.last(), Some(&Done(None)), "taken {taken}");
            assert!(!a.iter().any(|a| matches!(a, Flip(_) | DropData(_))));
        }
    }

    #[test]
    fn batches_are_bounded_by_slots_and_keys_and_resume_where_a_batch_stopped() {
        let slots: Vec<u16> = (0..200).collect();
        let keys = |s: u16| if s == 70 { 5000 } else { 10 };
        let mut b = Batches::new(slots);
        // 64 slots of 10 keys.
        let first = b.next(keys).expect("a batch");
        assert_eq!(first, (0..64).collect::<Vec<_>>());
        // It took 20 (its bytes ran out): the next starts at 20.
        b.took(20);
        let second = b.next(keys).expect("a batch");
        assert_eq!(second.first(), Some(&20));
        // Slot 70 alone is above the key limit: it goes alone, right after the slots
        // before it.
        assert_eq!(second.last(), Some(&69));
        b.took(second.len());
        assert_eq!(b.next(keys), Some(vec![70]));
        b.took(1);
        let mut moved = 71;
        while let Some(batch) = b.next(keys) {
            assert_eq!(batch.first(), Some(&moved));
            moved += batch.len() as u16;
            b.took(batch.len());
        }
        assert_eq!(moved, 200);
        // An order of nothing has no batch; a batch taking more than is left ends it.
        assert_eq!(Batches::new(Vec::new()).next(keys), None);
        let mut b = Batches::new(vec![1, 2]);
        b.took(5);
        assert_eq!(b.next(keys), None);
    }

    #[test]
    fn a_repeated_order_moves_only_what_is_still_here() {
        // The NameNode repeated an order: slots 3 and 5 went to b, 4 to c, 6 belongs to
        // nobody now; only 1 and 2 are still here.
        let owner = |s: u16| match s {
            1 | 2 => Ok(()),
            3 | 5 => Err(Some("b".to_string())),
            4 => Err(Some("c".to_string())),
            _ => Err(None),
        };
        let (mine, elsewhere) = split_order(1..=6, owner);
        assert_eq!(mine, vec![1, 2]);
        assert_eq!(
            elsewhere,
            vec![("b".to_string(), vec![3, 5]), ("c".to_string(), vec![4])]
        );
    }
}
