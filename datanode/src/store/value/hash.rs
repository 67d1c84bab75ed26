//! Hashes: a listpack of field, value pairs or a [`HashTable`].

use super::*;

// ---- hashes ----

/// A field and its value.
type Pair = (Box<[u8]>, Box<[u8]>);

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
    /// Size classes of the fields' and values' blocks.
    elems: usize,
}

impl std::fmt::Debug for HashTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.pairs.iter().map(|(k, v)| {
                (
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            }))
            .finish()
    }
}

impl PartialEq for HashTable {
    fn eq(&self, o: &Self) -> bool {
        self.len() == o.len() && self.pairs.iter().all(|(k, v)| o.get(k) == Some(&v[..]))
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
        let pairs = &self.pairs;
        self.index.find(self.hasher.hash_one(field), |p| {
            pairs.get(p as usize).is_some_and(|(k, _)| &k[..] == field)
        })
    }

    fn get(&self, field: &[u8]) -> Option<&[u8]> {
        let p = self.find(field)?;
        self.pairs.get(p as usize).map(|(_, v)| &v[..])
    }

    /// Sets `field` to `value`; true when the field is new. A table already holding
    /// `MAX_LEN` fields takes no new one.
    fn set(&mut self, field: &[u8], value: &[u8]) -> bool {
        let vsize = alloc_size(value.len());
        if let Some(p) = self.find(field) {
            if let Some((_, v)) = self.pairs.get_mut(p as usize) {
                self.elems = self.elems - alloc_size(v.len()) + vsize;
                *v = value.into();
            }
            return false;
        }
        if self.len() >= Self::MAX_LEN {
            return false;
        }
        self.elems += alloc_size(field.len()) + vsize;
        let pos = self.len() as u32;
        let (pairs, hasher) = (&self.pairs, &self.hasher);
        self.index.insert_unique(hasher.hash_one(field), pos, |p| {
            hasher.hash_one(pairs.get(p as usize).map_or(&[][..], |(k, _)| &k[..]))
        });
        self.pairs.push((field.into(), value.into()));
        true
    }

    /// Removes `field`; true when it was there.
    fn remove(&mut self, field: &[u8]) -> bool {
        let (pairs, hasher) = (&self.pairs, &self.hasher);
        let key_at = |p: u32| pairs.get(p as usize).map_or(&[][..], |(k, _)| &k[..]);
        let Some(pos) = self.index.remove(
            hasher.hash_one(field),
            |p| key_at(p) == field,
            |p| hasher.hash_one(key_at(p)),
        ) else {
            return false;
        };
        let last = (self.len() - 1) as u32;
        if pos != last {
            // The last pair moves into the hole: its index entry follows it.
            let moved = hasher.hash_one(key_at(last));
            if let Some(p) = self.index.find_mut(moved, |p| p == last) {
                *p = pos;
            }
        }
        if let Some((f, v)) = self.pairs.swap_remove(pos as usize) {
            self.elems -= alloc_size(f.len()) + alloc_size(v.len());
        }
        true
    }

    fn reserve(&mut self, n: usize) {
        let (pairs, hasher) = (&self.pairs, &self.hasher);
        self.index.reserve(n, |p| {
            hasher.hash_one(pairs.get(p as usize).map_or(&[][..], |(k, _)| &k[..]))
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
            Hash::Table(t) => Box::new(t.pairs.iter().map(|(k, v)| (&k[..], &v[..]))),
        }
    }

    /// The `i`-th pair in [`Hash::iter`]'s order, in O(1) for a table.
    pub fn get_index(&self, i: usize) -> Option<(&[u8], &[u8])> {
        match self {
            Hash::Listpack(_) => self.iter().nth(i),
            Hash::Table(t) => t.pairs.get(i).map(|(k, v)| (&k[..], &v[..])),
        }
    }
}
