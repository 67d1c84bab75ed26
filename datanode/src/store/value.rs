//! Typed values: strings, hashes, sets and lists ([`super::list`]), each collection in a compact encoding while it is
//! small and a real structure beyond Redis's thresholds.
//!
//! - [`Listpack`]: one contiguous block of length-prefixed elements, like Redis's listpack.
//!   Small hashes (field, value, field, value...) and small sets of strings use it: a lookup
//!   is a linear scan of one allocation, cheaper than hashing for a few dozen elements, and
//!   far smaller than a table.
//! - [`Intset`]: a sorted array of integers, for small sets whose members are all canonical
//!   64-bit integers (binary search).
//! - Tables: for hashes an insertion-ordered hash table (`IndexMap`), for sets a
//!   [`SetTable`] (members in a dense chunked array, a hash table of positions); dense
//!   positions give HRANDFIELD, SRANDMEMBER and SPOP an O(1) uniform pick.
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

use super::list::List;
use super::mem::alloc_size;
use super::name::{ChunkVec, Name};
use super::zset::Zset;
use indexmap::IndexMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

type Hasher = foldhash::fast::RandomState;

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

// ---- listpack ----

/// Elements in one contiguous block: each is a LEB128 length, then its bytes.
///
/// No count is kept: a listpack is small by construction (`*-max-listpack-entries`), so
/// counting is a short scan, and without it the struct stays 24 bytes, which keeps a
/// [`Value`] at 32.
///
/// A listpack either owns its bytes or is a view of bytes kept elsewhere: the store keeps a
/// small set's or hash's listpack inline in its key's entry block (one allocation per key
/// instead of two) and lends it out as a view for reads (`Listpack::view`). A view is
/// never freed; a clone of it, or a change to it, owns a copy.
#[derive(Default)]
pub struct Listpack {
    buf: LpBuf,
}

/// The bytes of a compact encoding (a [`Listpack`], a sorted set's `ZipList`): owned, or a
/// view of bytes kept in an entry's block (see [`Listpack::view`]).
pub(super) enum LpBuf {
    Own(Vec<u8>),
    /// Borrowed bytes (see [`Listpack::view`]).
    View(std::ptr::NonNull<u8>, usize),
}

impl LpBuf {
    /// A view of `bytes`.
    ///
    /// # Safety
    /// As [`Listpack::view`].
    pub(super) unsafe fn view(bytes: &[u8]) -> LpBuf {
        let ptr = std::ptr::NonNull::new(bytes.as_ptr().cast_mut())
            .unwrap_or(std::ptr::NonNull::dangling());
        LpBuf::View(ptr, bytes.len())
    }

    #[inline]
    pub(super) fn bytes(&self) -> &[u8] {
        match self {
            LpBuf::Own(v) => v,
            // SAFETY: a view's bytes outlive it (see `view`).
            LpBuf::View(p, n) => unsafe { std::slice::from_raw_parts(p.as_ptr(), *n) },
        }
    }

    /// The owned bytes, writable (a view is copied first).
    pub(super) fn own(&mut self) -> &mut Vec<u8> {
        if let LpBuf::View(..) = self {
            *self = LpBuf::Own(self.bytes().to_vec());
        }
        match self {
            LpBuf::Own(v) => v,
            LpBuf::View(..) => unreachable!("just made owned"),
        }
    }

    /// Heap bytes held (a view holds none of its own).
    pub(super) fn heap_size(&self) -> usize {
        match self {
            LpBuf::Own(v) => alloc_size(v.capacity()),
            LpBuf::View(..) => 0,
        }
    }
}

impl Clone for LpBuf {
    /// An owned copy (of a view too: the copy may outlive the entry).
    fn clone(&self) -> Self {
        LpBuf::Own(self.bytes().to_vec())
    }
}

// SAFETY: a view is only handed out inside `store::Coll`/`store::ValueRef`, which borrow
// the entry it points into (shared reads only, like `&[u8]`); an owned buffer is a `Vec`.
unsafe impl Send for LpBuf {}
// SAFETY: as above: shared access only reads.
unsafe impl Sync for LpBuf {}

impl Default for LpBuf {
    fn default() -> Self {
        LpBuf::Own(Vec::new())
    }
}

impl Clone for Listpack {
    fn clone(&self) -> Self {
        Listpack {
            buf: self.buf.clone(),
        }
    }
}

impl PartialEq for Listpack {
    fn eq(&self, o: &Self) -> bool {
        self.bytes() == o.bytes()
    }
}

impl Eq for Listpack {}

impl std::fmt::Debug for Listpack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

pub(super) fn put_leb(buf: &mut Vec<u8>, mut n: usize) {
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            buf.push(b);
            return;
        }
        buf.push(b | 0x80);
    }
}

/// Reads a length at `at`: (length, offset of the bytes).
pub(super) fn get_leb(buf: &[u8], mut at: usize) -> (usize, usize) {
    let (mut n, mut shift) = (0usize, 0);
    while let Some(&b) = buf.get(at) {
        at += 1;
        n |= ((b & 0x7f) as usize) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    (n, at)
}

impl Listpack {
    /// A listpack reading `bytes` (a listpack's [`Listpack::bytes`]) in place.
    ///
    /// # Safety
    /// The view must not outlive `bytes`, nor be used while they change: the store keeps it
    /// inside a guard that borrows the entry holding them.
    pub(super) unsafe fn view(bytes: &[u8]) -> Listpack {
        Listpack {
            // SAFETY: the caller's promise.
            buf: unsafe { LpBuf::view(bytes) },
        }
    }

    /// A listpack owning a copy of `bytes` (a listpack's [`Listpack::bytes`]), exactly sized.
    pub(super) fn from_bytes(bytes: &[u8]) -> Listpack {
        Listpack {
            buf: LpBuf::Own(bytes.to_vec()),
        }
    }

    /// The encoded elements.
    #[inline]
    pub fn bytes(&self) -> &[u8] {
        self.buf.bytes()
    }

    fn own(&mut self) -> &mut Vec<u8> {
        self.buf.own()
    }

    pub fn len(&self) -> usize {
        self.spans().count()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes().is_empty()
    }

    /// Heap bytes held by the listpack (a view holds none of its own).
    pub fn heap_size(&self) -> usize {
        self.buf.heap_size()
    }

    /// Elements with their byte ranges `(start, end)` (start of the length header).
    fn spans(&self) -> impl Iterator<Item = (usize, usize, &[u8])> + '_ {
        let buf = self.bytes();
        let mut at = 0;
        std::iter::from_fn(move || {
            if at >= buf.len() {
                return None;
            }
            let start = at;
            let (n, data) = get_leb(buf, at);
            let end = (data + n).min(buf.len());
            at = end;
            Some((start, end, &buf[data..end]))
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.spans().map(|(_, _, e)| e)
    }

    pub fn push(&mut self, e: &[u8]) {
        let buf = self.own();
        // Exactly sized, like a listpack's realloc: doubling would leave up to half of
        // every small collection's block unused.
        buf.reserve_exact(super::mem::leb_len(e.len()) + e.len());
        put_leb(buf, e.len());
        buf.extend_from_slice(e);
    }

    /// Replaces bytes `start..end` with the encoded elements `with`.
    fn splice(&mut self, start: usize, end: usize, with: &[&[u8]]) {
        let mut enc = Vec::new();
        for e in with {
            put_leb(&mut enc, e.len());
            enc.extend_from_slice(e);
        }
        let buf = self.own();
        buf.splice(start..end, enc);
        // Keep the block tight, like a listpack realloc: memory follows the contents.
        if buf.capacity() > buf.len() + buf.len() / 4 + 16 {
            buf.shrink_to_fit();
        }
    }

    /// The `i`-th element.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        self.iter().nth(i)
    }
}

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
    index: hashbrown::HashTable<u32>,
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
            + if self.index.num_buckets() == 0 {
                0
            } else {
                alloc_size(self.index.allocation_size())
            }
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
        let members = &self.members;
        let name_at = |p: u32| members.get(p as usize).map_or(&[][..], Name::bytes);
        let Ok(entry) = self.index.find_entry(h, |&p| name_at(p) == m) else {
            return false;
        };
        let (pos, _) = entry.remove();
        let last = (self.len() - 1) as u32;
        if pos != last {
            // The last member moves into the hole: its index entry follows it.
            let moved = self.hasher.hash_one(self.name(last));
            if let Some(p) = self.index.find_mut(moved, |&p| p == last) {
                *p = pos;
            }
        }
        if let Some(name) = self.members.swap_remove(pos as usize) {
            self.names_heap -= name.heap();
        }
        if self.index.capacity() > 64 && self.len() * 4 < self.index.capacity() {
            let (members, hasher) = (&self.members, &self.hasher);
            self.index.shrink_to(self.len() * 2, |&p| {
                hasher.hash_one(members.get(p as usize).map_or(&[][..], Name::bytes))
            });
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

#[cfg(test)]
mod tests;
