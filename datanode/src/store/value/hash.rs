//! Hashes: a listpack of field, value pairs or a [`HashTable`].

use super::*;

// ---- hashes ----

/// A hash table of fields to values, with the bytes its elements hold.
#[derive(Clone, Debug, Default)]
pub struct HashTable {
    map: IndexMap<Box<[u8]>, Box<[u8]>, Hasher>,
    /// Size classes of the fields' and values' blocks.
    elems: usize,
}

impl PartialEq for HashTable {
    fn eq(&self, o: &Self) -> bool {
        self.map.len() == o.map.len() && self.map.iter().all(|(k, v)| o.map.get(k) == Some(v))
    }
}

/// Bytes an `IndexMap`/`IndexSet` of capacity `cap` with `entry`-byte entries takes: the
/// entries vector (hash plus key and value) and the index table (a usize and a control byte
/// per bucket).
fn index_size(cap: usize, entry: usize) -> usize {
    if cap == 0 {
        return 0;
    }
    let buckets = (cap * 8 / 7).next_power_of_two().max(4);
    alloc_size(cap * (entry + 8)) + alloc_size(buckets * 9 + 16)
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
            Hash::Table(t) => t.map.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn heap_size(&self) -> usize {
        match self {
            Hash::Listpack(lp) => lp.heap_size(),
            Hash::Table(t) => {
                alloc_size(std::mem::size_of::<HashTable>())
                    + index_size(t.map.capacity(), 32)
                    + t.elems
            }
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
            Hash::Table(t) => t.map.get(field).map(|v| &v[..]),
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
        let vsize = alloc_size(value.len());
        if let Some(v) = t.map.get_mut(field) {
            t.elems = t.elems - alloc_size(v.len()) + vsize;
            *v = value.into();
            false
        } else {
            t.elems += alloc_size(field.len()) + vsize;
            t.map.insert(field.into(), value.into());
            true
        }
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
            Hash::Table(t) => match t.map.swap_remove_entry(field) {
                Some((f, v)) => {
                    t.elems -= alloc_size(f.len()) + alloc_size(v.len());
                    shrink_map(&mut t.map);
                    true
                }
                None => false,
            },
        }
    }

    /// Converts a listpack hash to a table.
    fn convert_to_table(&mut self) {
        let Hash::Listpack(lp) = &*self else {
            return;
        };
        let mut t = HashTable::default();
        t.map.reserve(lp.len() / 2 + 1);
        {
            let mut it = lp.iter();
            while let (Some(f), Some(v)) = (it.next(), it.next()) {
                t.elems += alloc_size(f.len()) + alloc_size(v.len());
                t.map.insert(f.into(), v.into());
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
            Hash::Table(t) => Box::new(t.map.iter().map(|(k, v)| (&k[..], &v[..]))),
        }
    }

    /// The `i`-th pair in [`Hash::iter`]'s order, in O(1) for a table.
    pub fn get_index(&self, i: usize) -> Option<(&[u8], &[u8])> {
        match self {
            Hash::Listpack(_) => self.iter().nth(i),
            Hash::Table(t) => t.map.get_index(i).map(|(k, v)| (&k[..], &v[..])),
        }
    }
}

/// Gives table memory back once a table is a quarter full (and not tiny).
fn shrink_map<K: std::hash::Hash + Eq, V>(m: &mut IndexMap<K, V, Hasher>) {
    if m.capacity() > 64 && m.len() * 4 < m.capacity() {
        m.shrink_to(m.len() * 2);
    }
}
