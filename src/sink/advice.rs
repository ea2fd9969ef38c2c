//! What a person receiving an alert needs besides the record: why the category matters and
//! what to do first. Used by the email bodies and the Alertmanager annotations; a category
//! from a custom rule gets the general advice.

/// Why it matters and what to do, for one category.
pub struct Advice {
    pub why: &'static str,
    pub todo: &'static str,
}

pub fn for_category(category: &str) -> Advice {
    let (why, todo) = match category {
        "cross_tenant_read" => (
            "One tenant's identity touched another tenant's secrets. If the read was allowed, a \
             policy grants more than the tenancy model intends and the secret must be treated as \
             exposed; if denied, someone is probing.",
            "Check the actor's policies and the role binding behind them; if allowed, rotate the \
             target tenant's secret at that path and remove the grant.",
        ),
        "after_hours_admin" => (
            "An admin policy was used outside business hours by a person, which is when a stolen \
             admin token is most likely to be used unnoticed.",
            "Confirm with the named admin (or the on-call record) that the change was theirs; if \
             not, revoke the token by its accessor and review what it changed.",
        ),
        "eso_cadence" => (
            "External Secrets Operator left its normal rhythm: a refresh loop hammers Vault, a \
             silent secret means workloads run on stale credentials, a late refresh means a lease \
             can expire under a running workload.",
            "Look at the ExternalSecret's refreshInterval, the operator's logs and the lease TTL \
             of the path; restart or fix the operator before the lease runs out.",
        ),
        "ci_origin_read" => (
            "A CI identity read a tenant secret. CI on this platform only logs in; secrets in a \
             pipeline leak through logs and artifacts.",
            "Find the pipeline run from the role and time, check what it printed or stored, and \
             rotate the secret if it could have been exposed; tighten the CI role's policy.",
        ),
        "audit_device_change" => (
            "Audit devices were changed or the audit stream went silent: the record that this tool \
             and any investigation rely on may be gone.",
            "Verify every audit device is enabled and writing; find who changed them and why.",
        ),
        "auth_or_mount_change" => (
            "An auth method or secrets engine was enabled, disabled or tuned: a new way in, or a \
             store removed.",
            "Confirm the change was planned (platform repository, change ticket); if not, revert \
             it and revoke the actor's token.",
        ),
        "enumeration" => (
            "One identity listed or read far more paths than its usual work needs: discovery \
             before exfiltration looks like this.",
            "Check what the identity was allowed to read; revoke its token if the activity is not \
             explained and rotate what it read.",
        ),
        "generate_root" => (
            "A root token generation was started: with enough unseal or recovery key shares it \
             yields unlimited access.",
            "Confirm it is a sanctioned break-glass procedure; if not, cancel it (sys/generate-root/\
             attempt DELETE) and secure the key holders.",
        ),
        "login_failure_burst" => (
            "Many failed logins in a short time: password guessing or a broken client hammering \
             an auth method.",
            "Find the source address and the targeted accounts; block the source or lock the \
             accounts if it is not a known broken client.",
        ),
        "mass_revocation" => (
            "Many leases or tokens were revoked at once: workloads lose their credentials, which \
             is an outage or a cover-up.",
            "Check who revoked and whether a planned rotation explains it; watch the affected \
             workloads.",
        ),
        "policy_drift" => (
            "A policy was written outside the platform's automation: access changed without \
             review.",
            "Diff the policy against the platform repository and restore it; ask the actor why.",
        ),
        "root_token_use" => (
            "A root token was used. Root bypasses every policy and should exist only during a \
             break-glass procedure.",
            "Find the procedure that minted it; revoke the root token when it is done.",
        ),
        "sys_raw_access" => (
            "sys/raw reads or writes Vault's storage directly, past every policy and the barrier's \
             normal paths.",
            "Treat it as a compromise of the actor's token unless a documented recovery explains \
             it; revoke the token and review what was read.",
        ),
        "clock_skew" => (
            "An audit entry is dated far from the stream's own time: a Vault node's clock is \
             wrong, or someone wrote a forged entry to the audit device. Its time was not trusted \
             (no clock moved), but entries dated by a broken clock mislead any investigation.",
            "Check NTP on the node that wrote it (the entry's remote address and the node's \
             logs); if no node's clock is wrong, find who can write to the audit socket.",
        ),
        "unreadable_entry" => (
            "An audit entry could not be evaluated (over the line cap, or damaged), so no rule \
             saw it: a request shaped to be unreadable would otherwise pass unseen.",
            "Find the request by its id, time and path in Vault's audit log and review it by \
             hand; if lines are this large by design, raise parse.max_line_bytes.",
        ),
        "input_lost" => (
            "Part of the audit log was gone before auditwatch read it (the file was truncated \
             with no copy holding the unread part, or a file was deleted or rotated away while \
             auditwatch was down): no rule saw what Vault wrote there.",
            "Look for the missing part in the rotated files or backups (the evidence names the \
             file and the offset) and replay it with `auditwatch replay`; find out who or what \
             truncated or removed the audit log.",
        ),
        "token_foreign_use" => (
            "A token was used from a network it was not issued to (or a workload's token from \
             outside the pod and node ranges): the token was most likely copied, and whoever \
             holds it acts as its owner.",
            "Revoke the token by its accessor (auth/token/revoke-accessor), ask the owner whether \
             the address is theirs, and rotate every secret the foreign use read or minted.",
        ),
        "first_seen_access" => (
            "An identity read a secret it never touched in its learning period: a new duty, or a \
             credential used by someone exploring what it can reach.",
            "Ask the identity's owner (or the pipeline's team) whether the access is new work; if \
             not, revoke the token by its accessor and rotate the secret. Allow-list expected \
             pairs under allow_lists.first_seen.",
        ),
        "human_in_machine_secret" => (
            "A person read a tenant secret that only machines (ESO, workloads) read before: \
             credentials meant for automation are now in a human's hands and terminal history.",
            "Confirm with the person why they needed it; unless it was a recorded break-glass, \
             rotate the secret. Add break-glass identities to allow_lists.break_glass.",
        ),
        "unusual_hour" => (
            "A person worked in an hour of the week they never worked in before, which is when a \
             stolen credential tends to be used.",
            "Confirm with the person (or the on-call record) that it was them; if not, revoke the \
             token by its accessor and review what it read or changed.",
        ),
        "wrapping_interception" => (
            "A response-wrapping token was unwrapped by someone before its recipient: the wrapped \
             secret (evidence.creation_path) was seen by another party.",
            "Treat the wrapped secret as exposed and rotate it (a new secret-id, credential or \
             key); find the first unwrap's address in the evidence and how it got the token.",
        ),
        _ => (
            "A detection rule matched this activity.",
            "Read the rule's description (`auditwatch rules list`) and check the actor and path \
             named in the alert.",
        ),
    };
    Advice { why, todo }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_category_has_its_own_advice() {
        let general = for_category("no-such-category").why;
        let rules = crate::rules::RuleSet::embedded();
        for r in &rules.rules {
            assert_ne!(
                for_category(&r.category).why,
                general,
                "category {} has no advice",
                r.category
            );
        }
    }
}
