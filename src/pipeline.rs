//! The pipeline: framed lines in, alerts out. It owns the parser and the engine and keeps
//! the counters every front end reports (entries by type, parse errors by reason). Replay,
//! the daemon, rule examples, tests and benches all feed lines through this one type.

use std::sync::Arc;

use memchr::memmem;

use crate::alert::Alert;
use crate::config::Config;
use crate::engine::{Engine, EngineStats, TableSizes};
use crate::parse::{EntryKind, ParseError, Parser};
use crate::rules::RuleSet;

/// Counters of what was read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub lines: u64,
    pub bytes: u64,
    pub entries: u64,
    pub requests: u64,
    pub responses: u64,
    pub other_types: u64,
    pub blank_lines: u64,
    pub nul_prefixed_lines: u64,
    pub prefixed_lines: u64,
    pub filtered_by_time: u64,
    pub parse_errors: [u64; ParseError::ALL.len()],
}

impl Stats {
    pub fn parse_errors_total(&self) -> u64 {
        self.parse_errors.iter().sum()
    }

    pub fn add(&mut self, o: &Stats) {
        self.lines += o.lines;
        self.bytes += o.bytes;
        self.entries += o.entries;
        self.requests += o.requests;
        self.responses += o.responses;
        self.other_types += o.other_types;
        self.blank_lines += o.blank_lines;
        self.nul_prefixed_lines += o.nul_prefixed_lines;
        self.prefixed_lines += o.prefixed_lines;
        self.filtered_by_time += o.filtered_by_time;
        for (a, b) in self.parse_errors.iter_mut().zip(o.parse_errors) {
            *a += b;
        }
    }
}

pub struct Pipeline {
    parser: Parser,
    engine: Engine,
    stats: Stats,
    since: Option<i64>,
    until: Option<i64>,
    raw: Vec<u8>,
    finder: memmem::Finder<'static>,
}

impl Pipeline {
    pub fn new(cfg: Arc<Config>, rules: Arc<RuleSet>) -> Pipeline {
        Pipeline {
            parser: Parser::new(&cfg.parse.prefix),
            engine: Engine::new(cfg, rules),
            stats: Stats::default(),
            since: None,
            until: None,
            raw: Vec::new(),
            finder: memmem::Finder::new(b"\"type\":\"request\""),
        }
    }

    /// Only entries with `since <= time < until` reach the engine.
    pub fn set_time_range(&mut self, since: Option<i64>, until: Option<i64>) {
        self.since = since;
        self.until = until;
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    pub fn engine_stats(&self) -> EngineStats {
        self.engine.stats()
    }

    pub fn table_sizes(&self) -> TableSizes {
        self.engine.table_sizes()
    }

    /// A line longer than the cap was skipped by the framer.
    pub fn record_too_long(&mut self, bytes: u64) {
        self.stats.lines += 1;
        self.stats.bytes += bytes;
        self.stats.parse_errors[ParseError::LineTooLong.index()] += 1;
    }

    /// Feed one line (without its `\n`; modified in place). Returns the parse error, if
    /// any, so a front end can log where it happened.
    pub fn feed_line(&mut self, line: &mut [u8], out: &mut Vec<Alert>) -> Result<(), ParseError> {
        self.stats.lines += 1;
        self.stats.bytes += line.len() as u64 + 1;
        // simd-json unescapes in place; keep the original bytes of a request entry in case
        // its response never comes and it must be re-read.
        let maybe_request = self.finder.find(line).is_some();
        if maybe_request {
            self.raw.clear();
            self.raw.extend_from_slice(line);
        }
        let Pipeline {
            parser,
            engine,
            stats,
            since,
            until,
            raw,
            ..
        } = self;
        parser.parse(line, |framing, result| {
            if framing.blank {
                stats.blank_lines += 1;
                return Ok(());
            }
            if framing.nul_prefix > 0 && result.is_ok() {
                stats.nul_prefixed_lines += 1;
            }
            if framing.prefixed {
                stats.prefixed_lines += 1;
            }
            let entry = match result {
                Ok(e) => e,
                Err(e) => {
                    stats.parse_errors[e.index()] += 1;
                    return Err(e);
                }
            };
            stats.entries += 1;
            match entry.kind {
                EntryKind::Request => stats.requests += 1,
                EntryKind::Response => stats.responses += 1,
                EntryKind::Other(_) => stats.other_types += 1,
            }
            if let Some(t) = entry.time {
                if since.is_some_and(|s| t < s) || until.is_some_and(|u| t >= u) {
                    stats.filtered_by_time += 1;
                    return Ok(());
                }
            }
            let raw = (maybe_request && entry.kind == EntryKind::Request).then_some(raw.as_slice());
            engine.process(&entry, raw, out);
            Ok(())
        })
    }

    /// End of input.
    pub fn finish(&mut self, out: &mut Vec<Alert>) {
        self.engine.finish(out);
    }
}
