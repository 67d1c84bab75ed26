//! `cmsgpack`: MessagePack for scripts, with lua-cmsgpack's interface and rules.
//!
//! - `pack(v1, v2, ...)`: each value's encoding, concatenated. Integral numbers use the
//!   smallest integer form; others a float when a float holds them exactly, else a double.
//!   A table whose keys are exactly 1..n is an array (so is an empty table), others are
//!   maps. Tables nest at most 16 deep; deeper ones (reference cycles) encode as nil.
//! - `unpack(s)`: every value in `s`. `unpack_one(s [, offset])` and
//!   `unpack_limit(s, limit [, offset])`: the offset after what was read (-1 at the end of
//!   `s`), then the values (at most `limit`, 0 for all). Offsets count bytes from 0.

use super::{bad_arg, check_bytes, check_number};
use mlua::{Lua, MultiValue, Table, Value};

/// Table nesting `pack` follows before writing nil.
const MAX_NESTING: usize = 16;
/// Nesting `unpack` accepts (deeper input is malformed for our purposes).
const MAX_DECODE_DEPTH: usize = 1000;
/// Values one `unpack` returns at most (Lua's own limit on results is 8000).
const MAX_RESULTS: usize = 4000;

fn encode_int(out: &mut Vec<u8>, v: i64) {
    if v >= 0 {
        let u = v as u64;
        if u <= 0x7f {
            out.push(u as u8);
        } else if u <= 0xff {
            out.extend_from_slice(&[0xcc, u as u8]);
        } else if u <= 0xffff {
            out.push(0xcd);
            out.extend_from_slice(&(u as u16).to_be_bytes());
        } else if u <= 0xffff_ffff {
            out.push(0xce);
            out.extend_from_slice(&(u as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&u.to_be_bytes());
        }
    } else if v >= -32 {
        out.push(v as i8 as u8);
    } else if v >= -128 {
        out.extend_from_slice(&[0xd0, v as i8 as u8]);
    } else if v >= -32768 {
        out.push(0xd1);
        out.extend_from_slice(&(v as i16).to_be_bytes());
    } else if v >= -2147483648 {
        out.push(0xd2);
        out.extend_from_slice(&(v as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

fn encode_number(out: &mut Vec<u8>, n: f64) {
    // 2^63: integral values in [-2^63, 2^63) fit an i64.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if n.fract() == 0.0 && (-LIMIT..LIMIT).contains(&n) {
        encode_int(out, n as i64);
    } else if (n as f32) as f64 == n || n.is_nan() {
        out.push(0xca);
        out.extend_from_slice(&(n as f32).to_be_bytes());
    } else {
        out.push(0xcb);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn encode_len(out: &mut Vec<u8>, n: usize, fix: u8, fix_max: usize, t16: u8, t32: u8) {
    if n <= fix_max {
        out.push(fix | n as u8);
    } else if n <= 0xffff {
        out.push(t16);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(t32);
        out.extend_from_slice(&(n.min(u32::MAX as usize) as u32).to_be_bytes());
    }
}

fn encode_bytes(out: &mut Vec<u8>, s: &[u8]) {
    let n = s.len();
    if n < 32 {
        out.push(0xa0 | n as u8);
    } else if n <= 0xff {
        out.extend_from_slice(&[0xd9, n as u8]);
    } else if n <= 0xffff {
        out.push(0xda);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
    out.extend_from_slice(s);
}

/// The length if `t`'s keys are exactly 1..n.
fn array_len(t: &Table) -> mlua::Result<Option<usize>> {
    let mut count = 0usize;
    let mut max = 0.0f64;
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
        count += 1;
        max = max.max(n);
    }
    Ok((max as usize == count).then_some(count))
}

fn encode_value(out: &mut Vec<u8>, v: &Value, level: usize) -> mlua::Result<()> {
    match v {
        Value::Nil => out.push(0xc0),
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(i) => encode_int(out, *i),
        Value::Number(n) => encode_number(out, *n),
        Value::String(s) => encode_bytes(out, &s.as_bytes()),
        Value::Table(t) if level >= MAX_NESTING => {
            let _ = t;
            out.push(0xc0)
        }
        Value::Table(t) => match array_len(t)? {
            Some(n) => {
                encode_len(out, n, 0x90, 15, 0xdc, 0xdd);
                for i in 1..=n {
                    let item: Value = t.raw_get(i)?;
                    encode_value(out, &item, level + 1)?;
                }
            }
            None => {
                // Counted first, then walked: nothing of the table is held meanwhile.
                let mut n = 0usize;
                for pair in t.clone().pairs::<Value, Value>() {
                    pair?;
                    n += 1;
                }
                encode_len(out, n, 0x80, 15, 0xde, 0xdf);
                for pair in t.clone().pairs::<Value, Value>() {
                    let (k, item) = pair?;
                    encode_value(out, &k, level + 1)?;
                    encode_value(out, &item, level + 1)?;
                }
            }
        },
        // Functions, userdata and threads have no MessagePack form.
        _ => out.push(0xc0),
    }
    Ok(())
}

fn missing() -> mlua::Error {
    mlua::Error::runtime("Missing bytes in input.")
}

fn bad() -> mlua::Error {
    mlua::Error::runtime("Bad data format in input.")
}

struct Decoder<'a> {
    lua: &'a Lua,
    s: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    fn take(&mut self, n: usize) -> mlua::Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or_else(missing)?;
        let s: &'a [u8] = self.s;
        let b = s.get(self.pos..end).ok_or_else(missing)?;
        self.pos = end;
        Ok(b)
    }

    fn be(&mut self, n: usize) -> mlua::Result<u64> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | b as u64))
    }

    fn bytes(&mut self, n: usize) -> mlua::Result<Value> {
        let b = self.take(n)?;
        Ok(Value::String(self.lua.create_string(b)?))
    }

    /// A collection's element count, refused if the input cannot hold that many.
    fn count(&mut self, n: u64, per: usize) -> mlua::Result<usize> {
        let n = usize::try_from(n).map_err(|_| missing())?;
        if n.saturating_mul(per) > self.s.len() - self.pos {
            return Err(missing());
        }
        Ok(n)
    }

    /// A scalar, or the header of an array or map and its element count.
    fn head(&mut self) -> mlua::Result<Head> {
        let c = self.take(1)?[0];
        let open = |map: bool, n: usize| Ok(Head::Open { map, n });
        Ok(Head::Value(match c {
            0x00..=0x7f => Value::Integer(c as i64),
            0x80..=0x8f => return open(true, self.count((c & 0x0f) as u64, 2)?),
            0x90..=0x9f => return open(false, self.count((c & 0x0f) as u64, 1)?),
            0xa0..=0xbf => self.bytes((c & 0x1f) as usize)?,
            0xc0 => Value::Nil,
            0xc2 => Value::Boolean(false),
            0xc3 => Value::Boolean(true),
            0xc4 | 0xd9 => {
                let n = self.be(1)? as usize;
                self.bytes(n)?
            }
            0xc5 | 0xda => {
                let n = self.be(2)? as usize;
                self.bytes(n)?
            }
            0xc6 | 0xdb => {
                let n = self.be(4)? as usize;
                self.bytes(n)?
            }
            0xca => Value::Number(f32::from_bits(self.be(4)? as u32) as f64),
            0xcb => Value::Number(f64::from_bits(self.be(8)?)),
            0xcc => Value::Integer(self.be(1)? as i64),
            0xcd => Value::Integer(self.be(2)? as i64),
            0xce => Value::Integer(self.be(4)? as i64),
            0xcf => {
                let v = self.be(8)?;
                match i64::try_from(v) {
                    Ok(i) => Value::Integer(i),
                    Err(_) => Value::Number(v as f64),
                }
            }
            0xd0 => Value::Integer(self.be(1)? as u8 as i8 as i64),
            0xd1 => Value::Integer(self.be(2)? as u16 as i16 as i64),
            0xd2 => Value::Integer(self.be(4)? as u32 as i32 as i64),
            0xd3 => Value::Integer(self.be(8)? as i64),
            0xdc => {
                let n = self.be(2)?;
                return open(false, self.count(n, 1)?);
            }
            0xdd => {
                let n = self.be(4)?;
                return open(false, self.count(n, 1)?);
            }
            0xde => {
                let n = self.be(2)?;
                return open(true, self.count(n, 2)?);
            }
            0xdf => {
                let n = self.be(4)?;
                return open(true, self.count(n, 2)?);
            }
            0xe0..=0xff => Value::Integer(c as i8 as i64),
            _ => return Err(bad()),
        }))
    }

    /// One whole value. Nesting is kept on a heap stack, bounded, never the thread's.
    fn value(&mut self) -> mlua::Result<Value> {
        struct Open {
            t: Table,
            map: bool,
            /// Items (arrays) or keys and values (maps) still to read.
            left: usize,
            next: usize,
            key: Option<Value>,
        }
        let mut stack: Vec<Open> = Vec::new();
        loop {
            let mut v = match self.head()? {
                Head::Value(v) => v,
                Head::Open { map, n } => {
                    if stack.len() >= MAX_DECODE_DEPTH {
                        return Err(bad());
                    }
                    let t = if map {
                        self.lua.create_table_with_capacity(0, n)?
                    } else {
                        self.lua.create_table_with_capacity(n, 0)?
                    };
                    let left = if map { n * 2 } else { n };
                    if left > 0 {
                        stack.push(Open {
                            t,
                            map,
                            left,
                            next: 1,
                            key: None,
                        });
                        continue;
                    }
                    Value::Table(t)
                }
            };
            loop {
                let Some(top) = stack.last_mut() else {
                    return Ok(v);
                };
                top.left -= 1;
                if !top.map {
                    top.t.raw_set(top.next, v)?;
                    top.next += 1;
                } else if let Some(k) = top.key.take() {
                    top.t.raw_set(k, v)?;
                } else {
                    if matches!(v, Value::Nil) {
                        return Err(bad());
                    }
                    top.key = Some(v);
                }
                if top.left > 0 {
                    break;
                }
                // The container just filled is the top of the stack.
                v = match stack.pop() {
                    Some(o) => Value::Table(o.t),
                    None => return Err(bad()),
                };
            }
        }
    }
}

enum Head {
    Value(Value),
    Open { map: bool, n: usize },
}

/// Decodes at most `limit` values (0: all) from `offset`; returns the next offset (-1 at
/// the end) and the values.
fn unpack(lua: &Lua, s: &[u8], limit: usize, offset: i64) -> mlua::Result<(i64, Vec<Value>)> {
    let start = usize::try_from(offset)
        .ok()
        .filter(|&o| o <= s.len())
        .ok_or_else(|| {
            mlua::Error::runtime(format!(
                "Invalid request to unpack with offset of {offset} and limit of {limit}."
            ))
        })?;
    let mut d = Decoder { lua, s, pos: start };
    let mut out = Vec::new();
    while d.pos < s.len() && (limit == 0 || out.len() < limit) {
        if out.len() >= MAX_RESULTS {
            return Err(mlua::Error::runtime("too many results to unpack"));
        }
        out.push(d.value()?);
    }
    let next = if d.pos >= s.len() { -1 } else { d.pos as i64 };
    Ok((next, out))
}

fn offset_arg(a: &MultiValue, pos: usize, f: &str) -> mlua::Result<i64> {
    match a.get(pos - 1) {
        None | Some(Value::Nil) => Ok(0),
        Some(_) => Ok(check_number(a, pos, f)? as i64),
    }
}

pub fn library(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set(
        "pack",
        lua.create_function(|lua, a: MultiValue| {
            if a.is_empty() {
                return Err(bad_arg(1, "pack", "MessagePack pack needs input."));
            }
            let mut out = Vec::new();
            for v in a.iter() {
                encode_value(&mut out, v, 0)?;
            }
            lua.create_string(out)
        })?,
    )?;
    t.raw_set(
        "unpack",
        lua.create_function(|lua, a: MultiValue| {
            let s = check_bytes(&a, 1, "unpack")?;
            let (_, values) = unpack(lua, &s, 0, 0)?;
            Ok(MultiValue::from_iter(values))
        })?,
    )?;
    t.raw_set(
        "unpack_one",
        lua.create_function(|lua, a: MultiValue| {
            let s = check_bytes(&a, 1, "unpack_one")?;
            let offset = offset_arg(&a, 2, "unpack_one")?;
            let (next, values) = unpack(lua, &s, 1, offset)?;
            Ok(MultiValue::from_iter(
                std::iter::once(Value::Integer(next)).chain(values),
            ))
        })?,
    )?;
    t.raw_set(
        "unpack_limit",
        lua.create_function(|lua, a: MultiValue| {
            let s = check_bytes(&a, 1, "unpack_limit")?;
            let limit = check_number(&a, 2, "unpack_limit")?.max(0.0) as usize;
            let offset = offset_arg(&a, 3, "unpack_limit")?;
            let (next, values) = unpack(lua, &s, limit, offset)?;
            Ok(MultiValue::from_iter(
                std::iter::once(Value::Integer(next)).chain(values),
            ))
        })?,
    )?;
    t.raw_set("_NAME", "cmsgpack")?;
    t.raw_set("_VERSION", "lua-cmsgpack 0.4.0")?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::super::testlua::*;

    const HEX: &str = "local h = '' for i = 1, #e do h = h .. string.format('%02x', string.byte(e, i)) end return h";

    #[test]
    fn encodings_match_msgpack() {
        let lua = lua();
        let hex = |expr: &str| eval(&lua, &format!("local e = cmsgpack.pack({expr}) {HEX}"));
        assert_eq!(hex("0.1"), "cb3fb999999999999a");
        assert_eq!(hex("-1099511627776"), "d3ffffff0000000000");
        assert_eq!(hex("0.5"), "ca3f000000");
        assert_eq!(hex("1, -1, 200, -100, 70000"), "01ffccc8d09cce00011170");
        assert_eq!(hex("{}"), "90");
        assert_eq!(hex("{1, 2}"), "920102");
        assert_eq!(hex("{a = true}"), "81a161c3");
        assert_eq!(hex("nil, false"), "c0c2");
    }

    #[test]
    fn circular_references_stop_at_sixteen_levels() {
        let lua = lua();
        let h = eval(
            &lua,
            &format!("local a = {{x=nil,y=5}} local b = {{x=a}} a['x'] = b local e = cmsgpack.pack(a) {HEX}"),
        );
        assert_eq!(h, "82a17905a17881a17882a17905a17881a17882a17905a17881a17882a17905a17881a17882a17905a17881a17882a17905a17881a17882a17905a17881a17882a17905a17881a178c0");
    }

    #[test]
    fn roundtrips_and_offsets() {
        let lua = lua();
        check(
            &lua,
            r#"
            local s30, s250, s65530, slong = string.rep("x", 30), string.rep("x", 250), string.rep("x", 65530), string.rep("x", 100000)
            local big = {} for i = 1, 100000 do big[i] = i end
            local m = {s1 = s30, s4 = slong, d1 = 0.1, i5 = 2^40, i10 = -3147483648, a3 = big, b1 = false}
            local d = cmsgpack.unpack(cmsgpack.pack(m))
            assert(d.s1 == s30 and d.s4 == slong and d.d1 == 0.1 and d.i5 == 2^40)
            assert(d.i10 == -3147483648 and #d.a3 == 100000 and d.b1 == false)
            local offset, one = cmsgpack.unpack_one(cmsgpack.pack(m), 0)
            assert(offset == -1 and one.s1 == s30)
            local multi = cmsgpack.pack(s30, s250, s65530, slong)
            local o, v = cmsgpack.unpack_limit(multi, 1, 0)
            assert(v == s30)
            o, v = cmsgpack.unpack_limit(multi, 1, o)
            assert(v == s250)
            o, v = cmsgpack.unpack_limit(multi, 1, o)
            assert(v == s65530)
            o, v = cmsgpack.unpack_limit(multi, 1, o)
            assert(v == slong and o == -1)
            local a, b, c = cmsgpack.unpack(cmsgpack.pack(1, "two", {3}))
            assert(a == 1 and b == "two" and c[1] == 3)
            "#,
        );
        // Truncated or hostile input is an error, never a crash or a huge allocation.
        assert!(
            eval(&lua, "return cmsgpack.unpack('\\221\\255\\255\\255\\255')")
                .contains("Missing bytes")
        );
        assert!(
            eval(&lua, "return cmsgpack.unpack('\\219\\0\\0\\0\\9ab')").contains("Missing bytes")
        );
        assert!(
            eval(&lua, "return cmsgpack.unpack(string.rep('\\145', 5000))")
                .contains("Bad data format")
        );
        assert!(eval(&lua, "return cmsgpack.unpack_one('ab', 9)").contains("Invalid request"));
    }
}
