//! Hashes: a listpack of field, value pairs or a [`HashTable`].

use super::*;

// ---- hashes ----

/// A field and its value in one block: the field's length (LEB128, one byte up to 127),
/// the field, the value. One allocation and a 16-byte slot a field, where two boxes took
/// two allocations and 32 bytes (a hash of 1M fields: 74 B a field against 90, Valkey 80).
#[derive(Clone)]
struct Pair(Box<[u8]>);

impl Pair {
    fn new(field: &[u8], value: &[u8]) -> Pair {
        let mut b = Vec::with_capacity(field.len() + value.len() + 3);
        put_leb(&mut b, field.len());
        b.extend_from_slice(field);
        b.extend_from_slice(value);
        Pair(b.into_boxed_slice())
    }

    /// Where the value starts, and the field's bounds.
    #[inline]
    fn split(&self) -> (usize, usize) {
        let (n, at) = get_leb(&self.0, 0);
        (at, (at + n).min(self.0.len()))
    }

    #[inline]
    fn field(&self) -> &[u8] {
        let (at, end) = self.split();
        &self.0[at..end]
    }

    #[inline]
    fn value(&self) -> &[u8] {
        &self.0[self.split().1..]
    }

    /// Heap bytes of the block.
    fn size(&self) -> usize {
        alloc_size(self.0.len())
    }
}

/// A large hash: its (field, value) pairs in a dense chunked array (positions `0..len`), and
/// an `IdIndex` of positions that finds a field (resized in steps: growing a hash to
/// millions of fields never stalls the worker on one rehash). Removal moves the last pair
/// into the hole, so a position pick (HRANDFIELD) is O(1) and HSCAN, which walks positions
/// downwards, returns every field present for the whole scan, as for sets.
#[derive(Clone, Default)]
pub struct HashTable {
    pairs: ChunkVec<Pair>,
    index: IdIndex,
    hasher: Hasher,
    /// Size classes of the pairs' blocks.
    elems: usize,
}

impl std::fmt::Debug for HashTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.pairs.iter().map(|p| {
                (
                    String::from_utf8_lossy(p.field()).into_owned(),
                    String::from_utf8_lossy(p.value()).into_owned(),
                )
            }))
            .finish()
    }
}

impl PartialEq for HashTable {
    fn eq(&self, o: &Self) -> bool {
        self.len() == o.len()
            && self
                .pairs
                .iter()
                .all(|p| o.get(p.field()) == Some(p.value()))
    }
}

impl HashTable {
    /// Most fields a table holds (positions are 32-bit).
    const MAX_LEN: usize = u32::MAX as usize;

    fn len(&self) -> usize {
        self.pairs.len()
    }

    fn heap_size(&self) -> usize {
        alloc_size(std::mem::size_of::<HashTable>())
            + self.pairs.heap_size()
            + self.index.allocation_size()
            + self.elems
    }

    fn find(&self, field: &[u8]) -> Option<u32> {
        self.find_hashed(self.hasher.hash_one(field), field)
    }

    /// [`HashTable::find`] with the field's hash already computed.
    fn find_hashed(&self, h: u64, field: &[u8]) -> Option<u32> {
        let pairs = &self.pairs;
        self.index
            .find(h, |&p| {
                pairs.get(p as usize).is_some_and(|x| x.field() == field)
            })
            .copied()
    }

    fn get(&self, field: &[u8]) -> Option<&[u8]> {
        let p = self.find(field)?;
        self.pairs.get(p as usize).map(Pair::value)
    }

    /// Sets `field` to `value`; true when the field is new. A table already holding
    /// `MAX_LEN` fields takes no new one.
    fn set(&mut self, field: &[u8], value: &[u8]) -> bool {
        let h = self.hasher.hash_one(field);
        let pair = Pair::new(field, value);
        if let Some(p) = self.find_hashed(h, field) {
            if let Some(old) = self.pairs.get_mut(p as usize) {
                self.elems = self.elems - old.size() + pair.size();
                *old = pair;
            }
            return false;
        }
        if self.len() >= Self::MAX_LEN {
            return false;
        }
        self.elems += pair.size();
        let pos = self.len() as u32;
        let (pairs, hasher) = (&self.pairs, &self.hasher);
        self.index.insert_unique(h, pos, |&p| {
            hasher.hash_one(pairs.get(p as usize).map_or(&[][..], Pair::field))
        });
        self.pairs.push(pair);
        true
    }

    /// Removes `field`; true when it was there.
    fn remove(&mut self, field: &[u8]) -> bool {
        let (pairs, hasher) = (&self.pairs, &self.hasher);
        let key_at = |p: u32| pairs.get(p as usize).map_or(&[][..], Pair::field);
        // The last pair moves into the hole: its index entry follows it.
        let Some(pos) = self.index.swap_remove(
            hasher.hash_one(field),
            |&p| key_at(p) == field,
            pairs.len(),
            |&p| hasher.hash_one(key_at(p)),
        ) else {
            return false;
        };
        if let Some(pair) = self.pairs.swap_remove(pos as usize) {
            self.elems -= pair.size();
        }
        true
    }

    fn reserve(&mut self, n: usize) {
        let (pairs, hasher) = (&self.pairs, &self.hasher);
        self.index.reserve(n, |&p| {
            hasher.hash_one(pairs.get(p as usize).map_or(&[][..], Pair::field))
        });
    }
}

/// A hash: a listpack of field, value pairs or a table.
#[derive(Clone, Debug, PartialEq)]
pub enum Hash {
    Listpack(Listpack),
    /// Boxed, so that a small hash's value stays small.
    Table(Box<HashTable>),
}

impl Default for Hash {
    fn default() -> Self {
        Hash::Listpack(Listpack::default())
    }
}

impl Hash {
    pub fn len(&self) -> usize {
        match self {
            Hash::Listpack(lp) => lp.len() / 2,
            Hash::Table(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn heap_size(&self) -> usize {
        match self {
            Hash::Listpack(lp) => lp.heap_size(),
            Hash::Table(t) => t.heap_size(),
        }
    }

    /// The listpack span of `field`: (start of the field, end of its value, value).
    fn lp_find<'a>(lp: &'a Listpack, field: &[u8]) -> Option<(usize, usize, &'a [u8])> {
        let mut it = lp.spans();
        while let (Some((fs, _, f)), Some((_, ve, v))) = (it.next(), it.next()) {
            if f == field {
                return Some((fs, ve, v));
            }
        }
        None
    }

    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match self {
            Hash::Listpack(lp) => Hash::lp_find(lp, field).map(|(_, _, v)| v),
            Hash::Table(t) => t.get(field),
        }
    }

    pub fn contains(&self, field: &[u8]) -> bool {
        self.get(field).is_some()
    }

    /// Sets `field` to `value`; true when the field is new. Converts to a table when the
    /// hash outgrows `limits`.
    pub fn insert(&mut self, field: &[u8], value: &[u8], limits: &Limits) -> bool {
        if let Hash::Listpack(lp) = self {
            let too_long = field.len() > limits.hash_max_listpack_value
                || value.len() > limits.hash_max_listpack_value;
            match Hash::lp_find(lp, field) {
                Some((fs, ve, _)) if !too_long => {
                    lp.splice(fs, ve, &[field, value]);
                    return false;
                }
                Some(_) => {}
                None if !too_long && lp.len() / 2 < limits.hash_max_listpack_entries => {
                    lp.push(field);
                    lp.push(value);
                    return true;
                }
                None => {}
            }
            self.convert_to_table();
        }
        let Hash::Table(t) = self else {
            return false;
        };
        t.set(field, value)
    }

    /// Removes `field`; true when it was there.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match self {
            Hash::Listpack(lp) => match Hash::lp_find(lp, field) {
                Some((fs, ve, _)) => {
                    lp.splice(fs, ve, &[]);
                    true
                }
                None => false,
            },
            Hash::Table(t) => t.remove(field),
        }
    }

    /// Converts a listpack hash to a table.
    fn convert_to_table(&mut self) {
        let Hash::Listpack(lp) = &*self else {
            return;
        };
        let mut t = HashTable::default();
        t.reserve(lp.len() / 2 + 1);
        {
            let mut it = lp.iter();
            while let (Some(f), Some(v)) = (it.next(), it.next()) {
                t.set(f, v);
            }
        }
        *self = Hash::Table(Box::new(t));
    }

    /// (field, value) pairs: a listpack's in order, a table's in insertion order.
    pub fn iter(&self) -> Box<dyn Iterator<Item = (&[u8], &[u8])> + '_> {
        match self {
            Hash::Listpack(lp) => {
                let mut it = lp.iter();
                Box::new(std::iter::from_fn(move || Some((it.next()?, it.next()?))))
            }
            Hash::Table(t) => Box::new(t.pairs.iter().map(|p| (p.field(), p.value()))),
        }
    }

    /// The `i`-th pair in [`Hash::iter`]'s order, in O(1) for a table.
    pub fn get_index(&self, i: usize) -> Option<(&[u8], &[u8])> {
        match self {
            Hash::Listpack(_) => self.iter().nth(i),
            Hash::Table(t) => t.pairs.get(i).map(|p| (p.field(), p.value())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_keeps_its_field_and_value_apart_at_every_length() {
        for flen in [0usize, 1, 127, 128, 300, 16_383, 16_384, 70_000] {
            for vlen in [0usize, 1, 128, 5_000] {
                let f: Vec<u8> = (0..flen).map(|i| (i % 251) as u8).collect();
                let v: Vec<u8> = (0..vlen).map(|i| (i % 241) as u8 ^ 0x5a).collect();
                let p = Pair::new(&f, &v);
                assert_eq!(p.field(), &f[..], "field of {flen}/{vlen}");
                assert_eq!(p.value(), &v[..], "value of {flen}/{vlen}");
            }
        }
    }

    #[test]
    fn a_large_hash_sets_replaces_and_removes_by_field() {
        let l = Limits {
            hash_max_listpack_entries: 0,
            ..Limits::default()
        };
        let mut h = Hash::default();
        for i in 0..10_000u32 {
            assert!(h.insert(format!("f{i}").as_bytes(), &i.to_le_bytes(), &l));
        }
        assert!(!h.insert(b"f7", b"seven", &l));
        assert_eq!(h.get(b"f7"), Some(&b"seven"[..]));
        let before = h.heap_size();
        for i in (0..10_000u32).step_by(2) {
            assert!(h.remove(format!("f{i}").as_bytes()));
        }
        assert_eq!(h.len(), 5_000);
        assert!(h.heap_size() < before);
        for i in 0..10_000u32 {
            let want = match i {
                7 => Some(b"seven".to_vec()),
                _ => (i % 2 == 1).then(|| i.to_le_bytes().to_vec()),
            };
            let got = h.get(format!("f{i}").as_bytes()).map(<[u8]>::to_vec);
            assert_eq!(got, want, "f{i}");
        }
        let mut n = 0;
        for (f, v) in h.iter() {
            assert_eq!(h.get(f), Some(v));
            n += 1;
        }
        assert_eq!(n, 5_000);
    }
}
