//! `unreadable_entry`: a line that looks like an audit entry but that no parser could read
//! (over the line cap, or refused whole) is a finding, not only a counted parse error. A
//! client who shapes a request body so that its entry cannot be evaluated must not blind
//! detection quietly (`shared/docs/detections.md`).
//!
//! The alert is raised by the rules of category [`CATEGORY`] (`rules/unreadable_entry.yaml`)
//! in an engine of their own, fed a stand-in entry of type [`STAND_IN_TYPE`] that carries
//! only the header fields read from the line's first bytes ([`Head`]): the engine gives the
//! alert its stable id, severity overrides, allow-lists and suppression like any other,
//! and no other rule ever sees a stand-in (a partly read entry is no evidence for them).
//! The evidence adds the reason, the line's size and its `type`; never the line's content.

use std::sync::Arc;

use crate::alert::Alert;
use crate::config::Config;
use crate::engine::Engine;
use crate::parse::head::Head;
use crate::parse::time::parse_rfc3339_nanos;
use crate::parse::{Auth, Entry, EntryKind, ParseError, Request};
use crate::rules::RuleSet;

/// The category of the rules this module feeds.
pub const CATEGORY: &str = "unreadable_entry";

/// The `type` of the stand-in entry. Vault never writes it; a line that does (a rule
/// example, or a forged line) goes to the same rules.
pub const STAND_IN_TYPE: &str = "auditwatch:unreadable";

/// The rules split in two: every rule but the `unreadable_entry` ones, and those.
pub(crate) fn split(rules: &RuleSet) -> (RuleSet, RuleSet) {
    rules.split_category(CATEGORY)
}

/// The engine of the `unreadable_entry` rules.
pub(crate) struct Unreadable {
    engine: Engine,
}

/// What is known of a line that was not read.
pub(crate) struct Unread<'h> {
    pub reason: ParseError,
    /// The line's size in bytes (newline excluded).
    pub size: u64,
    pub head: &'h Head,
}

impl Unreadable {
    pub(crate) fn new(cfg: Arc<Config>, rules: RuleSet) -> Unreadable {
        Unreadable {
            engine: Engine::new(cfg, Arc::new(rules)),
        }
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(crate) fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// Swap in new rules and config, as [`Engine::reload`] does (state of unchanged rules
    /// kept).
    pub(crate) fn reload(&mut self, cfg: Arc<Config>, rules: RuleSet) {
        self.engine.reload(cfg, Arc::new(rules));
    }

    /// Raise the alert for a line that was not read. `now` is the stream's newest event
    /// time, the alert's time when the line's own could not be read.
    pub(crate) fn report(&mut self, unread: &Unread<'_>, now: Option<i64>, out: &mut Vec<Alert>) {
        let h = unread.head;
        let actor = Auth {
            present: h.display_name.is_some(),
            display_name: h.display_name.as_deref(),
            ..Auth::default()
        };
        let entry = Entry {
            kind: EntryKind::Other(STAND_IN_TYPE),
            time: h.time.as_deref().and_then(parse_rfc3339_nanos).or(now),
            error: None,
            auth: actor,
            request: Request {
                id: h.request_id.as_deref(),
                operation: h.operation.as_deref(),
                path: h.path.as_deref(),
                remote_address: h.remote_address.as_deref(),
                ..Request::default()
            },
            response: Default::default(),
        };
        let before = out.len();
        self.engine.process(&entry, None, out);
        for a in &mut out[before..] {
            // How the request ended is not known: not `allowed` for want of an `error`.
            a.outcome = None;
            let ev = &mut a.evidence;
            ev.insert("reason".into(), unread.reason.as_str().into());
            ev.insert("size_bytes".into(), unread.size.into());
            ev.insert(
                "type".into(),
                h.kind.clone().map_or(serde_json::Value::Null, Into::into),
            );
        }
    }

    /// A line that names the stand-in type itself (rule examples).
    pub(crate) fn process(&mut self, entry: &Entry<'_>, out: &mut Vec<Alert>) {
        self.engine.process(entry, None, out);
    }

    pub(crate) fn finish(&mut self, out: &mut Vec<Alert>) {
        self.engine.finish(out);
    }
}
