//! `learning`: the settings shared by the detectors that learn what normal looks like
//! (`first_seen`, `hour_profile`). A rule may pin its own `learn_secs`; this is the
//! default for those that do not, so one line of the config shortens every learning
//! period (a short simulated stream, a lab) without editing rule files.

use crate::yaml::{self, Ctx, MapReader, Node};

/// The default learning period: 7 days of event time.
pub const DEFAULT_PERIOD_SECS: u64 = 7 * 86_400;

/// The longest learning period accepted (a year): beyond it nothing would ever fire.
pub const MAX_PERIOD_SECS: u64 = 366 * 86_400;

#[derive(Clone, Debug)]
pub struct Learning {
    /// Event time a key (an identity, a path) and a value are learned before a new pairing
    /// of them can be a finding.
    pub period_secs: u64,
}

impl Default for Learning {
    fn default() -> Self {
        Learning {
            period_secs: DEFAULT_PERIOD_SECS,
        }
    }
}

impl Learning {
    pub(super) fn apply(&mut self, ctx: &mut Ctx, node: &Node) {
        let Some(mut m) = MapReader::new(ctx, node, "learning") else {
            return;
        };
        if let Some(n) = m.take("period_secs") {
            if let Some(v) = yaml::positive_at_most(ctx, n, "learning.period_secs", MAX_PERIOD_SECS)
            {
                self.period_secs = v;
            }
        }
        m.finish(ctx, "learning");
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn the_learning_period_is_read_and_bad_values_are_placed() {
        assert_eq!(Config::default().learning.period_secs, 604_800);
        let c = Config::from_yaml_str("c.yaml", "learning: {period_secs: 3600}\n").unwrap();
        assert_eq!(c.learning.period_secs, 3600);
        let Err(ps) = Config::from_yaml_str("c.yaml", "learning:\n  period_secs: 0\n  x: 1\n")
        else {
            panic!("a zero period accepted")
        };
        let got: Vec<(usize, usize)> = ps.iter().map(|p| (p.line, p.col)).collect();
        assert!(got.contains(&(2, 16)), "{ps:?}");
        assert!(ps.iter().any(|p| p.message.contains("`x`")), "{ps:?}");
    }
}
