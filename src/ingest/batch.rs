//! The contract between the live sources and the engine thread: a [`Batch`] of whole
//! lines from one source, and the position ([`Commit`]) the source may resume from once
//! the engine has processed it. Sources make batches; the queue carries them in order;
//! the engine thread commits their positions.

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
