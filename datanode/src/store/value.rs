//! Typed values: strings, hashes, sets and lists ([`super::list`]), each collection in a compact encoding while it is
//! small and a real structure beyond Redis's thresholds.
//!
//! - [`Listpack`]: one contiguous block of length-prefixed elements, like Redis's listpack.
//!   Small hashes (field, value, field, value...) and small sets of strings use it: a lookup
//!   is a linear scan of one allocation, cheaper than hashing for a few dozen elements, and
//!   far smaller than a table.
//! - [`Intset`]: a sorted array of integers, for small sets whose members are all canonical
//!   64-bit integers (binary search).
//! - Tables: for hashes a [`HashTable`] (field, value pairs in a dense chunked array), for
//!   sets a [`SetTable`] (members in a dense chunked array); each with an index of positions
//!   that resizes in steps (`IdIndex`); dense positions give HRANDFIELD, SRANDMEMBER and
//!   SPOP an O(1) uniform pick.
//!
//! A collection converts one way, compact to table, when an insert crosses
//! `hash-max-listpack-entries`/`-value`, `set-max-intset-entries` or
//! `set-max-listpack-entries`/`-value` ([`Limits`]), like Redis (which never converts back
//! either). Every collection knows the bytes it holds ([`Value::heap_size`]) in O(1), so the
//! store's `used_memory` stays exact as it changes.
//!
//! Sorted sets live in [`super::zset`] (a compact listpack-like block, or a slab, hash
//! index and order-statistics B+ tree).
//!
//! Adding a type (lists) is a new [`Value`] variant and a [`Kind`]; the store keeps every
//! non-string value the same way (in the entry's block, see `Kv` in the store's table).
//!
//! Here [`Value`], [`Ref`], the [`Limits`] and the [`Collection`] trait; by concern:
//! `listpack` ([`Listpack`]), `hash` ([`Hash`](enum@Hash)), `set` ([`Set`], [`Intset`],
//! [`SetTable`]).

use super::idindex::IdIndex;
use super::list::List;
use super::mem::alloc_size;
use super::name::{ChunkVec, Name};
use super::zset::Zset;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

type Hasher = foldhash::fast::RandomState;

mod hash;
mod listpack;
mod set;

pub use hash::{Hash, HashTable};
pub use listpack::Listpack;
pub(super) use listpack::{get_leb, put_leb, LpBuf};
pub use set::{int_member, Intset, Member, Set, SetTable};

/// A value's type, as TYPE names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    String,
    Hash,
    Set,
    List,
    Zset,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Hash => "hash",
            Kind::Set => "set",
            Kind::List => "list",
            Kind::Zset => "zset",
        }
    }
}

/// A stored value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(Box<[u8]>),
    Hash(Hash),
    Set(Set),
    /// Boxed: a list's length and memory live with its nodes.
    List(Box<List>),
    Zset(Zset),
}

impl Value {
    pub fn str(b: &[u8]) -> Value {
        Value::Str(b.into())
    }

    pub fn kind(&self) -> Kind {
        match self {
            Value::Str(_) => Kind::String,
            Value::Hash(_) => Kind::Hash,
            Value::Set(_) => Kind::Set,
            Value::List(_) => Kind::List,
            Value::Zset(_) => Kind::Zset,
        }
    }

    /// The name TYPE reports.
    pub fn type_name(&self) -> &'static str {
        self.kind().name()
    }

    /// The string bytes, or `None` for other types (the caller replies WRONGTYPE).
    pub fn as_str(&self) -> Option<&[u8]> {
        match self {
            Value::Str(b) => Some(b),
            _ => None,
        }
    }

    /// An empty collection of `kind` (strings: the empty string).
    pub fn empty(kind: Kind) -> Value {
        match kind {
            Kind::String => Value::Str(Box::default()),
            Kind::Hash => Value::Hash(Hash::default()),
            Kind::Set => Value::Set(Set::default()),
            Kind::List => Value::List(Box::default()),
            Kind::Zset => Value::Zset(Zset::default()),
        }
    }

    /// Elements of a collection (fields of a hash, members of a set); strings count as one.
    pub fn len(&self) -> usize {
        match self {
            Value::Str(_) => 1,
            Value::Hash(h) => h.len(),
            Value::Set(s) => s.len(),
            Value::List(l) => l.len(),
            Value::Zset(z) => z.len(),
        }
    }

    /// Whether a collection is empty (an empty collection is never stored: its key goes).
    pub fn is_empty(&self) -> bool {
        match self {
            Value::Str(_) => false,
            Value::Hash(h) => h.len() == 0,
            Value::Set(s) => s.len() == 0,
            Value::List(l) => l.is_empty(),
            Value::Zset(z) => z.is_empty(),
        }
    }

    /// Bytes the value holds on the heap, by allocator size class (strings: their length;
    /// the store charges a string inside the entry's own block).
    pub fn heap_size(&self) -> usize {
        match self {
            Value::Str(b) => b.len(),
            Value::Hash(h) => h.heap_size(),
            Value::Set(s) => s.heap_size(),
            Value::List(l) => l.heap_size(),
            Value::Zset(z) => z.heap_size(),
        }
    }

    /// OBJECT ENCODING's name for a collection (strings are named by the caller, from their
    /// bytes).
    pub fn encoding(&self) -> &'static str {
        match self {
            Value::Str(_) => "raw",
            Value::Hash(Hash::Listpack(_)) => "listpack",
            Value::Hash(Hash::Table(_)) => "hashtable",
            Value::Set(Set::Intset(_)) => "intset",
            Value::Set(Set::Listpack(_)) => "listpack",
            Value::Set(Set::Table(_)) => "hashtable",
            Value::List(l) => l.encoding(),
            Value::Zset(z) => z.encoding(),
        }
    }
}

/// A borrowed collection: a reference to one stored as a [`Value`], or a view of one the
/// store keeps inline in its entry's block (a small set's or hash's listpack, see
/// `Listpack::view`). Reads it like `&T`; the borrow keeps the entry alive and unchanged.
pub struct Ref<'a, T>(RefInner<'a, T>);

enum RefInner<'a, T> {
    Ref(&'a T),
    View(T, std::marker::PhantomData<&'a [u8]>),
}

/// A borrowed value (see [`Ref`]).
pub type ValueRef<'a> = Ref<'a, Value>;

impl<'a, T> Ref<'a, T> {
    pub fn new(r: &'a T) -> Ref<'a, T> {
        Ref(RefInner::Ref(r))
    }

    /// A view built over bytes that live for `'a`.
    ///
    /// # Safety
    /// `v` must only borrow (never own) bytes that stay unchanged for `'a`.
    pub(super) unsafe fn view(v: T) -> Ref<'a, T> {
        Ref(RefInner::View(v, std::marker::PhantomData))
    }
}

impl<'a> Ref<'a, Value> {
    /// The collection of type `T` this value is, if it is one.
    pub fn collection<T: Collection>(self) -> Option<Ref<'a, T>> {
        match self.0 {
            RefInner::Ref(v) => T::of(v).map(Ref::new),
            RefInner::View(v, p) => T::from_value(v).map(|c| Ref(RefInner::View(c, p))),
        }
    }
}

impl<T> std::ops::Deref for Ref<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        match &self.0 {
            RefInner::Ref(r) => r,
            RefInner::View(v, _) => v,
        }
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Ref<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

impl<T: PartialEq> PartialEq for Ref<'_, T> {
    fn eq(&self, o: &Self) -> bool {
        **self == **o
    }
}

impl<T: PartialEq> PartialEq<T> for Ref<'_, T> {
    fn eq(&self, o: &T) -> bool {
        **self == *o
    }
}

/// Conversion thresholds, Redis's parameters of the same names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub hash_max_listpack_entries: usize,
    pub hash_max_listpack_value: usize,
    pub set_max_intset_entries: usize,
    pub set_max_listpack_entries: usize,
    pub set_max_listpack_value: usize,
    /// `list-max-listpack-size`: negative, a node's size (-1 4 KiB ... -5 64 KiB); positive,
    /// its element count.
    pub list_max_listpack_size: i64,
    /// `list-compress-depth`: how many nodes at each end of a list stay raw; the nodes
    /// between are compressed (0: none).
    pub list_compress_depth: usize,
    pub zset_max_listpack_entries: usize,
    pub zset_max_listpack_value: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            hash_max_listpack_entries: 128,
            hash_max_listpack_value: 64,
            set_max_intset_entries: 512,
            set_max_listpack_entries: 128,
            set_max_listpack_value: 64,
            list_max_listpack_size: -2,
            list_compress_depth: 0,
            zset_max_listpack_entries: 128,
            zset_max_listpack_value: 64,
        }
    }
}

/// [`Limits`] the store reads without taking the config lock (set by CONFIG SET).
#[derive(Debug)]
pub struct SharedLimits([AtomicUsize; 9]);

impl Default for SharedLimits {
    fn default() -> Self {
        let s = SharedLimits(std::array::from_fn(|_| AtomicUsize::new(0)));
        s.store(&Limits::default());
        s
    }
}

impl SharedLimits {
    pub fn load(&self) -> Limits {
        let g = |i: usize| self.0[i].load(Relaxed);
        Limits {
            hash_max_listpack_entries: g(0),
            hash_max_listpack_value: g(1),
            set_max_intset_entries: g(2),
            set_max_listpack_entries: g(3),
            set_max_listpack_value: g(4),
            list_max_listpack_size: g(5) as i64,
            list_compress_depth: g(6),
            zset_max_listpack_entries: g(7),
            zset_max_listpack_value: g(8),
        }
    }

    pub fn store(&self, l: &Limits) {
        let v = [
            l.hash_max_listpack_entries,
            l.hash_max_listpack_value,
            l.set_max_intset_entries,
            l.set_max_listpack_entries,
            l.set_max_listpack_value,
            l.list_max_listpack_size as usize,
            l.list_compress_depth,
            l.zset_max_listpack_entries,
            l.zset_max_listpack_value,
        ];
        for (a, v) in self.0.iter().zip(v) {
            a.store(v, Relaxed);
        }
    }
}

/// A collection type a key can hold, and how to reach it inside a [`Value`], so commands of
/// every collection type share one way to read and update them (`cmd::update_collection`).
pub trait Collection: Sized {
    const KIND: Kind;
    fn of(v: &Value) -> Option<&Self>;
    fn of_mut(v: &mut Value) -> Option<&mut Self>;
    /// The collection a value holds, by value.
    fn from_value(v: Value) -> Option<Self>;
}

impl Collection for Hash {
    const KIND: Kind = Kind::Hash;
    fn from_value(v: Value) -> Option<Hash> {
        match v {
            Value::Hash(c) => Some(c),
            _ => None,
        }
    }
    fn of(v: &Value) -> Option<&Hash> {
        match v {
            Value::Hash(h) => Some(h),
            _ => None,
        }
    }
    fn of_mut(v: &mut Value) -> Option<&mut Hash> {
        match v {
            Value::Hash(h) => Some(h),
            _ => None,
        }
    }
}

impl Collection for List {
    const KIND: Kind = Kind::List;
    fn from_value(v: Value) -> Option<List> {
        match v {
            Value::List(l) => Some(*l),
            _ => None,
        }
    }
    fn of(v: &Value) -> Option<&List> {
        match v {
            Value::List(l) => Some(l),
            _ => None,
        }
    }
    fn of_mut(v: &mut Value) -> Option<&mut List> {
        match v {
            Value::List(l) => Some(l),
            _ => None,
        }
    }
}

impl Collection for Set {
    const KIND: Kind = Kind::Set;
    fn from_value(v: Value) -> Option<Set> {
        match v {
            Value::Set(c) => Some(c),
            _ => None,
        }
    }
    fn of(v: &Value) -> Option<&Set> {
        match v {
            Value::Set(s) => Some(s),
            _ => None,
        }
    }
    fn of_mut(v: &mut Value) -> Option<&mut Set> {
        match v {
            Value::Set(s) => Some(s),
            _ => None,
        }
    }
}

impl Collection for Zset {
    const KIND: Kind = Kind::Zset;
    fn from_value(v: Value) -> Option<Zset> {
        match v {
            Value::Zset(c) => Some(c),
            _ => None,
        }
    }
    fn of(v: &Value) -> Option<&Zset> {
        match v {
            Value::Zset(z) => Some(z),
            _ => None,
        }
    }
    fn of_mut(v: &mut Value) -> Option<&mut Zset> {
        match v {
            Value::Zset(z) => Some(z),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
