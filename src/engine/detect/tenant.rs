//! `tenant_mismatch`: the caller's tenant (from its identity) differs from the tenant
//! the path belongs to, or a tenant identity touches a tenant-scoped path that names no
//! tenant. The Composition and admin identities doing admin work never fire it.

use serde_json::{json, Map as JsonMap, Value as Json};

use crate::engine::event::{Event, PathTenant};
use crate::rules::condition::IdentityClass;

pub fn observe(ev: &Event<'_, '_>, evidence: &mut JsonMap<String, Json>) -> bool {
    if ev.has(IdentityClass::MachineAdmin) || ev.has(IdentityClass::Admin) {
        return false;
    }
    match (ev.tenant, ev.path_tenant) {
        (Some(caller), PathTenant::Tenant(target)) if caller != target => {
            evidence.insert("caller_tenant_from".into(), json!(ev.tenant_source));
            true
        }
        (Some(_), PathTenant::ScopedUnknown) => {
            evidence.insert("caller_tenant_from".into(), json!(ev.tenant_source));
            evidence.insert("reason".into(), json!("tenant-scoped path with no tenant"));
            true
        }
        _ => false,
    }
}
