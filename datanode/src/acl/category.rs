//! Command categories (`@read`, `@dangerous`, ...): their names and bits. Which commands
//! are in which is derived from the command table, in `cmd::acl`.

/// Redis's command categories, in `ACL CAT`'s order.
pub const CATEGORIES: &[&str] = &[
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
];

fn cat_bit(name: &str) -> Option<u32> {
    CATEGORIES.iter().position(|c| *c == name).map(|i| 1 << i)
}

/// The bit of a category in a category mask ([`super::Command::categories`]); 0 for an
/// unknown name.
pub(crate) fn bit(name: &str) -> u32 {
    cat_bit(name).unwrap_or(0)
}
