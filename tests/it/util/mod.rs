//! Helpers shared by the integration tests, one of each: run the binary to completion
//! ([`cli`]), run it as a daemon ([`daemon`]), build audit entries ([`entries`]), feed
//! lines through the library pipeline ([`feed`]), read the fixtures ([`fixtures`]),
//! compare texts ([`diff`]), and find what a test needs from outside the crate
//! ([`tools`]).

pub mod alertmanager;
pub mod cli;
pub mod daemon;
pub mod diff;
pub mod entries;
pub mod feed;
pub mod fixtures;
pub mod openbao;
pub mod smtp;
pub mod tools;

pub use alertmanager::*;
pub use cli::*;
pub use daemon::*;
pub use diff::*;
pub use entries::*;
pub use feed::*;
pub use fixtures::*;
pub use openbao::*;
pub use smtp::*;
pub use tools::*;
