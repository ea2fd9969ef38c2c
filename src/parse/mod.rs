//! Parse: from one framed line of bytes to an [`Entry`] view, or a counted reason why not.
//!
//! Framing rules (all seen in real files): a trailing `\r` is dropped; blank lines are
//! skipped; a run of NUL bytes before the entry (a sparse hole left by copytruncate) is
//! skipped and counted; a configured `prefix` before the `{` is stripped, and so is an
//! unconfigured one that holds no `"` (a syslog header, say). Everything else that is not a
//! JSON object with a `type` is a [`ParseError`] with a reason, never a panic.
//!
//! A line is read by `skim`, a pass that checks the whole line and keeps only the fields
//! detections read; a line it is not sure of goes to simd-json, which reads it or says why
//! not. A line simd-json refuses is given to the deep pass (`skim_deep`), which skips the
//! values detections never read with no depth limit: nesting alone never hides an entry
//! (Vault writes request bodies up to Go's 10,000 levels; simd-json stops at 1,024). The
//! parser owns the parsers' buffers and reuses them line after line.
//!
//! Lines over the framing cap never reach the parser whole: [`over_cap`] carries their
//! length and first bytes, and [`head`] reads what it can of an entry from those.

pub mod ahead;
pub mod chunk;
pub mod entry;
pub mod head;
pub mod over_cap;
pub(crate) mod skim;
pub mod time;

use std::fmt;

use entry::Skimmed;
pub use entry::{Auth, Entry, EntryKind, Request, Response, StrList, StrMap};
use simd_json::tape::Tape;
use simd_json::Buffers;

/// Why a line was not read. The set is fixed: these are metric label values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ParseError {
    InvalidJson,
    Truncated,
    NotAnObject,
    MissingType,
    InvalidUtf8,
    NulBytes,
    LineTooLong,
    Jsonx,
}

impl ParseError {
    pub const ALL: [ParseError; 8] = [
        ParseError::InvalidJson,
        ParseError::Truncated,
        ParseError::NotAnObject,
        ParseError::MissingType,
        ParseError::InvalidUtf8,
        ParseError::NulBytes,
        ParseError::LineTooLong,
        ParseError::Jsonx,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ParseError::InvalidJson => "invalid_json",
            ParseError::Truncated => "truncated",
            ParseError::NotAnObject => "not_an_object",
            ParseError::MissingType => "missing_type",
            ParseError::InvalidUtf8 => "invalid_utf8",
            ParseError::NulBytes => "nul_bytes",
            ParseError::LineTooLong => "line_too_long",
            ParseError::Jsonx => "jsonx",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What framing did to a line before parsing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Framing {
    /// The line was blank (skipped, not an error).
    pub blank: bool,
    /// NUL bytes skipped before the entry.
    pub nul_prefix: usize,
    /// A prefix before `{` was stripped.
    pub prefixed: bool,
}

/// Reusable line parser.
pub struct Parser {
    prefix: Vec<u8>,
    buffers: Buffers,
    tape: Tape<'static>,
    scratch: Vec<u8>,
    fast: bool,
    skimmed: Skimmed,
}

/// An emptied vector, its allocation kept for values of another lifetime.
pub(crate) fn recycle<T, U>(mut v: Vec<T>) -> Vec<U> {
    v.clear();
    v.into_iter().map(|_| unreachable!("emptied")).collect()
}

impl Default for Parser {
    fn default() -> Self {
        Parser::new("")
    }
}

impl Parser {
    /// `prefix` is the audit device's configured `prefix` option (may be empty).
    pub fn new(prefix: &str) -> Parser {
        Parser {
            prefix: prefix.as_bytes().to_vec(),
            buffers: Buffers::new(16 * 1024),
            tape: Tape(Vec::new()),
            scratch: Vec::new(),
            fast: true,
            skimmed: Skimmed::default(),
        }
    }

    /// The framing prefix this parser strips.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// Read every line with simd-json alone (`false`): for tests and benches that compare
    /// the fast path with it.
    #[doc(hidden)]
    pub fn set_fast_path(&mut self, on: bool) {
        self.fast = on;
    }

    /// Whether the fast path reads this line (rather than leaving it to simd-json).
    #[doc(hidden)]
    pub fn fast_path_reads(&mut self, line: &[u8]) -> bool {
        let mut framing = Framing::default();
        self.skimmed.clear();
        matches!(frame(line, &self.prefix, &mut framing), Ok(Some(body))
            if self.skimmed.read(body).is_some())
    }

    /// Frame and parse one line (without its `\n`), then call `f` with the outcome. The
    /// line is not modified: simd-json, which unescapes in place, reads a copy.
    pub fn parse<R>(
        &mut self,
        line: &[u8],
        f: impl FnOnce(Framing, Result<Entry<'_>, ParseError>) -> R,
    ) -> R {
        let mut framing = Framing::default();
        if line.first() == Some(&0) && over_cap::decode(line).is_some() {
            return f(framing, Err(ParseError::LineTooLong));
        }
        let body = match frame(line, &self.prefix, &mut framing) {
            Ok(Some(body)) => body,
            Ok(None) => {
                framing.blank = true;
                return f(framing, Err(ParseError::InvalidJson));
            }
            Err(e) => return f(framing, Err(e)),
        };
        self.skimmed.clear();
        if let Some((text, rec)) = self.fast.then(|| self.skimmed.read(body)).flatten() {
            return self.skimmed.views(&[text], |v| f(framing, v.entry(rec)));
        }
        self.scratch.clear();
        self.scratch.extend_from_slice(body);
        let mut tape = std::mem::replace(&mut self.tape, Tape(Vec::new())).reset();
        let first = body[0];
        match simd_json::fill_tape(&mut self.scratch, &mut self.buffers, &mut tape) {
            Ok(()) => {
                let result = if first != b'{' {
                    f(framing, Err(ParseError::NotAnObject))
                } else {
                    f(
                        framing,
                        Entry::from_value(tape.as_value()).map_err(|_| ParseError::MissingType),
                    )
                };
                self.tape = tape.reset();
                result
            }
            Err(e) => {
                self.tape = tape.reset();
                // Refused by both: nesting past simd-json's depth limit (which Vault writes
                // for a request body nested deeper, up to Go's 10,000 levels), or JSON that
                // is not valid. The deep pass reads the first and refuses the second.
                if first == b'{' {
                    if let Some((text, rec)) = self.skimmed.read_deep(body) {
                        return self.skimmed.views(&[text], |v| f(framing, v.entry(rec)));
                    }
                }
                let tail = (body.last() != Some(&b'}')).then_some(body);
                f(framing, Err(classify_error(&e, first, tail)))
            }
        }
    }
}

/// Why a line failed to parse. `unclosed_tail` is the framed line when it does not end in
/// `}` (only then is the cut-short test needed).
pub(crate) fn classify_error(
    e: &simd_json::Error,
    first: u8,
    unclosed_tail: Option<&[u8]>,
) -> ParseError {
    use simd_json::ErrorType;
    match e.error() {
        ErrorType::InvalidUtf8 => ParseError::InvalidUtf8,
        _ if first == b'{' && unclosed_tail.is_some_and(unclosed) => ParseError::Truncated,
        _ => ParseError::InvalidJson,
    }
}

/// True when the text ends inside an object, array or string: a line cut short, as
/// opposed to a complete value followed by garbage.
fn unclosed(body: &[u8]) -> bool {
    let (mut depth, mut in_str, mut esc) = (0i64, false, false);
    for &b in body {
        if in_str {
            match (esc, b) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth <= 0 {
                    return false;
                }
            }
            _ => {}
        }
    }
    depth > 0 || in_str
}

/// Strip framing around the JSON body. `Ok(None)`: blank line.
pub(crate) fn frame<'l>(
    line: &'l [u8],
    prefix: &[u8],
    framing: &mut Framing,
) -> Result<Option<&'l [u8]>, ParseError> {
    let mut end = line.len();
    while end > 0 && matches!(line[end - 1], b'\r' | b' ' | b'\t' | b'\n') {
        end -= 1;
    }
    let mut start = 0;
    while start < end && line[start] == 0 {
        start += 1;
    }
    framing.nul_prefix = start;
    while start < end && matches!(line[start], b' ' | b'\t') {
        start += 1;
    }
    if start == end {
        return if framing.nul_prefix > 0 {
            Err(ParseError::NulBytes)
        } else {
            Ok(None)
        };
    }
    let mut body = &line[start..end];
    if !prefix.is_empty() && body.starts_with(prefix) {
        body = &body[prefix.len()..];
        framing.prefixed = true;
    }
    if body.starts_with(b"<json:") {
        return Err(ParseError::Jsonx);
    }
    if body.first() != Some(&b'{') {
        // An unconfigured prefix (syslog header, say): text before the first `{` with no
        // quote in it. A line cut in the middle of an entry has quotes before any `{`.
        if let Some(pos) = body.iter().position(|&b| b == b'{') {
            let head = &body[..pos];
            if !head.contains(&b'"') && !head.contains(&b'}') && !head.contains(&0) {
                body = &body[pos..];
                framing.prefixed = true;
            }
        }
    }
    // SIMD memchr: `<[u8]>::contains` is a byte loop and cost ~6% of a replay.
    if memchr::memchr(0, body).is_some() {
        return Err(ParseError::NulBytes);
    }
    if body.is_empty() {
        return Ok(None);
    }
    Ok(Some(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(line: &str) -> Result<String, ParseError> {
        let mut p = Parser::default();
        let buf = line.as_bytes().to_vec();
        p.parse(&buf, |_, r| r.map(|e| e.kind.as_str().to_string()))
    }

    #[test]
    fn reads_minimal_entries() {
        assert_eq!(outcome(r#"{"type":"request"}"#).unwrap(), "request");
        assert_eq!(
            outcome(r#"{"type":"kmip-request","time":"x"}"#).unwrap(),
            "kmip-request"
        );
        assert_eq!(outcome("{\"type\":\"response\"}\r").unwrap(), "response");
    }

    #[test]
    fn classifies_bad_input() {
        assert_eq!(outcome(r#"{"type":"req"#), Err(ParseError::Truncated));
        assert_eq!(outcome("[1,2]"), Err(ParseError::NotAnObject));
        assert_eq!(outcome("\"x\""), Err(ParseError::NotAnObject));
        assert_eq!(outcome("{}"), Err(ParseError::MissingType));
        assert_eq!(outcome("hello world"), Err(ParseError::InvalidJson));
        assert_eq!(outcome("<json:object name=\"x\"/>"), Err(ParseError::Jsonx));
        assert_eq!(outcome("{\"type\":\"a\0\"}"), Err(ParseError::NulBytes));
        assert_eq!(outcome("\0\0\0"), Err(ParseError::NulBytes));
        let mut p = Parser::default();
        let bad = b"{\"type\":\"\xff\"}".to_vec();
        assert_eq!(
            p.parse(&bad, |_, r| r.map(|_| ())),
            Err(ParseError::InvalidUtf8)
        );
    }

    #[test]
    fn strips_nul_runs_and_prefixes() {
        let mut p = Parser::new("vault-audit: ");
        let line = b"\0\0\0{\"type\":\"request\"}".to_vec();
        let (framing, ok) = p.parse(&line, |f, r| (f, r.is_ok()));
        assert!(ok);
        assert_eq!(framing.nul_prefix, 3);
        let line = b"vault-audit: {\"type\":\"request\"}".to_vec();
        assert!(p.parse(&line, |f, r| f.prefixed && r.is_ok()));
        let line = b"Nov 22 10:00:01 host vault[1]: {\"type\":\"request\"}".to_vec();
        assert!(p.parse(&line, |f, r| f.prefixed && r.is_ok()));
        let cut = br#"ime":"x","auth":{"a":1}}"#.to_vec();
        assert!(p.parse(&cut, |_, r| r.is_err()));
    }

    #[test]
    fn blank_lines_are_not_errors() {
        let mut p = Parser::default();
        let line = b"  \r".to_vec();
        assert!(p.parse(&line, |f, _| f.blank));
    }

    /// An entry with every field detections read, and `extra` (a JSON member) in
    /// `request.data`.
    fn policy_write(extra: &str) -> String {
        format!(
            r#"{{"time":"2026-03-02T10:00:00.5Z","type":"request","auth":{{"accessor":"hmac-sha256:ac","client_token":"hmac-sha256:ct","display_name":"oidc-mallory","entity_id":"e-1","policies":["default","bookstore-platform-admin"],"token_policies":["default"],"metadata":{{"role":"r","n":1}},"token_type":"service"}},"request":{{"id":"r-1","operation":"update","mount_type":"system","path":"sys/policies/acl/x","client_token":"hmac-sha256:ct","namespace":{{"id":"root"}},"headers":{{"user-agent":["curl"]}},"data":{{"policy":"hmac-sha256:p"{extra}}},"remote_address":"192.0.2.66"}},"error":"eé"}}"#
        )
    }

    /// Everything the view holds, to compare two readings of an entry.
    fn describe(e: &Entry<'_>) -> String {
        let a = &e.auth;
        let r = &e.request;
        format!(
            "{} {:?} {:?} | {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} | {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} | {:?} {:?}",
            e.kind.as_str(), e.time, e.error,
            a.present, a.client_token, a.accessor, a.display_name, a.entity_id, a.token_type,
            a.policies.iter().collect::<Vec<_>>(), a.token_policies.iter().collect::<Vec<_>>(),
            a.identity_policies.iter().collect::<Vec<_>>(), a.metadata.entries().collect::<Vec<_>>(),
            r.id, r.operation, r.path, r.mount_type, r.mount_point, r.remote_address,
            r.client_token, r.client_token_accessor, r.namespace, r.user_agent, r.data_token,
            e.response.wrap_token, e.response.wrap_creation_path,
        )
    }

    fn read(p: &mut Parser, line: &str) -> Result<String, ParseError> {
        p.parse(line.as_bytes(), |_, r| r.map(|e| describe(&e)))
    }

    #[test]
    fn nesting_of_any_depth_in_request_data_hides_nothing() {
        let mut p = Parser::default();
        let plain = read(&mut p, &policy_write("")).unwrap();
        assert!(plain.contains("sys/policies/acl/x") && plain.contains("192.0.2.66"));
        for depth in [1_100, 10_000] {
            let (o, c) = ("{\"a\":".repeat(depth), "}".repeat(depth));
            let object = format!(r#","deep":{o}1{c}"#);
            let array = format!(
                r#","deep":{}"hmac-sha256:v"{}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            );
            // An exponent and an escaped surrogate pair: what the fast path leaves to
            // simd-json, inside what simd-json cannot read.
            let mixed = format!(
                r#","deep":{}1e5,"\ud83d\ude00"{}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            );
            for extra in [object, array, mixed] {
                let line = policy_write(&extra);
                for fast in [true, false] {
                    p.set_fast_path(fast);
                    assert_eq!(read(&mut p, &line), Ok(plain.clone()), "depth {depth}");
                }
                // Still refused when it is not JSON: one bracket too many, or cut short.
                let unbalanced = line.replacen("\"deep\":", "\"deep\":[", 1);
                assert_eq!(read(&mut p, &unbalanced), Err(ParseError::InvalidJson));
                let cut = &line[..line.len() / 2];
                assert_eq!(read(&mut p, cut), Err(ParseError::Truncated));
            }
        }
        // A lone surrogate or a raw control character deep down is not JSON either.
        let deep = |inner: &str| {
            policy_write(&format!(
                r#","d":{}{inner}{}"#,
                "[".repeat(1100),
                "]".repeat(1100)
            ))
        };
        assert_eq!(
            read(&mut p, &deep(r#""\ud83d""#)),
            Err(ParseError::InvalidJson)
        );
        assert_eq!(
            read(&mut p, &deep("\"a\u{1}b\"")),
            Err(ParseError::InvalidJson)
        );
        assert_eq!(read(&mut p, &deep("01")), Err(ParseError::InvalidJson));
    }

    #[test]
    fn a_wide_line_is_read_like_the_same_entry_without_its_keys() {
        let mut p = Parser::default();
        let plain = read(&mut p, &policy_write("")).unwrap();
        let keys: String = (0..200_000)
            .map(|i| format!(r#","k{i:07}":"hmac-sha256:0123456789abcdef""#))
            .collect();
        let line = policy_write(&keys);
        assert!(line.len() > 8 << 20, "{}", line.len());
        for fast in [true, false] {
            p.set_fast_path(fast);
            assert_eq!(read(&mut p, &line), Ok(plain.clone()));
        }
    }

    #[test]
    fn a_live_sources_marker_of_a_line_over_the_cap_is_line_too_long() {
        let mut marker = Vec::new();
        over_cap::encode(50 << 20, br#"{"type":"request"}"#, &mut marker);
        marker.pop();
        let mut p = Parser::default();
        assert_eq!(
            p.parse(&marker, |_, r| r.map(|_| ())),
            Err(ParseError::LineTooLong)
        );
    }

    #[test]
    fn wrong_field_types_read_as_absent() {
        let mut p = Parser::default();
        let line = br#"{"type":"response","error":{"x":1},"auth":"nope","request":{"path":7,"id":"r1"},"response":{"secret":[]}}"#.to_vec();
        p.parse(&line, |_, r| {
            let e = r.unwrap();
            assert!(e.error.is_none());
            assert!(!e.auth.present);
            assert_eq!(e.request.path, None);
            assert_eq!(e.request.id, Some("r1"));
        });
    }
}
