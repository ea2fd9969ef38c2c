//! Email: alerts mailed over SMTP (not built yet: the settings
//! are read, starting it fails with a clear error).

use std::sync::Arc;

use crate::config::yaml::{self, Ctx, MapReader, Node};
use crate::metrics::Metrics;

use super::{Running, SinkError};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settings {
    /// The SMTP server URL; `None`: not used.
    pub smtp: Option<String>,
}

impl Settings {
    pub fn enabled(&self) -> bool {
        self.smtp.is_some()
    }
}

/// `email:`.
pub fn apply(ctx: &mut Ctx, node: &Node, s: &mut Settings) {
    let Some(mut m) = MapReader::new(ctx, node, "email") else {
        return;
    };
    if let Some(n) = m.take("smtp") {
        if let Some(u) = yaml::string(ctx, n, "email.smtp") {
            s.smtp = (!u.is_empty()).then_some(u);
        }
    }
    m.finish(ctx, "email");
}

pub fn start(_s: &super::Settings, _metrics: Arc<Metrics>) -> Result<Running, SinkError> {
    Err(SinkError::Setup {
        sink: "email",
        message: "not built yet".into(),
    })
}
