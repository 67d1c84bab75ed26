//! A script's result (a Lua value) as a reply, by Redis's rules.

use super::*;

/// A script's result as a reply (Redis's rules; nested tables up to a depth).
pub fn lua_to_frame(v: &Value, resp3: bool, depth: usize) -> Frame {
    if depth > MAX_DEPTH {
        return Frame::err("ERR reached lua stack limit");
    }
    match v {
        Value::Nil => Frame::Null,
        Value::Boolean(true) => {
            if resp3 {
                Frame::Boolean(true)
            } else {
                Frame::Integer(1)
            }
        }
        Value::Boolean(false) => {
            if resp3 {
                Frame::Boolean(false)
            } else {
                Frame::Null
            }
        }
        Value::Integer(i) => Frame::Integer(*i),
        Value::Number(n) => Frame::Integer(*n as i64),
        Value::String(s) => Frame::Bulk(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Table(t) => table_to_frame(t, resp3, depth),
        _ => Frame::Null,
    }
}

fn table_to_frame(t: &Table, resp3: bool, depth: usize) -> Frame {
    let field = |name: &str| t.raw_get::<Value>(name).unwrap_or(Value::Nil);
    if let Value::String(e) = field("err") {
        let text = one_line(&e.to_string_lossy());
        // Like Redis: an error without a code gets none added, but is never empty.
        return Frame::error(if text.is_empty() { "ERR".into() } else { text });
    }
    if let Value::String(s) = field("ok") {
        return Frame::simple_owned(&one_line(&s.to_string_lossy()));
    }
    match field("double") {
        Value::Number(d) => return Frame::Double(d),
        Value::Integer(i) => return Frame::Double(i as f64),
        _ => {}
    }
    if let Value::String(s) = field("big_number") {
        return Frame::Bulk(Bytes::from(one_line(&s.to_string_lossy()).into_bytes()));
    }
    if let Value::Table(v) = field("verbatim_string") {
        if let Ok(Value::String(s)) = v.raw_get::<Value>("string") {
            let text = Bytes::copy_from_slice(&s.as_bytes());
            return if resp3 {
                Frame::Verbatim(text)
            } else {
                Frame::Bulk(text)
            };
        }
    }
    if let Value::Table(m) = field("map") {
        let pairs: Vec<(Frame, Frame)> = m
            .pairs::<Value, Value>()
            .filter_map(Result::ok)
            .map(|(k, v)| {
                (
                    lua_to_frame(&k, resp3, depth + 1),
                    lua_to_frame(&v, resp3, depth + 1),
                )
            })
            .collect();
        return if resp3 {
            Frame::Map(pairs)
        } else {
            Frame::Array(pairs.into_iter().flat_map(|(k, v)| [k, v]).collect())
        };
    }
    if let Value::Table(s) = field("set") {
        let items: Vec<Frame> = s
            .pairs::<Value, Value>()
            .filter_map(Result::ok)
            .map(|(k, _)| lua_to_frame(&k, resp3, depth + 1))
            .collect();
        return if resp3 {
            Frame::Set(items)
        } else {
            Frame::Array(items)
        };
    }
    let mut items = Vec::new();
    let mut i = 1;
    loop {
        match t.raw_get::<Value>(i) {
            Ok(Value::Nil) | Err(_) => break,
            Ok(v) => items.push(lua_to_frame(&v, resp3, depth + 1)),
        }
        i += 1;
    }
    Frame::Array(items)
}
