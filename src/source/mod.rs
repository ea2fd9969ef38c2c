//! Sources: where audit bytes come from. [`replay`] reads files at rest (plain, gzip,
//! rotated sets, stdin); [`lines`] frames any byte stream into lines with a size cap.
//! The daemon's live sources — [`socket`] (Vault's socket device: tcp, udp, unix),
//! [`tail`] (Vault's file device, followed across rotation from a checkpoint) and
//! [`cloudwatch`] (CloudWatch Logs) — hand whole lines to the ingest queue as [`Batch`]es
//! and never run detection on the read path.

pub mod cloudwatch;
pub mod framer;
pub mod input;
pub mod lines;
pub mod parallel;
pub mod replay;
pub mod settings;
pub mod socket;
pub mod tail;

/// Index of a configured source (its position in `sources`).
pub type SourceId = u16;

/// A file's identity: device and inode, so rotation and re-creation are told apart from
/// growth.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct FileKey {
    pub dev: u64,
    pub ino: u64,
}

/// A position a source may resume from once the engine has processed the batch carrying
/// it (file sources: the end of the batch's last line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Commit {
    pub file: FileKey,
    pub offset: u64,
}

/// Whole lines from one source, each ending with `\n`, in the order they were read.
#[derive(Debug)]
pub struct Batch {
    pub source: SourceId,
    pub data: Vec<u8>,
    pub commit: Option<Commit>,
}
