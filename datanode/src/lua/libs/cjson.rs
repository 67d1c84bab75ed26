//! `cjson`: JSON for scripts, with lua-cjson's interface and rules.
//!
//! - `cjson.encode(v)`: tables whose keys are exactly 1..n (holes allowed unless the array
//!   is excessively sparse: more than twice as many slots as values and beyond 10 slots)
//!   become arrays, other tables objects (string or number keys only); an empty table is
//!   `{}`; numbers print with 14 significant digits (`encode_number_precision`); NaN and
//!   infinities are refused unless `encode_invalid_numbers` allows them; `/` is escaped.
//! - `cjson.decode(s)`: JSON to Lua values; `null` is `cjson.null`.
//! - Settings, per Lua state like lua-cjson's: `encode_max_depth`, `decode_max_depth`
//!   (1000 each), `encode_invalid_numbers`, `decode_invalid_numbers`,
//!   `encode_number_precision`, `encode_sparse_array`, `encode_keep_buffer`.

use super::{fmt_g, type_name};
use mlua::{Function, LightUserData, Lua, MultiValue, Table, Value};
use parking_lot::Mutex;
use std::sync::Arc;

const DEFAULT_DEPTH: usize = 1000;
/// Nesting never goes beyond this, whatever the settings: each level holds a reference
/// from Rust, and Lua 5.1 has room for about 8000.
const HARD_DEPTH: usize = 2000;

#[derive(Clone, Copy)]
struct Settings {
    encode_max_depth: usize,
    decode_max_depth: usize,
    /// 0: refuse, 1: allow (`nan`, `inf`), 2: as `null`.
    encode_invalid_numbers: u8,
    decode_invalid_numbers: bool,
    precision: usize,
    sparse_convert: bool,
    sparse_ratio: usize,
    sparse_safe: usize,
    keep_buffer: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            encode_max_depth: DEFAULT_DEPTH,
            decode_max_depth: DEFAULT_DEPTH,
            encode_invalid_numbers: 0,
            decode_invalid_numbers: true,
            precision: 14,
            sparse_convert: false,
            sparse_ratio: 2,
            sparse_safe: 10,
            keep_buffer: true,
        }
    }
}

fn err(msg: impl Into<String>) -> mlua::Error {
    mlua::Error::runtime(msg.into())
}

fn is_null(v: &Value) -> bool {
    matches!(v, Value::LightUserData(p) if p.0.is_null())
}

// ---- encoding ----

fn encode_string(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &c in s {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' => out.extend_from_slice(b"\\/"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            c if c < 0x20 || c == 0x7f => out.extend_from_slice(format!("\\u{:04x}", c).as_bytes()),
            c => out.push(c),
        }
    }
    out.push(b'"');
}

fn encode_number(out: &mut Vec<u8>, n: f64, s: &Settings) -> mlua::Result<()> {
    if !n.is_finite() {
        match s.encode_invalid_numbers {
            0 => return Err(err("Cannot serialise number: must not be NaN or Inf")),
            2 => {
                out.extend_from_slice(b"null");
                return Ok(());
            }
            _ => {}
        }
    }
    out.extend_from_slice(fmt_g(n, s.precision).as_bytes());
    Ok(())
}

/// The array length of `t` if its keys are exactly 1..n (holes allowed within limits),
/// `None` for an object.
fn array_length(t: &Table, s: &Settings) -> mlua::Result<Option<usize>> {
    let mut max: f64 = 0.0;
    let mut count: usize = 0;
    for pair in t.clone().pairs::<Value, Value>() {
        let (k, _) = pair?;
        let n = match k {
            Value::Integer(i) => i as f64,
            Value::Number(n) => n,
            _ => return Ok(None),
        };
        if n < 1.0 || n.fract() != 0.0 {
            return Ok(None);
        }
        max = max.max(n);
        count += 1;
    }
    if max > 0.0
        && s.sparse_ratio > 0
        && max > (count * s.sparse_ratio) as f64
        && max > s.sparse_safe as f64
    {
        if s.sparse_convert {
            return Ok(None);
        }
        return Err(err("Cannot serialise table: excessively sparse array"));
    }
    Ok(Some(max as usize))
}

/// What the encoder is in the middle of: an array at index `i` of `n`, or an object's
/// pairs at `i`. An explicit stack instead of recursion, so nesting costs heap, not stack.
/// An object is walked with Lua's `next` from the last key, so no more than one key and
/// value per level are held from Rust (Lua 5.1 has room for about 8000 such references).
enum Open {
    Array { t: Table, i: usize, n: usize },
    Object { t: Table, key: Value, first: bool },
}

fn encode_key(out: &mut Vec<u8>, k: &Value, s: &Settings) -> mlua::Result<()> {
    match k {
        Value::String(ks) => encode_string(out, &ks.as_bytes()),
        Value::Integer(i) => encode_string(out, fmt_g(*i as f64, s.precision).as_bytes()),
        Value::Number(n) => encode_string(out, fmt_g(*n, s.precision).as_bytes()),
        _ => {
            return Err(err(
                "Cannot serialise table: table key must be a number or string",
            ))
        }
    }
    Ok(())
}

/// Writes a scalar, or opens a table (pushing it on `stack`).
fn encode_one(
    out: &mut Vec<u8>,
    v: &Value,
    s: &Settings,
    stack: &mut Vec<Open>,
) -> mlua::Result<()> {
    match v {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Integer(i) => encode_number(out, *i as f64, s)?,
        Value::Number(n) => encode_number(out, *n, s)?,
        Value::String(st) => encode_string(out, &st.as_bytes()),
        v if is_null(v) => out.extend_from_slice(b"null"),
        Value::Table(t) => {
            let depth = stack.len() + 1;
            if depth > s.encode_max_depth {
                return Err(err(format!(
                    "Cannot serialise, excessive nesting ({depth})"
                )));
            }
            match array_length(t, s)? {
                Some(n) if n > 0 => {
                    out.push(b'[');
                    stack.push(Open::Array {
                        t: t.clone(),
                        i: 1,
                        n,
                    });
                }
                _ => {
                    out.push(b'{');
                    stack.push(Open::Object {
                        t: t.clone(),
                        key: Value::Nil,
                        first: true,
                    });
                }
            }
        }
        other => {
            return Err(err(format!(
                "Cannot serialise {}: type not supported",
                type_name(other)
            )))
        }
    }
    Ok(())
}

fn encode_value(out: &mut Vec<u8>, v: &Value, s: &Settings, next: &Function) -> mlua::Result<()> {
    let mut stack: Vec<Open> = Vec::new();
    encode_one(out, v, s, &mut stack)?;
    while let Some(top) = stack.last_mut() {
        let next = match top {
            Open::Array { t, i, n } => {
                if *i > *n {
                    out.push(b']');
                    None
                } else {
                    if *i > 1 {
                        out.push(b',');
                    }
                    let item: Value = t.raw_get(*i)?;
                    *i += 1;
                    Some(item)
                }
            }
            Open::Object { t, key, first } => {
                let (k, item): (Value, Value) = next.call((t.clone(), key.clone()))?;
                if matches!(k, Value::Nil) {
                    out.push(b'}');
                    None
                } else {
                    if !*first {
                        out.push(b',');
                    }
                    *first = false;
                    encode_key(out, &k, s)?;
                    out.push(b':');
                    *key = k;
                    Some(item)
                }
            }
        };
        match next {
            Some(item) => encode_one(out, &item, s, &mut stack)?,
            None => {
                stack.pop();
            }
        }
    }
    Ok(())
}

// ---- decoding ----

struct Decoder<'a> {
    lua: &'a Lua,
    s: &'a [u8],
    pos: usize,
    settings: Settings,
}

impl Decoder<'_> {
    fn fail<T>(&self, what: &str) -> mlua::Result<T> {
        Err(err(format!(
            "Expected {what} but found invalid token at character {}",
            self.pos + 1
        )))
    }

    fn skip_ws(&mut self) {
        while self.pos < self.s.len() && matches!(self.s[self.pos], b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn eat(&mut self, word: &[u8]) -> bool {
        if self.s[self.pos..].starts_with(word) {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    /// A scalar at the current position, or `None` when a container starts there.
    fn scalar(&mut self) -> mlua::Result<Option<Value>> {
        self.skip_ws();
        Ok(Some(match self.peek() {
            Some(b'{') | Some(b'[') => return Ok(None),
            Some(b'"') => Value::String(self.lua.create_string(self.string()?)?),
            Some(b't') if self.eat(b"true") => Value::Boolean(true),
            Some(b'f') if self.eat(b"false") => Value::Boolean(false),
            Some(b'n') if self.eat(b"null") => {
                Value::LightUserData(LightUserData(std::ptr::null_mut()))
            }
            Some(c) if c == b'-' || c.is_ascii_digit() || self.invalid_number_start(c) => {
                self.number()?
            }
            _ => return self.fail("value"),
        }))
    }

    fn invalid_number_start(&self, c: u8) -> bool {
        self.settings.decode_invalid_numbers && matches!(c, b'N' | b'n' | b'I' | b'i')
    }

    /// An object key and its colon.
    fn key(&mut self) -> mlua::Result<Vec<u8>> {
        self.skip_ws();
        if self.peek() != Some(b'"') {
            return self.fail("object key string");
        }
        let k = self.string()?;
        self.skip_ws();
        if self.peek() != Some(b':') {
            return self.fail("colon");
        }
        self.pos += 1;
        Ok(k)
    }

    /// One JSON value, containers included. Nesting is kept on a heap stack (bounded by
    /// `decode_max_depth`), never on the thread's stack.
    fn value(&mut self) -> mlua::Result<Value> {
        // Open containers: the table, and for an object the key of the value being read
        // (for an array, the next index).
        enum Open {
            Array(Table, usize),
            Object(Table, Vec<u8>),
        }
        let mut stack: Vec<Open> = Vec::new();
        'read: loop {
            // Read a value: a scalar, or open a container (an empty one is a value at once).
            let mut v = match self.scalar()? {
                Some(v) => v,
                None => {
                    if stack.len() + 1 > self.settings.decode_max_depth {
                        return Err(err(format!(
                            "Found too many nested data structures ({}) at character {}",
                            stack.len() + 1,
                            self.pos + 1
                        )));
                    }
                    let open = self.peek();
                    self.pos += 1;
                    let t = self.lua.create_table()?;
                    self.skip_ws();
                    if open == Some(b'[') {
                        if self.peek() == Some(b']') {
                            self.pos += 1;
                            Value::Table(t)
                        } else {
                            stack.push(Open::Array(t, 1));
                            continue 'read;
                        }
                    } else if self.peek() == Some(b'}') {
                        self.pos += 1;
                        Value::Table(t)
                    } else {
                        let k = self.key()?;
                        stack.push(Open::Object(t, k));
                        continue 'read;
                    }
                }
            };
            // Store it in its container; close containers that end here.
            loop {
                let Some(top) = stack.last_mut() else {
                    return Ok(v);
                };
                self.skip_ws();
                match top {
                    Open::Array(t, i) => {
                        t.raw_set(*i, v)?;
                        *i += 1;
                        match self.peek() {
                            Some(b',') => {
                                self.pos += 1;
                                continue 'read;
                            }
                            Some(b']') => self.pos += 1,
                            _ => return self.fail("comma or array end"),
                        }
                    }
                    Open::Object(t, k) => {
                        t.raw_set(self.lua.create_string(&*k)?, v)?;
                        match self.peek() {
                            Some(b',') => {
                                self.pos += 1;
                                *k = self.key()?;
                                continue 'read;
                            }
                            Some(b'}') => self.pos += 1,
                            _ => return self.fail("comma or object end"),
                        }
                    }
                }
                // The container just filled is the top of the stack.
                v = match stack.pop() {
                    Some(Open::Array(t, _)) | Some(Open::Object(t, _)) => Value::Table(t),
                    None => return self.fail("value"),
                };
            }
        }
    }

    fn hex4(&mut self) -> mlua::Result<u32> {
        let h = self
            .s
            .get(self.pos..self.pos + 4)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u32::from_str_radix(h, 16).ok());
        match h {
            Some(v) => {
                self.pos += 4;
                Ok(v)
            }
            None => self.fail("unicode escape"),
        }
    }

    fn string(&mut self) -> mlua::Result<Vec<u8>> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return self.fail("string end");
            };
            self.pos += 1;
            match c {
                b'"' => return Ok(out),
                b'\\' => {
                    let Some(e) = self.peek() else {
                        return self.fail("escape");
                    };
                    self.pos += 1;
                    match e {
                        b'"' => out.push(b'"'),
                        b'\\' => out.push(b'\\'),
                        b'/' => out.push(b'/'),
                        b'b' => out.push(0x08),
                        b'f' => out.push(0x0c),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let mut cp = self.hex4()?;
                            if (0xd800..0xdc00).contains(&cp) && self.eat(b"\\u") {
                                let lo = self.hex4()?;
                                if (0xdc00..0xe000).contains(&lo) {
                                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                                } else {
                                    return self.fail("unicode surrogate pair");
                                }
                            }
                            let ch = char::from_u32(cp).unwrap_or('\u{fffd}');
                            let mut b = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut b).as_bytes());
                        }
                        _ => return self.fail("escape"),
                    }
                }
                c if c < 0x20 => return self.fail("string end"),
                c => out.push(c),
            }
        }
    }

    fn number(&mut self) -> mlua::Result<Value> {
        let start = self.pos;
        while self.pos < self.s.len()
            && matches!(self.s[self.pos], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E' | b'x' | b'X' | b'a'..=b'd' | b'f' | b'A'..=b'D' | b'F' | b'i' | b'n' | b'I' | b'N' | b't' | b'y')
        {
            self.pos += 1;
        }
        let text = std::str::from_utf8(&self.s[start..self.pos]).unwrap_or("");
        let lower = text.to_ascii_lowercase();
        let parsed = match lower.trim_start_matches('-') {
            "nan" | "inf" | "infinity" if self.settings.decode_invalid_numbers => {
                let v = if lower.contains('n') && !lower.contains('i') {
                    f64::NAN
                } else {
                    f64::INFINITY
                };
                Some(if lower.starts_with('-') { -v } else { v })
            }
            h if h.starts_with("0x") && self.settings.decode_invalid_numbers => {
                i64::from_str_radix(&h[2..], 16).ok().map(|v| {
                    if lower.starts_with('-') {
                        -(v as f64)
                    } else {
                        v as f64
                    }
                })
            }
            _ if lower.contains(|c: char| c.is_ascii_alphabetic() && c != 'e') => None,
            _ => text.parse::<f64>().ok(),
        };
        match parsed {
            Some(n) => Ok(Value::Number(n)),
            None => {
                self.pos = start;
                self.fail("value")
            }
        }
    }
}

fn decode(lua: &Lua, s: &[u8], settings: Settings) -> mlua::Result<Value> {
    let mut d = Decoder {
        lua,
        s,
        pos: 0,
        settings,
    };
    let v = d.value()?;
    d.skip_ws();
    if d.pos != s.len() {
        return d.fail("the end");
    }
    Ok(v)
}

// ---- the library ----

fn bool_arg(v: Option<&Value>) -> Option<bool> {
    match v {
        Some(Value::Boolean(b)) => Some(*b),
        Some(Value::String(s)) if &*s.as_bytes() == b"on" => Some(true),
        Some(Value::String(s)) if &*s.as_bytes() == b"off" => Some(false),
        _ => None,
    }
}

fn int_arg(v: Option<&Value>, name: &str, min: i64, max: i64) -> mlua::Result<Option<usize>> {
    let n = match v {
        None | Some(Value::Nil) => return Ok(None),
        Some(Value::Integer(i)) => *i,
        Some(Value::Number(n)) => *n as i64,
        Some(other) => {
            return Err(err(format!(
                "bad argument #1 to '{name}' (number expected, got {})",
                type_name(other)
            )))
        }
    };
    if n < min || n > max {
        return Err(err(format!(
            "bad argument #1 to '{name}' (expected integer between {min} and {max})"
        )));
    }
    Ok(Some(n as usize))
}

pub fn library(lua: &Lua) -> mlua::Result<Table> {
    let settings = Arc::new(Mutex::new(Settings::default()));
    let next: Function = lua.globals().raw_get("next")?;
    let t = lua.create_table()?;
    let s = settings.clone();
    t.raw_set(
        "encode",
        lua.create_function(move |lua, a: MultiValue| {
            if a.len() != 1 {
                return Err(err("bad argument #1 to 'encode' (expected 1 argument)"));
            }
            let st = *s.lock();
            let mut out = Vec::new();
            encode_value(&mut out, &a[0], &st, &next)?;
            lua.create_string(out)
        })?,
    )?;
    let s = settings.clone();
    t.raw_set(
        "decode",
        lua.create_function(move |lua, a: MultiValue| {
            let Some(Value::String(text)) = a.front().filter(|_| a.len() == 1) else {
                return Err(err("bad argument #1 to 'decode' (expected 1 argument)"));
            };
            let st = *s.lock();
            decode(lua, &text.as_bytes(), st)
        })?,
    )?;
    let s = settings.clone();
    t.raw_set(
        "encode_max_depth",
        lua.create_function(move |_, a: MultiValue| {
            let mut st = s.lock();
            if let Some(n) = int_arg(a.front(), "encode_max_depth", 1, i32::MAX as i64)? {
                st.encode_max_depth = n.min(HARD_DEPTH);
            }
            Ok(st.encode_max_depth)
        })?,
    )?;
    let s = settings.clone();
    t.raw_set(
        "decode_max_depth",
        lua.create_function(move |_, a: MultiValue| {
            let mut st = s.lock();
            if let Some(n) = int_arg(a.front(), "decode_max_depth", 1, i32::MAX as i64)? {
                st.decode_max_depth = n.min(HARD_DEPTH);
            }
            Ok(st.decode_max_depth)
        })?,
    )?;
    let s = settings.clone();
    t.raw_set(
        "encode_number_precision",
        lua.create_function(move |_, a: MultiValue| {
            let mut st = s.lock();
            if let Some(n) = int_arg(a.front(), "encode_number_precision", 1, 14)? {
                st.precision = n;
            }
            Ok(st.precision)
        })?,
    )?;
    let s = settings.clone();
    t.raw_set(
        "encode_invalid_numbers",
        lua.create_function(move |lua, a: MultiValue| {
            let mut st = s.lock();
            match a.front() {
                Some(Value::String(v)) if &*v.as_bytes() == b"null" => {
                    st.encode_invalid_numbers = 2
                }
                v => {
                    if let Some(b) = bool_arg(v) {
                        st.encode_invalid_numbers = b as u8;
                    }
                }
            }
            Ok(match st.encode_invalid_numbers {
                2 => Value::String(lua.create_string("null")?),
                n => Value::Boolean(n == 1),
            })
        })?,
    )?;
    let s = settings.clone();
    t.raw_set(
        "decode_invalid_numbers",
        lua.create_function(move |_, a: MultiValue| {
            let mut st = s.lock();
            if let Some(b) = bool_arg(a.front()) {
                st.decode_invalid_numbers = b;
            }
            Ok(st.decode_invalid_numbers)
        })?,
    )?;
    let s = settings.clone();
    t.raw_set(
        "encode_keep_buffer",
        lua.create_function(move |_, a: MultiValue| {
            let mut st = s.lock();
            if let Some(b) = bool_arg(a.front()) {
                st.keep_buffer = b;
            }
            Ok(st.keep_buffer)
        })?,
    )?;
    let s = settings;
    t.raw_set(
        "encode_sparse_array",
        lua.create_function(move |_, a: MultiValue| {
            let mut st = s.lock();
            if let Some(b) = bool_arg(a.front()) {
                st.sparse_convert = b;
            }
            if let Some(n) = int_arg(a.get(1), "encode_sparse_array", 0, i32::MAX as i64)? {
                st.sparse_ratio = n;
            }
            if let Some(n) = int_arg(a.get(2), "encode_sparse_array", 0, i32::MAX as i64)? {
                st.sparse_safe = n;
            }
            Ok((st.sparse_convert, st.sparse_ratio, st.sparse_safe))
        })?,
    )?;
    t.raw_set("null", LightUserData(std::ptr::null_mut()))?;
    t.raw_set("_NAME", "cjson")?;
    t.raw_set("_VERSION", "2.1.0")?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::super::testlua::*;

    #[test]
    fn encode_and_decode() {
        let lua = lua();
        assert_eq!(
            eval(
                &lua,
                "return table.concat(cjson.decode('[0.0, -5e3, -1, 0.3e-3, 1023.2, 0e10]'), ' ')"
            ),
            "0 -5000 -1 0.0003 1023.2 0"
        );
        assert_eq!(
            eval(&lua, "return cjson.encode({1, 2, 'a'})"),
            "[1,2,\"a\"]"
        );
        assert_eq!(eval(&lua, "return cjson.encode({})"), "{}");
        assert_eq!(
            eval(&lua, "return cjson.encode({a = {b = true}})"),
            "{\"a\":{\"b\":true}}"
        );
        assert_eq!(
            eval(&lua, "return cjson.encode('a/b\"\\n')"),
            "\"a\\/b\\\"\\n\""
        );
        assert_eq!(eval(&lua, "return cjson.encode(0.1)"), "0.1");
        assert_eq!(
            eval(&lua, "return cjson.encode({[1] = 1, [3] = 3})"),
            "[1,null,3]"
        );
        assert_eq!(eval(&lua, "return cjson.encode(cjson.null)"), "null");
        assert!(eval(&lua, "return cjson.encode({[20] = 1})").contains("excessively sparse"));
        assert!(
            eval(&lua, "return cjson.encode(function() end)").contains("Cannot serialise function")
        );
        assert!(eval(&lua, "return cjson.encode({[true] = 1})").contains("table key must be"));
        assert_eq!(
            eval(
                &lua,
                "return cjson.decode('\"\\\\u00e9\\\\ud83d\\\\ude00\"')"
            ),
            "é😀"
        );
        assert!(eval(&lua, "return cjson.decode('{\"a\": }')").contains("Expected value"));
        assert!(eval(&lua, "return cjson.decode('[1] x')").contains("Expected the end"));
        check(
            &lua,
            r#"
            local some_map = {s1="Some string", n1=100, a1={"Some","String","Array"}, b1=true, b2=false}
            local decoded = cjson.decode(cjson.encode(some_map))
            assert(decoded.s1 == "Some string" and decoded.n1 == 100 and decoded.a1[3] == "Array")
            assert(decoded.b2 == false)
            assert(cjson.decode('{"x": null}').x == cjson.null)
            cjson.encode_keep_buffer(false)
            local t = cjson.decode(cjson.encode({one="one", [1]="one"}))
            assert(t["one"] == "one" and t["1"] == "one")
            cjson.encode_max_depth(1)
            assert(pcall(cjson.encode, some_map) == false)
            cjson.decode_max_depth(1)
            assert(pcall(cjson.decode, '{"obj": {"array": [1,2,3,4]}}') == false)
            assert(pcall(cjson.encode, {num1 = 0/0}) == false)
            cjson.encode_invalid_numbers(true)
            assert(pcall(cjson.encode, {num1 = 0/0}) == true)
            cjson.decode_max_depth(1000)
            cjson.encode_max_depth(1000)
            cjson.encode_invalid_numbers(false)
            -- deep input is refused, not a crash; deep output too
            assert(pcall(cjson.decode, string.rep('[', 100000)) == false)
            cjson.decode_max_depth(100000)
            assert(pcall(cjson.decode, string.rep('[', 1500) .. string.rep(']', 1500)) == true)
            assert(pcall(cjson.decode, string.rep('[', 50000) .. string.rep(']', 50000)) == false)
            cjson.decode_max_depth(1000)
            local deep = {} local t = deep for i = 1, 1500 do t[1] = {} t = t[1] end
            assert(pcall(cjson.encode, deep) == false)
            cjson.encode_max_depth(100000)
            assert(#cjson.encode(deep) == 3002)
            cjson.encode_max_depth(1000)
            -- a big object is walked, not copied
            local big = {} for i = 1, 20000 do big['k' .. i] = i end
            assert(#cjson.encode(big) > 20000)
            local back = cjson.decode(cjson.encode(big))
            assert(back.k20000 == 20000)
            "#,
        );
    }
}
