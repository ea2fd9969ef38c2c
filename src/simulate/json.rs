//! A tiny ordered JSON value and writer for simulated audit entries.
//!
//! Why not `serde_json`: its map sorts keys (the crate is built without
//! `preserve_order`), and the simulator must choose the key order itself (OpenBao's
//! struct order `time, type, auth, request, response, error`). The writer escapes like
//! Go's `encoding/json` does by default (`<`, `>`, `&`, U+2028 and U+2029 as `\uXXXX`), so
//! the bytes look like what Vault and OpenBao write.

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
}

impl J {
    pub fn s(v: impl Into<String>) -> J {
        J::Str(v.into())
    }

    /// Serialise to a new string.
    pub fn to_line(&self) -> String {
        let mut out = String::with_capacity(2048);
        self.write(&mut out);
        out
    }

    pub fn write(&self, out: &mut String) {
        match self {
            J::Null => out.push_str("null"),
            J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            J::Int(n) => out.push_str(&n.to_string()),
            J::Str(s) => write_str(s, out),
            J::Arr(xs) => {
                out.push('[');
                for (i, x) in xs.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    x.write(out);
                }
                out.push(']');
            }
            J::Obj(kv) => {
                out.push('{');
                for (i, (k, v)) in kv.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_str(k, out);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
            J::Map(kv) => {
                out.push('{');
                for (i, (k, v)) in kv.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_str(k, out);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }
}

/// A JSON string with Go's default escaping.
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
        let line = v.to_line();
        assert_eq!(
            line,
            r#"{"time":"t","error":"1 error occurred:\n\t* permission denied\n\n","a":[-1,true,null],"m":{"\u003ck\u003e":"a\u0026b"}}"#
        );
        let back: serde_json::Value = serde_json::from_str(&line).expect("valid json");
        assert_eq!(back["m"]["<k>"], "a&b");
    }
}
