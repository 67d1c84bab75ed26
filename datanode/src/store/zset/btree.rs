//! The large encoding's order: a B+ tree of `(score, id)` with counts for rank and select.

use super::*;

// ---- large encoding: the order-statistics B+ tree ----

/// Entries per leaf: 85 scores and ids make a leaf of 1024 bytes, one allocator class.
pub(super) const LEAF_CAP: usize = 85;
/// A leaf below this many entries borrows from or merges with a neighbour.
const LEAF_MIN: usize = LEAF_CAP / 4;
const INNER_CAP: usize = 64;
const INNER_MIN: usize = INNER_CAP / 4;

pub(super) struct Leaf {
    len: u16,
    scores: [f64; LEAF_CAP],
    ids: [u32; LEAF_CAP],
}

/// A separator: a lower bound of the keys of the child to its right (a copy: the member it
/// came from may be gone since).
struct Key {
    score: f64,
    name: Name,
}

struct Inner {
    children: Vec<Node>,
    /// Elements under each child.
    counts: Vec<u32>,
    /// `seps[i]` is greater than every key under `children[..=i]` and at most every key
    /// under `children[i + 1..]`.
    seps: Vec<Key>,
}

enum Node {
    Leaf(Box<Leaf>),
    Inner(Box<Inner>),
}

fn new_leaf() -> Box<Leaf> {
    Box::new(Leaf {
        len: 0,
        scores: [0.0; LEAF_CAP],
        ids: [0; LEAF_CAP],
    })
}

fn new_inner() -> Box<Inner> {
    // Fixed capacities (one more than a node holds, for the insert before a split), so an
    // inner node's size is a constant of the accounting.
    Box::new(Inner {
        children: Vec::with_capacity(INNER_CAP + 1),
        counts: Vec::with_capacity(INNER_CAP + 1),
        seps: Vec::with_capacity(INNER_CAP),
    })
}

fn inner_size() -> usize {
    alloc_size(std::mem::size_of::<Inner>())
        + alloc_size((INNER_CAP + 1) * std::mem::size_of::<Node>())
        + alloc_size((INNER_CAP + 1) * 4)
        + alloc_size(INNER_CAP * std::mem::size_of::<Key>())
}

impl Leaf {
    #[inline]
    fn n(&self) -> usize {
        self.len as usize
    }

    /// First position whose key is not below `(s, m)`.
    fn lower_bound(&self, slab: &Slab, s: f64, m: &[u8]) -> usize {
        let scores = &self.scores[..self.n()];
        let lo = scores.partition_point(|&x| x < s);
        let eq = scores[lo..].partition_point(|&x| x <= s);
        lo + self.ids[lo..lo + eq].partition_point(|&id| slab.name(id) < m)
    }

    fn insert_at(&mut self, pos: usize, s: f64, id: u32) {
        let n = self.n();
        self.scores.copy_within(pos..n, pos + 1);
        self.ids.copy_within(pos..n, pos + 1);
        self.scores[pos] = s;
        self.ids[pos] = id;
        self.len += 1;
    }

    fn remove_at(&mut self, pos: usize) {
        let n = self.n();
        self.scores.copy_within(pos + 1..n, pos);
        self.ids.copy_within(pos + 1..n, pos);
        self.len -= 1;
    }

    fn push(&mut self, s: f64, id: u32) {
        let n = self.n();
        self.scores[n] = s;
        self.ids[n] = id;
        self.len += 1;
    }
}

impl Node {
    fn len(&self) -> usize {
        match self {
            Node::Leaf(l) => l.n(),
            Node::Inner(i) => i.counts.iter().map(|&c| c as usize).sum(),
        }
    }

    fn underfull(&self) -> bool {
        match self {
            Node::Leaf(l) => l.n() < LEAF_MIN,
            Node::Inner(i) => i.children.len() < INNER_MIN,
        }
    }
}

/// The tree and what its nodes cost.
pub(super) struct Tree {
    root: Node,
    pub(super) leaves: usize,
    inners: usize,
    /// Heap bytes of separators' members stored out of line.
    sep_heap: usize,
}

impl Default for Tree {
    fn default() -> Self {
        Tree {
            root: Node::Leaf(new_leaf()),
            leaves: 1,
            inners: 0,
            sep_heap: 0,
        }
    }
}

/// Counters a tree operation updates while it holds the root mutably.
struct Stats<'a> {
    leaves: &'a mut usize,
    inners: &'a mut usize,
    sep_heap: &'a mut usize,
}

impl Stats<'_> {
    fn key(&mut self, slab: &Slab, s: f64, id: u32) -> Key {
        let name = slab.slot(id).name.clone();
        *self.sep_heap += name.heap();
        Key { score: s, name }
    }

    fn drop_key(&mut self, k: Key) {
        *self.sep_heap -= k.name.heap();
    }
}

/// The child of `inner` whose keys `(s, m)` falls among.
#[inline]
fn child_index(inner: &Inner, s: f64, m: &[u8]) -> usize {
    inner
        .seps
        .partition_point(|k| cmp_elem(k.score, k.name.bytes(), s, m) != Ordering::Greater)
}

fn insert_rec(
    node: &mut Node,
    slab: &Slab,
    st: &mut Stats<'_>,
    s: f64,
    id: u32,
) -> Option<(Key, Node)> {
    match node {
        Node::Leaf(leaf) => {
            let pos = leaf.lower_bound(slab, s, slab.name(id));
            if leaf.n() < LEAF_CAP {
                leaf.insert_at(pos, s, id);
                return None;
            }
            // Split. Appends (rising scores, the common case of timestamps) and prepends
            // leave the old leaf full instead of half empty.
            let mid = if pos == LEAF_CAP {
                LEAF_CAP - 1
            } else if pos == 0 {
                1
            } else {
                LEAF_CAP / 2
            };
            let mut right = new_leaf();
            for i in mid..LEAF_CAP {
                right.push(leaf.scores[i], leaf.ids[i]);
            }
            leaf.len = mid as u16;
            if pos <= mid {
                leaf.insert_at(pos, s, id);
            } else {
                right.insert_at(pos - mid, s, id);
            }
            *st.leaves += 1;
            let sep = st.key(slab, right.scores[0], right.ids[0]);
            Some((sep, Node::Leaf(right)))
        }
        Node::Inner(inner) => {
            let c = child_index(inner, s, slab.name(id));
            let split = insert_rec(&mut inner.children[c], slab, st, s, id);
            inner.counts[c] += 1;
            let (sep, right) = split?;
            let rl = right.len() as u32;
            inner.counts[c] -= rl;
            inner.children.insert(c + 1, right);
            inner.counts.insert(c + 1, rl);
            inner.seps.insert(c, sep);
            if inner.children.len() <= INNER_CAP {
                return None;
            }
            let (up, right) = split_inner(inner, inner.children.len() / 2);
            *st.inners += 1;
            Some((up, Node::Inner(right)))
        }
    }
}

/// Moves `inner`'s children from `mid` on into a new node; returns the separator between
/// them and the new node.
fn split_inner(inner: &mut Inner, mid: usize) -> (Key, Box<Inner>) {
    let mut right = new_inner();
    right.children.extend(inner.children.drain(mid..));
    right.counts.extend(inner.counts.drain(mid..));
    right.seps.extend(inner.seps.drain(mid..));
    let up = inner
        .seps
        .pop()
        .expect("an inner node has a separator per extra child");
    (up, right)
}

/// Removes `(s, id)`; false when it is not in the tree.
fn remove_rec(node: &mut Node, slab: &Slab, st: &mut Stats<'_>, s: f64, id: u32) -> bool {
    match node {
        Node::Leaf(leaf) => {
            let pos = leaf.lower_bound(slab, s, slab.name(id));
            if pos < leaf.n() && leaf.ids[pos] == id {
                leaf.remove_at(pos);
                true
            } else {
                false
            }
        }
        Node::Inner(inner) => {
            let c = child_index(inner, s, slab.name(id));
            if !remove_rec(&mut inner.children[c], slab, st, s, id) {
                return false;
            }
            removed_under(inner, c, slab, st);
            true
        }
    }
}

/// Removes the first entry (the last with `last`) under `node`: the leftmost (rightmost)
/// path, no comparisons.
fn pop_edge_rec(
    node: &mut Node,
    slab: &Slab,
    st: &mut Stats<'_>,
    last: bool,
) -> Option<(f64, u32)> {
    match node {
        Node::Leaf(leaf) => {
            let n = leaf.n();
            if n == 0 {
                return None;
            }
            let pos = if last { n - 1 } else { 0 };
            let out = (leaf.scores[pos], leaf.ids[pos]);
            leaf.remove_at(pos);
            Some(out)
        }
        Node::Inner(inner) => {
            let c = if last { inner.children.len() - 1 } else { 0 };
            let out = pop_edge_rec(&mut inner.children[c], slab, st, last)?;
            removed_under(inner, c, slab, st);
            Some(out)
        }
    }
}

/// One entry went from under child `c` of `inner`: its count follows, and the child is
/// rebalanced when that left it underfull.
fn removed_under(inner: &mut Inner, c: usize, slab: &Slab, st: &mut Stats<'_>) {
    inner.counts[c] -= 1;
    if inner.children[c].underfull() && inner.children.len() > 1 {
        rebalance(inner, c, slab, st);
    }
}

/// Fixes the underfull child `c` of `inner` by merging it with a neighbour or moving
/// entries over from one.
fn rebalance(inner: &mut Inner, c: usize, slab: &Slab, st: &mut Stats<'_>) {
    let a = if c > 0 { c - 1 } else { c };
    let b = a + 1;
    let (left, right) = inner.children.split_at_mut(b);
    match (&mut left[a], &mut right[0]) {
        (Node::Leaf(l), Node::Leaf(r)) => {
            let total = l.n() + r.n();
            if total <= LEAF_CAP {
                for i in 0..r.n() {
                    l.push(r.scores[i], r.ids[i]);
                }
                inner.children.remove(b);
                inner.counts.remove(b);
                inner.counts[a] = total as u32;
                let k = inner.seps.remove(a);
                st.drop_key(k);
                *st.leaves -= 1;
                return;
            }
            let mut scores = Vec::with_capacity(total);
            let mut ids = Vec::with_capacity(total);
            scores.extend_from_slice(&l.scores[..l.n()]);
            scores.extend_from_slice(&r.scores[..r.n()]);
            ids.extend_from_slice(&l.ids[..l.n()]);
            ids.extend_from_slice(&r.ids[..r.n()]);
            let half = total / 2;
            l.len = 0;
            r.len = 0;
            for i in 0..total {
                if i < half {
                    l.push(scores[i], ids[i]);
                } else {
                    r.push(scores[i], ids[i]);
                }
            }
            inner.counts[a] = half as u32;
            inner.counts[b] = (total - half) as u32;
            let k = st.key(slab, r.scores[0], r.ids[0]);
            let old = std::mem::replace(&mut inner.seps[a], k);
            st.drop_key(old);
        }
        (Node::Inner(l), Node::Inner(r)) => {
            let total = l.children.len() + r.children.len();
            let sep = inner.seps.remove(a);
            if total <= INNER_CAP {
                // Within the fixed capacities: nothing reallocates.
                l.seps.push(sep);
                l.seps.append(&mut r.seps);
                l.children.append(&mut r.children);
                l.counts.append(&mut r.counts);
                inner.counts[a] += inner.counts[b];
                inner.children.remove(b);
                inner.counts.remove(b);
                *st.inners -= 1;
                return;
            }
            // Share the children evenly, through temporaries (the nodes keep their vectors).
            let mut children: Vec<Node> =
                l.children.drain(..).chain(r.children.drain(..)).collect();
            let mut counts: Vec<u32> = l.counts.drain(..).chain(r.counts.drain(..)).collect();
            let mut seps: Vec<Key> = l
                .seps
                .drain(..)
                .chain(std::iter::once(sep))
                .chain(r.seps.drain(..))
                .collect();
            let mid = total / 2;
            let right_children = children.split_off(mid);
            let right_counts = counts.split_off(mid);
            let right_seps = seps.split_off(mid);
            let up = seps.pop().expect("separator between the halves");
            l.children.extend(children);
            l.counts.extend(counts);
            l.seps.extend(seps);
            r.children.extend(right_children);
            r.counts.extend(right_counts);
            r.seps.extend(right_seps);
            inner.counts[a] = l.counts.iter().sum();
            inner.counts[b] = r.counts.iter().sum();
            inner.seps.insert(a, up);
        }
        _ => unreachable!("siblings are at the same height"),
    }
}

impl Tree {
    fn stats(&mut self) -> (&mut Node, Stats<'_>) {
        (
            &mut self.root,
            Stats {
                leaves: &mut self.leaves,
                inners: &mut self.inners,
                sep_heap: &mut self.sep_heap,
            },
        )
    }

    pub(super) fn heap_size(&self) -> usize {
        self.leaves * alloc_size(std::mem::size_of::<Leaf>())
            + self.inners * inner_size()
            + self.sep_heap
    }

    pub(super) fn insert(&mut self, slab: &Slab, s: f64, id: u32) {
        let (root, mut st) = self.stats();
        if let Some((sep, right)) = insert_rec(root, slab, &mut st, s, id) {
            let left = std::mem::replace(root, Node::Leaf(new_leaf()));
            let mut top = new_inner();
            top.counts.push(left.len() as u32);
            top.counts.push(right.len() as u32);
            top.children.push(left);
            top.children.push(right);
            top.seps.push(sep);
            *root = Node::Inner(top);
            self.inners += 1;
        }
    }

    pub(super) fn remove(&mut self, slab: &Slab, s: f64, id: u32) -> bool {
        let (root, mut st) = self.stats();
        let found = remove_rec(root, slab, &mut st, s, id);
        self.shrink_root();
        found
    }

    /// A root with one child gives way to it.
    fn shrink_root(&mut self) {
        if let Node::Inner(inner) = &mut self.root {
            if inner.children.len() == 1 {
                let child = inner.children.pop().expect("one child");
                self.root = child;
                self.inners -= 1;
            }
        }
    }

    /// Removes and returns the lowest entry (the highest with `last`); `None` when empty.
    pub(super) fn pop_edge(&mut self, slab: &Slab, last: bool) -> Option<(f64, u32)> {
        let (root, mut st) = self.stats();
        let out = pop_edge_rec(root, slab, &mut st, last);
        self.shrink_root();
        out
    }

    /// Rank of `(s, id)`, if present.
    pub(super) fn rank(&self, slab: &Slab, s: f64, id: u32) -> Option<usize> {
        let m = slab.name(id);
        let mut node = &self.root;
        let mut acc = 0usize;
        loop {
            match node {
                Node::Inner(inner) => {
                    let c = child_index(inner, s, m);
                    acc += inner.counts[..c].iter().map(|&x| x as usize).sum::<usize>();
                    node = &inner.children[c];
                }
                Node::Leaf(leaf) => {
                    let pos = leaf.lower_bound(slab, s, m);
                    return (pos < leaf.n() && leaf.ids[pos] == id).then_some(acc + pos);
                }
            }
        }
    }

    /// Renames the entry `(s, id)` to `(s, to)`: the slab slot of its member moves from
    /// `id` to `to` (the member, and so the entry's place in the order, stay the same).
    /// `slab` still has the member at `id`. False when the entry is not there.
    pub(super) fn set_id(&mut self, slab: &Slab, s: f64, id: u32, to: u32) -> bool {
        let m = slab.name(id);
        let mut node = &mut self.root;
        loop {
            match node {
                Node::Inner(inner) => {
                    let c = child_index(inner, s, m);
                    node = &mut inner.children[c];
                }
                Node::Leaf(leaf) => {
                    let pos = leaf.lower_bound(slab, s, m);
                    if pos < leaf.n() && leaf.ids[pos] == id {
                        leaf.ids[pos] = to;
                        return true;
                    }
                    return false;
                }
            }
        }
    }

    /// The element of rank `r`.
    pub(super) fn select(&self, mut r: usize) -> Option<(f64, u32)> {
        let mut node = &self.root;
        loop {
            match node {
                Node::Inner(inner) => {
                    let mut next = None;
                    for (i, &c) in inner.counts.iter().enumerate() {
                        if r < c as usize {
                            next = Some(i);
                            break;
                        }
                        r -= c as usize;
                    }
                    node = &inner.children[next?];
                }
                Node::Leaf(leaf) => {
                    return (r < leaf.n()).then(|| (leaf.scores[r], leaf.ids[r]));
                }
            }
        }
    }

    /// How many elements come before the first whose score fails `pred` (which holds for a
    /// prefix of the order).
    pub(super) fn partition_score(&self, pred: impl Fn(f64) -> bool) -> usize {
        let mut node = &self.root;
        let mut acc = 0usize;
        loop {
            match node {
                Node::Inner(inner) => {
                    let c = inner.seps.partition_point(|k| pred(k.score));
                    acc += inner.counts[..c].iter().map(|&x| x as usize).sum::<usize>();
                    node = &inner.children[c];
                }
                Node::Leaf(leaf) => {
                    return acc + leaf.scores[..leaf.n()].partition_point(|&x| pred(x));
                }
            }
        }
    }

    /// Like [`Tree::partition_score`], for a predicate on whole elements.
    pub(super) fn partition_elem(&self, slab: &Slab, pred: impl Fn(f64, &[u8]) -> bool) -> usize {
        let mut node = &self.root;
        let mut acc = 0usize;
        loop {
            match node {
                Node::Inner(inner) => {
                    let c = inner
                        .seps
                        .partition_point(|k| pred(k.score, k.name.bytes()));
                    acc += inner.counts[..c].iter().map(|&x| x as usize).sum::<usize>();
                    node = &inner.children[c];
                }
                Node::Leaf(leaf) => {
                    let (mut lo, mut hi) = (0, leaf.n());
                    while lo < hi {
                        let mid = (lo + hi) / 2;
                        if pred(leaf.scores[mid], slab.name(leaf.ids[mid])) {
                            lo = mid + 1;
                        } else {
                            hi = mid;
                        }
                    }
                    return acc + lo;
                }
            }
        }
    }

    /// Calls `f` on the elements of ranks `lo..hi`, ascending or (`rev`) descending.
    pub(super) fn visit(&self, lo: usize, hi: usize, rev: bool, f: &mut dyn FnMut(f64, u32)) {
        visit_rec(&self.root, lo, hi, rev, f);
    }
}

fn visit_rec(node: &Node, lo: usize, hi: usize, rev: bool, f: &mut dyn FnMut(f64, u32)) {
    if lo >= hi {
        return;
    }
    match node {
        Node::Leaf(leaf) => {
            let hi = hi.min(leaf.n());
            if rev {
                for i in (lo..hi).rev() {
                    f(leaf.scores[i], leaf.ids[i]);
                }
            } else {
                for i in lo..hi {
                    f(leaf.scores[i], leaf.ids[i]);
                }
            }
        }
        Node::Inner(inner) => {
            let total: usize = inner.counts.iter().map(|&c| c as usize).sum();
            let n = inner.children.len();
            // Child `i` holds ranks `start..start + counts[i]` of this node.
            let mut start = if rev { total } else { 0 };
            for k in 0..n {
                let i = if rev { n - 1 - k } else { k };
                let c = inner.counts[i] as usize;
                let s = if rev { start - c } else { start };
                let e = s + c;
                if e > lo && s < hi {
                    visit_rec(
                        &inner.children[i],
                        lo.saturating_sub(s),
                        hi.min(e) - s,
                        rev,
                        f,
                    );
                }
                start = if rev { s } else { e };
                if (rev && s <= lo) || (!rev && e >= hi) {
                    break;
                }
            }
        }
    }
}

/// Builds a tree over sorted `(score, id)` pairs, leaves and inner nodes filled evenly.
pub(super) fn build_tree(slab: &Slab, items: &[(f64, u32)]) -> Tree {
    let mut t = Tree {
        root: Node::Leaf(new_leaf()),
        leaves: 0,
        inners: 0,
        sep_heap: 0,
    };
    let mut st = Stats {
        leaves: &mut t.leaves,
        inners: &mut t.inners,
        sep_heap: &mut t.sep_heap,
    };
    if items.is_empty() {
        *st.leaves = 1;
        return t;
    }
    // (node, its first key, its length)
    let mut level: Vec<(Node, (f64, u32), usize)> = Vec::new();
    let nleaves = items.len().div_ceil(LEAF_CAP);
    let mut at = 0;
    for i in 0..nleaves {
        let take = (items.len() - at) / (nleaves - i);
        let mut leaf = new_leaf();
        for &(s, id) in &items[at..at + take] {
            leaf.push(s, id);
        }
        level.push((Node::Leaf(leaf), items[at], take));
        at += take;
    }
    *st.leaves = nleaves;
    while level.len() > 1 {
        let ngroups = level.len().div_ceil(INNER_CAP);
        let mut next = Vec::with_capacity(ngroups);
        let mut it = level.into_iter();
        let total = it.len();
        let mut done = 0;
        for g in 0..ngroups {
            let take = (total - done) / (ngroups - g);
            let mut inner = new_inner();
            let mut first = (0.0, 0);
            let mut len = 0;
            for j in 0..take {
                let Some((node, key, n)) = it.next() else {
                    break;
                };
                if j == 0 {
                    first = key;
                } else {
                    let k = st.key(slab, key.0, key.1);
                    inner.seps.push(k);
                }
                inner.children.push(node);
                inner.counts.push(n as u32);
                len += n;
            }
            *st.inners += 1;
            next.push((Node::Inner(inner), first, len));
            done += take;
        }
        level = next;
    }
    if let Some((root, _, _)) = level.pop() {
        t.root = root;
    }
    t
}
