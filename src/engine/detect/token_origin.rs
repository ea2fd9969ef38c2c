//! `token_origin`: a token used from somewhere it was not issued (token theft).
//!
//! A token's HMAC'd accessor is stable within one device's stream. A login response
//! (`auth/<mount>/login...` with `response.auth`) records where a token was issued: its
//! address. Every later entry that carries the token's accessor (`auth.accessor`) is a use
//! of it, from `request.remote_address`. A use from another network than the issuing one
//! (the rule's `network` prefix lengths, /24 and /64 by default) is foreign. Tokens whose
//! login the stream did not show (issued before it began, or by `auth/token/create` for
//! someone else) take their first use as their origin.
//!
//! Workloads move: an ESO pod rescheduled to another node gets an address in another
//! node's pod range, and a node's SNAT puts Vault Agent behind the node's address. So the
//! identities of the rule's `workload` block, when its address set (the config's
//! `identities.workload_cidrs`) is not empty, are judged by that set instead: inside it a
//! workload's token may be used from anywhere, outside it every use is foreign.
//!
//! One finding per token, at its first foreign use; a later foreign use for which the
//! rule's `escalate` condition holds (it read or minted a secret) is a second, critical one.
//!
//! Bounded: at most `max_keys` tokens, 64 bytes of state each (the accessor as a 128-bit
//! hash, the origin address, two times and flags); a token idle for `expire_after_secs` is
//! forgotten, and past the cap the least recently used half goes, counted as evicted.

use std::net::IpAddr;

use serde_json::{json, Map as JsonMap, Value as Json};

use crate::alert::Severity;
use crate::config::Config;
use crate::engine::event::{Event, Outcome};
use crate::rules::condition::{strip_port, Fields};
use crate::rules::token::TokenOriginSpec;

use super::window::{make_room, Map, NANOS};
use super::Fired;

/// Evidence keys of a `token_origin` finding.
pub mod evidence {
    pub const REASON: &str = "reason";
    pub const ISSUED_FROM: &str = "issued_from";
    pub const ISSUED_ADDRESS: &str = "issued_address";
    pub const ISSUED_BY: &str = "issued_by";
    pub const USED_FROM: &str = "used_from";
    pub const FIRST_FOREIGN_REQUEST: &str = "first_foreign_request";
    pub const WORKLOAD_CIDRS: &str = "workload_cidrs";
}

/// A `token_origin` detector: its settings and the origin of every token it tracks.
pub struct TokenOrigin {
    spec: TokenOriginSpec,
    state: TokenOriginState,
}

/// A stable 128-bit key of a string (two fixed-seed hashes): the same across restarts, so
/// a snapshot's keys stay valid.
pub fn key128(s: &str) -> u128 {
    use std::hash::{BuildHasher, Hasher};
    let mut h1 = foldhash::fast::FixedState::with_seed(0x746f_6b65).build_hasher();
    h1.write(s.as_bytes());
    let mut h2 = foldhash::fast::FixedState::with_seed(0x6e5f_6f72).build_hasher();
    h2.write(s.as_bytes());
    ((h1.finish() as u128) << 64) | h2.finish() as u128
}

/// The address of an entry's client, if it is one.
pub fn client_ip(ev: &Event<'_, '_>) -> Option<IpAddr> {
    let a = strip_port(ev.entry.request.remote_address?);
    a.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// What is known of one token.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub struct Origin {
    /// The address it was issued to (or first used from).
    addr: IpAddr,
    /// From its login response (not its first use).
    login: bool,
    /// Event time of the issue (or first use), and of its last use (ns).
    issued: i64,
    last: i64,
    /// A foreign use was reported; a foreign use that escalated was reported.
    reported: bool,
    escalated: bool,
}

/// The tokens a `token_origin` detector tracks.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct TokenOriginState {
    tokens: Map<u128, Origin>,
    pub evicted: u64,
}

impl TokenOriginState {
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Room for one more token: idle ones go, then the least recently used half.
    fn make_room(&mut self, now: i64, expire: i64, max_keys: u64) {
        self.evicted += make_room(
            &mut self.tokens,
            max_keys,
            now.saturating_sub(expire),
            |o| o.last,
        );
    }
}

/// Whether an entry is a login that issued a token to its caller: a successful
/// `auth/<mount>/login...` (not `auth/token/create`, whose token is for someone else).
fn is_login(ev: &Event<'_, '_>) -> bool {
    let e = ev.entry;
    let path = e.request.path.unwrap_or("");
    e.response.auth.accessor.is_some()
        && ev.outcome == Outcome::Allowed
        && path.starts_with("auth/")
        && !path.starts_with("auth/token/")
        && path.contains("/login")
}

/// The workload networks the event's identity is judged by, if it is a workload and they
/// are set.
fn workload_nets<'c>(
    spec: &'c TokenOriginSpec,
    ev: &Event<'_, '_>,
    cfg: &'c Config,
) -> Option<&'c [ipnet::IpNet]> {
    let w = spec.workload.as_ref()?;
    let nets = w.within.nets(cfg);
    (!nets.is_empty() && w.identity.iter().any(|c| ev.has(*c))).then_some(nets)
}

impl TokenOrigin {
    pub fn new(spec: TokenOriginSpec) -> TokenOrigin {
        TokenOrigin {
            spec,
            state: TokenOriginState::default(),
        }
    }

    pub fn adopt(&mut self, old: TokenOrigin) {
        self.state = old.state;
    }

    pub fn state(&self) -> &TokenOriginState {
        &self.state
    }

    pub fn set_state(&mut self, state: TokenOriginState) {
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
        cfg: &Config,
        evidence: &mut JsonMap<String, Json>,
    ) -> Option<Fired> {
        let ip = client_ip(ev)?;
        let t = ev.time;
        let s = &self.spec;
        let expire = (s.expire_after_secs.min(i64::MAX as u64 / NANOS as u64) as i64) * NANOS;
        if is_login(ev) {
            let key = key128(ev.entry.response.auth.accessor?);
            if !self.state.tokens.contains_key(&key) {
                self.state.make_room(t, expire, s.max_keys);
            }
            self.state.tokens.insert(
                key,
                Origin {
                    addr: ip,
                    login: true,
                    issued: t,
                    last: t,
                    reported: false,
                    escalated: false,
                },
            );
            return None;
        }
        let accessor = ev.entry.auth.accessor?;
        let key = key128(accessor);
        let workload = workload_nets(s, ev, cfg);
        let inside = workload.map(|nets| nets.iter().any(|n| n.contains(&ip)));
        if !self.state.tokens.contains_key(&key) {
            if inside == Some(true) {
                // A workload at home: nothing to remember.
                return None;
            }
            self.state.make_room(t, expire, s.max_keys);
        }
        let o = self.state.tokens.entry(key).or_insert(Origin {
            addr: ip,
            login: false,
            issued: t,
            last: t,
            reported: false,
            escalated: false,
        });
        if t - o.last > expire {
            // Idle past its life: a token of that accessor now is a new one.
            *o = Origin {
                addr: ip,
                login: false,
                issued: t,
                last: t,
                reported: false,
                escalated: false,
            };
        }
        o.last = o.last.max(t);
        let foreign = match inside {
            Some(inside) => !inside,
            None => !s.network.same(o.addr, ip),
        };
        if !foreign {
            return None;
        }
        let escalates = s
            .escalate
            .as_ref()
            .is_some_and(|c| c.eval(ev as &dyn Fields, &mut Vec::new()));
        let report = !o.reported || (escalates && !o.escalated);
        if !report {
            return None;
        }
        o.reported = true;
        o.escalated |= escalates;
        let o = *o;
        let reason = if inside.is_some() {
            "outside_workload_cidrs"
        } else {
            "other_network"
        };
        evidence.insert(evidence::REASON.into(), json!(reason));
        evidence.insert(
            evidence::ISSUED_FROM.into(),
            json!(s.network.network(o.addr).to_string()),
        );
        evidence.insert(evidence::ISSUED_ADDRESS.into(), json!(o.addr.to_string()));
        evidence.insert(
            evidence::ISSUED_BY.into(),
            json!(if o.login { "login" } else { "first_use" }),
        );
        evidence.insert(
            evidence::USED_FROM.into(),
            json!(s.network.network(ip).to_string()),
        );
        let q = &ev.entry.request;
        evidence.insert(
            evidence::FIRST_FOREIGN_REQUEST.into(),
            json!({
                "request_id": q.id,
                "operation": q.operation,
                "path": q.path.map(|p| super::bounded(p).into_owned()),
                "time": crate::parse::time::format_rfc3339(t),
            }),
        );
        if let Some(nets) = workload {
            let nets: Vec<String> = nets.iter().map(|n| n.to_string()).collect();
            evidence.insert(evidence::WORKLOAD_CIDRS.into(), json!(nets));
        }
        Some(Fired {
            floor: escalates.then_some(Severity::Critical),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eviction_keeps_the_recently_used_half_and_counts_the_rest() {
        let mut st = TokenOriginState::default();
        let o = |last| Origin {
            addr: "10.0.0.1".parse().unwrap(),
            login: true,
            issued: 0,
            last,
            reported: false,
            escalated: false,
        };
        for i in 0..100u128 {
            st.tokens.insert(i, o(i as i64));
        }
        st.make_room(100, 1_000, 100);
        assert!(st.len() <= 50, "{}", st.len());
        assert_eq!(st.evicted, 100 - st.len() as u64);
        assert!(st.tokens.contains_key(&99) && !st.tokens.contains_key(&0));
        // Idle ones go first, and only they when that makes room.
        let mut st = TokenOriginState::default();
        for i in 0..10u128 {
            st.tokens.insert(i, o(if i < 3 { 0 } else { 1_000 }));
        }
        st.make_room(1_500, 1_000, 10);
        assert_eq!((st.len(), st.evicted), (7, 3));
    }
}
