//! What can be read of an audit entry from its first bytes: for a line that is not read
//! whole (over the framing cap, or refused by every parser), the header fields an
//! `unreadable_entry` alert carries, and whether the line looks like an entry at all.
//!
//! A lenient, iterative walk (no recursion, no depth limit) that stops at the end of the
//! bytes it is given or at the first thing that is not JSON, keeping what it read before.
//! It keeps only plain or HMAC'd header fields the alert record already carries (`type`,
//! `time`, `request.id`, `request.operation`, `request.path`, `request.remote_address`,
//! `auth.display_name`); nothing from `request.data`, `response` or headers is kept. Key
//! order differs across Vault versions (`time` first, declaration order, or alphabetical
//! with `type` last), so a field after a huge `request.data` may be out of reach.

/// Bytes of a line kept to read its head from (the framers keep this many of a line over
/// the cap). Vault writes `time`, `type`, `auth` and the request's id, operation and path
/// before `request.data` in every key order but the alphabetical one.
pub const HEAD_BYTES: usize = 64 * 1024;

/// The longest string value kept; a longer one reads as absent.
const MAX_FIELD: usize = 4096;

/// Top-level keys of an audit entry, in any Vault version.
const ENTRY_KEYS: &[&[u8]] = &[
    b"time",
    b"type",
    b"auth",
    b"request",
    b"response",
    b"error",
    b"forwarded",
    b"forwarded_from",
];

/// The header fields read from the start of a line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Head {
    pub kind: Option<String>,
    pub time: Option<String>,
    pub request_id: Option<String>,
    pub operation: Option<String>,
    pub path: Option<String>,
    pub remote_address: Option<String>,
    pub display_name: Option<String>,
    /// The line is a JSON object whose first key is an audit entry's.
    pub entry_key_first: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Top {
    Request,
    Auth,
    Other,
}

impl Head {
    /// Read what the bytes hold (a framed line, or its first bytes).
    pub fn read(bytes: &[u8]) -> Head {
        let mut h = Head::default();
        let Some(start) = object_start(bytes) else {
            return h;
        };
        let b = &bytes[start..];
        // Containers open: true for an object.
        let mut open: Vec<bool> = Vec::new();
        let mut expect_key = false;
        let mut key1: &[u8] = b"";
        let mut key2: &[u8] = b"";
        let mut top = Top::Other;
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            match c {
                b' ' | b'\t' | b'\r' | b'\n' | b':' => i += 1,
                b'{' | b'[' => {
                    if open.len() == 1 {
                        top = match key1 {
                            b"request" => Top::Request,
                            b"auth" => Top::Auth,
                            _ => Top::Other,
                        };
                    }
                    open.push(c == b'{');
                    expect_key = c == b'{';
                    i += 1;
                }
                b'}' | b']' => {
                    if open.pop() != Some(c == b'}') {
                        break;
                    }
                    if open.is_empty() {
                        break;
                    }
                    expect_key = false;
                    i += 1;
                }
                b',' => {
                    expect_key = open.last() == Some(&true);
                    i += 1;
                }
                b'"' => {
                    let Some(end) = string_end(b, i + 1) else {
                        break;
                    };
                    let raw = &b[i + 1..end];
                    i = end + 1;
                    if expect_key {
                        expect_key = false;
                        match open.len() {
                            1 => {
                                if key1.is_empty() && !h.entry_key_first {
                                    h.entry_key_first = ENTRY_KEYS.contains(&raw);
                                }
                                key1 = raw;
                            }
                            2 => key2 = raw,
                            _ => {}
                        }
                        continue;
                    }
                    let slot = match (open.len(), top, key1, key2) {
                        (1, _, b"type", _) => &mut h.kind,
                        (1, _, b"time", _) => &mut h.time,
                        (2, Top::Request, _, b"id") => &mut h.request_id,
                        (2, Top::Request, _, b"operation") => &mut h.operation,
                        (2, Top::Request, _, b"path") => &mut h.path,
                        (2, Top::Request, _, b"remote_address") => &mut h.remote_address,
                        (2, Top::Auth, _, b"display_name") => &mut h.display_name,
                        _ => continue,
                    };
                    // The first of a key, in the entry or its `request`/`auth` object.
                    if (open.len() == 1 || open[1]) && slot.is_none() {
                        *slot = unescape(raw);
                    }
                }
                _ => {
                    // A number or literal: up to the next delimiter.
                    if !(c == b'-' || c.is_ascii_alphanumeric() || c == b'.' || c == b'+') {
                        break;
                    }
                    i += 1;
                    while i < b.len() && (b[i].is_ascii_alphanumeric() || b"-+.".contains(&b[i])) {
                        i += 1;
                    }
                }
            }
        }
        h
    }

    /// For the first bytes of a line too long to read: it starts like an audit entry (its
    /// first key is an entry's) or names its `type`.
    pub fn starts_like_entry(&self) -> bool {
        self.entry_key_first || self.kind.is_some()
    }

    /// For a whole line no parser could read: it names a `type` and a `request.id`, as
    /// every entry Vault writes does (a fragment or a stray object does not).
    pub fn names_entry(&self) -> bool {
        self.entry_key_first && self.kind.is_some() && self.request_id.is_some()
    }
}

/// Where the JSON object starts: after NULs and blanks, and after a prefix (syslog header,
/// device `prefix`) that holds no quote.
fn object_start(b: &[u8]) -> Option<usize> {
    let pos = memchr::memchr(b'{', b)?;
    let before = &b[..pos];
    (!before.contains(&b'"') && !before.contains(&b'}')).then_some(pos)
}

/// The index of the closing quote of the string whose content starts at `i`.
fn string_end(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let n = memchr::memchr2(b'"', b'\\', b.get(i..)?)?;
        i += n;
        if b[i] == b'"' {
            return Some(i);
        }
        i += 2;
    }
}

/// A string's content unescaped, when it is valid UTF-8 and not over [`MAX_FIELD`].
fn unescape(raw: &[u8]) -> Option<String> {
    if raw.len() > MAX_FIELD * 6 {
        return None;
    }
    let s = std::str::from_utf8(raw).ok()?;
    let out: String = if s.contains('\\') {
        serde_json::from_str(&format!("\"{s}\"")).ok()?
    } else {
        s.to_string()
    };
    (out.len() <= MAX_FIELD && !out.chars().any(char::is_control)).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_header_fields_before_a_cut() {
        let line = br#"{"time":"2026-03-02T10:00:00Z","type":"request","auth":{"display_name":"oidc-a","policies":["x"],"metadata":{"display_name":"no"}},"request":{"id":"r-1","operation":"update","path":"sys/policies/acl/x","headers":{"path":["no"]},"data":{"policy":[[[[{"id":"no","#;
        let h = Head::read(line);
        assert_eq!(h.kind.as_deref(), Some("request"));
        assert_eq!(h.time.as_deref(), Some("2026-03-02T10:00:00Z"));
        assert_eq!(h.display_name.as_deref(), Some("oidc-a"));
        assert_eq!(h.request_id.as_deref(), Some("r-1"));
        assert_eq!(h.operation.as_deref(), Some("update"));
        assert_eq!(h.path.as_deref(), Some("sys/policies/acl/x"));
        assert_eq!(h.remote_address, None);
        assert!(h.starts_like_entry() && h.names_entry());
    }

    #[test]
    fn alphabetical_order_starts_like_an_entry_without_its_type() {
        let line = br#"vault: {"auth":{"display_name":"a\u0026b"},"request":{"data":{"k":"#;
        let h = Head::read(line);
        assert!(h.entry_key_first && h.starts_like_entry());
        assert!(!h.names_entry());
        assert_eq!(h.display_name.as_deref(), Some("a&b"));
    }

    #[test]
    fn garbage_and_fragments_do_not_look_like_entries() {
        for line in [
            &b"hello world"[..],
            b"{not json at all}",
            br#"{"pad":"x","type":"request"}"#,
            br#"ime":"x","type":"request","request":{"id":"r"}}"#,
            b"[1,2]",
            b"",
        ] {
            let h = Head::read(line);
            assert!(!h.names_entry(), "{}", String::from_utf8_lossy(line));
        }
        assert!(!Head::read(b"hello {\"x\":1}").starts_like_entry());
        // A nested `type` or `id` is not the entry's.
        let h = Head::read(br#"{"time":"t","request":{"data":{"id":"no","type":"no"}}}"#);
        assert_eq!((h.kind, h.request_id), (None, None));
    }
}
