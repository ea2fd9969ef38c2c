//! Sources: where audit bytes come from. [`replay`] reads files at rest (plain, gzip,
//! rotated sets, stdin); [`lines`] frames any byte stream into lines with a size cap.

pub mod lines;
pub mod parallel;
pub mod replay;
