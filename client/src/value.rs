//! Replies as values: [`Value`] (what the server sent, RESP2 or RESP3), [`ServerError`] (an
//! error reply, with Redis's text) and [`FromValue`], the conversions the typed API uses.

use std::fmt;

use bytes::Bytes;

use crate::error::Error;

/// One reply, as the server sent it. RESP2 and RESP3 nulls are both [`Value::Nil`].
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `$-1`, `*-1` or `_`: no value (a missing key, a condition not met).
    Nil,
    /// `:n`
    Int(i64),
    /// `$len`: binary-safe bytes.
    Bulk(Bytes),
    /// `+OK`, the most common reply, without an allocation.
    Okay,
    /// `+text` other than `OK`, e.g. `PONG`.
    Simple(String),
    /// An error reply inside an aggregate (a top-level error reply becomes
    /// [`Error::Server`]).
    Error(ServerError),
    /// `*n`
    Array(Vec<Value>),
    /// RESP3 `,`
    Double(f64),
    /// RESP3 `#t` / `#f`
    Boolean(bool),
    /// RESP3 `(`, kept as its decimal text.
    BigNumber(String),
    /// RESP3 `=`: text with a three-letter format such as `txt`.
    Verbatim { format: String, text: Bytes },
    /// RESP3 `%`, in the order sent.
    Map(Vec<(Value, Value)>),
    /// RESP3 `~`
    Set(Vec<Value>),
    /// RESP3 `>`: out-of-band data; connections skip these rather than match them to requests.
    Push(Vec<Value>),
}

impl Value {
    /// Whether this is [`Value::Nil`].
    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }

    /// The bytes of a string reply (bulk, simple or verbatim).
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bulk(b) => Some(b),
            Value::Okay => Some(b"OK"),
            Value::Simple(s) => Some(s.as_bytes()),
            Value::Verbatim { text, .. } => Some(text),
            _ => None,
        }
    }

    /// The integer of an integer reply.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// Converts into `T` (see [`FromValue`] for what converts to what).
    pub fn convert<T: FromValue>(self) -> Result<T, Error> {
        T::from_value(self)
    }

    /// A short name of the reply type, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Int(_) => "integer",
            Value::Bulk(_) => "bulk string",
            Value::Okay | Value::Simple(_) => "simple string",
            Value::Error(_) => "error",
            Value::Array(_) => "array",
            Value::Double(_) => "double",
            Value::Boolean(_) => "boolean",
            Value::BigNumber(_) => "big number",
            Value::Verbatim { .. } => "verbatim string",
            Value::Map(_) => "map",
            Value::Set(_) => "set",
            Value::Push(_) => "push",
        }
    }
}

/// An error reply, e.g. `-WRONGTYPE Operation against a key holding the wrong kind of value`.
///
/// `code` is the first word (`ERR`, `WRONGTYPE`, `MOVED`, ...) and `message` the rest, so
/// `to_string()` gives back Redis's exact text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerError {
    code: String,
    message: String,
}

impl ServerError {
    /// An error with `code` and `message`.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> ServerError {
        ServerError {
            code: code.into(),
            message: message.into(),
        }
    }

    /// Splits an error line (without `-` and CRLF) into code and message.
    pub(crate) fn parse(line: &[u8]) -> ServerError {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end();
        match text.split_once(' ') {
            Some((code, message)) => ServerError::new(code, message),
            None => ServerError::new(text, ""),
        }
    }

    /// The first word: `ERR`, `WRONGTYPE`, `MOVED`, `CROSSSLOT`, ...
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The text after the code.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// What the error means for routing and retries.
    pub fn kind(&self) -> ServerErrorKind {
        ServerErrorKind::of(self.code.as_bytes(), self.message.as_bytes())
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            f.write_str(&self.code)
        } else {
            write!(f, "{} {}", self.code, self.message)
        }
    }
}

/// What a [`ServerError`] means to the router (the classification the DataNode's forwarding
/// shares, [`chkv_common::resp::ErrorKind`]). The retry loop is one `match` on this.
pub use chkv_common::resp::ErrorKind as ServerErrorKind;

/// Converts a reply into a Rust type; the typed API is built on these.
///
/// | type | accepts |
/// |---|---|
/// | [`Value`] | anything |
/// | `()` | any non-error reply |
/// | `Option<Bytes>`, `Option<Vec<u8>>`, `Option<String>` | nil, or a string reply |
/// | `Bytes`, `Vec<u8>`, `String` | a string reply |
/// | `i64`, `u64` | an integer (or a string holding one) |
/// | `f64` | a double, or a string holding one (RESP2) |
/// | `bool` | an integer (non-zero), a boolean, `OK` (true) or nil (false) |
/// | `Vec<T>`, `Option<T>` | an array / nil-or-T |
pub trait FromValue: Sized {
    fn from_value(v: Value) -> Result<Self, Error>;
}

fn unexpected<T>(want: &str, got: &Value) -> Result<T, Error> {
    Err(Error::Type(format!("expected {want}, got {}", got.kind())))
}

impl FromValue for Value {
    fn from_value(v: Value) -> Result<Value, Error> {
        Ok(v)
    }
}

impl FromValue for () {
    fn from_value(v: Value) -> Result<(), Error> {
        match v {
            Value::Error(e) => Err(Error::Server(e)),
            _ => Ok(()),
        }
    }
}

impl FromValue for Bytes {
    fn from_value(v: Value) -> Result<Bytes, Error> {
        match v {
            Value::Bulk(b) => Ok(b),
            Value::Okay => Ok(Bytes::from_static(b"OK")),
            Value::Simple(s) => Ok(Bytes::from(s)),
            Value::Verbatim { text, .. } => Ok(text),
            Value::Error(e) => Err(Error::Server(e)),
            other => unexpected("a string", &other),
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(v: Value) -> Result<Vec<u8>, Error> {
        Bytes::from_value(v).map(Vec::from)
    }
}

impl FromValue for String {
    fn from_value(v: Value) -> Result<String, Error> {
        match v {
            Value::Simple(s) => Ok(s),
            Value::Okay => Ok("OK".to_string()),
            other => {
                let b = Bytes::from_value(other)?;
                String::from_utf8(b.to_vec()).map_err(|_| Error::Type("expected UTF-8 text".into()))
            }
        }
    }
}

impl FromValue for i64 {
    fn from_value(v: Value) -> Result<i64, Error> {
        match v {
            Value::Int(n) => Ok(n),
            Value::Bulk(ref b) => std::str::from_utf8(b)
                .ok()
                .and_then(|s| s.parse().ok())
                .map_or_else(|| unexpected("an integer", &v), Ok),
            Value::Error(e) => Err(Error::Server(e)),
            other => unexpected("an integer", &other),
        }
    }
}

impl FromValue for u64 {
    fn from_value(v: Value) -> Result<u64, Error> {
        let n = i64::from_value(v)?;
        u64::try_from(n).map_err(|_| Error::Type(format!("expected a count, got {n}")))
    }
}

impl FromValue for f64 {
    fn from_value(v: Value) -> Result<f64, Error> {
        match v {
            Value::Double(d) => Ok(d),
            Value::Int(n) => Ok(n as f64),
            Value::Bulk(ref b) => std::str::from_utf8(b)
                .ok()
                .and_then(|s| s.parse().ok())
                .map_or_else(|| unexpected("a number", &v), Ok),
            Value::Error(e) => Err(Error::Server(e)),
            other => unexpected("a number", &other),
        }
    }
}

impl FromValue for bool {
    fn from_value(v: Value) -> Result<bool, Error> {
        match v {
            Value::Int(n) => Ok(n != 0),
            Value::Boolean(b) => Ok(b),
            Value::Okay | Value::Simple(_) => Ok(true),
            Value::Nil => Ok(false),
            Value::Error(e) => Err(Error::Server(e)),
            other => unexpected("an integer or boolean", &other),
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: Value) -> Result<Option<T>, Error> {
        match v {
            Value::Nil => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

impl<T: FromValue> FromValue for Vec<T> {
    fn from_value(v: Value) -> Result<Vec<T>, Error> {
        match v {
            Value::Array(items) | Value::Set(items) => {
                items.into_iter().map(T::from_value).collect()
            }
            Value::Error(e) => Err(Error::Server(e)),
            other => unexpected("an array", &other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_and_kinds() {
        let e = ServerError::parse(b"MOVED 3999 127.0.0.1:6381");
        assert_eq!(e.code(), "MOVED");
        assert_eq!(
            e.kind(),
            ServerErrorKind::Moved {
                slot: 3999,
                addr: "127.0.0.1:6381".parse().expect("addr")
            }
        );
        assert_eq!(e.to_string(), "MOVED 3999 127.0.0.1:6381");
        assert_eq!(
            ServerError::parse(b"MOVED nonsense").kind(),
            ServerErrorKind::Other
        );
        assert_eq!(
            ServerError::parse(b"TRYAGAIN x").kind(),
            ServerErrorKind::TryAgain
        );
        assert_eq!(
            ServerError::parse(b"CLUSTERDOWN Hash slot not served").kind(),
            ServerErrorKind::ClusterDown
        );
        let plain = ServerError::parse(b"ERR");
        assert_eq!((plain.code(), plain.message()), ("ERR", ""));
        assert_eq!(plain.to_string(), "ERR");
    }

    #[test]
    fn conversions() {
        let bulk = || Value::Bulk(Bytes::from_static(b"12"));
        assert_eq!(
            bulk().convert::<Option<Bytes>>().expect("ok"),
            Some(Bytes::from_static(b"12"))
        );
        assert_eq!(Value::Nil.convert::<Option<Bytes>>().expect("ok"), None);
        assert_eq!(bulk().convert::<i64>().expect("ok"), 12);
        assert_eq!(bulk().convert::<f64>().expect("ok"), 12.0);
        assert!(Value::Okay.convert::<bool>().expect("ok"));
        assert_eq!(Value::Okay.convert::<String>().expect("ok"), "OK");
        assert!(!Value::Nil.convert::<bool>().expect("ok"));
        assert!(!Value::Int(0).convert::<bool>().expect("ok"));
        assert!(matches!(
            Value::Int(1).convert::<Bytes>(),
            Err(Error::Type(_))
        ));
        assert!(matches!(
            Value::Int(-1).convert::<u64>(),
            Err(Error::Type(_))
        ));
        let arr = Value::Array(vec![bulk(), Value::Nil]);
        assert_eq!(
            arr.convert::<Vec<Option<String>>>().expect("ok"),
            vec![Some("12".to_string()), None]
        );
        let with_err = Value::Array(vec![Value::Error(ServerError::new("ERR", "x"))]);
        assert!(matches!(
            with_err.convert::<Vec<i64>>(),
            Err(Error::Server(_))
        ));
    }
}
