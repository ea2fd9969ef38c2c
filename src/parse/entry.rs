//! The borrowed view of one audit entry: only the fields detections read.
//!
//! Built in one pass over the simd-json tape. A field of an unexpected type (Vault moved
//! several across versions: `metadata` became `map[string]any`, `error` was `""` or absent)
//! reads as absent instead of failing the entry. `request.data` and `response.data` are
//! never looked at: whatever a `log_raw` device wrote there cannot leak from here.

use simd_json::prelude::*;
use simd_json::tape::Value;

use super::time::parse_rfc3339_nanos;

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

/// A list of strings on the tape (`policies`, ...); non-string elements are skipped.
#[derive(Clone, Copy, Default)]
pub struct StrList<'a>(Option<Value<'a, 'a>>);

impl<'a> StrList<'a> {
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .and_then(|v| v.as_array())
            .into_iter()
            .flat_map(|a| a.iter())
            .filter_map(|v| v.into_string())
    }
    pub fn contains(&self, s: &str) -> bool {
        self.iter().any(|p| p == s)
    }
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}

/// A string-keyed map on the tape (`auth.metadata`); only string values are visible.
#[derive(Clone, Copy, Default)]
pub struct StrMap<'a>(Option<Value<'a, 'a>>);

impl<'a> StrMap<'a> {
    pub fn get(&self, key: &str) -> Option<&'a str> {
        let v = self.0?;
        let obj = v.as_object()?;
        obj.get(key).and_then(|v| v.into_string())
    }
    pub fn contains_key(&self, key: &str) -> bool {
        self.0
            .and_then(|v| v.as_object())
            .is_some_and(|o| o.get(key).is_some_and(|v| !v.is_null()))
    }
    /// Every non-null entry; the value when it is a string (newer Vault allows any type).
    pub fn entries(&self) -> impl Iterator<Item = (&'a str, Option<&'a str>)> + 'a {
        self.0
            .and_then(|v| v.as_object())
            .into_iter()
            .flat_map(|o| o.iter())
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k, v.into_string()))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.0
            .and_then(|v| v.as_object())
            .into_iter()
            .flat_map(|o| o.iter())
            .filter_map(|(k, v)| v.into_string().map(|s| (k, s)))
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
}

/// The `response` block (response entries only).
#[derive(Clone, Copy, Default)]
pub struct Response<'a> {
    pub present: bool,
    pub auth: Auth<'a>,
    pub lease_id: Option<&'a str>,
    pub mount_type: Option<&'a str>,
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
            "policies" => a.policies = StrList(Some(v)),
            "token_policies" => a.token_policies = StrList(Some(v)),
            "identity_policies" => a.identity_policies = StrList(Some(v)),
            "metadata" => a.metadata = StrMap(Some(v)),
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
