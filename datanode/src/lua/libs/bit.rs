//! `bit`: LuaBitOp's 32-bit operations. Every argument is first normalised to a signed
//! 32-bit integer (the number rounded to the nearest integer, ties to even, taken modulo
//! 2^32), results are signed 32-bit integers, and shift counts use their low 5 bits.

use super::check_number;
use mlua::{Lua, MultiValue, Table, Value};

/// LuaBitOp's normalisation of a number to 32 bits.
pub fn tobit(n: f64) -> i32 {
    if !n.is_finite() {
        return 0;
    }
    n.round_ties_even().rem_euclid(4294967296.0) as u64 as u32 as i32
}

fn arg(args: &MultiValue, pos: usize, f: &str) -> mlua::Result<i32> {
    Ok(tobit(check_number(args, pos, f)?))
}

/// `bit.tohex(x [, n])`: the low `|n|` hex digits of `x` (8 by default), upper case when
/// `n` is negative.
pub fn tohex(x: i32, n: i32) -> String {
    let upper = n < 0;
    let digits = (n.unsigned_abs() as usize).clamp(1, 8);
    let v = x as u32 as u64;
    let s = if upper {
        format!("{:08X}", v)
    } else {
        format!("{:08x}", v)
    };
    s[8 - digits..].to_string()
}

type Fold = fn(i32, i32) -> i32;

pub fn library(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set(
        "tobit",
        lua.create_function(|_, a: MultiValue| arg(&a, 1, "tobit"))?,
    )?;
    t.raw_set(
        "bnot",
        lua.create_function(|_, a: MultiValue| Ok(!arg(&a, 1, "bnot")?))?,
    )?;
    let folds: [(&str, Fold); 3] = [
        ("band", |a, b| a & b),
        ("bor", |a, b| a | b),
        ("bxor", |a, b| a ^ b),
    ];
    for (name, op) in folds {
        t.raw_set(
            name,
            lua.create_function(move |_, a: MultiValue| {
                let mut acc = arg(&a, 1, name)?;
                for i in 2..=a.len() {
                    acc = op(acc, arg(&a, i, name)?);
                }
                Ok(acc)
            })?,
        )?;
    }
    let shifts: [(&str, Fold); 5] = [
        ("lshift", |x, n| ((x as u32) << (n & 31)) as i32),
        ("rshift", |x, n| ((x as u32) >> (n & 31)) as i32),
        ("arshift", |x, n| x >> (n & 31)),
        ("rol", |x, n| (x as u32).rotate_left((n & 31) as u32) as i32),
        ("ror", |x, n| {
            (x as u32).rotate_right((n & 31) as u32) as i32
        }),
    ];
    for (name, op) in shifts {
        t.raw_set(
            name,
            lua.create_function(move |_, a: MultiValue| {
                Ok(op(arg(&a, 1, name)?, arg(&a, 2, name)?))
            })?,
        )?;
    }
    t.raw_set(
        "bswap",
        lua.create_function(|_, a: MultiValue| Ok(arg(&a, 1, "bswap")?.swap_bytes()))?,
    )?;
    t.raw_set(
        "tohex",
        lua.create_function(|_, a: MultiValue| {
            let x = arg(&a, 1, "tohex")?;
            let n = match a.get(1) {
                None | Some(Value::Nil) => 8,
                Some(_) => arg(&a, 2, "tohex")?,
            };
            Ok(tohex(x, n))
        })?,
    )?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::super::testlua::*;
    use super::*;

    #[test]
    fn normalisation() {
        assert_eq!(tobit(1.0), 1);
        assert_eq!(tobit(4294967295.0), -1);
        assert_eq!(tobit(4294967296.0), 0);
        assert_eq!(tobit(-1.0), -1);
        assert_eq!(tobit(2147483648.0), -2147483648);
        assert_eq!(tobit(1.5), 2);
        assert_eq!(tobit(2.5), 2);
        assert_eq!(tobit(f64::NAN), 0);
        assert_eq!(tohex(255, 8), "000000ff");
        assert_eq!(tohex(-1, -4), "FFFF");
        assert_eq!(tohex(0x12345678, 2), "78");
    }

    #[test]
    fn operations_from_lua() {
        let lua = lua();
        check(
            &lua,
            "assert(bit.tobit(1) == 1)
             assert(bit.band(1) == 1)
             assert(bit.bxor(1, 2) == 3)
             assert(bit.bor(1, 2, 4, 8, 16, 32, 64, 128) == 255)
             assert(bit.bnot(0) == -1)
             assert(bit.lshift(1, 31) == -2147483648)
             assert(bit.lshift(1, 32) == 1)
             assert(bit.rshift(-1, 28) == 15)
             assert(bit.arshift(-256, 4) == -16)
             assert(bit.rol(0x12345678, 8) == 0x34567812)
             assert(bit.ror(0x12345678, 8) == 0x78123456)
             assert(bit.bswap(0x12345678) == 0x78563412)
             assert(bit.tohex(65535) == '0000ffff')
             assert(bit.band('7', 3) == 3)
             assert(bit.band(bit.rshift(0x00070010, 16), 0xff) == 7)",
        );
        assert!(eval(&lua, "return bit.band(nil)")
            .contains("bad argument #1 to 'band' (number expected, got nil)"));
    }
}
