//! A tiny ordered JSON value and writer for simulated audit entries.
//!
//! Why not `serde_json`: its map sorts keys (the crate is built without
//! `preserve_order`), and the simulator must choose the key order itself (OpenBao's
//! struct order `time, type, auth, request, response, error`). The writer escapes like
//! Go's `encoding/json` does by default (`<`, `>`, `&`, U+2028 and U+2029 as `\uXXXX`), so
//! the bytes look like what Vault and OpenBao write.
//!
//! Values the audit device HMACs are kept as plaintext ([`J::H`]) until the line is
//! written: the device decides, not the caller. A normal device writes
//! `hmac-sha256:...`; a device with `log_raw` (the `raw_audit_device` injection) writes
//! the plaintext, exactly as Vault does.

use super::rng::Salt;

/// A JSON value whose objects keep insertion order.
#[derive(Clone, Debug, PartialEq)]
pub enum J {
    Null,
    Bool(bool),
    Int(i64),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(&'static str, J)>),
    /// An object with owned keys (Go maps: the caller sorts them, as Go does).
    Map(Vec<(String, J)>),
    /// A string the audit device HMACs (tokens, accessors, values in `data`), held as
    /// plaintext until written.
    H(String),
}

impl J {
    pub fn s(v: impl Into<String>) -> J {
        J::Str(v.into())
    }

    /// Serialise to a new string. `salt`: the device's HMAC key; `None` writes
    /// [`J::H`] values in clear, as a `log_raw` device does.
    pub fn to_line(&self, salt: Option<&Salt>) -> String {
        let mut out = String::with_capacity(2048);
        self.write(&mut out, salt);
        out
    }

    pub fn write(&self, out: &mut String, salt: Option<&Salt>) {
        match self {
            J::Null => out.push_str("null"),
            J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            J::Int(n) => out.push_str(&n.to_string()),
            J::Str(s) => write_str(s, out),
            J::H(s) => match salt {
                Some(salt) => write_str(&salt.hmac(s), out),
                None => write_str(s, out),
            },
            J::Arr(xs) => {
                out.push('[');
                for (i, x) in xs.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    x.write(out, salt);
                }
                out.push(']');
            }
            J::Obj(kv) => write_object(kv.iter().map(|(k, v)| (*k, v)), out, salt),
            J::Map(kv) => write_object(kv.iter().map(|(k, v)| (k.as_str(), v)), out, salt),
        }
    }
}

/// A JSON string with Go's default escaping.
/// An object's members in order; `Obj` and `Map` differ only in who owns the keys.
fn write_object<'a>(
    members: impl Iterator<Item = (&'a str, &'a J)>,
    out: &mut String,
    salt: Option<&Salt>,
) {
    out.push('{');
    for (i, (k, v)) in members.enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(k, out);
        out.push(':');
        v.write(out, salt);
    }
    out.push('}');
}

pub fn write_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_escapes_like_go() {
        let v = J::Obj(vec![
            ("time", J::s("t")),
            (
                "error",
                J::s("1 error occurred:\n\t* permission denied\n\n"),
            ),
            ("a", J::Arr(vec![J::Int(-1), J::Bool(true), J::Null])),
            ("m", J::Map(vec![("<k>".into(), J::s("a&b"))])),
        ]);
        let line = v.to_line(None);
        assert_eq!(
            line,
            r#"{"time":"t","error":"1 error occurred:\n\t* permission denied\n\n","a":[-1,true,null],"m":{"\u003ck\u003e":"a\u0026b"}}"#
        );
        let back: serde_json::Value = serde_json::from_str(&line).expect("valid json");
        assert_eq!(back["m"]["<k>"], "a&b");
    }

    #[test]
    fn hmaced_values_depend_on_the_device() {
        let v = J::Obj(vec![("client_token", J::H("s.abc".into()))]);
        let salt = Salt::new(1);
        assert_eq!(
            v.to_line(Some(&salt)),
            format!(r#"{{"client_token":"{}"}}"#, salt.hmac("s.abc"))
        );
        assert_eq!(v.to_line(None), r#"{"client_token":"s.abc"}"#);
    }
}
