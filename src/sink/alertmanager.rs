//! Alertmanager: each alert pushed to `POST /api/v2/alerts` (not built yet: the settings
//! are read, starting it fails with a clear error).

use std::sync::Arc;

use crate::config::yaml::{self, Ctx, MapReader, Node};
use crate::metrics::Metrics;

use super::{Running, SinkError};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settings {
    /// Alertmanager's base URL; `None`: not used.
    pub url: Option<String>,
}

impl Settings {
    pub fn enabled(&self) -> bool {
        self.url.is_some()
    }
}

/// `alertmanager:`.
pub fn apply(ctx: &mut Ctx, node: &Node, s: &mut Settings) {
    let Some(mut m) = MapReader::new(ctx, node, "alertmanager") else {
        return;
    };
    if let Some(n) = m.take("url") {
        if let Some(u) = yaml::string(ctx, n, "alertmanager.url") {
            s.url = (!u.is_empty()).then_some(u);
        }
    }
    m.finish(ctx, "alertmanager");
}

pub fn start(_s: &super::Settings, _metrics: Arc<Metrics>) -> Result<Running, SinkError> {
    Err(SinkError::Setup {
        sink: "alertmanager",
        message: "not built yet".into(),
    })
}
