//! One slot's keys: a hash table of entries, plus a dense array of positions.
//!
//! A lookup has to touch memory that is, for a large keyspace, not in any cache: every
//! dependent load on the way is a trip to DRAM, and those trips are most of a GET's cost
//! once the protocol work is pipelined. An insertion-ordered map (`IndexMap`) costs four:
//! control bytes, the index slot, the entry in the dense vector, the key's heap block. Here
//! the hash table holds each entry's handle itself (`HashTable<Kv>`), and everything the
//! hot path needs (position, TTL link, access time) lives in the entry's own block, next to
//! the key it has to read anyway: three trips, the last of which also serves the value.
//!
//! The table resizes in steps ([`StepTable`]), like a large collection's index: a slot
//! holding millions of keys (one hash tag for all of them) would otherwise stall its node
//! for tens of milliseconds each time its table doubled.
//!
//! Positions, which SCAN, sampling and the volatile list need, stay dense and stable across
//! rehashes: the `hashes` array holds the hash of the entry at each position, so position
//! `p` is found by probing for `hashes[p]` and the entry that says it is at `p`. A hash is
//! 32 bits, stored in 4 bytes and given to the table doubled ([`wide`]), so its low bits pick
//! the bucket and its top bits the control byte as with a full 64-bit hash. Removal is
//! `swap_remove`, like IndexMap's.

use super::idindex::{self, StepTable};
use super::mem;
use super::value::{Hash, Listpack, Set, Value, ValueRef};
use super::zset::{ZipList, Zset};
use std::alloc::{self, Layout};
use std::hash::BuildHasher;
use std::ptr::NonNull;

/// Hasher for the slot tables: fast and seeded per process.
type Hasher = foldhash::fast::RandomState;

/// Per-entry metadata, kept in the entry's block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Meta {
    /// Position in the slot's volatile list, or `NOT_VOLATILE`.
    pub vol_pos: u32,
    /// Last access. Under LRU (and non-LFU) policies: seconds on the store's clock (OBJECT
    /// IDLETIME). Under LFU policies, Redis's layout: minutes (16 bits) of the last counter
    /// update, then the 8-bit logarithmic counter (OBJECT FREQ). See `evict`.
    pub access: u32,
}

/// Bytes of an entry block before its lengths: position, volatile position, access (u32
/// each).
pub(super) const KV_HEADER: usize = 12;

/// The position field's top bits hold the entry's tag: how to read its value bytes.
const TAG_SHIFT: u32 = 28;
const POS_MASK: u32 = (1 << TAG_SHIFT) - 1;
/// Most entries one slot can hold (positions must fit below the tag).
pub(super) const MAX_SLOT_ENTRIES: usize = POS_MASK as usize;

/// What an entry's value bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Tag {
    /// The string itself.
    Str = 0,
    /// A collection: padding to an 8-byte boundary, then the [`Value`] itself.
    Obj = 1,
    /// A set in its listpack encoding: the listpack's bytes ([`Listpack::bytes`]) inline.
    SetLp = 2,
    /// A hash in its listpack encoding, inline like [`Tag::SetLp`].
    HashLp = 3,
    /// A sorted set in its listpack encoding, inline like [`Tag::SetLp`].
    ZsetLp = 4,
}

/// The tag and bytes of a collection the store keeps inline in its entry's block: sets and
/// hashes and sorted sets in their listpack encoding. One block per key instead of two saves the second
/// block's size-class rounding and the `Value` struct (32 bytes) in the first.
fn inline_of(v: &Value) -> Option<(Tag, &[u8])> {
    match v {
        Value::Set(Set::Listpack(lp)) => Some((Tag::SetLp, lp.bytes())),
        Value::Hash(Hash::Listpack(lp)) => Some((Tag::HashLp, lp.bytes())),
        Value::Zset(Zset::Listpack(z)) => Some((Tag::ZsetLp, z.bytes())),
        _ => None,
    }
}

/// An entry in one allocation: `[tag and position][volatile position][access][key length,
/// LEB128][value length, LEB128][key][value]`, the three numbers as little-endian u32s. The
/// tag (top 4 bits of the first number, see [`Tag`]) says whether the value bytes are a
/// string or the index of a collection: a string entry is as small as an untyped one, and
/// reading its type costs nothing more than reading its position.
///
/// One block per key, and an 8-byte handle in the table (a thin pointer: the block knows
/// its own length): for the small keys and values caches hold, this is most of the memory
/// per key. The header sits in the first cache line, with the key, so reading or updating
/// it on a lookup costs no extra memory access.
pub(super) struct Kv(NonNull<u8>);

// SAFETY: a `Kv` owns its block exclusively, like a `Box<[u8]>`.
unsafe impl Send for Kv {}
// SAFETY: shared access only reads the block.
unsafe impl Sync for Kv {}

/// Alignment of an entry block: what the allocator gives any block of 8 bytes or more anyway.
const KV_ALIGN: usize = 8;

/// Bytes a collection takes in its entry's block.
pub(super) const OBJ_SIZE: usize = std::mem::size_of::<Value>();
const _: () = assert!(std::mem::align_of::<Value>() <= KV_ALIGN && OBJ_SIZE + KV_ALIGN < 128);

/// Writes `n` as LEB128 at `dst`; returns the address after it.
///
/// # Safety
/// `dst` must be valid for writing `mem::leb_len(n)` bytes.
unsafe fn put_leb_raw(mut dst: *mut u8, mut n: usize) -> *mut u8 {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        // SAFETY: the caller provides room for every byte of the encoding.
        unsafe {
            if n == 0 {
                dst.write(byte);
                return dst.add(1);
            }
            dst.write(byte | 0x80);
            dst = dst.add(1);
        }
    }
}

impl Kv {
    fn layout(size: usize) -> Layout {
        // Never fails: the size is at most a value's limit plus a key and a header, far
        // below `isize::MAX`.
        Layout::from_size_align(size, KV_ALIGN).unwrap_or(Layout::new::<u64>())
    }

    /// A block for `key` and a value made of `parts` followed by `zeros` zero bytes, with
    /// the header `head`.
    fn build(head: [u8; KV_HEADER], key: &[u8], parts: &[&[u8]], zeros: usize) -> Kv {
        let vlen = parts.iter().map(|p| p.len()).sum::<usize>() + zeros;
        let size = KV_HEADER + mem::leb_len(key.len()) + mem::leb_len(vlen) + key.len() + vlen;
        let layout = Kv::layout(size);
        // SAFETY: `size` is at least `KV_HEADER` bytes, not zero.
        let ptr = unsafe { alloc::alloc(layout) };
        let Some(ptr) = NonNull::new(ptr) else {
            alloc::handle_alloc_error(layout)
        };
        // SAFETY: the block was just allocated with `size` bytes, 8-aligned, which the
        // writes below fill exactly, in order: header, lengths, key, parts, zeros.
        unsafe {
            let mut dst = ptr.as_ptr();
            dst.cast::<[u8; KV_HEADER]>().write(head);
            dst = put_leb_raw(dst.add(KV_HEADER), key.len());
            dst = put_leb_raw(dst, vlen);
            std::ptr::copy_nonoverlapping(key.as_ptr(), dst, key.len());
            dst = dst.add(key.len());
            for p in parts {
                std::ptr::copy_nonoverlapping(p.as_ptr(), dst, p.len());
                dst = dst.add(p.len());
            }
            std::ptr::write_bytes(dst, 0, zeros);
        }
        Kv(ptr)
    }

    pub fn new(key: &[u8], value: &[u8], meta: Meta) -> Kv {
        let mut head = [0u8; KV_HEADER];
        head[4..8].copy_from_slice(&meta.vol_pos.to_le_bytes());
        head[8..12].copy_from_slice(&meta.access.to_le_bytes());
        Kv::build(head, key, &[value], 0)
    }

    /// (offset of the key, key length, value length), from the two LEB128 lengths.
    #[inline]
    fn split(&self) -> (usize, usize, usize) {
        let p = self.0.as_ptr();
        let mut at = KV_HEADER;
        let mut read = || {
            let (mut n, mut shift) = (0usize, 0);
            loop {
                // SAFETY: `build` wrote both lengths, each ending in a byte below 0x80,
                // right after the header: every byte read here is inside the block.
                let b = unsafe { *p.add(at) };
                at += 1;
                n |= ((b & 0x7f) as usize) << shift;
                if b & 0x80 == 0 {
                    return n;
                }
                shift += 7;
            }
        };
        let k = read();
        let v = read();
        (at, k, v)
    }

    /// The whole block.
    #[inline]
    fn bytes(&self) -> &[u8] {
        let (h, k, v) = self.split();
        // SAFETY: the block holds `h + k + v` initialised bytes (see `build`).
        unsafe { std::slice::from_raw_parts(self.0.as_ptr(), h + k + v) }
    }

    fn head(&self) -> [u8; KV_HEADER] {
        let mut head = [0u8; KV_HEADER];
        head.copy_from_slice(&self.bytes()[..KV_HEADER]);
        head
    }

    #[inline]
    fn u32_at(&self, at: usize) -> u32 {
        let mut b = [0u8; 4];
        // SAFETY: `at + 4 <= KV_HEADER`, and every block starts with its header.
        unsafe { std::ptr::copy_nonoverlapping(self.0.as_ptr().add(at), b.as_mut_ptr(), 4) };
        u32::from_le_bytes(b)
    }

    #[inline]
    fn set_u32_at(&mut self, at: usize, v: u32) {
        let b = v.to_le_bytes();
        // SAFETY: as in `u32_at`; `&mut self` makes the write exclusive.
        unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), self.0.as_ptr().add(at), 4) };
    }

    /// Position in the table's dense order.
    pub fn pos(&self) -> usize {
        (self.u32_at(0) & POS_MASK) as usize
    }

    fn set_pos(&mut self, pos: usize) {
        let tag = self.u32_at(0) & !POS_MASK;
        self.set_u32_at(0, tag | (pos as u32 & POS_MASK));
    }

    #[inline]
    pub fn tag(&self) -> Tag {
        match self.u32_at(0) >> TAG_SHIFT {
            1 => Tag::Obj,
            2 => Tag::SetLp,
            3 => Tag::HashLp,
            4 => Tag::ZsetLp,
            _ => Tag::Str,
        }
    }

    fn set_tag(&mut self, tag: Tag) {
        let pos = self.u32_at(0) & POS_MASK;
        self.set_u32_at(0, pos | ((tag as u32) << TAG_SHIFT));
    }

    /// An entry holding the collection `value` in its own block: the value bytes are
    /// padding up to an 8-byte boundary, then the [`Value`] itself.
    pub fn new_obj(key: &[u8], value: Value, meta: Meta) -> Kv {
        let mut head = [0u8; KV_HEADER];
        head[4..8].copy_from_slice(&meta.vol_pos.to_le_bytes());
        head[8..12].copy_from_slice(&meta.access.to_le_bytes());
        Kv::build_any(head, key, value)
    }

    /// A block with header `head`, `key` and the collection `value`: inline when it is a
    /// listpack set or hash ([`inline_of`]), else as a [`Value`] ([`Kv::build_obj`]).
    fn build_any(mut head: [u8; KV_HEADER], key: &[u8], value: Value) -> Kv {
        match inline_of(&value) {
            Some((tag, bytes)) => {
                let first = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) & POS_MASK;
                head[0..4].copy_from_slice(&(first | ((tag as u32) << TAG_SHIFT)).to_le_bytes());
                Kv::build(head, key, &[bytes], 0)
            }
            None => Kv::build_obj(head, key, value),
        }
    }

    /// A block with header `head` (its tag becomes `Obj`), `key` and the collection `value`.
    fn build_obj(mut head: [u8; KV_HEADER], key: &[u8], value: Value) -> Kv {
        let first = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) & POS_MASK;
        head[0..4].copy_from_slice(&(first | ((Tag::Obj as u32) << TAG_SHIFT)).to_le_bytes());
        // The value length (below 128) takes one byte.
        let before = KV_HEADER + mem::leb_len(key.len()) + 1 + key.len();
        let pad = before.next_multiple_of(KV_ALIGN) - before;
        let kv = Kv::build(head, key, &[], pad + OBJ_SIZE);
        // SAFETY: `obj_ptr` is inside the block, 8-aligned (the block is, and so is the
        // offset), with `OBJ_SIZE` bytes; they hold no value yet, so nothing is overwritten
        // that needed dropping.
        unsafe { kv.obj_ptr().write(value) };
        kv
    }

    /// Where the collection of an `Obj` entry sits: the last `OBJ_SIZE` bytes of the block.
    fn obj_ptr(&self) -> *mut Value {
        let (h, k, v) = self.split();
        debug_assert!(v >= OBJ_SIZE && (h + k + v - OBJ_SIZE).is_multiple_of(KV_ALIGN));
        // SAFETY: an `Obj` entry's value bytes end with the `Value` (see `build_obj`).
        unsafe { self.0.as_ptr().add(h + k + v - OBJ_SIZE).cast::<Value>() }
    }

    /// The collection, or `None` for a string.
    #[inline]
    pub fn obj(&self) -> Option<ValueRef<'_>> {
        match self.tag() {
            Tag::Str => None,
            // SAFETY: an `Obj` entry holds an initialised `Value` at `obj_ptr` (see
            // `build_obj`; `take_obj` turns the entry into a string when it moves it out).
            Tag::Obj => Some(ValueRef::new(unsafe { &*self.obj_ptr() })),
            // SAFETY: the view reads the block's value bytes, which the returned borrow of
            // `self` keeps alive and unchanged.
            Tag::SetLp => Some(unsafe {
                ValueRef::view(Value::Set(Set::Listpack(Listpack::view(self.value()))))
            }),
            // SAFETY: as above.
            Tag::HashLp => Some(unsafe {
                ValueRef::view(Value::Hash(Hash::Listpack(Listpack::view(self.value()))))
            }),
            // SAFETY: as above.
            Tag::ZsetLp => Some(unsafe {
                ValueRef::view(Value::Zset(Zset::Listpack(ZipList::view(self.value()))))
            }),
        }
    }

    /// The collection, owned: a copy of an inline one, `None` for a string.
    fn inline_owned(&self) -> Option<Value> {
        match self.tag() {
            Tag::SetLp => Some(Value::Set(Set::Listpack(Listpack::from_bytes(
                self.value(),
            )))),
            Tag::HashLp => Some(Value::Hash(Hash::Listpack(Listpack::from_bytes(
                self.value(),
            )))),
            Tag::ZsetLp => Some(Value::Zset(Zset::Listpack(ZipList::from_bytes(
                self.value(),
            )))),
            Tag::Str | Tag::Obj => None,
        }
    }

    /// The collection stored as a [`Value`], writable; `None` for a string or an inline
    /// collection (changed with [`Kv::take_obj`] and [`Kv::put_obj`]).
    pub fn obj_mut(&mut self) -> Option<&mut Value> {
        // SAFETY: as in `obj`; `&mut self` makes the access exclusive.
        (self.tag() == Tag::Obj).then(|| unsafe { &mut *self.obj_ptr() })
    }

    /// Moves the collection out; the entry is left a string of zero bytes (the same block,
    /// about to be dropped or given a new value).
    pub fn take_obj(&mut self) -> Option<Value> {
        match self.tag() {
            Tag::Str => return None,
            Tag::Obj => {}
            Tag::SetLp | Tag::HashLp | Tag::ZsetLp => {
                let v = self.inline_owned();
                self.set_tag(Tag::Str);
                return v;
            }
        }
        let p = self.obj_ptr();
        // SAFETY: the entry holds an initialised `Value` there, read out once; the tag is
        // switched and the bytes zeroed right after, so it is never read or dropped again.
        let v = unsafe { p.read() };
        self.set_tag(Tag::Str);
        // SAFETY: `OBJ_SIZE` bytes at `p` are inside the block.
        unsafe { std::ptr::write_bytes(p.cast::<u8>(), 0, OBJ_SIZE) };
        Some(v)
    }

    /// Makes the entry hold the collection `value`. Returns the collection it held before.
    pub fn set_obj(&mut self, value: Value) -> Option<Value> {
        if self.tag() == Tag::Obj && inline_of(&value).is_none() {
            // SAFETY: the entry holds an initialised `Value` at `obj_ptr`.
            return Some(unsafe { std::ptr::replace(self.obj_ptr(), value) });
        }
        let old = self.take_obj();
        *self = Kv::build_any(self.head(), self.key(), value);
        old
    }

    /// Makes the entry hold the collection `value`, dropping the one it held (an inline one
    /// without copying it out). A listpack of the same length as the inline one it
    /// replaces is written over it in place.
    pub fn put_obj(&mut self, value: Value) {
        match (self.tag(), inline_of(&value)) {
            (Tag::Obj, None) => {
                // SAFETY: the entry holds an initialised `Value` at `obj_ptr`; the old one is
                // dropped by the assignment.
                unsafe { *self.obj_ptr() = value };
            }
            (tag, Some((new_tag, bytes))) if tag == new_tag && self.split().2 == bytes.len() => {
                self.value_bytes_mut().copy_from_slice(bytes);
            }
            (tag, _) => {
                if tag == Tag::Obj {
                    drop(self.take_obj());
                }
                *self = Kv::build_any(self.head(), self.key(), value);
            }
        }
    }

    /// Makes the entry a string holding `bytes` (a collection it held is dropped here: the
    /// caller takes it first with [`Kv::take_obj`] to free it elsewhere).
    pub fn set_str(&mut self, bytes: &[u8]) {
        match self.tag() {
            Tag::Str => {}
            Tag::Obj => drop(self.take_obj()),
            Tag::SetLp | Tag::HashLp | Tag::ZsetLp => self.set_tag(Tag::Str),
        }
        self.set_value(bytes);
    }

    pub fn meta(&self) -> Meta {
        Meta {
            vol_pos: self.u32_at(4),
            access: self.u32_at(8),
        }
    }

    pub fn set_vol_pos(&mut self, vol_pos: u32) {
        self.set_u32_at(4, vol_pos);
    }

    pub fn set_access(&mut self, access: u32) {
        self.set_u32_at(8, access);
    }

    #[inline]
    pub fn key(&self) -> &[u8] {
        let (h, k, _) = self.split();
        // SAFETY: the key's `k` bytes start at `h`, inside the block (see `build`).
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().add(h), k) }
    }

    #[inline]
    pub fn value(&self) -> &[u8] {
        let (h, k, v) = self.split();
        // SAFETY: the value's `v` bytes end the block (see `build`).
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().add(h + k), v) }
    }

    /// The value, writable.
    fn value_bytes_mut(&mut self) -> &mut [u8] {
        let (h, k, v) = self.split();
        // SAFETY: as in `value`; `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.0.as_ptr().add(h + k), v) }
    }

    /// Bytes of the block (what the allocator was asked for).
    pub fn block_len(&self) -> usize {
        let (h, k, v) = self.split();
        h + k + v
    }

    /// The same entry (header and key) with `value` instead of its value.
    fn with_value(&self, value: &[u8]) -> Kv {
        Kv::build(self.head(), self.key(), &[value], 0)
    }

    /// Replaces the value bytes, keeping header (tag included) and key. A value of the same
    /// length is written over the old one: no allocation and no free, the common case of a
    /// cache overwriting fixed-size records or a counter. Otherwise the entry moves to a new
    /// block.
    fn set_value(&mut self, value: &[u8]) {
        if self.split().2 == value.len() {
            self.value_bytes_mut().copy_from_slice(value);
        } else {
            *self = self.with_value(value);
        }
    }

    /// The value, writable in place, zero-extended first to at least `min_len` bytes (a
    /// longer value moves the entry to a new block once). For bit commands and HyperLogLogs,
    /// which change a few bytes of a value that may be large.
    pub fn value_mut(&mut self, min_len: usize) -> &mut [u8] {
        let (_, _, v) = self.split();
        if v < min_len {
            *self = Kv::build(self.head(), self.key(), &[self.value()], min_len - v);
        }
        self.value_bytes_mut()
    }

    /// Address of the block: tells whether a remembered position still holds this entry.
    pub fn addr(&self) -> usize {
        self.0.as_ptr() as usize
    }
}

impl Drop for Kv {
    fn drop(&mut self) {
        if self.tag() == Tag::Obj {
            // SAFETY: an `Obj` entry holds an initialised `Value`, dropped once, here.
            unsafe { std::ptr::drop_in_place(self.obj_ptr()) };
        }
        let layout = Kv::layout(self.block_len());
        // SAFETY: the block was allocated by `build` with this layout (its length is read
        // back from the same header) and is freed once, here.
        unsafe { alloc::dealloc(self.0.as_ptr(), layout) }
    }
}

/// A bucket of the hash table (see the module docs).
pub(super) type Bucket = idindex::Bucket;

/// The keys of one slot.
///
/// `repr(C)`, in this order: a lookup reads the table and the hasher, which then share the
/// slot's first cache line with its lock (see `SlotTable`); the positions come after.
#[derive(Default)]
#[repr(C)]
pub(super) struct KeyTable {
    index: StepTable<Kv>,
    hasher: Hasher,
    /// `hashes[p]`: the hash of the key at position `p`.
    hashes: Vec<u32>,
}

impl KeyTable {
    /// Bytes at the start of the table that a lookup reads (the table and the hasher).
    #[cfg(test)]
    pub const HOT_BYTES: usize = std::mem::offset_of!(KeyTable, hashes);

    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether a resize is under way.
    #[cfg(test)]
    pub fn resizing(&self) -> bool {
        self.index.resizing()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn hash(&self, key: &[u8]) -> u64 {
        wide(self.narrow_hash(key))
    }

    /// The 32-bit hash of `key`, as the positions array keeps it.
    fn narrow_hash(&self, key: &[u8]) -> u32 {
        let h = self.hasher.hash_one(key);
        (h ^ (h >> 32)) as u32
    }

    /// The bucket holding `key`.
    pub fn find(&self, key: &[u8]) -> Option<Bucket> {
        if self.is_empty() {
            return None;
        }
        self.index.find_bucket(self.hash(key), |kv| kv.key() == key)
    }

    /// The bucket holding the entry at position `pos`.
    pub fn at(&self, pos: usize) -> Option<Bucket> {
        let &h = self.hashes.get(pos)?;
        self.index.find_bucket(wide(h), |kv| kv.pos() == pos)
    }

    pub fn get(&self, b: Bucket) -> Option<&Kv> {
        self.index.get(b)
    }

    pub fn get_mut(&mut self, b: Bucket) -> Option<&mut Kv> {
        self.index.get_mut(b)
    }

    /// The entry at position `pos`.
    pub fn get_at(&self, pos: usize) -> Option<&Kv> {
        self.get(self.at(pos)?)
    }

    pub fn get_at_mut(&mut self, pos: usize) -> Option<&mut Kv> {
        let b = self.at(pos)?;
        self.get_mut(b)
    }

    /// Adds `kv`, whose key must not be in the table yet, at the last position. Returns its
    /// bucket. Any other bucket number held across this call is stale (the table may grow).
    pub fn insert_new(&mut self, mut kv: Kv) -> Bucket {
        let h = self.narrow_hash(kv.key());
        // Far beyond what memory allows in one slot (256 GiB of 1-byte keys).
        debug_assert!(self.hashes.len() < MAX_SLOT_ENTRIES);
        kv.set_pos(self.hashes.len());
        self.hashes.push(h);
        let hashes = &self.hashes;
        self.index
            .insert_unique(wide(h), kv, |kv| wide(hashes[kv.pos()]))
    }

    /// Removes the entry in bucket `b`; the last entry moves into its position. Returns the
    /// entry, and the volatile position of the moved entry when one moved and has a TTL
    /// (the caller points that volatile element at the entry's new position). Any other
    /// bucket number held across this call is stale (a resize under way moves entries).
    pub fn remove(&mut self, b: Bucket) -> Option<(Kv, Option<u32>)> {
        // A resize under way moves a few entries here, rehashed from `hashes`, which still
        // holds every position.
        let hashes = &self.hashes;
        let kv = self.index.remove_bucket(b, |kv| wide(hashes[kv.pos()]))?;
        let pos = kv.pos();
        let last = self.hashes.len() - 1;
        self.hashes.swap_remove(pos);
        let mut moved_vol = None;
        if pos < last {
            let h = wide(self.hashes[pos]);
            if let Some(m) = self.index.find_mut(h, |k| k.pos() == last) {
                m.set_pos(pos);
                let vp = m.meta().vol_pos;
                moved_vol = (vp != super::NOT_VOLATILE).then_some(vp);
            }
        }
        Some((kv, moved_vol))
    }

    /// Entries in position order.
    pub fn iter(&self) -> impl Iterator<Item = &Kv> + '_ {
        (0..self.len()).filter_map(|p| self.get_at(p))
    }

    /// Entries in no particular order, writable (their positions must not change).
    pub fn entries_mut(&mut self) -> impl Iterator<Item = &mut Kv> + '_ {
        self.index.iter_mut()
    }

    /// Entries in no particular order (cheaper than [`KeyTable::iter`]).
    pub fn entries(&self) -> impl Iterator<Item = &Kv> + '_ {
        self.index.iter()
    }

    /// Hash-table buckets allocated (the true size of the table's arrays: unlike the
    /// capacity, removals do not lower it).
    /// Both tables' during a resize.
    pub fn buckets(&self) -> usize {
        self.index.buckets()
    }

    /// Entries the table holds without growing, once its deletions are swept.
    pub fn capacity(&self) -> usize {
        bucket_capacity(self.index.current_buckets())
    }

    /// Capacity of the positions array.
    pub fn positions_capacity(&self) -> usize {
        self.hashes.capacity()
    }

    /// Shrinks the arrays to hold at least `n` entries (a large table in steps; see
    /// [`StepTable::shrink_to`]).
    pub fn shrink_to(&mut self, n: usize) {
        let hashes = &self.hashes;
        self.index.shrink_to(n, |kv| wide(hashes[kv.pos()]));
        self.hashes.shrink_to(n);
    }
}

/// The table's hash of an entry whose stored hash is `h`: `h` in both halves, so that the
/// bucket (low bits) and the control byte (top 7 bits) come from the same 32 bits as they
/// would from a full hash, independently for tables of up to 2^25 buckets.
#[inline]
fn wide(h: u32) -> u64 {
    (h as u64) << 32 | h as u64
}

/// Entries a hashbrown table of `buckets` buckets holds (7/8 load from 8 buckets, one
/// bucket always free below).
pub(super) fn bucket_capacity(buckets: usize) -> usize {
    if buckets < 8 {
        buckets.saturating_sub(1)
    } else {
        buckets / 8 * 7
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: Meta = Meta {
        vol_pos: super::super::NOT_VOLATILE,
        access: 9,
    };

    fn key(i: usize) -> Vec<u8> {
        format!("key:{i}").into_bytes()
    }

    /// Every position holds the entry that says it is there, and every entry is found by key.
    fn check(t: &KeyTable) {
        for p in 0..t.len() {
            let kv = t.get_at(p).expect("entry at position");
            assert_eq!(kv.pos(), p);
            assert_eq!(
                t.find(kv.key()).and_then(|b| t.get(b)).map(Kv::pos),
                Some(p)
            );
        }
        assert_eq!(t.index.len(), t.len());
    }

    #[test]
    fn header_fields_round_trip() {
        let mut kv = Kv::new(b"k", b"value", M);
        assert_eq!(
            (kv.key(), kv.value(), kv.meta()),
            (&b"k"[..], &b"value"[..], M)
        );
        kv.set_access(77);
        kv.set_vol_pos(3);
        kv.set_pos(1 << 20);
        assert_eq!(
            kv.meta(),
            Meta {
                vol_pos: 3,
                access: 77
            }
        );
        assert_eq!(
            (kv.pos(), kv.key(), kv.value()),
            (1 << 20, &b"k"[..], &b"value"[..])
        );
        let kv = Kv::new(b"", b"", M);
        assert_eq!((kv.key(), kv.value(), kv.meta()), (&b""[..], &b""[..], M));
        // A key longer than 127 bytes needs a two-byte length header.
        let long = vec![b'x'; 300];
        let kv = Kv::new(&long, b"val", M);
        assert_eq!(kv.split(), (KV_HEADER + 3, 300, 3));
        assert_eq!((kv.key(), kv.value()), (&long[..], &b"val"[..]));
        let kv = kv.with_value(b"");
        assert_eq!((kv.key(), kv.value(), kv.meta()), (&long[..], &b""[..], M));
    }

    /// A set of integer members: an intset, stored as a `Value` (`Tag::Obj`).
    fn intset(m: &[u8]) -> Value {
        let mut s = Set::for_member(m, &super::super::Limits::default());
        s.insert(m, &super::super::Limits::default());
        Value::Set(s)
    }

    #[test]
    fn tags_survive_position_changes() {
        let set = intset;
        let mut kv = Kv::new_obj(b"key", set(b"1"), M);
        assert_eq!(
            (kv.tag(), kv.obj().as_deref(), kv.pos()),
            (Tag::Obj, Some(&set(b"1")), 0)
        );
        assert_eq!(kv.addr() % KV_ALIGN, 0);
        kv.set_pos(MAX_SLOT_ENTRIES - 1);
        assert_eq!((kv.tag(), kv.pos()), (Tag::Obj, MAX_SLOT_ENTRIES - 1));
        assert_eq!(kv.set_obj(set(b"2")), Some(set(b"1")));
        assert_eq!(
            (kv.obj().as_deref(), kv.key(), kv.meta()),
            (Some(&set(b"2")), &b"key"[..], M)
        );
        kv.set_str(b"plain");
        assert_eq!(
            (kv.tag(), kv.obj().is_none(), kv.value()),
            (Tag::Str, true, &b"plain"[..])
        );
        assert_eq!(kv.pos(), MAX_SLOT_ENTRIES - 1);
        assert_eq!(kv.set_obj(set(b"3")), None);
        assert_eq!(
            (kv.tag(), kv.obj().as_deref(), kv.key(), kv.pos()),
            (
                Tag::Obj,
                Some(&set(b"3")),
                &b"key"[..],
                MAX_SLOT_ENTRIES - 1
            )
        );
        assert_eq!(kv.take_obj(), Some(set(b"3")));
        assert_eq!(kv.take_obj(), None);
        assert_eq!((kv.tag(), kv.obj().is_none()), (Tag::Str, true));
        // Every key length puts the collection on an 8-byte boundary.
        for n in [0, 1, 7, 8, 100, 127, 128, 300] {
            let key = vec![b'k'; n];
            let kv = Kv::new_obj(&key, set(b"4"), M);
            assert_eq!(
                (kv.key(), kv.obj().as_deref()),
                (&key[..], Some(&set(b"4")))
            );
            assert_eq!(kv.obj_ptr() as usize % std::mem::align_of::<Value>(), 0);
        }
    }

    #[test]
    fn listpacks_live_inline() {
        let l = super::super::Limits::default();
        let lp_set = |ms: &[&str]| {
            let mut s = Set::Listpack(Listpack::default());
            for m in ms {
                s.insert(m.as_bytes(), &l);
            }
            Value::Set(s)
        };
        let mut h = Hash::default();
        h.insert(b"f", b"v", &l);
        let hash = Value::Hash(h);
        // One block: header, lengths, key, the listpack's bytes (no `Value`, no padding).
        let mut kv = Kv::new_obj(b"key", lp_set(&["a", "bc"]), M);
        assert_eq!(kv.tag(), Tag::SetLp);
        assert_eq!(kv.block_len(), KV_HEADER + 2 + 3 + 5);
        assert_eq!(kv.obj().as_deref(), Some(&lp_set(&["a", "bc"])));
        kv.set_pos(5);
        // Written over in place when the length is the same; moved when not.
        let addr = kv.addr();
        kv.put_obj(lp_set(&["x", "yz"]));
        assert_eq!((kv.addr(), kv.tag(), kv.pos()), (addr, Tag::SetLp, 5));
        assert_eq!(kv.obj().as_deref(), Some(&lp_set(&["x", "yz"])));
        kv.put_obj(lp_set(&["x", "yz", "longer"]));
        assert_eq!((kv.key(), kv.meta(), kv.pos()), (&b"key"[..], M, 5));
        assert_eq!(kv.obj().as_deref(), Some(&lp_set(&["x", "yz", "longer"])));
        // A hash, an intset (a `Value`), back to inline, then out.
        kv.put_obj(hash.clone());
        assert_eq!((kv.tag(), kv.obj().as_deref()), (Tag::HashLp, Some(&hash)));
        kv.put_obj(intset(b"7"));
        assert_eq!(
            (kv.tag(), kv.obj().as_deref()),
            (Tag::Obj, Some(&intset(b"7")))
        );
        assert_eq!(kv.set_obj(lp_set(&["m"])), Some(intset(b"7")));
        assert_eq!(kv.tag(), Tag::SetLp);
        // A copy of the view owns its bytes: it outlives the entry.
        let copy = kv.obj().map(|v| (*v).clone());
        assert_eq!(kv.take_obj(), Some(lp_set(&["m"])));
        assert_eq!((kv.tag(), kv.pos(), kv.key()), (Tag::Str, 5, &b"key"[..]));
        drop(kv);
        assert_eq!(copy, Some(lp_set(&["m"])));
        let mut kv = Kv::new_obj(b"k", hash.clone(), M);
        kv.set_str(b"s");
        assert_eq!((kv.tag(), kv.value()), (Tag::Str, &b"s"[..]));
    }

    #[test]
    fn same_length_values_are_written_in_place() {
        let mut kv = Kv::new(b"key", b"abc", M);
        let addr = kv.addr();
        kv.set_value(b"xyz");
        assert_eq!(
            (kv.addr(), kv.key(), kv.value()),
            (addr, &b"key"[..], &b"xyz"[..])
        );
        kv.set_value(b"longer");
        assert_eq!(
            (kv.key(), kv.value(), kv.meta()),
            (&b"key"[..], &b"longer"[..], M)
        );
        kv.set_value(b"");
        assert_eq!((kv.key(), kv.value()), (&b"key"[..], &b""[..]));
    }

    #[test]
    fn values_are_changed_in_place_or_zero_extended() {
        let mut kv = Kv::new(b"key", b"abc", M);
        let addr = kv.addr();
        kv.value_mut(2)[0] = b'x';
        assert_eq!((kv.addr(), kv.value()), (addr, &b"xbc"[..]));
        kv.value_mut(5)[4] = b'!';
        assert_eq!(
            (kv.key(), kv.value(), kv.meta()),
            (&b"key"[..], &b"xbc\0!"[..], M)
        );
    }

    #[test]
    fn positions_survive_growth_removal_and_shrinking() {
        let mut t = KeyTable::default();
        for i in 0..1000 {
            let b = t.insert_new(Kv::new(&key(i), b"v", M));
            assert_eq!(t.get(b).map(Kv::key), Some(&key(i)[..]));
        }
        check(&t);
        assert!(t.capacity() >= 1000 && t.buckets() >= 1024);
        // Remove three keys in four, from the front: each removal moves the last entry.
        for i in (0..1000).filter(|i| i % 4 != 3) {
            let b = t.find(&key(i)).expect("present");
            let (kv, moved) = t.remove(b).expect("removed");
            assert_eq!(kv.key(), &key(i)[..]);
            assert_eq!(moved, None, "no entry has a TTL");
        }
        assert_eq!(t.len(), 250);
        check(&t);
        for i in 0..1000 {
            assert_eq!(t.find(&key(i)).is_some(), i % 4 == 3, "key {i}");
        }
        t.shrink_to(251);
        assert_eq!(t.buckets(), 512);
        check(&t);
        assert_eq!(t.at(250), None);
        t.shrink_to(0);
        assert_eq!((t.buckets(), t.capacity()), (512, 448), "holds 250 keys");
    }

    #[test]
    fn a_large_table_grows_and_shrinks_in_steps() {
        let mut t = KeyTable::default();
        let (mut resizing_seen, mut longest, mut run) = (0, 0, 0);
        let n = 40_000;
        for i in 0..n {
            let b = t.insert_new(Kv::new(&key(i), b"v", M));
            assert_eq!(t.get(b).map(Kv::key), Some(&key(i)[..]));
            if t.index.resizing() {
                resizing_seen += 1;
                run += 1;
                longest = longest.max(run);
                // Mid-resize, keys in both tables are found, by key and by position.
                assert_eq!(
                    t.find(&key(i / 2)).and_then(|b| t.get(b)).map(Kv::pos),
                    Some(i / 2)
                );
                assert_eq!(t.get_at(i / 3).map(Kv::pos), Some(i / 3));
            } else {
                run = 0;
            }
        }
        assert!(resizing_seen > 0, "a table this large grows in steps");
        assert!(longest <= 32_768 / 4, "a resize lasted {longest} inserts");
        check(&t);
        // Removals mid-resize keep positions dense: remove from the front until a shrink
        // starts, then on through it.
        let mut removed = 0;
        let mut shrink_seen = false;
        while removed < n - 100 {
            let b = t.find(&key(removed)).expect("present");
            t.remove(b).expect("removed");
            removed += 1;
            if t.len() * 2 <= t.capacity() {
                t.shrink_to(t.len() + 1);
            }
            shrink_seen |= t.index.resizing();
            if removed % 997 == 0 {
                check(&t);
            }
        }
        assert!(shrink_seen, "a large table shrinks in steps");
        check(&t);
        assert_eq!(t.len(), 100);
        for i in 0..n {
            assert_eq!(t.find(&key(i)).is_some(), i >= n - 100, "key {i}");
        }
    }

    /// The slowest single insert while one slot's table grows to 2M keys, and all inserts'
    /// time, against a plain hashbrown table of the same entries resized in one call. A
    /// measurement, not a check: `cargo test --release -p chkv-datanode --lib -- --ignored
    /// --nocapture slowest_key_insert`.
    #[test]
    #[ignore]
    fn slowest_key_insert() {
        use std::time::{Duration, Instant};
        let n = 2_000_000;
        let keys: Vec<Vec<u8>> = (0..n)
            .map(|i| format!("{{t}}key:{i:012}").into_bytes())
            .collect();
        // One round: dropping 2M entries makes glibc's malloc (the allocator of the test
        // binary) consolidate its free lists at a later allocation, which a second round
        // would time as one slow insert.
        {
            let (t0, mut worst) = (Instant::now(), Duration::ZERO);
            let mut t = KeyTable::default();
            for k in &keys {
                let kv = Kv::new(k, b"0123456789012345678901234567890", M);
                let t1 = Instant::now();
                t.insert_new(kv);
                worst = worst.max(t1.elapsed());
            }
            let stepped = (t0.elapsed(), worst);
            let (t0, mut worst) = (Instant::now(), Duration::ZERO);
            let hasher = Hasher::default();
            let mut plain = hashbrown::HashTable::new();
            for k in &keys {
                let kv = Kv::new(k, b"0123456789012345678901234567890", M);
                let t1 = Instant::now();
                plain.insert_unique(hasher.hash_one(kv.key()), kv, |kv: &Kv| {
                    hasher.hash_one(kv.key())
                });
                worst = worst.max(t1.elapsed());
            }
            let whole = (t0.elapsed(), worst);
            println!(
                "in steps {:?} in all, slowest {:?}; one-call rehash {:?}, slowest {:?}",
                stepped.0, stepped.1, whole.0, whole.1
            );
        }
    }

    #[test]
    fn removal_reports_the_moved_entrys_ttl_link() {
        let mut t = KeyTable::default();
        t.insert_new(Kv::new(b"a", b"1", M));
        let b = t.insert_new(Kv::new(b"b", b"2", M));
        if let Some(kv) = t.get_mut(b) {
            kv.set_vol_pos(0);
        }
        let a = t.find(b"a").expect("a");
        let (_, moved) = t.remove(a).expect("removed");
        assert_eq!(moved, Some(0));
        check(&t);
        // Removing the last entry moves nothing.
        let b = t.find(b"b").expect("b");
        assert_eq!(t.remove(b).map(|(_, m)| m), Some(None));
        assert!(t.is_empty());
    }
}
