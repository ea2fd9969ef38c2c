//! Helpers shared by the integration tests, one of each: run the binary to completion
//! ([`cli`]), run it as a daemon ([`daemon`]), build audit entries ([`entries`]), feed
//! lines through the library pipeline ([`feed`]), read the fixtures ([`fixtures`]),
//! compare texts ([`diff`]), find what a test needs from outside the crate
//! ([`tools`]), run a real Prometheus ([`prometheus`]), Alertmanager ([`alertmanager`])
//! and SMTP server ([`smtp`]), make certificates and speak HTTPS ([`tls`]), record
//! HTTP requests or proxy them ([`httprec`]), and score the detections on simulated
//! platforms ([`scorecard`]).

pub mod alertmanager;
pub mod cli;
pub mod daemon;
pub mod diff;
pub mod entries;
pub mod feed;
pub mod fixtures;
pub mod httprec;
pub mod openbao;
pub mod prometheus;
pub mod rng;
pub mod scorecard;
pub mod smtp;
pub mod tls;
pub mod tools;

pub use alertmanager::*;
pub use cli::*;
pub use daemon::*;
pub use diff::*;
pub use entries::*;
pub use feed::*;
pub use fixtures::*;
pub use httprec::*;
pub use openbao::*;
pub use prometheus::{urlencode, Prometheus};
pub use rng::*;
pub use scorecard::*;
pub use smtp::*;
pub use tls::*;
pub use tools::*;
