//! Sources: where audit bytes come from. [`replay`] reads files at rest ([`input`]: plain,
//! gzip, rotated sets, stdin), on one thread or several ([`parallel`]); [`lines`] frames a
//! replay's byte stream into lines and chunks with a size cap, [`framer`] a live stream's.
//! The daemon's live sources — [`socket`] (Vault's socket device: tcp, udp, unix),
//! [`tail`] (Vault's file device, followed across rotation from a checkpoint) and
//! [`cloudwatch`] (CloudWatch Logs) — configured by [`settings`], hand whole lines to the
//! ingest queue as [`crate::ingest::batch::Batch`]es and never run detection on the read path.

pub mod cloudwatch;
pub mod framer;
pub mod input;
pub mod kafka;
pub mod lines;
pub mod parallel;
pub mod replay;
pub mod settings;
pub mod socket;
pub mod tail;
