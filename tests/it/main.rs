//! The integration tests, in one crate (one binary to link, not one per file): each module
//! is one area of the product, and `util` holds the helpers they share.
//!
//! Run one area with a filter: `cargo test --test it daemon::`, `cargo test --test it
//! paths::`. The real audit samples come from `AUDITWATCH_SAMPLES`; external tools a test
//! needs (OpenBao, Prometheus, Alertmanager, an SMTP server, moto, Chromium, node) are
//! found on `PATH`. Without them a test says SKIPPED and passes, except under `CI=true`,
//! where it fails (see `util/tools.rs`).

mod util;

mod alert_id;
mod bad_input;
mod cli_conventions;
mod cli_rules;
mod cli_siem;
mod clock_skew;
mod closed_pipe;
mod conformance;
mod daemon;
mod daemon_cloudwatch;
mod daemon_load;
mod dashboards;
mod deploy_container;
mod deploy_deb;
mod deploy_kubernetes;
mod deploy_openbao;
mod deploy_systemd;
mod deploy_util;
mod e2e_openbao;
mod eso_outage;
mod golden;
mod ha_openbao;
mod http_tls;
mod kafka;
mod layers;
mod paging;
mod parallel;
mod paths;
mod prometheus;
mod readme;
mod report;
mod report_browser;
mod restart;
mod restart_learning;
mod rotate_copy;
mod scorecard;
mod scorecard_learned;
mod silence;
mod sim_shape;
mod simulate;
mod simulate_output;
mod sink_alertmanager;
mod sink_email;
mod skim;
mod socket_lockdown;
mod tail;
mod token_openbao;
mod unreadable;
