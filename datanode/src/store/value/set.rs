//! Sets: an [`Intset`], a listpack of members, or a [`SetTable`].

use super::*;

// ---- intset ----

/// A sorted array of distinct integers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Intset(Vec<i64>);

/// The integer a member stands for, when it is the canonical decimal form of an i64 (what
/// Redis's intset accepts: `12` yes, `012` or `+1` no).
pub fn int_member(b: &[u8]) -> Option<i64> {
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    let n: i64 = std::str::from_utf8(b).ok()?.parse().ok()?;
    let mut buf = itoa::Buffer::new();
    (buf.format(n).as_bytes() == b).then_some(n)
}

impl Intset {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn heap_size(&self) -> usize {
        alloc_size(self.0.capacity() * 8)
    }

    pub fn contains(&self, n: i64) -> bool {
        self.0.binary_search(&n).is_ok()
    }

    pub fn insert(&mut self, n: i64) -> bool {
        match self.0.binary_search(&n) {
            Ok(_) => false,
            Err(i) => {
                self.0.reserve_exact(1);
                self.0.insert(i, n);
                true
            }
        }
    }

    pub fn remove(&mut self, n: i64) -> bool {
        match self.0.binary_search(&n) {
            Ok(i) => {
                self.0.remove(i);
                if self.0.capacity() > self.0.len() * 2 + 4 {
                    self.0.shrink_to_fit();
                }
                true
            }
            Err(_) => false,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = i64> + '_ {
        self.0.iter().copied()
    }

    pub fn get(&self, i: usize) -> Option<i64> {
        self.0.get(i).copied()
    }
}

// ---- sets ----

/// A large set: members in a dense chunked array (positions `0..len`, 24 bytes each with
/// members of up to 22 bytes inline), and a hash table of positions (4 bytes a bucket plus
/// a control byte) that finds a member. A member costs about 34 bytes at a million members,
/// against 80 to 100 for a table of boxed members.
///
/// Dense positions give SPOP and SRANDMEMBER an O(1) uniform pick. Removal moves the last
/// member into the hole, so SSCAN, which walks positions downwards, returns every member
/// present for the whole scan: a member moves only from above the cursor (already visited)
/// to below it.
#[derive(Clone, Default)]
pub struct SetTable {
    members: ChunkVec<Name>,
    index: IdIndex,
    hasher: Hasher,
    /// Heap bytes of the members stored out of line.
    names_heap: usize,
}

impl std::fmt::Debug for SetTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.members.iter()).finish()
    }
}

impl PartialEq for SetTable {
    fn eq(&self, o: &Self) -> bool {
        self.len() == o.len() && self.members.iter().all(|m| o.contains(m.bytes()))
    }
}

impl SetTable {
    /// Most members a table holds (positions are 32-bit).
    const MAX_LEN: usize = u32::MAX as usize;

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    fn heap_size(&self) -> usize {
        alloc_size(std::mem::size_of::<SetTable>())
            + self.members.heap_size()
            + self.index.allocation_size()
            + self.names_heap
    }

    #[inline]
    fn name(&self, pos: u32) -> &[u8] {
        self.members.get(pos as usize).map_or(&[], Name::bytes)
    }

    fn find(&self, m: &[u8]) -> Option<u32> {
        self.index
            .find(self.hasher.hash_one(m), |&p| self.name(p) == m)
            .copied()
    }

    pub fn contains(&self, m: &[u8]) -> bool {
        self.find(m).is_some()
    }

    /// Adds `m`; true when it is new. A table already holding `MAX_LEN` members
    /// takes no more.
    pub fn insert(&mut self, m: &[u8]) -> bool {
        let h = self.hasher.hash_one(m);
        let (members, hasher) = (&self.members, &self.hasher);
        let name_at = |p: u32| members.get(p as usize).map_or(&[][..], Name::bytes);
        if self.index.find(h, |&p| name_at(p) == m).is_some() || self.len() >= Self::MAX_LEN {
            return false;
        }
        let pos = self.len() as u32;
        self.index
            .insert_unique(h, pos, |&p| hasher.hash_one(name_at(p)));
        let name = Name::new(m);
        self.names_heap += name.heap();
        self.members.push(name);
        true
    }

    /// Removes `m`; true when it was there.
    pub fn remove(&mut self, m: &[u8]) -> bool {
        let h = self.hasher.hash_one(m);
        let (members, hasher) = (&self.members, &self.hasher);
        let name_at = |p: u32| members.get(p as usize).map_or(&[][..], Name::bytes);
        // The last member moves into the hole: its index entry follows it. (The index may
        // move entries while removing, a resize in steps, rehashing them by position: the
        // members are all still in place then.)
        let Some(pos) = self.index.swap_remove(
            h,
            |&p| name_at(p) == m,
            members.len(),
            |&p| hasher.hash_one(name_at(p)),
        ) else {
            return false;
        };
        if let Some(name) = self.members.swap_remove(pos as usize) {
            self.names_heap -= name.heap();
        }
        true
    }

    fn reserve(&mut self, n: usize) {
        let (members, hasher) = (&self.members, &self.hasher);
        self.index.reserve(n, |&p| {
            hasher.hash_one(members.get(p as usize).map_or(&[][..], Name::bytes))
        });
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.members.iter().map(Name::bytes)
    }

    pub fn get_index(&self, i: usize) -> Option<&[u8]> {
        self.members.get(i).map(Name::bytes)
    }
}

/// A set: an intset, a listpack of members, or a table.
#[derive(Clone, Debug, PartialEq)]
pub enum Set {
    Intset(Intset),
    Listpack(Listpack),
    /// Boxed, so that a small set's value stays small.
    Table(Box<SetTable>),
}

impl Default for Set {
    fn default() -> Self {
        Set::Intset(Intset::default())
    }
}

/// A set member, borrowed or an intset's integer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Member<'a> {
    Bytes(&'a [u8]),
    Int(i64),
}

impl Member<'_> {
    /// The member's bytes (integers formatted).
    pub fn to_vec(self) -> Vec<u8> {
        match self {
            Member::Bytes(b) => b.to_vec(),
            Member::Int(n) => itoa::Buffer::new().format(n).as_bytes().to_vec(),
        }
    }

    /// Calls `f` with the member's bytes, formatting an integer on the stack.
    pub fn with_bytes<R>(self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            Member::Bytes(b) => f(b),
            Member::Int(n) => f(itoa::Buffer::new().format(n).as_bytes()),
        }
    }
}

impl Set {
    /// An empty set in the encoding that suits its first member.
    pub fn for_member(m: &[u8], limits: &Limits) -> Set {
        if int_member(m).is_some() && limits.set_max_intset_entries > 0 {
            Set::Intset(Intset::default())
        } else if m.len() <= limits.set_max_listpack_value && limits.set_max_listpack_entries > 0 {
            Set::Listpack(Listpack::default())
        } else {
            Set::Table(Box::default())
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Set::Intset(s) => s.len(),
            Set::Listpack(lp) => lp.len(),
            Set::Table(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn heap_size(&self) -> usize {
        match self {
            Set::Intset(s) => s.heap_size(),
            Set::Listpack(lp) => lp.heap_size(),
            Set::Table(t) => t.heap_size(),
        }
    }

    pub fn contains(&self, m: &[u8]) -> bool {
        match self {
            Set::Intset(s) => int_member(m).is_some_and(|n| s.contains(n)),
            Set::Listpack(lp) => lp.iter().any(|e| e == m),
            Set::Table(t) => t.contains(m),
        }
    }

    /// Adds `m`; true when it is new. Converts the encoding when the set outgrows `limits`.
    pub fn insert(&mut self, m: &[u8], limits: &Limits) -> bool {
        if let Set::Intset(s) = self {
            if let Some(n) = int_member(m) {
                if s.contains(n) {
                    return false;
                }
                if s.len() < limits.set_max_intset_entries {
                    return s.insert(n);
                }
                self.convert_to_table();
            } else if s.len() < limits.set_max_listpack_entries
                && m.len() <= limits.set_max_listpack_value
                && s.len() < limits.set_max_listpack_entries
            {
                let mut lp = Listpack::default();
                let mut buf = itoa::Buffer::new();
                for n in s.iter() {
                    lp.push(buf.format(n).as_bytes());
                }
                *self = Set::Listpack(lp);
            } else {
                self.convert_to_table();
            }
        }
        if let Set::Listpack(lp) = self {
            if lp.iter().any(|e| e == m) {
                return false;
            }
            if lp.len() < limits.set_max_listpack_entries
                && m.len() <= limits.set_max_listpack_value
            {
                lp.push(m);
                return true;
            }
            self.convert_to_table();
        }
        match self {
            Set::Table(t) => t.insert(m),
            _ => false,
        }
    }

    /// Removes `m`; true when it was there.
    pub fn remove(&mut self, m: &[u8]) -> bool {
        match self {
            Set::Intset(s) => int_member(m).is_some_and(|n| s.remove(n)),
            Set::Listpack(lp) => {
                let found = lp.spans().find(|(_, _, e)| *e == m).map(|(s, e, _)| (s, e));
                match found {
                    Some((s, e)) => {
                        lp.splice(s, e, &[]);
                        true
                    }
                    None => false,
                }
            }
            Set::Table(t) => t.remove(m),
        }
    }

    fn convert_to_table(&mut self) {
        let mut t = SetTable::default();
        t.reserve(self.len() + 1);
        for m in self.iter() {
            m.with_bytes(|b| t.insert(b));
        }
        *self = Set::Table(Box::new(t));
    }

    /// Members: an intset's in ascending order, others in storage order.
    pub fn iter(&self) -> Box<dyn Iterator<Item = Member<'_>> + '_> {
        match self {
            Set::Intset(s) => Box::new(s.iter().map(Member::Int)),
            Set::Listpack(lp) => Box::new(lp.iter().map(Member::Bytes)),
            Set::Table(t) => Box::new(t.iter().map(Member::Bytes)),
        }
    }

    /// The `i`-th member in [`Set::iter`]'s order (O(1) but for a listpack).
    pub fn get_index(&self, i: usize) -> Option<Member<'_>> {
        match self {
            Set::Intset(s) => s.get(i).map(Member::Int),
            Set::Listpack(lp) => lp.get(i).map(Member::Bytes),
            Set::Table(t) => t.get_index(i).map(Member::Bytes),
        }
    }
}
