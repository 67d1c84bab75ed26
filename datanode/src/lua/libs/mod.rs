//! The libraries Redis gives scripts, written in Rust from their documented behaviour:
//!
//! - [`bit`]: LuaBitOp's `bit` (32-bit operations on numbers).
//! - [`structlib`]: Roberto Ierusalimschy's `struct` (pack, unpack and size binary records).
//! - [`cjson`]: lua-cjson's `cjson` (JSON encode and decode, its settings, `cjson.null`).
//! - [`cmsgpack`]: lua-cmsgpack's `cmsgpack` (MessagePack pack and unpack).
//!
//! Input is a script's, so hostile: every length is checked against the bytes present and
//! nesting is bounded, so no input panics or allocates beyond its own size.

pub mod bit;
pub mod cjson;
pub mod cmsgpack;
pub mod structlib;

use mlua::{Lua, MultiValue, Table, Value};

/// Registers every library in `globals`.
pub fn register(lua: &Lua, globals: &Table) -> mlua::Result<()> {
    globals.raw_set("bit", bit::library(lua)?)?;
    globals.raw_set("struct", structlib::library(lua)?)?;
    globals.raw_set("cjson", cjson::library(lua)?)?;
    globals.raw_set("cmsgpack", cmsgpack::library(lua)?)?;
    Ok(())
}

/// A value's type as Lua names it (mlua calls integers "integer").
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Nil => "nil",
        Value::Boolean(_) => "boolean",
        Value::Integer(_) | Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Table(_) => "table",
        Value::Function(_) => "function",
        Value::Thread(_) => "thread",
        Value::LightUserData(_) | Value::UserData(_) | Value::Error(_) => "userdata",
        _ => "userdata",
    }
}

/// Lua's conversion of a string to a number (`tonumber`): decimal or `0x` hex, spaces
/// around allowed.
pub fn str_to_number(s: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(s).ok()?.trim();
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s),
    };
    if let Some(hex) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        let v = u64::from_str_radix(hex, 16).ok()? as f64;
        return Some(if neg { -v } else { v });
    }
    if s.is_empty() || s.contains(|c: char| c.is_alphabetic() && !matches!(c, 'e' | 'E')) {
        // Rust parses "inf"/"nan", Lua's strtod-based check does too, but scripts never
        // rely on it; keep to plain numerals.
        return None;
    }
    s.parse().ok()
}

/// The error Lua's argument checks raise.
pub fn bad_arg(pos: usize, fname: &str, msg: &str) -> mlua::Error {
    mlua::Error::runtime(format!("bad argument #{pos} to '{fname}' ({msg})"))
}

/// Argument `pos` (1-based) as a number, as `luaL_checknumber` reads it.
pub fn check_number(args: &MultiValue, pos: usize, fname: &str) -> mlua::Result<f64> {
    let v = args.get(pos - 1).unwrap_or(&Value::Nil);
    match v {
        Value::Integer(i) => Ok(*i as f64),
        Value::Number(n) => Ok(*n),
        Value::String(s) => str_to_number(&s.as_bytes())
            .ok_or_else(|| bad_arg(pos, fname, "number expected, got string")),
        other => Err(bad_arg(
            pos,
            fname,
            &format!("number expected, got {}", type_name(other)),
        )),
    }
}

/// Argument `pos` (1-based) as bytes, as `luaL_checklstring` reads it (numbers convert).
pub fn check_bytes(args: &MultiValue, pos: usize, fname: &str) -> mlua::Result<Vec<u8>> {
    let v = args.get(pos - 1).unwrap_or(&Value::Nil);
    match v {
        Value::String(s) => Ok(s.as_bytes().to_vec()),
        Value::Integer(i) => Ok(i.to_string().into_bytes()),
        Value::Number(n) => Ok(lua_number_text(*n).into_bytes()),
        other => Err(bad_arg(
            pos,
            fname,
            &format!("string expected, got {}", type_name(other)),
        )),
    }
}

/// How Lua 5.1 prints a number (`%.14g`).
pub fn lua_number_text(n: f64) -> String {
    fmt_g(n, 14)
}

/// C's `%.<precision>g`.
pub fn fmt_g(n: f64, precision: usize) -> String {
    if n.is_nan() {
        return if n.is_sign_negative() { "-nan" } else { "nan" }.into();
    }
    if n.is_infinite() {
        return if n > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if n == 0.0 {
        return if n.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let p = precision.max(1);
    let sci = format!("{:.*e}", p - 1, n);
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= p as i32 {
        let mant = trim_zeros(mant);
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mant}e{sign}{:02}", exp.abs());
    }
    let decimals = (p as i32 - 1 - exp).max(0) as usize;
    trim_zeros(&format!("{:.*}", decimals, n)).to_string()
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
pub(crate) mod testlua {
    use mlua::Lua;

    /// A bare Lua state with the libraries, for running library tests in Lua.
    pub fn lua() -> Lua {
        let lua = Lua::new();
        super::register(&lua, &lua.globals()).expect("libraries register");
        lua
    }

    /// Evaluates `expr` and returns it as a string (via tostring).
    pub fn eval(lua: &Lua, code: &str) -> String {
        lua.load(code)
            .eval::<mlua::Value>()
            .map(|v| match v {
                mlua::Value::String(s) => s.to_string_lossy(),
                other => format!("{other:?}"),
            })
            .unwrap_or_else(|e| format!("error: {}", crate::lua::engine::clean_error(&e)))
    }

    /// Runs `code`, which must not fail (asserts inside it are the test).
    pub fn check(lua: &Lua, code: &str) {
        if let Err(e) = lua.load(code).exec() {
            panic!("{code}\n--> {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printf_g() {
        assert_eq!(fmt_g(0.0003, 14), "0.0003");
        assert_eq!(fmt_g(1023.2, 14), "1023.2");
        assert_eq!(fmt_g(-5000.0, 14), "-5000");
        assert_eq!(fmt_g(1e15, 14), "1e+15");
        assert_eq!(fmt_g(0.1, 17), "0.10000000000000001");
        assert_eq!(str_to_number(b" 0x10 "), Some(16.0));
        assert_eq!(str_to_number(b"1e3"), Some(1000.0));
        assert_eq!(str_to_number(b"abc"), None);
    }
}
