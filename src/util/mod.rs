//! The bottom layer: small machinery the sources, the daemon and the sinks share, written
//! once. Exponential backoff with jitter ([`backoff`]), rate-limited log lines that count
//! what they held back ([`lograte`]), joining a thread by a deadline ([`thread`]),
//! poison-tolerant locking ([`sync`]) and a hash fixed for stored identities
//! ([`stable_hash`]).
//!
//! Invariant: nothing here depends on any other module of the crate (only `std`), so every
//! layer above may use it and it can be read and tested on its own.

pub mod backoff;
pub mod base64;
pub mod fifo_set;
pub mod lograte;
pub mod stable_hash;
pub mod sync;
pub mod thread;
