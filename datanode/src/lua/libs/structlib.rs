//! `struct`: binary records as strings (`struct.pack`, `struct.unpack`, `struct.size`).
//!
//! A format is a sequence of options: `>` big endian, `<` and `=` little endian (the native
//! order here), `!n` align fields to at most `n` bytes (a power of two; `!` alone: 8), `x`
//! one zero byte, `b`/`B` signed/unsigned char, `h`/`H` short (2), `l`/`L` long (8), `T`
//! size_t (8), `i`/`I` int (4, or `in` for `n` bytes, up to 32), `f` float, `d` double, `s`
//! a zero-terminated string, `cn` `n` bytes (`c0`: the whole string when packing, and the
//! length unpacked just before when unpacking). Spaces are ignored. `unpack` returns the
//! values and then the position after them.

use super::{bad_arg, check_bytes, check_number};
use mlua::{Lua, MultiValue, Table, Value};

/// Largest integer field.
const MAX_INT_SIZE: usize = 32;
/// `!` without a number.
const DEFAULT_ALIGN: usize = 8;

#[derive(Clone, Copy)]
struct State {
    little: bool,
    align: usize,
}

/// One option of a format: the option letter and its size (0 for the size-less ones).
struct Opt {
    op: u8,
    size: usize,
}

fn err(msg: impl Into<String>) -> mlua::Error {
    mlua::Error::runtime(msg.into())
}

/// Reads an optional decimal count at `fmt[*i..]`.
fn number(fmt: &[u8], i: &mut usize, default: usize) -> usize {
    if *i >= fmt.len() || !fmt[*i].is_ascii_digit() {
        return default;
    }
    let mut n: usize = 0;
    while *i < fmt.len() && fmt[*i].is_ascii_digit() {
        n = n
            .saturating_mul(10)
            .saturating_add((fmt[*i] - b'0') as usize);
        *i += 1;
    }
    n
}

/// The next field of `fmt` (layout options are applied to `st` on the way), or `None` at
/// the end.
fn next(fmt: &[u8], i: &mut usize, st: &mut State) -> mlua::Result<Option<Opt>> {
    while *i < fmt.len() {
        let op = fmt[*i];
        *i += 1;
        let size = match op {
            b'b' | b'B' | b'x' => 1,
            b'h' | b'H' => 2,
            b'l' | b'L' | b'T' | b'd' => 8,
            b'f' => 4,
            b's' => 0,
            b'c' => number(fmt, i, 1),
            b'i' | b'I' => {
                let n = number(fmt, i, 4);
                if n > MAX_INT_SIZE {
                    return Err(err(format!(
                        "integral size {n} is larger than limit of {MAX_INT_SIZE}"
                    )));
                }
                n
            }
            b' ' => continue,
            b'>' => {
                st.little = false;
                continue;
            }
            b'<' | b'=' => {
                st.little = true;
                continue;
            }
            b'!' => {
                let a = number(fmt, i, DEFAULT_ALIGN);
                if a == 0 || !a.is_power_of_two() {
                    return Err(err(format!("alignment {a} is not a power of 2")));
                }
                st.align = a;
                continue;
            }
            other => return Err(err(format!("invalid format option '{}'", other as char))),
        };
        return Ok(Some(Opt { op, size }));
    }
    Ok(None)
}

/// Padding before a field of `size` at offset `len`.
fn padding(len: usize, st: &State, opt: &Opt) -> usize {
    if opt.size == 0 || opt.op == b'c' {
        return 0;
    }
    let a = opt.size.min(st.align);
    if !a.is_power_of_two() {
        return 0;
    }
    (a - (len & (a - 1))) & (a - 1)
}

fn put_int(out: &mut Vec<u8>, v: i64, size: usize, little: bool) {
    let fill = if v < 0 { 0xff } else { 0 };
    let bytes: Vec<u8> = (0..size)
        .map(|k| if k < 8 { (v >> (8 * k)) as u8 } else { fill })
        .collect();
    if little {
        out.extend_from_slice(&bytes);
    } else {
        out.extend(bytes.iter().rev());
    }
}

fn get_int(data: &[u8], signed: bool, little: bool) -> f64 {
    let mut v: u64 = 0;
    let n = data.len();
    for k in 0..n.min(8) {
        let b = if little { data[k] } else { data[n - 1 - k] };
        v |= (b as u64) << (8 * k);
    }
    if signed && n < 8 && n > 0 {
        let shift = 64 - 8 * n as u32;
        (((v << shift) as i64) >> shift) as f64
    } else if signed {
        v as i64 as f64
    } else {
        v as f64
    }
}

fn pack(args: &MultiValue) -> mlua::Result<Vec<u8>> {
    let fmt = check_bytes(args, 1, "pack")?;
    let mut st = State {
        little: true,
        align: 1,
    };
    let mut out = Vec::new();
    let mut i = 0;
    let mut arg = 2;
    while let Some(opt) = next(&fmt, &mut i, &mut st)? {
        let pad = padding(out.len(), &st, &opt);
        out.resize(out.len() + pad, 0);
        match opt.op {
            b'x' => out.push(0),
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let n = check_number(args, arg, "pack")?;
                arg += 1;
                let v = if n >= 9_223_372_036_854_775_808.0 {
                    n as u64 as i64
                } else {
                    n as i64
                };
                put_int(&mut out, v, opt.size, st.little);
            }
            b'f' => {
                let n = check_number(args, arg, "pack")? as f32;
                arg += 1;
                let b = if st.little {
                    n.to_le_bytes()
                } else {
                    n.to_be_bytes()
                };
                out.extend_from_slice(&b);
            }
            b'd' => {
                let n = check_number(args, arg, "pack")?;
                arg += 1;
                let b = if st.little {
                    n.to_le_bytes()
                } else {
                    n.to_be_bytes()
                };
                out.extend_from_slice(&b);
            }
            b'c' => {
                let s = check_bytes(args, arg, "pack")?;
                let size = if opt.size == 0 { s.len() } else { opt.size };
                if s.len() < size {
                    return Err(bad_arg(arg, "pack", "string too short"));
                }
                arg += 1;
                out.extend_from_slice(&s[..size]);
            }
            b's' => {
                let s = check_bytes(args, arg, "pack")?;
                if s.contains(&0) {
                    return Err(bad_arg(arg, "pack", "string contains zeros"));
                }
                arg += 1;
                out.extend_from_slice(&s);
                out.push(0);
            }
            _ => {}
        }
    }
    Ok(out)
}

fn unpack(lua: &Lua, args: &MultiValue) -> mlua::Result<MultiValue> {
    let fmt = check_bytes(args, 1, "unpack")?;
    let data = check_bytes(args, 2, "unpack")?;
    let init = match args.get(2) {
        None | Some(Value::Nil) => 1.0,
        Some(_) => check_number(args, 3, "unpack")?,
    };
    if init < 1.0 || init > data.len() as f64 + 1.0 {
        return Err(bad_arg(3, "unpack", "offset must be 1 or greater"));
    }
    let mut pos = init as usize - 1;
    let mut st = State {
        little: true,
        align: 1,
    };
    let mut out: Vec<Value> = Vec::new();
    let mut i = 0;
    let short = || err("data string too short");
    while let Some(opt) = next(&fmt, &mut i, &mut st)? {
        if out.len() >= 4000 {
            return Err(err("too many results to unpack"));
        }
        pos = pos.checked_add(padding(pos, &st, &opt)).ok_or_else(short)?;
        let mut size = opt.size;
        if opt.op == b'c' && size == 0 {
            let Some(prev) = out.pop() else {
                return Err(err("format 'c0' needs a previous size"));
            };
            size = match prev {
                Value::Integer(n) if n >= 0 => n as usize,
                Value::Number(n) if n >= 0.0 => n as usize,
                _ => return Err(err("format 'c0' needs a previous size")),
            };
        }
        if opt.op != b's' && pos.checked_add(size).is_none_or(|e| e > data.len()) {
            return Err(short());
        }
        match opt.op {
            b'x' => {}
            b'b' | b'h' | b'l' | b'i' => {
                out.push(Value::Number(get_int(
                    &data[pos..pos + size],
                    true,
                    st.little,
                )));
            }
            b'B' | b'H' | b'L' | b'T' | b'I' => {
                out.push(Value::Number(get_int(
                    &data[pos..pos + size],
                    false,
                    st.little,
                )));
            }
            b'f' => {
                let mut b = [0u8; 4];
                b.copy_from_slice(&data[pos..pos + 4]);
                let v = if st.little {
                    f32::from_le_bytes(b)
                } else {
                    f32::from_be_bytes(b)
                };
                out.push(Value::Number(v as f64));
            }
            b'd' => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&data[pos..pos + 8]);
                let v = if st.little {
                    f64::from_le_bytes(b)
                } else {
                    f64::from_be_bytes(b)
                };
                out.push(Value::Number(v));
            }
            b'c' => out.push(Value::String(lua.create_string(&data[pos..pos + size])?)),
            b's' => {
                let end = data[pos.min(data.len())..]
                    .iter()
                    .position(|&c| c == 0)
                    .ok_or_else(|| err("unfinished string in data"))?;
                out.push(Value::String(lua.create_string(&data[pos..pos + end])?));
                size = end + 1;
            }
            _ => {}
        }
        pos += size;
    }
    out.push(Value::Integer(pos as i64 + 1));
    Ok(MultiValue::from_iter(out))
}

fn size(args: &MultiValue) -> mlua::Result<usize> {
    let fmt = check_bytes(args, 1, "size")?;
    let mut st = State {
        little: true,
        align: 1,
    };
    let mut total: usize = 0;
    let mut i = 0;
    while let Some(opt) = next(&fmt, &mut i, &mut st)? {
        if opt.op == b's' {
            return Err(bad_arg(
                1,
                "size",
                "options 'c0' - 's' have undefined sizes",
            ));
        }
        if opt.op == b'c' && opt.size == 0 {
            return Err(bad_arg(
                1,
                "size",
                "options 'c0' - 's' have undefined sizes",
            ));
        }
        total = total
            .saturating_add(padding(total, &st, &opt))
            .saturating_add(opt.size);
    }
    Ok(total)
}

pub fn library(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set(
        "pack",
        lua.create_function(|lua, a: MultiValue| lua.create_string(pack(&a)?))?,
    )?;
    t.raw_set(
        "unpack",
        lua.create_function(|lua, a: MultiValue| unpack(lua, &a))?,
    )?;
    t.raw_set("size", lua.create_function(|_, a: MultiValue| size(&a))?)?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::super::testlua::*;

    #[test]
    fn pack_unpack_size() {
        let lua = lua();
        check(
            &lua,
            r#"
            assert(struct.pack('>i', 1) == '\0\0\0\1')
            assert(struct.pack('<h', -2) == '\254\255')
            assert(struct.pack('B', 255) == '\255')
            assert(struct.size('>iHd') == 14)
            assert(struct.size('!4 b i') == 8)
            local a, b, c, nxt = struct.unpack('>ibH', struct.pack('>ibH', -5, -1, 65535))
            assert(a == -5 and b == -1 and c == 65535 and nxt == 8)
            local s, n = struct.unpack('s', struct.pack('s', 'hello'))
            assert(s == 'hello' and n == 7)
            local x = struct.unpack('Bc0', struct.pack('Bc0', 3, 'abc'))
            assert(x == 'abc')
            local d = struct.unpack('<d', struct.pack('<d', 0.1))
            assert(d == 0.1)
            local f = struct.unpack('>f', struct.pack('>f', 0.5))
            assert(f == 0.5)
            local i3 = struct.unpack('>i3', struct.pack('>i3', -2))
            assert(i3 == -2)
            local v, p = struct.unpack('>H', '\0\0\1\2', 3)
            assert(v == 258 and p == 5)
            "#,
        );
        assert!(eval(&lua, "return struct.pack('q', 1)").contains("invalid format option 'q'"));
        assert!(eval(&lua, "return struct.unpack('>i', 'ab')").contains("data string too short"));
        assert!(eval(&lua, "return struct.pack('i40', 1)").contains("larger than limit"));
        assert!(eval(&lua, "return struct.size('!3i')").contains("not a power of 2"));
        assert!(eval(&lua, "return struct.unpack('s', 'abc')").contains("unfinished string"));
        assert!(eval(&lua, "return struct.unpack('c0', 'abc')").contains("needs a previous size"));
    }
}
