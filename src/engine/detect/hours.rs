//! `time_window`: an event outside business hours (the config's `business_hours`: days,
//! hours, time zone, holidays, change windows). The Composition never fires it.

use serde_json::{json, Map as JsonMap, Value as Json};

use crate::config::calendar::HoursVerdict;
use crate::config::Config;
use crate::engine::event::Event;
use crate::rules::condition::IdentityClass;

pub fn observe(ev: &Event<'_, '_>, cfg: &Config, evidence: &mut JsonMap<String, Json>) -> bool {
    if ev.has(IdentityClass::MachineAdmin) {
        return false;
    }
    match cfg.business_hours.classify(ev.time) {
        HoursVerdict::Inside | HoursVerdict::ChangeWindow(_) => false,
        HoursVerdict::Outside { local, reason } => {
            evidence.insert("local_time".into(), json!(local));
            evidence.insert("time_zone".into(), json!(cfg.business_hours.time_zone_name));
            evidence.insert("reason".into(), json!(reason));
            let a = &ev.actor;
            let mut admin: Vec<String> = a
                .policies
                .iter()
                .chain(a.token_policies.iter())
                .chain(a.identity_policies.iter())
                .filter(|p| cfg.admin_policies.iter().any(|x| x == p))
                .map(str::to_string)
                .collect();
            admin.sort();
            admin.dedup();
            evidence.insert("admin_policies".into(), json!(admin));
            true
        }
    }
}
