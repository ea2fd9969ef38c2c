//! auditwatch: a streaming anomaly detector for HashiCorp Vault and OpenBao audit logs.
//!
//! The pipeline, one module per stage: [`source`] frames bytes into lines, [`parse`] turns
//! a line into a borrowed [`parse::Entry`], [`engine`] (pure, synchronous, event-time
//! driven) turns entries into [`alert::Alert`]s using the [`rules`] and [`config`], and
//! [`sink`] writes alerts. `replay`, the daemon, tests and benches share the same engine.
//! [`util`] is the bottom layer (backoff, log rate limits, joins, locks) that all of them
//! may use and that uses none of them.
#![forbid(unsafe_code)]

pub mod alert;
pub mod config;
pub mod daemon;
pub mod engine;
pub mod fsutil;
pub mod ingest;
pub mod metrics;
pub mod parse;
pub mod pipeline;
pub mod report;
pub mod rules;
pub mod simulate;
pub mod sink;
pub mod source;
pub mod util;
pub mod yaml;
