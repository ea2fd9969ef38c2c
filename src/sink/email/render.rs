//! Mail subjects and bodies (plain text and HTML) built from outbox entries only: each
//! alert's record (already HMAC'd and secret-free), its runbook link and the category's
//! advice. Nothing else goes in, so a mail can never carry more than the alert did. Every
//! value is escaped in HTML and stripped of line breaks in the subject.

use std::fmt::Write as _;

use serde_json::Value;

use super::outbox::Entry;
use super::plan::Kind;
use crate::sink::advice;

/// A rendered mail.
pub struct Body {
    pub subject: String,
    pub text: String,
    pub html: String,
}

fn field<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(|x| x.as_str()).filter(|s| !s.is_empty())
}

fn one_line(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if out.chars().count() > max {
        out = out.chars().take(max.saturating_sub(1)).collect::<String>() + "…";
    }
    out
}

pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// The sections of one alert: (heading, lines as label/value pairs).
fn sections(e: &Entry) -> Vec<(&'static str, Vec<(&'static str, String)>)> {
    let a = &e.alert;
    let s = |k| field(a, k).map(str::to_string);
    let actor = a.get("actor").cloned().unwrap_or(Value::Null);
    let who: Vec<(&'static str, String)> = [
        ("name", "display_name"),
        ("entity", "entity_id"),
        ("auth method", "auth_method"),
        ("role", "role"),
        ("service account", "service_account"),
        ("namespace", "namespace"),
        ("from address", "remote_address"),
        ("accessor (HMAC)", "accessor"),
    ]
    .into_iter()
    .filter_map(|(l, k)| field(&actor, k).map(|v| (l, v.to_string())))
    .collect();
    let mut what = vec![
        ("summary", s("summary").unwrap_or_default()),
        // The alert's stable identity: the same finding from any copy of the stream.
        ("alert id", s("id").unwrap_or_default()),
        ("severity", e.severity.clone()),
        ("category", s("category").unwrap_or_default()),
        ("rule", s("rule").unwrap_or_default()),
        ("time", s("time").unwrap_or_default()),
    ];
    if let Some(ev) = a.get("evidence").and_then(|v| v.as_object()) {
        if !ev.is_empty() {
            what.push(("evidence", Value::Object(ev.clone()).to_string()));
        }
    }
    let where_: Vec<(&'static str, String)> = [
        ("tenant", "tenant"),
        ("target tenant", "target_tenant"),
        ("path", "path"),
        ("operation", "operation"),
        ("outcome", "outcome"),
        ("request id", "request_id"),
    ]
    .into_iter()
    .filter_map(|(l, k)| s(k).map(|v| (l, v)))
    .collect();
    let adv = advice::for_category(field(a, "category").unwrap_or(""));
    let mut todo = vec![("what to do", adv.todo.to_string())];
    if let Some(r) = &e.runbook {
        todo.push(("runbook", r.clone()));
    }
    let none = |v: Vec<(&'static str, String)>, what: &str| {
        if v.is_empty() {
            vec![("", what.to_string())]
        } else {
            v
        }
    };
    vec![
        ("What happened", what),
        (
            "Who",
            none(who, "no single identity (a platform-wide finding)"),
        ),
        ("Where", none(where_, "the whole platform")),
        ("Why it matters", vec![("", adv.why.to_string())]),
        ("What to do", todo),
    ]
}

fn headline(e: &Entry) -> String {
    format!(
        "[{}] {}: {}",
        e.severity.to_uppercase(),
        field(&e.alert, "category").unwrap_or("alert"),
        field(&e.alert, "summary").unwrap_or(""),
    )
}

pub fn render(kind: Kind, entries: &[&Entry], prefix: &str) -> Body {
    let n = entries.len();
    let mut counts: Vec<(String, usize)> = Vec::new();
    for sev in ["critical", "high", "warning", "info"] {
        let c = entries.iter().filter(|e| e.severity == sev).count();
        if c > 0 {
            counts.push((sev.to_string(), c));
        }
    }
    let counted = counts
        .iter()
        .map(|(s, c)| format!("{c} {s}"))
        .collect::<Vec<_>>()
        .join(", ");
    let pre = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix} ")
    };
    let subject = match (kind, n) {
        (Kind::Immediate, 1) => format!("{pre}{}", headline(entries[0])),
        (Kind::Immediate, _) => format!("{pre}{n} alerts ({counted})"),
        (Kind::Digest, _) => format!(
            "{pre}digest: {n} alert{} ({counted})",
            if n == 1 { "" } else { "s" }
        ),
    };
    let subject = one_line(&subject, 200);
    let intro = match kind {
        Kind::Immediate => format!(
            "auditwatch raised {n} alert{} that cannot wait.",
            if n == 1 { "" } else { "s" }
        ),
        Kind::Digest => format!(
            "auditwatch digest: {n} alert{} ({counted}) since the last digest.",
            if n == 1 { "" } else { "s" }
        ),
    };

    let mut text = format!("{intro}\n");
    let mut html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title></head>\n<body style=\"font-family:sans-serif\">\n<p>{}</p>\n",
        escape(&subject),
        escape(&intro)
    );
    if n > 1 {
        text.push_str("\nIn this mail:\n");
        html.push_str("<ol>\n");
        for e in entries {
            let _ = writeln!(text, "  - {}", one_line(&headline(e), 300));
            let _ = writeln!(html, "<li>{}</li>", escape(&headline(e)));
        }
        html.push_str("</ol>\n");
    }
    for (i, e) in entries.iter().enumerate() {
        let _ = write!(text, "\n== {}. {}\n", i + 1, one_line(&headline(e), 300));
        let _ = write!(html, "<hr>\n<h2>{}. {}</h2>\n", i + 1, escape(&headline(e)));
        for (heading, lines) in sections(e) {
            let _ = writeln!(text, "\n{heading}");
            let _ = writeln!(html, "<h3>{}</h3>\n<table>", escape(heading));
            for (label, value) in lines {
                if label.is_empty() {
                    let _ = writeln!(text, "  {value}");
                    let _ = writeln!(html, "<tr><td colspan=\"2\">{}</td></tr>", escape(&value));
                } else {
                    let _ = writeln!(text, "  {label}: {value}");
                    let cell = if label == "runbook" {
                        format!("<a href=\"{0}\">{0}</a>", escape(&value))
                    } else {
                        escape(&value)
                    };
                    let _ = writeln!(
                        html,
                        "<tr><th align=\"left\" valign=\"top\">{}</th><td>{cell}</td></tr>",
                        escape(label)
                    );
                }
            }
            html.push_str("</table>\n");
        }
    }
    text.push_str(
        "\n-- \nSent by auditwatch. Values are as in the alert record: HMAC'd, never a secret.\n",
    );
    html.push_str("<hr>\n<p><small>Sent by auditwatch. Values are as in the alert record: HMAC'd, never a secret.</small></p>\n</body></html>\n");
    Body {
        subject,
        text,
        html,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            v: 1,
            key: "k".into(),
            group: "g".into(),
            accepted_ms: 0,
            severity: "critical".into(),
            immediate: true,
            pending: vec!["a@x".into()],
            runbook: Some("https://runbooks.example/cross_tenant_read?a=1&b=2".into()),
            alert: serde_json::json!({
                "time": "2026-03-02T14:07:00Z", "rule": "cross-tenant-read",
                "category": "cross_tenant_read", "severity": "critical",
                "summary": "<script>alert(1)</script>\r\nBcc: evil@x",
                "tenant": "acme", "target_tenant": "lumen", "request_id": "req-1",
                "path": "secret/data/lumen/db", "operation": "read", "outcome": "allowed",
                "actor": {"display_name": "kubernetes-acme-eso", "entity_id": "ent-1", "remote_address": "10.0.0.1"},
                "evidence": {"kind": "allowed"}
            }),
        }
    }

    #[test]
    fn bodies_say_what_who_where_why_and_what_to_do_and_escape_everything() {
        let e = entry();
        let b = render(Kind::Immediate, &[&e], "[auditwatch]");
        assert!(b
            .subject
            .starts_with("[auditwatch] [CRITICAL] cross_tenant_read: "));
        assert!(!b.subject.contains('\n') && !b.subject.contains('\r'));
        for want in [
            "What happened",
            "Who",
            "kubernetes-acme-eso",
            "Where",
            "target tenant: lumen",
            "request id: req-1",
            "Why it matters",
            "What to do",
            "https://runbooks.example/cross_tenant_read?a=1&b=2",
        ] {
            assert!(b.text.contains(want), "text lacks {want}:\n{}", b.text);
        }
        assert!(!b.html.contains("<script>"), "{}", b.html);
        assert!(b.html.contains("&lt;script&gt;"));
        assert!(b.html.contains("?a=1&amp;b=2"));
        assert!(b.html.contains("10.0.0.1"));
    }

    #[test]
    fn digests_count_by_severity() {
        let a = entry();
        let mut w = entry();
        w.severity = "warning".into();
        let b = render(Kind::Digest, &[&a, &w, &w], "");
        assert_eq!(b.subject, "digest: 3 alerts (1 critical, 2 warning)");
        assert_eq!(b.text.matches("\n== ").count(), 3);
    }
}
