//! The fast path from a framed line to the [`Entry`](super::Entry) view: one pass over the
//! bytes that checks the whole text is JSON and keeps only the fields detections read.
//!
//! simd-json builds a tape of every value in the line, `request.data` and the headers
//! included, and the view then walks it: most of the work of a line went to values nobody
//! reads. This pass validates those values without recording them, and records the few it
//! needs as spans of the line (or, for an escaped string, of a side buffer it unescapes
//! into).
//!
//! It is conservative: anything it is not sure to read exactly as simd-json does (a line
//! cut short, invalid UTF-8, a control character or a surrogate escape in a string, an
//! exponent or a long number, an escaped key in an object whose keys are compared, deep
//! nesting, a value that is not an object) makes it return `None`, and the line goes to
//! simd-json, which then reads it or says why not. So every line it accepts is one
//! simd-json accepts, read to the same view; `tests/it/skim.rs` checks that on every real
//! sample and on mutations of them.

use super::time::parse_rfc3339_nanos;

/// A span flagged as pointing into [`Arena::text`] rather than the line.
const TEXT: u32 = 1 << 31;
/// Nesting the fast path reads; deeper lines go to simd-json.
const MAX_DEPTH: u32 = 64;
/// Longest number the fast path reads (no exponent); longer ones go to simd-json.
const MAX_NUMBER: usize = 18;

/// A string: its bytes in the line, or in [`Arena::text`] when flagged [`TEXT`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Span {
    start: u32,
    len: u32,
}

impl Span {
    pub(crate) fn is_empty(self) -> bool {
        self.len == 0
    }

    /// The string, from the line it was read from and the arena's text.
    pub(crate) fn resolve<'a>(self, line: &'a str, text: &'a str) -> &'a str {
        let (src, start) = if self.start & TEXT != 0 {
            (text, self.start & !TEXT)
        } else {
            (line, self.start)
        };
        let start = start as usize;
        src.get(start..start + self.len as usize).unwrap_or("")
    }
}

/// What a metadata value is: only strings are read, nulls count as absent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ValKind {
    Str,
    Null,
    Other,
}

/// One `metadata` entry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Item {
    pub key: Span,
    pub val: Span,
    pub kind: ValKind,
}

/// Indices into [`Arena::spans`] or [`Arena::items`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Range32 {
    pub start: u32,
    pub end: u32,
}

impl Range32 {
    pub(crate) fn get(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// What lines read by the fast path keep outside themselves: string lists, metadata
/// entries and unescaped strings. Cleared per chunk (or per line), reused.
#[derive(Default)]
pub(crate) struct Arena {
    pub spans: Vec<Span>,
    pub items: Vec<Item>,
    pub text: String,
}

impl Arena {
    pub(crate) fn clear(&mut self) {
        self.spans.clear();
        self.items.clear();
        self.text.clear();
    }
}

/// An `auth` block as read by the fast path (see [`super::Auth`]).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct AuthRec {
    pub present: bool,
    pub client_token: Option<Span>,
    pub accessor: Option<Span>,
    pub display_name: Option<Span>,
    pub entity_id: Option<Span>,
    pub token_type: Option<Span>,
    pub policies: Range32,
    pub token_policies: Range32,
    pub identity_policies: Range32,
    pub metadata: Range32,
}

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RequestRec {
    pub id: Option<Span>,
    pub operation: Option<Span>,
    pub path: Option<Span>,
    pub mount_type: Option<Span>,
    pub mount_point: Option<Span>,
    pub remote_address: Option<Span>,
    pub client_token: Option<Span>,
    pub client_token_accessor: Option<Span>,
    pub namespace: Option<Span>,
    pub user_agent: Option<Span>,
    pub data_token: Option<Span>,
}

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ResponseRec {
    pub present: bool,
    pub auth: AuthRec,
    pub lease_id: Option<Span>,
    pub mount_type: Option<Span>,
    pub wrap_token: Option<Span>,
    pub wrap_creation_path: Option<Span>,
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum KindRec {
    Request,
    Response,
    Other(Span),
}

/// One line as read by the fast path: spans where the view has strings.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Rec {
    pub kind: Option<KindRec>,
    pub time: Option<i64>,
    pub error: Option<Span>,
    pub auth: AuthRec,
    pub request: RequestRec,
    pub response: ResponseRec,
}

/// Read a framed line. `None`: leave it to simd-json. On `Some`, the returned `&str` is
/// the line (checked UTF-8) that the record's spans point into.
pub(crate) fn skim<'l>(line: &'l [u8], arena: &mut Arena) -> Option<(&'l str, Rec)> {
    skim_with::<false>(line, arena)
}

/// The fallback for a line the fast path and simd-json both refused: the same pass, but
/// every value detections do not read (`request.data`, `response.data`, headers, ...) is
/// checked by an iterative skip with no depth limit, numbers of any form and escaped
/// surrogate pairs included. The fields read still come from a few levels of known
/// structure, so nothing here recurses with the input's nesting. `None`: the line is not
/// valid JSON (or not an object).
pub(crate) fn skim_deep<'l>(line: &'l [u8], arena: &mut Arena) -> Option<(&'l str, Rec)> {
    skim_with::<true>(line, arena)
}

fn skim_with<'l, const DEEP: bool>(line: &'l [u8], arena: &mut Arena) -> Option<(&'l str, Rec)> {
    // Spans are 31-bit offsets into the line and the arena's text.
    if line.first() != Some(&b'{') || line.len() + arena.text.len() >= TEXT as usize {
        return None;
    }
    let text = simdutf8::basic::from_utf8(line).ok()?;
    let mark = (arena.spans.len(), arena.items.len(), arena.text.len());
    let mut s = Scan::<DEEP> {
        b: line,
        line: text,
        i: 0,
        depth: 0,
        arena,
    };
    let rec = s.top();
    if rec.is_some() && s.i == line.len() {
        return rec.map(|r| (text, r));
    }
    arena.spans.truncate(mark.0);
    arena.items.truncate(mark.1);
    arena.text.truncate(mark.2);
    None
}

/// A string as it sits in the line: its content between the quotes.
#[derive(Clone, Copy)]
struct Raw {
    start: usize,
    end: usize,
    escaped: bool,
}

/// `None` throughout: the fast path gives up on the line.
type Got<T> = Option<T>;

struct Scan<'b, 'r, const DEEP: bool> {
    b: &'b [u8],
    /// The same line, as the checked text spans resolve against.
    line: &'b str,
    i: usize,
    depth: u32,
    arena: &'r mut Arena,
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// High bit set in each byte of `w` below `n` (exact for the lowest such byte).
#[inline]
fn below(w: u64, n: u8) -> u64 {
    w.wrapping_sub(ONES * n as u64) & !w & HIGHS
}

/// High bit set in each byte of `w` equal to `c` (exact for the lowest such byte).
#[inline]
fn equal(w: u64, c: u8) -> u64 {
    below(w ^ (ONES * c as u64), 1)
}

fn nonempty(s: Option<Span>) -> Option<Span> {
    s.filter(|s| !s.is_empty())
}

impl<'b, const DEEP: bool> Scan<'b, '_, DEEP> {
    #[inline]
    fn peek(&self) -> Got<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    /// The string at `"`: scanned eight bytes at a time for `"`, `\` and control bytes.
    #[inline(always)]
    fn string(&mut self) -> Got<Raw> {
        let b = self.b;
        let start = self.i + 1;
        let mut i = start;
        let mut escaped = false;
        loop {
            while let Some(word) = b.get(i..i + 8) {
                let w = u64::from_le_bytes(word.try_into().ok()?);
                let hit = equal(w, b'"') | equal(w, b'\\') | below(w, 0x20);
                if hit != 0 {
                    i += hit.trailing_zeros() as usize / 8;
                    break;
                }
                i += 8;
            }
            match *b.get(i)? {
                b'"' => {
                    self.i = i + 1;
                    return Some(Raw {
                        start,
                        end: i,
                        escaped,
                    });
                }
                b'\\' => {
                    escaped = true;
                    match *b.get(i + 1)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                        b'u' => {
                            let c = hex4(b.get(i + 2..i + 6)?)?;
                            if (0xD800..=0xDFFF).contains(&c) {
                                if !DEEP {
                                    return None;
                                }
                                i += surrogate_pair(b, i, c)?;
                                continue;
                            }
                            i += 6;
                        }
                        _ => return None,
                    }
                }
                c if c < 0x20 => return None,
                _ => i += 1,
            }
        }
    }

    /// A string's text: a span of the line, or of the arena once unescaped.
    #[inline(always)]
    fn text(&mut self, raw: Raw) -> Span {
        if !raw.escaped {
            return Span {
                start: raw.start as u32,
                len: (raw.end - raw.start) as u32,
            };
        }
        self.unescape(raw)
    }

    /// An escaped string, unescaped into the arena (rare: kept out of the callers).
    #[cold]
    #[inline(never)]
    fn unescape(&mut self, raw: Raw) -> Span {
        let out = &mut self.arena.text;
        let at = out.len();
        let b = &self.b[raw.start..raw.end];
        let mut i = 0;
        while i < b.len() {
            let run = memchr::memchr(b'\\', &b[i..]).map_or(b.len(), |n| i + n);
            // Runs between escapes are whole UTF-8 sequences of the checked line.
            out.push_str(std::str::from_utf8(&b[i..run]).unwrap_or(""));
            if run == b.len() {
                break;
            }
            let c = match b[run + 1] {
                b'b' => '\u{8}',
                b'f' => '\u{c}',
                b'n' => '\n',
                b'r' => '\r',
                b't' => '\t',
                b'u' => {
                    let mut code = hex4(&b[run + 2..run + 6]).unwrap_or(0xFFFD);
                    i = run + 6;
                    // A pair (only the deep fallback lets one through `string`).
                    if (0xD800..0xDC00).contains(&code) && b.get(i..i + 2) == Some(&b"\\u"[..]) {
                        if let Some(lo) = b.get(i + 2..i + 6).and_then(hex4) {
                            code = 0x10000 + ((code - 0xD800) << 10) + (lo.wrapping_sub(0xDC00));
                            i += 6;
                        }
                    }
                    out.push(char::from_u32(code).unwrap_or('\u{FFFD}'));
                    continue;
                }
                other => other as char,
            };
            out.push(c);
            i = run + 2;
        }
        Span {
            start: TEXT | at as u32,
            len: (out.len() - at) as u32,
        }
    }

    /// A key that is compared: an escaped one is left to simd-json.
    fn key(&self, raw: Raw) -> Got<&'b [u8]> {
        (!raw.escaped).then(|| &self.b[raw.start..raw.end])
    }

    /// `{ "k": v, ... }` at `{`, calling `field` with each key, positioned at its value.
    fn object(&mut self, mut field: impl FnMut(&mut Self, Raw) -> Got<()>) -> Got<()> {
        self.sequence(b'}', |s, _| {
            if s.peek()? != b'"' {
                return None;
            }
            let k = s.string()?;
            s.ws();
            if s.peek()? != b':' {
                return None;
            }
            s.i += 1;
            s.ws();
            field(s, k)
        })
    }

    /// `[ v, ... ]` at `[`, calling `elem` with each index, positioned at the value.
    fn array(&mut self, elem: impl FnMut(&mut Self, usize) -> Got<()>) -> Got<()> {
        self.sequence(b']', elem)
    }

    /// Comma-separated items from the opening byte to `close`, each read by `item`.
    #[inline(always)]
    fn sequence(
        &mut self,
        close: u8,
        mut item: impl FnMut(&mut Self, usize) -> Got<()>,
    ) -> Got<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return None;
        }
        self.i += 1;
        self.ws();
        if self.peek()? == close {
            self.i += 1;
        } else {
            let mut n = 0;
            loop {
                item(self, n)?;
                n += 1;
                self.ws();
                match self.peek()? {
                    b',' => {
                        self.i += 1;
                        self.ws();
                    }
                    c if c == close => {
                        self.i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        self.depth -= 1;
        Some(())
    }

    /// Check one value and move past it.
    fn skip(&mut self) -> Got<()> {
        if DEEP {
            return self.skip_any();
        }
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' => self.object(|s, _| s.skip()),
            b'[' => self.array(|s, _| s.skip()),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8]) -> Got<()> {
        if self.b.get(self.i..self.i + word.len())? != word {
            return None;
        }
        self.i += word.len();
        Some(())
    }

    /// Check one value of any depth and move past it, with a stack of open containers
    /// instead of recursion (the deep fallback: 10,000 levels are as cheap as one).
    #[cold]
    #[inline(never)]
    fn skip_any(&mut self) -> Got<()> {
        // One bit per open container: set for an object. The nesting is bounded only by
        // the line, so the stack grows on the heap, a bit per level.
        let mut open: Vec<u64> = Vec::new();
        let mut depth = 0usize;
        let is_obj = |open: &Vec<u64>, d: usize| open[(d - 1) / 64] >> ((d - 1) % 64) & 1 == 1;
        loop {
            self.ws();
            // A value.
            match self.peek()? {
                c @ (b'{' | b'[') => {
                    self.i += 1;
                    if depth.is_multiple_of(64) {
                        open.push(0);
                    }
                    if c == b'{' {
                        open[depth / 64] |= 1 << (depth % 64);
                    } else {
                        open[depth / 64] &= !(1 << (depth % 64));
                    }
                    depth += 1;
                    self.ws();
                    let close = if c == b'{' { b'}' } else { b']' };
                    if self.peek()? == close {
                        self.i += 1;
                        depth -= 1;
                    } else {
                        if c == b'{' {
                            self.member_key()?;
                        }
                        continue;
                    }
                }
                b'"' => {
                    self.string()?;
                }
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                b'-' | b'0'..=b'9' => self.any_number()?,
                _ => return None,
            }
            // After a value: close containers or move to the next item.
            loop {
                if depth == 0 {
                    return Some(());
                }
                self.ws();
                let obj = is_obj(&open, depth);
                match self.peek()? {
                    b',' => {
                        self.i += 1;
                        self.ws();
                        if obj {
                            self.member_key()?;
                        }
                        break;
                    }
                    b'}' if obj => {
                        self.i += 1;
                        depth -= 1;
                    }
                    b']' if !obj => {
                        self.i += 1;
                        depth -= 1;
                    }
                    _ => return None,
                }
            }
        }
    }

    /// `"key" :` inside an object being skipped.
    fn member_key(&mut self) -> Got<()> {
        if self.peek()? != b'"' {
            return None;
        }
        self.string()?;
        self.ws();
        if self.peek()? != b':' {
            return None;
        }
        self.i += 1;
        Some(())
    }

    /// Any JSON number (exponent and length unbounded), for the deep fallback.
    fn any_number(&mut self) -> Got<()> {
        let b = self.b;
        let mut i = self.i + usize::from(b[self.i] == b'-');
        let digits = |mut i: usize| {
            let from = i;
            while let Some(b'0'..=b'9') = b.get(i) {
                i += 1;
            }
            (i > from).then_some(i)
        };
        match b.get(i)? {
            b'0' => i += 1,
            b'1'..=b'9' => i = digits(i)?,
            _ => return None,
        }
        if b.get(i) == Some(&b'.') {
            i = digits(i + 1)?;
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            i = digits(i)?;
        }
        self.i = i;
        Some(())
    }

    /// A JSON number without exponent, at most [`MAX_NUMBER`] bytes.
    fn number(&mut self) -> Got<()> {
        let b = self.b;
        let start = self.i;
        let mut i = start + usize::from(b[start] == b'-');
        let digits = |mut i: usize| {
            while let Some(b'0'..=b'9') = b.get(i) {
                i += 1;
            }
            i
        };
        match b.get(i)? {
            b'0' => i += 1,
            b'1'..=b'9' => i = digits(i + 1),
            _ => return None,
        }
        if b.get(i) == Some(&b'.') {
            let after = digits(i + 1);
            if after == i + 1 {
                return None;
            }
            i = after;
        }
        if matches!(b.get(i), Some(b'e' | b'E')) || i - start > MAX_NUMBER {
            return None;
        }
        self.i = i;
        Some(())
    }

    /// A value read as a string: `Some(None)` when it is some other (valid) value.
    #[inline(always)]
    fn str_val(&mut self) -> Got<Option<Span>> {
        if self.peek()? == b'"' {
            let raw = self.string()?;
            Some(Some(self.text(raw)))
        } else {
            self.skip().map(|_| None)
        }
    }

    /// A list of strings: the string elements, others skipped; empty when not an array.
    fn str_list(&mut self) -> Got<Range32> {
        let start = self.arena.spans.len() as u32;
        if self.peek()? != b'[' {
            self.skip()?;
            return Some(Range32 { start, end: start });
        }
        self.array(|s, _| {
            if let Some(span) = s.str_val()? {
                s.arena.spans.push(span);
            }
            Some(())
        })?;
        Some(Range32 {
            start,
            end: self.arena.spans.len() as u32,
        })
    }

    /// A string-keyed map (`metadata`): every entry, its value's kind and string.
    fn map(&mut self) -> Got<Range32> {
        let start = self.arena.items.len() as u32;
        if self.peek()? == b'{' {
            self.object(|s, k| {
                let key = s.text(k);
                let (val, kind) = match s.peek()? {
                    b'"' => (s.str_val()?.unwrap_or_default(), ValKind::Str),
                    b'n' => (s.literal(b"null").map(|_| Span::default())?, ValKind::Null),
                    _ => (s.skip().map(|_| Span::default())?, ValKind::Other),
                };
                s.arena.items.push(Item { key, val, kind });
                Some(())
            })?;
        } else {
            self.skip()?;
        }
        Some(Range32 {
            start,
            end: self.arena.items.len() as u32,
        })
    }

    fn top(&mut self) -> Got<Rec> {
        let mut rec = Rec::default();
        self.object(|s, k| {
            match s.key(k)? {
                b"type" => {
                    rec.kind = s
                        .str_val()?
                        .map(|t| match t.resolve(s.line, &s.arena.text) {
                            "request" => KindRec::Request,
                            "response" => KindRec::Response,
                            _ => KindRec::Other(t),
                        })
                }
                b"time" => {
                    rec.time = s
                        .str_val()?
                        .and_then(|t| parse_rfc3339_nanos(t.resolve(s.line, &s.arena.text)))
                }
                b"error" => rec.error = nonempty(s.str_val()?),
                b"auth" => rec.auth = s.auth()?,
                b"request" => rec.request = s.request()?,
                b"response" => rec.response = s.response()?,
                _ => s.skip()?,
            }
            Some(())
        })?;
        self.ws();
        Some(rec)
    }

    fn auth(&mut self) -> Got<AuthRec> {
        let mut a = AuthRec::default();
        if self.peek()? != b'{' {
            self.skip()?;
            return Some(a);
        }
        a.present = true;
        self.object(|s, k| {
            match s.key(k)? {
                b"client_token" => a.client_token = nonempty(s.str_val()?),
                b"accessor" => a.accessor = nonempty(s.str_val()?),
                b"display_name" => a.display_name = nonempty(s.str_val()?),
                b"entity_id" => a.entity_id = nonempty(s.str_val()?),
                b"token_type" => a.token_type = nonempty(s.str_val()?),
                b"policies" => a.policies = s.str_list()?,
                b"token_policies" => a.token_policies = s.str_list()?,
                b"identity_policies" => a.identity_policies = s.str_list()?,
                b"metadata" => a.metadata = s.map()?,
                _ => s.skip()?,
            }
            Some(())
        })?;
        Some(a)
    }

    fn request(&mut self) -> Got<RequestRec> {
        let mut r = RequestRec::default();
        if self.peek()? != b'{' {
            self.skip()?;
            return Some(r);
        }
        self.object(|s, k| {
            match s.key(k)? {
                b"id" => r.id = nonempty(s.str_val()?),
                b"operation" => r.operation = nonempty(s.str_val()?),
                b"path" => r.path = s.str_val()?,
                b"mount_type" => r.mount_type = nonempty(s.str_val()?),
                b"mount_point" => r.mount_point = nonempty(s.str_val()?),
                b"remote_address" => r.remote_address = nonempty(s.str_val()?),
                b"client_token" => r.client_token = nonempty(s.str_val()?),
                b"client_token_accessor" => r.client_token_accessor = nonempty(s.str_val()?),
                b"namespace" => r.namespace = s.namespace()?,
                b"headers" => r.user_agent = s.user_agent()?,
                b"data" => r.data_token = s.first_str(b"token")?,
                _ => s.skip()?,
            }
            Some(())
        })?;
        Some(r)
    }

    /// `namespace.path`, else `namespace.id` (the first of each key, when a non-empty
    /// string).
    fn namespace(&mut self) -> Got<Option<Span>> {
        if self.peek()? != b'{' {
            return self.skip().map(|_| None);
        }
        let (mut path, mut id) = (None, None);
        self.object(|s, k| {
            match s.key(k)? {
                b"path" => {
                    let v = s.str_val()?;
                    path.get_or_insert(nonempty(v));
                }
                b"id" => {
                    let v = s.str_val()?;
                    id.get_or_insert(nonempty(v));
                }
                _ => s.skip()?,
            }
            Some(())
        })?;
        Some(path.flatten().or(id.flatten()))
    }

    /// The first element of the first header named `user-agent` in any case.
    fn user_agent(&mut self) -> Got<Option<Span>> {
        if self.peek()? != b'{' {
            return self.skip().map(|_| None);
        }
        let mut ua = None;
        self.object(|s, k| {
            if ua.is_none() && s.key(k)?.eq_ignore_ascii_case(b"user-agent") {
                let mut first = None;
                if s.peek()? == b'[' {
                    s.array(|s, n| {
                        let v = s.str_val()?;
                        if n == 0 {
                            first = nonempty(v);
                        }
                        Some(())
                    })?;
                } else {
                    s.skip()?;
                }
                ua = Some(first);
                Some(())
            } else {
                // Other headers' names are never compared after the first match, but an
                // escaped one before it could be `user-agent` spelt with escapes.
                if ua.is_none() {
                    s.key(k)?;
                }
                s.skip()
            }
        })?;
        Some(ua.flatten())
    }

    fn response(&mut self) -> Got<ResponseRec> {
        let mut r = ResponseRec::default();
        if self.peek()? != b'{' {
            self.skip()?;
            return Some(r);
        }
        r.present = true;
        self.object(|s, k| {
            match s.key(k)? {
                b"auth" => r.auth = s.auth()?,
                b"secret" => r.lease_id = s.first_str(b"lease_id")?,
                b"wrap_info" => (r.wrap_token, r.wrap_creation_path) = s.wrap_info()?,
                b"mount_type" => r.mount_type = nonempty(s.str_val()?),
                _ => s.skip()?,
            }
            Some(())
        })?;
        Some(r)
    }

    /// An object's first `name` (`secret.lease_id`, `data.token`), when a non-empty
    /// string.
    fn first_str(&mut self, name: &[u8]) -> Got<Option<Span>> {
        if self.peek()? != b'{' {
            return self.skip().map(|_| None);
        }
        let mut found = None;
        self.object(|s, k| {
            if s.key(k)? == name && found.is_none() {
                let v = s.str_val()?;
                found = Some(nonempty(v));
                Some(())
            } else {
                s.skip()
            }
        })?;
        Some(found.flatten())
    }

    /// `wrap_info.token` and `wrap_info.creation_path` (the first of each, when non-empty
    /// strings).
    fn wrap_info(&mut self) -> Got<(Option<Span>, Option<Span>)> {
        if self.peek()? != b'{' {
            return self.skip().map(|_| (None, None));
        }
        let (mut token, mut path) = (None, None);
        self.object(|s, k| {
            match s.key(k)? {
                b"token" if token.is_none() => token = Some(nonempty(s.str_val()?)),
                b"creation_path" if path.is_none() => path = Some(nonempty(s.str_val()?)),
                _ => s.skip()?,
            }
            Some(())
        })?;
        Some((token.flatten(), path.flatten()))
    }
}

/// At `\u` with the high or low surrogate `c` decoded: the length of a valid pair (a
/// high surrogate followed by an escaped low one), `None` for a lone surrogate.
fn surrogate_pair(b: &[u8], i: usize, c: u32) -> Option<usize> {
    if !(0xD800..0xDC00).contains(&c) || b.get(i + 6..i + 8)? != &b"\\u"[..] {
        return None;
    }
    let lo = hex4(b.get(i + 8..i + 12)?)?;
    (0xDC00..0xE000).contains(&lo).then_some(12)
}

fn hex4(b: &[u8]) -> Option<u32> {
    let mut v = 0u32;
    for &c in b.get(..4)? {
        v = v * 16 + (c as char).to_digit(16)?;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_masks_find_the_first_special_byte() {
        for pos in 0..8 {
            for special in [b'"', b'\\', 0x00, 0x1f] {
                let mut w = *b"abcdefgh";
                w[pos] = special;
                // A special byte later in the word never hides the first.
                if pos < 7 {
                    w[7] = b'"';
                }
                let v = u64::from_le_bytes(w);
                let hit = equal(v, b'"') | equal(v, b'\\') | below(v, 0x20);
                assert_eq!(hit.trailing_zeros() as usize / 8, pos, "{w:?}");
            }
        }
        let v = u64::from_le_bytes(*b"\xc3\xa9\x7f !#[]");
        assert_eq!(equal(v, b'"') | equal(v, b'\\') | below(v, 0x20), 0);
    }

    #[test]
    fn unescapes_read_strings() {
        let mut arena = Arena::default();
        let line = br#"{"type":"request","error":"a\n\"b\" \u00e9\u0026 \/"}"#;
        let (text, rec) = skim(line, &mut arena).unwrap();
        let e = rec.error.unwrap().resolve(text, &arena.text);
        assert_eq!(e, "a\n\"b\" \u{e9}& /");
    }

    #[test]
    fn leaves_doubtful_lines_to_simd_json() {
        let mut arena = Arena::default();
        for line in [
            &br#"{"type":"request","n":1e5}"#[..],
            br#"{"type":"request","n":1234567890123456789}"#,
            br#"{"type":"request","s":"\ud83d\ude00"}"#,
            b"{\"type\":\"request\",\"s\":\"a\tb\"}",
            br#"{"typ\u0065":"request"}"#,
            br#"{"type":"request"} x"#,
            br#"{"type":"request""#,
            br#"[1]"#,
            br#"{"type":"request","n":01}"#,
            br#"{"type":"request","n":-}"#,
            br#"{"type":"request","n":1.}"#,
            br#"{"type":"request","n":tru}"#,
            br#"{"type":"request",}"#,
            b"{\"type\":\"\xff\"}",
        ] {
            assert!(
                skim(line, &mut arena).is_none(),
                "{}",
                String::from_utf8_lossy(line)
            );
            assert!(arena.spans.is_empty() && arena.text.is_empty());
        }
        let deep = format!(
            "{{\"type\":\"x\",\"d\":{}{}}}",
            "[".repeat(80),
            "]".repeat(80)
        );
        assert!(skim(deep.as_bytes(), &mut arena).is_none());
        let ok = format!(
            "{{\"type\":\"x\",\"d\":{}{}}}",
            "[".repeat(30),
            "]".repeat(30)
        );
        assert!(skim(ok.as_bytes(), &mut arena).is_some());
    }
}
