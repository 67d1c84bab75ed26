//! # CHKV common
//!
//! Pieces shared by every CHKV process.
//!
//! # Layout
//! - [`slot`]: Redis Cluster's key -> slot function (CRC16-XMODEM of the hash tag, mod 16384)
//!   and the [`Slot`] type that cannot be out of range.

pub mod slot;

pub use slot::{key_slot, Slot, SLOT_COUNT};
