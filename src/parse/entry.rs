//! The borrowed view of one audit entry: only the fields detections read.
//!
//! Built from the fast path's record (`Entry::from_rec`, most lines) or in one pass over
//! the simd-json tape ([`Entry::from_value`], the lines the fast path leaves); the two
//! agree field by field (`tests/it/skim.rs`). A field of an unexpected type (Vault moved
//! several across versions: `metadata` became `map[string]any`, `error` was `""` or absent)
//! reads as absent instead of failing the entry. `request.data` and `response.data` are
//! never kept: whatever a `log_raw` device wrote there cannot leak from here.

use simd_json::prelude::*;
use simd_json::tape::Value;

use super::skim::{self, Arena, AuthRec, KindRec, Range32, Rec, Span, ValKind};
use super::time::parse_rfc3339_nanos;
use super::{recycle, ParseError};

/// What kind of entry this is (`type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind<'a> {
    Request,
    Response,
    /// Any other `type` value, e.g. `kmip-request`.
    Other(&'a str),
}

impl EntryKind<'_> {
    pub fn as_str(&self) -> &str {
        match self {
            EntryKind::Request => "request",
            EntryKind::Response => "response",
            EntryKind::Other(s) => s,
        }
    }
}

/// A list of strings (`policies`, ...); non-string elements are skipped.
#[derive(Clone, Copy, Default)]
pub struct StrList<'a>(List<'a>);

#[derive(Clone, Copy, Default)]
enum List<'a> {
    #[default]
    Absent,
    /// On simd-json's tape.
    Tape(Value<'a, 'a>),
    /// Read by the fast path: the string elements.
    Strs(&'a [&'a str]),
}

impl<'a> StrList<'a> {
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + 'a {
        let (tape, strs): (_, &[&str]) = match self.0 {
            List::Absent => (None, &[]),
            List::Tape(v) => (Some(v), &[]),
            List::Strs(s) => (None, s),
        };
        tape.and_then(|v| v.as_array())
            .into_iter()
            .flat_map(|a| a.iter())
            .filter_map(|v| v.into_string())
            .chain(strs.iter().copied())
    }
    pub fn contains(&self, s: &str) -> bool {
        self.iter().any(|p| p == s)
    }
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}

/// A metadata value as the fast path read it: only strings are read, null is absent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MapVal<'a> {
    Str(&'a str),
    Null,
    Other,
}

impl<'a> MapVal<'a> {
    fn as_str(self) -> Option<&'a str> {
        match self {
            MapVal::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// A string-keyed map (`auth.metadata`); only string values are visible.
#[derive(Clone, Copy, Default)]
pub struct StrMap<'a>(Map<'a>);

#[derive(Clone, Copy, Default)]
enum Map<'a> {
    #[default]
    Absent,
    Tape(Value<'a, 'a>),
    Items(&'a [(&'a str, MapVal<'a>)]),
}

impl<'a> StrMap<'a> {
    /// The value of the first entry named `key`, when it is a string.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        match self.0 {
            Map::Absent => None,
            Map::Tape(v) => v.as_object()?.get(key).and_then(|v| v.into_string()),
            Map::Items(items) => items.iter().find(|(k, _)| *k == key)?.1.as_str(),
        }
    }
    pub fn contains_key(&self, key: &str) -> bool {
        match self.0 {
            Map::Absent => false,
            Map::Tape(v) => v
                .as_object()
                .is_some_and(|o| o.get(key).is_some_and(|v| !v.is_null())),
            Map::Items(items) => items
                .iter()
                .find(|(k, _)| *k == key)
                .is_some_and(|(_, v)| *v != MapVal::Null),
        }
    }
    /// Every non-null entry; the value when it is a string (newer Vault allows any type).
    pub fn entries(&self) -> impl Iterator<Item = (&'a str, Option<&'a str>)> + 'a {
        let (tape, items): (_, &[(&str, MapVal<'_>)]) = match self.0 {
            Map::Absent => (None, &[]),
            Map::Tape(v) => (Some(v), &[]),
            Map::Items(i) => (None, i),
        };
        tape.and_then(|v| v.as_object())
            .into_iter()
            .flat_map(|o| o.iter())
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k, v.into_string()))
            .chain(
                items
                    .iter()
                    .filter(|(_, v)| *v != MapVal::Null)
                    .map(|(k, v)| (*k, v.as_str())),
            )
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.entries().filter_map(|(k, v)| v.map(|v| (k, v)))
    }
}

/// An `auth` block: the token used (top level) or the token issued (`response.auth`).
#[derive(Clone, Copy, Default)]
pub struct Auth<'a> {
    pub present: bool,
    pub client_token: Option<&'a str>,
    pub accessor: Option<&'a str>,
    pub display_name: Option<&'a str>,
    pub entity_id: Option<&'a str>,
    pub token_type: Option<&'a str>,
    pub policies: StrList<'a>,
    pub token_policies: StrList<'a>,
    pub identity_policies: StrList<'a>,
    pub metadata: StrMap<'a>,
}

/// The `request` block.
#[derive(Clone, Copy, Default)]
pub struct Request<'a> {
    pub id: Option<&'a str>,
    pub operation: Option<&'a str>,
    pub path: Option<&'a str>,
    pub mount_type: Option<&'a str>,
    pub mount_point: Option<&'a str>,
    pub remote_address: Option<&'a str>,
    pub client_token: Option<&'a str>,
    pub client_token_accessor: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    /// `data.token` (HMAC'd): the token a `sys/wrapping/*` call names in its body.
    pub data_token: Option<&'a str>,
}

/// The `response` block (response entries only).
#[derive(Clone, Copy, Default)]
pub struct Response<'a> {
    pub present: bool,
    pub auth: Auth<'a>,
    pub lease_id: Option<&'a str>,
    pub mount_type: Option<&'a str>,
    /// `wrap_info.token` (HMAC'd): the response was wrapped in this token.
    pub wrap_token: Option<&'a str>,
    /// `wrap_info.creation_path`: the path whose response was wrapped.
    pub wrap_creation_path: Option<&'a str>,
}

/// One audit entry, borrowed from the parsed line.
#[derive(Clone, Copy)]
pub struct Entry<'a> {
    pub kind: EntryKind<'a>,
    /// `time` as Unix nanoseconds, when present and well-formed.
    pub time: Option<i64>,
    /// Top-level `error`, only when non-empty.
    pub error: Option<&'a str>,
    pub auth: Auth<'a>,
    pub request: Request<'a>,
    pub response: Response<'a>,
}

/// Why a JSON object is not an audit entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotAnEntry {
    MissingType,
}

fn opt_str<'a>(v: Value<'a, 'a>) -> Option<&'a str> {
    v.into_string()
}

fn nonempty<'a>(v: Value<'a, 'a>) -> Option<&'a str> {
    v.into_string().filter(|s| !s.is_empty())
}

fn read_auth<'a>(v: Value<'a, 'a>) -> Auth<'a> {
    let mut a = Auth::default();
    let Some(obj) = v.as_object() else {
        return a;
    };
    a.present = true;
    for (k, v) in obj.iter() {
        match k {
            "client_token" => a.client_token = nonempty(v),
            "accessor" => a.accessor = nonempty(v),
            "display_name" => a.display_name = nonempty(v),
            "entity_id" => a.entity_id = nonempty(v),
            "token_type" => a.token_type = nonempty(v),
            "policies" => a.policies = StrList(List::Tape(v)),
            "token_policies" => a.token_policies = StrList(List::Tape(v)),
            "identity_policies" => a.identity_policies = StrList(List::Tape(v)),
            "metadata" => a.metadata = StrMap(Map::Tape(v)),
            _ => {}
        }
    }
    a
}

fn read_request<'a>(v: Value<'a, 'a>) -> Request<'a> {
    let mut r = Request::default();
    let Some(obj) = v.as_object() else {
        return r;
    };
    for (k, v) in obj.iter() {
        match k {
            "id" => r.id = nonempty(v),
            "operation" => r.operation = nonempty(v),
            "path" => r.path = opt_str(v),
            "mount_type" => r.mount_type = nonempty(v),
            "mount_point" => r.mount_point = nonempty(v),
            "remote_address" => r.remote_address = nonempty(v),
            "client_token" => r.client_token = nonempty(v),
            "client_token_accessor" => r.client_token_accessor = nonempty(v),
            "namespace" => {
                r.namespace = v.as_object().and_then(|o| {
                    o.get("path")
                        .and_then(nonempty)
                        .or(o.get("id").and_then(nonempty))
                })
            }
            "data" => {
                r.data_token = v
                    .as_object()
                    .and_then(|o| o.get("token"))
                    .and_then(nonempty)
            }
            "headers" => {
                r.user_agent = v.as_object().and_then(|o| {
                    o.iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case("user-agent"))
                        .and_then(|(_, v)| v.as_array().and_then(|a| a.get(0)).and_then(nonempty))
                })
            }
            _ => {}
        }
    }
    r
}

fn read_response<'a>(v: Value<'a, 'a>) -> Response<'a> {
    let mut r = Response::default();
    let Some(obj) = v.as_object() else {
        return r;
    };
    r.present = true;
    for (k, v) in obj.iter() {
        match k {
            "auth" => r.auth = read_auth(v),
            "secret" => {
                r.lease_id = v
                    .as_object()
                    .and_then(|o| o.get("lease_id"))
                    .and_then(nonempty)
            }
            "mount_type" => r.mount_type = nonempty(v),
            "wrap_info" => {
                if let Some(o) = v.as_object() {
                    r.wrap_token = o.get("token").and_then(nonempty);
                    r.wrap_creation_path = o.get("creation_path").and_then(nonempty);
                }
            }
            _ => {}
        }
    }
    r
}

impl<'a> Entry<'a> {
    /// Read the view from a parsed top-level value. `Err` when it is not an audit entry.
    pub fn from_value(root: Value<'a, 'a>) -> Result<Entry<'a>, NotAnEntry> {
        let obj = root.as_object().ok_or(NotAnEntry::MissingType)?;
        let mut kind = None;
        let mut time = None;
        let mut error = None;
        let mut auth = Auth::default();
        let mut request = Request::default();
        let mut response = Response::default();
        for (k, v) in obj.iter() {
            match k {
                "type" => {
                    kind = v.into_string().map(|t| match t {
                        "request" => EntryKind::Request,
                        "response" => EntryKind::Response,
                        other => EntryKind::Other(other),
                    })
                }
                "time" => time = v.into_string().and_then(parse_rfc3339_nanos),
                "error" => error = nonempty(v),
                "auth" => auth = read_auth(v),
                "request" => request = read_request(v),
                "response" => response = read_response(v),
                _ => {}
            }
        }
        let kind = kind.ok_or(NotAnEntry::MissingType)?;
        Ok(Entry {
            kind,
            time,
            error,
            auth,
            request,
            response,
        })
    }

    /// The view of a line read by the fast path. `Err` when it is not an audit entry.
    fn from_rec(
        rec: &Rec,
        line: &'a str,
        text: &'a str,
        res: &'a Resolved<'a>,
    ) -> Result<Entry<'a>, NotAnEntry> {
        let s = |sp: Option<Span>| sp.map(|sp| sp.resolve(line, text));
        let list = |r: Range32| StrList(List::Strs(&res.strs[r.get()]));
        let auth = |a: &AuthRec| Auth {
            present: a.present,
            client_token: s(a.client_token),
            accessor: s(a.accessor),
            display_name: s(a.display_name),
            entity_id: s(a.entity_id),
            token_type: s(a.token_type),
            policies: list(a.policies),
            token_policies: list(a.token_policies),
            identity_policies: list(a.identity_policies),
            metadata: StrMap(Map::Items(&res.items[a.metadata.get()])),
        };
        let kind = match rec.kind.ok_or(NotAnEntry::MissingType)? {
            KindRec::Request => EntryKind::Request,
            KindRec::Response => EntryKind::Response,
            KindRec::Other(t) => EntryKind::Other(t.resolve(line, text)),
        };
        let (q, p) = (&rec.request, &rec.response);
        Ok(Entry {
            kind,
            time: rec.time,
            error: s(rec.error),
            auth: auth(&rec.auth),
            request: Request {
                id: s(q.id),
                operation: s(q.operation),
                path: s(q.path),
                mount_type: s(q.mount_type),
                mount_point: s(q.mount_point),
                remote_address: s(q.remote_address),
                client_token: s(q.client_token),
                client_token_accessor: s(q.client_token_accessor),
                namespace: s(q.namespace),
                user_agent: s(q.user_agent),
                data_token: s(q.data_token),
            },
            response: Response {
                present: p.present,
                auth: auth(&p.auth),
                lease_id: s(p.lease_id),
                mount_type: s(p.mount_type),
                wrap_token: s(p.wrap_token),
                wrap_creation_path: s(p.wrap_creation_path),
            },
        })
    }

    /// The identity that acted: for a login response, the issued token (`response.auth`)
    /// describes who logged in; otherwise the calling token (`auth`).
    pub fn actor(&self) -> &Auth<'a> {
        if self.response.auth.present && self.response.auth.display_name.is_some() {
            &self.response.auth
        } else {
            &self.auth
        }
    }

    /// True when the device wrote tokens in clear (`log_raw`): a finding in itself.
    pub fn token_is_raw(&self) -> bool {
        [self.auth.client_token, self.request.client_token]
            .into_iter()
            .flatten()
            .any(|t| !t.starts_with("hmac-sha256:"))
    }
}

/// Lines read by the fast path, and what making their views takes: the arena their
/// records point into, and buffers reused line after line. The one path from the fast path
/// to views, for the line parser and for lines read ahead.
#[derive(Default)]
pub(crate) struct Skimmed {
    arena: Arena,
    /// Each line's record, and where its arena entries end.
    recs: Vec<(Rec, usize, usize)>,
    strs: Vec<&'static str>,
    items: Vec<(&'static str, MapVal<'static>)>,
}

impl Skimmed {
    pub(crate) fn clear(&mut self) {
        self.arena.clear();
        self.recs.clear();
    }

    /// Read a framed line with the fast path: its checked text and its record's number, or
    /// `None` when the line is simd-json's to read.
    pub(crate) fn read<'l>(&mut self, body: &'l [u8]) -> Option<(&'l str, usize)> {
        let (text, rec) = skim::skim(body, &mut self.arena)?;
        self.recs
            .push((rec, self.arena.spans.len(), self.arena.items.len()));
        Some((text, self.recs.len() - 1))
    }

    /// Read a framed line with the deep fallback ([`skim::skim_deep`]), as [`Skimmed::read`].
    pub(crate) fn read_deep<'l>(&mut self, body: &'l [u8]) -> Option<(&'l str, usize)> {
        let (text, rec) = skim::skim_deep(body, &mut self.arena)?;
        self.recs
            .push((rec, self.arena.spans.len(), self.arena.items.len()));
        Some((text, self.recs.len() - 1))
    }

    /// Call `f` with the views of the lines read since [`Skimmed::clear`]; `texts` holds
    /// each record's line, in record order.
    pub(crate) fn views<R>(&mut self, texts: &[&str], f: impl FnOnce(&Views<'_>) -> R) -> R {
        let mut res = Resolved {
            strs: std::mem::take(&mut self.strs),
            items: std::mem::take(&mut self.items),
        };
        for ((_, spans_end, items_end), text) in self.recs.iter().zip(texts) {
            res.add(&self.arena, text, *spans_end, *items_end);
        }
        let out = f(&Views {
            recs: &self.recs,
            texts,
            text: &self.arena.text,
            res: &res,
        });
        self.strs = recycle(res.strs);
        self.items = recycle(res.items);
        out
    }
}

/// The views of the lines a [`Skimmed`] read, by record number.
pub(crate) struct Views<'v> {
    recs: &'v [(Rec, usize, usize)],
    texts: &'v [&'v str],
    text: &'v str,
    res: &'v Resolved<'v>,
}

impl<'v> Views<'v> {
    pub(crate) fn entry(&self, rec: usize) -> Result<Entry<'v>, ParseError> {
        Entry::from_rec(&self.recs[rec].0, self.texts[rec], self.text, self.res)
            .map_err(|_| ParseError::MissingType)
    }
}

/// The list strings and metadata entries of lines read by the fast path, as the views
/// borrow them: filled line by line, in the arena's order, before any view is made.
struct Resolved<'a> {
    strs: Vec<&'a str>,
    items: Vec<(&'a str, MapVal<'a>)>,
}

impl<'a> Resolved<'a> {
    /// Add the arena's entries up to these ends, all from `line`.
    fn add(&mut self, arena: &'a Arena, line: &'a str, spans_end: usize, items_end: usize) {
        let text = arena.text.as_str();
        let from = self.strs.len();
        self.strs.extend(
            arena.spans[from..spans_end]
                .iter()
                .map(|s| s.resolve(line, text)),
        );
        let from = self.items.len();
        self.items
            .extend(arena.items[from..items_end].iter().map(|it| {
                let val = match it.kind {
                    ValKind::Str => MapVal::Str(it.val.resolve(line, text)),
                    ValKind::Null => MapVal::Null,
                    ValKind::Other => MapVal::Other,
                };
                (it.key.resolve(line, text), val)
            }));
    }
}
