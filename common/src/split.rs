//! Multi-key commands whose keys live on several nodes: split by owner, each share sent to
//! its owner, the shares' replies merged into the reply the whole command would get. One
//! implementation for the DataNode's forwarding (a plain connection's MGET over keys of
//! three nodes) and the client library (the same MGET routed by the client).
//!
//! Pure: the caller says who owns each key and sends the shares; here are which keys go
//! together, what each share's command is, and how the answers become one.

use std::collections::hash_map::{Entry, HashMap};
use std::hash::Hash;
use thiserror::Error;

/// How a multi-key command is split and merged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// Not splittable: all keys must share a slot (`-CROSSSLOT` otherwise, as Redis Cluster).
    No,
    /// MGET: one MGET per share, values put back in key order.
    Mget,
    /// MSET: one MSET per share (key and value together), OK when all are.
    Mset,
    /// DEL, UNLINK, EXISTS, TOUCH: one per share, counts added.
    Sum,
}

impl Split {
    /// How the command `name` (any case) splits.
    pub fn of(name: &[u8]) -> Split {
        if name.eq_ignore_ascii_case(b"mget") {
            Split::Mget
        } else if name.eq_ignore_ascii_case(b"mset") {
            Split::Mset
        } else if [&b"del"[..], b"unlink", b"exists", b"touch"]
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n))
        {
            Split::Sum
        } else {
            Split::No
        }
    }

    /// Arguments that travel with each key: MSET's key and value.
    pub fn step(self) -> usize {
        match self {
            Split::Mset => 2,
            _ => 1,
        }
    }
}

/// Key positions grouped by `owner`, groups in order of their first key, keys in request
/// order within a group. Linear in the keys however many groups there are (the client
/// library groups by slot: up to 16,384).
pub fn group<O: Eq + Hash + Clone>(
    positions: impl IntoIterator<Item = usize>,
    mut owner: impl FnMut(usize) -> O,
) -> Vec<(O, Vec<usize>)> {
    let mut groups: Vec<(O, Vec<usize>)> = Vec::new();
    let mut index: HashMap<O, usize> = HashMap::new();
    for p in positions {
        match index.entry(owner(p)) {
            Entry::Occupied(g) => groups[*g.get()].1.push(p),
            Entry::Vacant(g) => {
                groups.push((g.key().clone(), vec![p]));
                g.insert(groups.len() - 1);
            }
        }
    }
    groups
}

/// One share's command: `name`, then the `step` arguments at each of `members` (`arg(i)` is
/// argument `i` of the whole command).
pub fn share<'a>(
    name: &'a [u8],
    members: &[usize],
    step: usize,
    arg: impl Fn(usize) -> &'a [u8],
) -> Vec<&'a [u8]> {
    let mut out = Vec::with_capacity(1 + members.len() * step);
    out.push(name);
    for &p in members {
        out.extend((p..p + step).map(&arg));
    }
    out
}

/// A share's reply as [`merge`] sees it: each side makes it from its own reply type (the
/// client library's `Value`, the DataNode's `Frame`).
#[derive(Clone, Debug, PartialEq)]
pub enum Share<R> {
    /// An array reply's items.
    Array(Vec<R>),
    Integer(i64),
    /// Anything else: a word for what it is, for errors.
    Other(&'static str),
}

/// What the shares' replies merge into, for the side to make its own reply of.
#[derive(Clone, Debug, PartialEq)]
pub enum Merged<R> {
    /// MGET's values in key order (`None`: nil).
    Values(Vec<Option<R>>),
    /// MSET: OK.
    Ok,
    /// The shares' counts added.
    Integer(i64),
}

/// A share's answer that cannot be merged (a node answered something the command never
/// answers).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum MergeError {
    #[error("a share of MGET answered {0}, not an array")]
    NotArray(&'static str),
    #[error("a share of MGET answered {got} values for {want} keys")]
    WrongCount { got: usize, want: usize },
    #[error("a share answered {0}, not an integer")]
    NotInteger(&'static str),
    #[error("{0} replies for {1} shares")]
    Shares(usize, usize),
    #[error("the command cannot be split")]
    NotSplittable,
}

/// Merges the shares' replies (one per group of [`group`], in its order; error replies
/// already taken out by the caller, the first of them being the whole command's answer).
/// `positions` are the command's key positions, ascending: MGET's values come back in
/// their order.
pub fn merge<R, O>(
    split: Split,
    positions: &[usize],
    groups: &[(O, Vec<usize>)],
    replies: Vec<Share<R>>,
) -> Result<Merged<R>, MergeError> {
    if replies.len() != groups.len() {
        return Err(MergeError::Shares(replies.len(), groups.len()));
    }
    match split {
        Split::Mget => {
            let mut out: Vec<Option<R>> = std::iter::repeat_with(|| None)
                .take(positions.len())
                .collect();
            for ((_, members), reply) in groups.iter().zip(replies) {
                let values = match reply {
                    Share::Array(values) => values,
                    Share::Integer(_) => return Err(MergeError::NotArray("an integer")),
                    Share::Other(kind) => return Err(MergeError::NotArray(kind)),
                };
                if values.len() != members.len() {
                    return Err(MergeError::WrongCount {
                        got: values.len(),
                        want: members.len(),
                    });
                }
                for (p, v) in members.iter().zip(values) {
                    if let Ok(i) = positions.binary_search(p) {
                        out[i] = Some(v);
                    }
                }
            }
            Ok(Merged::Values(out))
        }
        Split::Mset => Ok(Merged::Ok),
        Split::Sum => {
            let mut total = 0i64;
            for r in replies {
                let n = match r {
                    Share::Integer(n) => n,
                    Share::Array(_) => return Err(MergeError::NotInteger("an array")),
                    Share::Other(kind) => return Err(MergeError::NotInteger(kind)),
                };
                total = total.saturating_add(n);
            }
            Ok(Merged::Integer(total))
        }
        Split::No => Err(MergeError::NotSplittable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq)]
    enum V {
        Nil,
        Ok,
        Int(i64),
        Str(&'static str),
        Arr(Vec<V>),
    }

    /// What a side does: its replies as shares, the merge as one of its replies.
    fn merge_v(
        split: Split,
        positions: &[usize],
        groups: &[(char, Vec<usize>)],
        replies: Vec<V>,
    ) -> Result<V, MergeError> {
        let shares = replies.into_iter().map(|v| match v {
            V::Arr(items) => Share::Array(items),
            V::Int(n) => Share::Integer(n),
            _ => Share::Other("a string"),
        });
        merge(split, positions, groups, shares.collect()).map(|m| match m {
            Merged::Values(values) => {
                V::Arr(values.into_iter().map(|v| v.unwrap_or(V::Nil)).collect())
            }
            Merged::Ok => V::Ok,
            Merged::Integer(n) => V::Int(n),
        })
    }

    #[test]
    fn kinds() {
        assert_eq!(Split::of(b"mGeT"), Split::Mget);
        assert_eq!(Split::of(b"MSET"), Split::Mset);
        assert_eq!(Split::of(b"unlink"), Split::Sum);
        assert_eq!(Split::of(b"msetnx"), Split::No);
        assert_eq!(Split::of(b"pfcount"), Split::No);
        assert_eq!(Split::Mset.step(), 2);
    }

    #[test]
    fn groups_and_shares_keep_request_order() {
        let args: Vec<&[u8]> = vec![b"MSET", b"a", b"1", b"b", b"2", b"c", b"3"];
        let owner = |p: usize| if args[p] == b"b" { 'y' } else { 'x' };
        let groups = group((1..args.len()).step_by(2), owner);
        assert_eq!(groups, vec![('x', vec![1, 5]), ('y', vec![3])]);
        assert_eq!(
            share(b"MSET", &groups[0].1, 2, |i| args[i]),
            vec![&b"MSET"[..], b"a", b"1", b"c", b"3"]
        );
    }

    /// An owner that counts how often it is compared.
    #[derive(Clone, Debug)]
    struct Counted(u16, std::rc::Rc<std::cell::Cell<u64>>);

    impl std::hash::Hash for Counted {
        fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
            self.0.hash(state)
        }
    }

    impl PartialEq for Counted {
        fn eq(&self, other: &Self) -> bool {
            self.1.set(self.1.get() + 1);
            self.0 == other.0
        }
    }
    impl Eq for Counted {}

    /// Grouping is linear in the keys, however many groups there are: the client library
    /// groups by slot, and an MGET of 16,384 keys in 16,384 slots once took 134 million
    /// comparisons (each key against every group so far). Here at most one comparison a key.
    #[test]
    fn grouping_many_keys_into_many_groups_is_linear() {
        let compared = std::rc::Rc::new(std::cell::Cell::new(0u64));
        let n = 16_384usize;
        // Every slot twice: 2n keys, n groups, each group's second key after all firsts.
        let groups = group(0..2 * n, |p| Counted((p % n) as u16, compared.clone()));
        assert_eq!(groups.len(), n);
        assert!(groups
            .iter()
            .enumerate()
            .all(|(i, (o, members))| { o.0 as usize == i && *members == vec![i, i + n] }));
        assert!(
            compared.get() <= 2 * n as u64,
            "{} comparisons for {} keys",
            compared.get(),
            2 * n
        );
    }

    #[test]
    fn mget_values_come_back_in_key_order() {
        let positions = [1, 2, 3];
        let groups = vec![('x', vec![1, 3]), ('y', vec![2])];
        let merged = merge_v(
            Split::Mget,
            &positions,
            &groups,
            vec![V::Arr(vec![V::Str("a"), V::Nil]), V::Arr(vec![V::Str("b")])],
        );
        assert_eq!(merged, Ok(V::Arr(vec![V::Str("a"), V::Str("b"), V::Nil])));
    }

    /// The disagreements the two former copies had are answered one way: a share that does
    /// not answer as the command does is an error, never a silent 0 or nil.
    #[test]
    fn malformed_shares_are_errors() {
        let positions = [1, 2];
        let groups = vec![('x', vec![1]), ('y', vec![2])];
        assert_eq!(
            merge_v(Split::Sum, &positions, &groups, vec![V::Int(1), V::Ok]),
            Err(MergeError::NotInteger("a string"))
        );
        assert_eq!(
            merge_v(Split::Sum, &positions, &groups, vec![V::Int(1), V::Int(1)]),
            Ok(V::Int(2))
        );
        assert_eq!(
            merge_v(
                Split::Mget,
                &positions,
                &groups,
                vec![V::Arr(vec![]), V::Arr(vec![V::Nil])]
            ),
            Err(MergeError::WrongCount { got: 0, want: 1 })
        );
        assert_eq!(
            merge_v(Split::Mget, &positions, &groups, vec![V::Int(3), V::Nil]),
            Err(MergeError::NotArray("an integer"))
        );
        assert_eq!(
            merge_v(Split::Mset, &positions, &groups, vec![V::Ok]),
            Err(MergeError::Shares(1, 2))
        );
        assert_eq!(
            merge_v(Split::Mset, &positions, &groups, vec![V::Ok, V::Ok]),
            Ok(V::Ok)
        );
    }
}
