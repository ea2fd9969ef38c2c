//! `input_lost`: audit input a live source knows it could not read (a file truncated with
//! no copy holding its unread part, a checkpointed file gone) is a finding, not only a
//! counted drop. Emptying the audit log must not blind detection quietly.
//!
//! As for `unreadable_entry` ([`super::unreadable`]), the alert is raised by the rules of
//! category [`CATEGORY`] (`rules/input_lost.yaml`) in an engine of their own, fed a
//! stand-in entry of type [`STAND_IN_TYPE`]; the engine gives it its id, severity
//! overrides, allow-lists and suppression, and no other rule sees it. The notice comes from
//! the source out of band ([`Pipeline::report_loss`](super::Pipeline::report_loss)), never
//! from the audit stream. The stand-in's request id is a stable hash of the source, the
//! file's identity and the offset the loss begins at, so the same loss noticed again (after
//! a restart) has the same alert id. The evidence names the source, the reason, the file,
//! that offset and the bytes known lost.

use std::sync::Arc;

use crate::alert::Alert;
use crate::config::Config;
use crate::engine::build::render;
use crate::engine::Engine;
use crate::parse::{Entry, EntryKind, Request};
use crate::rules::RuleSet;
use crate::util::stable_hash::stable_hash;

/// The category of the rules this module feeds.
pub const CATEGORY: &str = "input_lost";

/// The `type` of the stand-in entry. Vault never writes it; a line that does (a rule
/// example, or a forged line) goes to the same rules and carries none of the evidence.
pub const STAND_IN_TYPE: &str = "auditwatch:input_lost";

/// What a source knows of input it lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputLoss<'a> {
    /// The configured source's name.
    pub source: &'a str,
    /// Why (a bounded vocabulary: the `reason` label of `dropped_lines_total`).
    pub reason: &'a str,
    /// The watched file.
    pub file: &'a str,
    pub dev: u64,
    pub ino: u64,
    /// Where the missing input begins in that file.
    pub from_offset: u64,
    /// Bytes known lost (a lower bound), when known.
    pub lost_bytes: Option<u64>,
    /// When it was noticed (Unix ns): the alert's time.
    pub time: i64,
}

impl InputLoss<'_> {
    /// The stand-in's request id: the same for the same loss, whenever it is noticed.
    pub fn identity(&self) -> String {
        let h = stable_hash([
            self.source,
            &self.dev.to_string(),
            &self.ino.to_string(),
            &self.from_offset.to_string(),
        ]);
        format!("lost-{h:016x}")
    }
}

/// The rules split in two: every rule but the `input_lost` ones, and those.
pub(crate) fn split(rules: &RuleSet) -> (RuleSet, RuleSet) {
    rules.split_category(CATEGORY)
}

/// The engine of the `input_lost` rules.
pub(crate) struct Lost {
    engine: Engine,
}

impl Lost {
    pub(crate) fn new(cfg: Arc<Config>, rules: RuleSet) -> Lost {
        Lost {
            engine: Engine::new(cfg, Arc::new(rules)),
        }
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(crate) fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    pub(crate) fn reload(&mut self, cfg: Arc<Config>, rules: RuleSet) {
        self.engine.reload(cfg, Arc::new(rules));
    }

    /// Raise the alert for a loss.
    pub(crate) fn report(&mut self, loss: &InputLoss<'_>, out: &mut Vec<Alert>) {
        let id = loss.identity();
        let entry = Entry {
            kind: EntryKind::Other(STAND_IN_TYPE),
            time: Some(loss.time),
            error: None,
            auth: Default::default(),
            request: Request {
                id: Some(&id),
                ..Request::default()
            },
            response: Default::default(),
        };
        let before = out.len();
        self.engine.process(&entry, None, out);
        for a in &mut out[before..] {
            a.outcome = None;
            let ev = &mut a.evidence;
            ev.insert("source".into(), loss.source.into());
            ev.insert("reason".into(), loss.reason.into());
            ev.insert("file".into(), loss.file.into());
            ev.insert("device".into(), loss.dev.into());
            ev.insert("inode".into(), loss.ino.into());
            ev.insert("from_offset".into(), loss.from_offset.into());
            ev.insert(
                "lost_bytes".into(),
                loss.lost_bytes.map_or(serde_json::Value::Null, Into::into),
            );
            // The summary may name the evidence just added.
            if let Some(rule) = self.engine.rules().rules.iter().find(|r| r.id == a.rule) {
                a.summary = render(rule, a);
            }
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
