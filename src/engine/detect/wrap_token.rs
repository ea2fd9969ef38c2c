//! `wrap_token`: a response-wrapping token unwrapped by someone else first.
//!
//! Response wrapping hands a secret to exactly one party: the wrapping token can be
//! unwrapped once. The audit log shows the token (HMAC'd, the same HMAC everywhere in one
//! device's stream) where it was made (`response.wrap_info.token`, with the wrapped
//! path in `creation_path`) and where it was unwrapped: as the calling token
//! (`request.client_token`, the token sent in `X-Vault-Token`) or in the body
//! (`request.data.token`, when the caller authenticates with a token of its own). A
//! failed `sys/wrapping/unwrap` or `sys/wrapping/lookup` ("wrapping token is not valid or
//! does not exist", written as a request entry only) of a token that was unwrapped before
//! means the recipient came second: critical when the earlier unwrap came from another
//! address or another caller, high when it cannot be told apart (the same address, and no
//! caller to compare). A failed unwrap of a token never seen unwrapped (a typo, a token
//! that expired unused, one unwrapped before the stream began) says nothing and stays
//! quiet.
//!
//! One finding per wrapping token. Bounded: at most `max_keys` tokens (a 128-bit hash
//! each, the wrapped path cut to [`super::MAX_KEY_BYTES`], about 100 bytes besides); a
//! token unseen for `expire_after_secs` is forgotten, and past the cap the least recently
//! seen half goes, counted as evicted.

use std::net::IpAddr;

use serde_json::{json, Map as JsonMap, Value as Json};

use crate::alert::Severity;
use crate::engine::event::{Event, Outcome};
use crate::rules::token::WrapTokenSpec;

use super::token_origin::{client_ip, key128};
use super::window::{make_room, Map, NANOS};
use super::Fired;

/// The error Vault and OpenBao write for a wrapping token that is used, expired or unknown.
pub const INVALID_WRAPPING_TOKEN: &str = "wrapping token is not valid or does not exist";

/// Evidence keys of a `wrap_token` finding.
pub mod evidence {
    pub const KIND: &str = "kind";
    pub const CREATED_AT: &str = "created_at";
    pub const CREATION_PATH: &str = "creation_path";
    pub const UNWRAPPED_AT: &str = "unwrapped_at";
    pub const UNWRAPPED_FROM: &str = "unwrapped_from";
    pub const UNWRAP_REQUEST_ID: &str = "unwrap_request_id";
    pub const FAILED_FROM: &str = "failed_from";
    pub const SAME_CALLER: &str = "same_caller";
}

/// The successful unwrap of a wrapping token.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Unwrap {
    time: i64,
    addr: Option<IpAddr>,
    /// The caller's token accessor (hashed), when it unwrapped with a token of its own.
    caller: Option<u128>,
    request_id: Option<Box<str>>,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Wrapped {
    created: Option<i64>,
    creation_path: Option<Box<str>>,
    unwrap: Option<Unwrap>,
    last: i64,
    reported: bool,
}

/// The wrapping tokens a `wrap_token` detector tracks.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct WrapTokenState {
    tokens: Map<u128, Wrapped>,
    pub evicted: u64,
}

impl WrapTokenState {
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The token's record, made (room first) when new; a record idle past `expire` starts
    /// over.
    fn entry(&mut self, key: u128, t: i64, expire: i64, max_keys: u64) -> &mut Wrapped {
        if !self.tokens.contains_key(&key) {
            self.evicted += make_room(&mut self.tokens, max_keys, t.saturating_sub(expire), |w| {
                w.last
            });
        }
        let w = self.tokens.entry(key).or_insert(Wrapped {
            created: None,
            creation_path: None,
            unwrap: None,
            last: t,
            reported: false,
        });
        if t - w.last > expire {
            *w = Wrapped {
                created: None,
                creation_path: None,
                unwrap: None,
                last: t,
                reported: false,
            };
        }
        w.last = w.last.max(t);
        w
    }
}

/// A `wrap_token` detector: its settings and the wrapping tokens it tracks.
pub struct WrapToken {
    spec: WrapTokenSpec,
    state: WrapTokenState,
}

impl WrapToken {
    pub fn new(spec: WrapTokenSpec) -> WrapToken {
        WrapToken {
            spec,
            state: WrapTokenState::default(),
        }
    }

    pub fn adopt(&mut self, old: WrapToken) {
        self.state = old.state;
    }

    pub fn state(&self) -> &WrapTokenState {
        &self.state
    }

    pub fn set_state(&mut self, state: WrapTokenState) {
        self.state = state;
    }

    pub fn keys(&self) -> usize {
        self.state.len()
    }

    pub fn evicted(&self) -> u64 {
        self.state.evicted
    }

    pub fn observe(
        &mut self,
        ev: &Event<'_, '_>,
        evidence: &mut JsonMap<String, Json>,
    ) -> Option<Fired> {
        let e = ev.entry;
        let t = ev.time;
        let expire = (self
            .spec
            .expire_after_secs
            .min(i64::MAX as u64 / NANOS as u64) as i64)
            * NANOS;
        let max_keys = self.spec.max_keys;
        if let Some(wt) = e.response.wrap_token {
            let w = self.state.entry(key128(wt), t, expire, max_keys);
            w.created = Some(t);
            w.creation_path = e
                .response
                .wrap_creation_path
                .map(|p| super::bounded(p).into());
            return None;
        }
        let path = e.request.path?;
        let unwrap = path == "sys/wrapping/unwrap";
        if !unwrap && path != "sys/wrapping/lookup" {
            return None;
        }
        // In the body when the caller used a token of its own; else the calling token.
        let body = e.request.data_token;
        let token = body.or(e.request.client_token)?;
        let key = key128(token);
        let addr = client_ip(ev);
        let caller = body.and(e.auth.accessor).map(key128);
        match ev.outcome {
            Outcome::Allowed if unwrap => {
                let w = self.state.entry(key, t, expire, max_keys);
                if w.unwrap.is_none() {
                    w.unwrap = Some(Unwrap {
                        time: t,
                        addr,
                        caller,
                        request_id: e.request.id.map(|id| super::bounded(id).into()),
                    });
                }
                None
            }
            Outcome::Error | Outcome::Denied => {
                let invalid = ev.outcome == Outcome::Denied
                    || e.error.is_some_and(|m| m.contains(INVALID_WRAPPING_TOKEN));
                if !invalid {
                    return None;
                }
                let w = self.state.tokens.get_mut(&key)?;
                let u = w.unwrap.as_ref()?;
                if w.reported || u.time > t {
                    return None;
                }
                w.reported = true;
                w.last = w.last.max(t);
                let other_addr = matches!((u.addr, addr), (Some(a), Some(b)) if a != b);
                let other_caller = matches!((u.caller, caller), (Some(a), Some(b)) if a != b);
                let intercepted = other_addr || other_caller;
                let time = crate::parse::time::format_rfc3339;
                evidence.insert(
                    evidence::KIND.into(),
                    json!(if intercepted {
                        "intercepted"
                    } else {
                        "unwrapped_before"
                    }),
                );
                evidence.insert(evidence::CREATED_AT.into(), json!(w.created.map(time)));
                evidence.insert(evidence::CREATION_PATH.into(), json!(w.creation_path));
                evidence.insert(evidence::UNWRAPPED_AT.into(), json!(time(u.time)));
                evidence.insert(
                    evidence::UNWRAPPED_FROM.into(),
                    json!(u.addr.map(|a| a.to_string())),
                );
                evidence.insert(evidence::UNWRAP_REQUEST_ID.into(), json!(u.request_id));
                evidence.insert(
                    evidence::FAILED_FROM.into(),
                    json!(addr.map(|a| a.to_string())),
                );
                let same = match (u.caller, caller) {
                    (Some(a), Some(b)) => Json::Bool(a == b),
                    _ => Json::Null,
                };
                evidence.insert(evidence::SAME_CALLER.into(), same);
                Some(Fired {
                    floor: intercepted.then_some(Severity::Critical),
                })
            }
            _ => None,
        }
    }
}
