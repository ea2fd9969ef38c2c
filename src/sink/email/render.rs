//! Mail subjects and bodies (plain text and HTML) built from outbox entries only: each
//! alert's record (already HMAC'd and secret-free), its runbook link and the category's
//! advice. Nothing else goes in, so a mail can never carry more than the alert did. Every
//! value is escaped in HTML and stripped of line breaks in the subject.
//!
//! The HTML is made for mail clients (inline styles, tables, no script or external
//! resource): a banner in the severity's colour, times in the configured business-hours
//! time zone and in UTC, the evidence as a table, and one "what to do" block. Its size is
//! measured by the sink, which splits a digest so no part passes [`HTML_MAX_BYTES`].

use std::fmt::Write as _;

use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde_json::Value;

use super::outbox::Entry;
use super::plan::Kind;
use crate::sink::advice;

/// Most HTML in one mail: Gmail clips a message whose HTML passes 102 KB ("[Message
/// clipped]", the rest behind a link); this leaves room for the transfer encoding.
pub const HTML_MAX_BYTES: usize = 90 * 1024;

/// Longest evidence value shown (characters); evidence lists can be long.
const EVIDENCE_VALUE_MAX: usize = 400;
/// Most evidence rows per alert.
const EVIDENCE_ROWS_MAX: usize = 30;

/// A rendered mail.
pub struct Body {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// What a mail is besides its alerts.
pub struct Frame<'a> {
    pub kind: Kind,
    pub prefix: &'a str,
    /// Part `i` of `n` when a digest was split to stay under the clipping size.
    pub part: Option<(usize, usize)>,
    /// The business-hours time zone: times are shown there and in UTC.
    pub tz: &'a TimeZone,
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

/// The severity's colour (banner background) and a word for screen readers and text.
fn colour(severity: &str) -> &'static str {
    match severity {
        "critical" => "#b71c1c",
        "high" => "#e65100",
        "warning" => "#9a6700",
        _ => "#1565c0",
    }
}

/// An RFC 3339 time as a person reads it: local (the business-hours zone) and UTC, to the
/// second. What does not parse is shown as it is.
pub fn human_time(raw: &str, tz: &TimeZone) -> String {
    let Ok(t) = raw.parse::<Timestamp>() else {
        return raw.to_string();
    };
    let utc = t.to_zoned(TimeZone::UTC);
    let local = t.to_zoned(tz.clone());
    if local.offset() == utc.offset() && tz.iana_name().is_none_or(|n| n == "UTC") {
        return utc.strftime("%Y-%m-%d %H:%M:%S UTC").to_string();
    }
    format!(
        "{} ({} UTC)",
        local.strftime("%a %Y-%m-%d %H:%M:%S %Z"),
        utc.strftime("%H:%M:%S")
    )
}

/// The evidence object as rows: nested keys joined with `.`, lists joined with `, `,
/// values cut to a readable length, at most [`EVIDENCE_ROWS_MAX`] rows.
fn evidence_rows(ev: &serde_json::Map<String, Value>) -> Vec<(String, String)> {
    fn walk(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    let key = if prefix.is_empty() {
                        k.replace('_', " ")
                    } else {
                        format!("{prefix}.{}", k.replace('_', " "))
                    };
                    walk(&key, v, out);
                }
            }
            Value::Array(items) => {
                let parts: Vec<String> = items
                    .iter()
                    .map(|i| match i {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect();
                out.push((prefix.to_string(), parts.join(", ")));
            }
            Value::String(s) => out.push((prefix.to_string(), s.clone())),
            Value::Null => {}
            other => out.push((prefix.to_string(), other.to_string())),
        }
    }
    let mut out = Vec::new();
    walk("", &Value::Object(ev.clone()), &mut out);
    let more = out.len().saturating_sub(EVIDENCE_ROWS_MAX);
    out.truncate(EVIDENCE_ROWS_MAX);
    for (_, v) in out.iter_mut() {
        *v = one_line(v, EVIDENCE_VALUE_MAX);
    }
    if more > 0 {
        out.push((String::new(), format!("… {more} more in the alert record")));
    }
    out
}

type Rows = Vec<(String, String)>;

/// The sections of one alert: (heading, rows as label/value pairs; an empty label is a
/// line of its own).
fn sections(e: &Entry, tz: &TimeZone) -> Vec<(&'static str, Rows)> {
    let a = &e.alert;
    let s = |k| field(a, k).map(str::to_string);
    let row = |l: &str, v: String| (l.to_string(), v);
    let actor = a.get("actor").cloned().unwrap_or(Value::Null);
    let who: Rows = [
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
    .filter_map(|(l, k)| field(&actor, k).map(|v| row(l, v.to_string())))
    .collect();
    // The summary is the alert's headline, above these rows.
    let what = vec![
        row("when", human_time(field(a, "time").unwrap_or(""), tz)),
        row("severity", e.severity.clone()),
        row("category", s("category").unwrap_or_default()),
        row("rule", s("rule").unwrap_or_default()),
        // The alert's stable identity: the same finding from any copy of the stream.
        row("alert id", s("id").unwrap_or_default()),
    ];
    let where_: Rows = [
        ("tenant", "tenant"),
        ("target tenant", "target_tenant"),
        ("path", "path"),
        ("operation", "operation"),
        ("outcome", "outcome"),
        ("request id", "request_id"),
    ]
    .into_iter()
    .filter_map(|(l, k)| s(k).map(|v| row(l, v)))
    .collect();
    let evidence = a
        .get("evidence")
        .and_then(|v| v.as_object())
        .map(evidence_rows)
        .unwrap_or_default();
    let adv = advice::for_category(field(a, "category").unwrap_or(""));
    let mut todo = vec![row("", adv.todo.to_string())];
    if let Some(r) = &e.runbook {
        todo.push(row("runbook", r.clone()));
    }
    let none = |v: Rows, what: &str| {
        if v.is_empty() {
            vec![row("", what.to_string())]
        } else {
            v
        }
    };
    let mut out = vec![
        ("What happened", what),
        ("What to do", todo),
        (
            "Who",
            none(who, "no single identity (a platform-wide finding)"),
        ),
        ("Where", none(where_, "the whole platform")),
    ];
    if !evidence.is_empty() {
        out.push(("Evidence", evidence));
    }
    out.push(("Why it matters", vec![row("", adv.why.to_string())]));
    out
}

fn headline(e: &Entry) -> String {
    format!(
        "[{}] {}: {}",
        e.severity.to_uppercase(),
        field(&e.alert, "category").unwrap_or("alert"),
        field(&e.alert, "summary").unwrap_or(""),
    )
}

const TH: &str = "text-align:left;vertical-align:top;padding:3px 14px 3px 0;color:#57606a;font-weight:normal;white-space:nowrap;width:150px";
const TD: &str = "vertical-align:top;padding:3px 0;word-break:break-word";

pub fn render(f: &Frame<'_>, entries: &[&Entry]) -> Body {
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
    let pre = if f.prefix.is_empty() {
        String::new()
    } else {
        format!("{} ", f.prefix)
    };
    let part = f
        .part
        .map(|(i, k)| format!(" (part {i} of {k})"))
        .unwrap_or_default();
    let subject = match (f.kind, n) {
        (Kind::Immediate, 1) => format!("{pre}{}", headline(entries[0])),
        (Kind::Immediate, _) => format!("{pre}{n} alerts ({counted}){part}"),
        (Kind::Digest, _) => format!(
            "{pre}digest: {n} alert{} ({counted}){part}",
            if n == 1 { "" } else { "s" }
        ),
    };
    let subject = one_line(&subject, 200);
    let intro = match f.kind {
        Kind::Immediate => format!(
            "auditwatch raised {n} alert{} that cannot wait.",
            if n == 1 { "" } else { "s" }
        ),
        Kind::Digest => format!(
            "auditwatch digest{part}: {n} alert{} ({counted}) since the last digest.",
            if n == 1 { "" } else { "s" }
        ),
    };

    let mut text = format!("{intro}\n");
    let mut html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><meta name=\"color-scheme\" content=\"light\"><title>{}</title></head>\n<body style=\"margin:0;padding:16px;background:#f4f5f7;font-family:-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;font-size:14px;line-height:1.45;color:#1f2328\">\n<div style=\"max-width:760px;margin:0 auto\">\n<p style=\"margin:0 0 12px\">{}</p>\n",
        escape(&subject),
        escape(&intro)
    );
    if n > 1 {
        text.push_str("\nIn this mail:\n");
        html.push_str("<table role=\"presentation\" style=\"border-collapse:collapse;margin:0 0 12px;background:#fff;width:100%\">\n");
        for (i, e) in entries.iter().enumerate() {
            let _ = writeln!(text, "  {}. {}", i + 1, one_line(&headline(e), 300));
            let _ = writeln!(
                html,
                "<tr><td style=\"padding:4px 8px;width:1%;white-space:nowrap\"><span style=\"background:{};color:#fff;border-radius:3px;padding:1px 6px;font-size:12px;font-weight:bold\">{}</span></td><td style=\"padding:4px 8px\"><a href=\"#a{}\" style=\"color:#1f2328\">{}. {}: {}</a></td></tr>",
                colour(&e.severity),
                escape(&e.severity.to_uppercase()),
                i + 1,
                i + 1,
                escape(field(&e.alert, "category").unwrap_or("alert")),
                escape(&one_line(field(&e.alert, "summary").unwrap_or(""), 160)),
            );
        }
        html.push_str("</table>\n");
    }
    for (i, e) in entries.iter().enumerate() {
        let _ = write!(text, "\n== {}. {}\n", i + 1, one_line(&headline(e), 300));
        let c = colour(&e.severity);
        let _ = write!(
            html,
            "<div id=\"a{}\" style=\"background:#fff;border:1px solid #d0d7de;border-top:6px solid {c};border-radius:6px;margin:0 0 16px;padding:0 16px 12px\">\n<p style=\"margin:12px 0 4px\"><span style=\"background:{c};color:#fff;border-radius:3px;padding:2px 8px;font-weight:bold;letter-spacing:.04em\">{}</span> <span style=\"color:#555\">{}</span></p>\n<h2 style=\"font-size:17px;margin:6px 0 10px\">{}</h2>\n",
            i + 1,
            escape(&e.severity.to_uppercase()),
            escape(field(&e.alert, "category").unwrap_or("alert")),
            escape(field(&e.alert, "summary").unwrap_or("")),
        );
        // One table for all sections, so the labels line up down the whole alert.
        html.push_str(
            "<table role=\"presentation\" style=\"border-collapse:collapse;width:100%\">\n",
        );
        for (heading, lines) in sections(e, f.tz) {
            let _ = writeln!(text, "\n{heading}");
            let _ = writeln!(
                html,
                "<tr><td colspan=\"2\" style=\"padding:14px 0 4px;font-size:12px;font-weight:bold;text-transform:uppercase;letter-spacing:.06em;color:#57606a\"><h3 style=\"font-size:12px;margin:0\">{}</h3></td></tr>",
                escape(heading)
            );
            for (label, value) in lines {
                if label.is_empty() {
                    let _ = writeln!(text, "  {value}");
                    // The advice stands out: it is what the reader came for.
                    let style = if heading == "What to do" {
                        format!("{TD};background:#f6f8fa;border-left:4px solid {c};padding:8px 10px;font-weight:600")
                    } else {
                        TD.to_string()
                    };
                    let _ = writeln!(
                        html,
                        "<tr><td colspan=\"2\" style=\"{style}\">{}</td></tr>",
                        escape(&value)
                    );
                } else {
                    let _ = writeln!(text, "  {label}: {value}");
                    let cell = if label == "runbook" {
                        format!("<a href=\"{0}\">{0}</a>", escape(&value))
                    } else {
                        escape(&value)
                    };
                    let _ = writeln!(
                        html,
                        "<tr><th style=\"{TH}\">{}</th><td style=\"{TD}\">{cell}</td></tr>",
                        escape(&label)
                    );
                }
            }
        }
        html.push_str("</table>\n</div>\n");
    }
    text.push_str(
        "\n-- \nSent by auditwatch. Values are as in the alert record: HMAC'd, never a secret.\n",
    );
    html.push_str("<p style=\"color:#57606a;font-size:12px\">Sent by auditwatch. Values are as in the alert record: HMAC'd, never a secret.</p>\n</div>\n</body></html>\n");
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

    fn frame<'a>(kind: Kind, prefix: &'a str, tz: &'a TimeZone) -> Frame<'a> {
        Frame {
            kind,
            prefix,
            part: None,
            tz,
        }
    }

    #[test]
    fn bodies_say_what_who_where_why_and_what_to_do_and_escape_everything() {
        let e = entry();
        let tz = TimeZone::get("Europe/Berlin").unwrap();
        let b = render(&frame(Kind::Immediate, "[auditwatch]", &tz), &[&e]);
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
        // One "what to do", said once, before the details.
        assert_eq!(b.text.matches("What to do").count(), 1, "{}", b.text);
        assert!(!b.text.to_lowercase().contains("what to do:"), "{}", b.text);
        assert!(b.text.find("What to do") < b.text.find("Who"));
        // Local (business hours) and UTC time to the second, not nanoseconds.
        assert!(
            b.text
                .contains("when: Mon 2026-03-02 15:07:00 CET (14:07:00 UTC)"),
            "{}",
            b.text
        );
        // The evidence is rows, not JSON.
        assert!(
            b.text.contains("\nEvidence\n  kind: allowed\n"),
            "{}",
            b.text
        );
        assert!(!b.text.contains("{\""), "{}", b.text);
        // The severity's colour on the banner.
        assert!(
            b.html.contains("border-top:6px solid #b71c1c"),
            "{}",
            b.html
        );
    }

    #[test]
    fn times_and_evidence_read_as_a_person_reads_them() {
        assert_eq!(
            human_time("2026-03-02T07:06:12.050716765Z", &TimeZone::UTC),
            "2026-03-02 07:06:12 UTC"
        );
        let ny = TimeZone::get("America/New_York").unwrap();
        assert_eq!(
            human_time("2026-07-02T07:06:12.050716765Z", &ny),
            "Thu 2026-07-02 03:06:12 EDT (07:06:12 UTC)"
        );
        assert_eq!(human_time("not a time", &ny), "not a time");
        let ev = serde_json::json!({
            "admin_policies": ["bookstore-platform-admin", "root"],
            "window": {"count": 12, "secs": 60},
            "reason": "x".repeat(1000),
            "nothing": null
        });
        let rows = evidence_rows(ev.as_object().unwrap());
        assert_eq!(
            rows[0],
            (
                "admin policies".into(),
                "bookstore-platform-admin, root".into()
            )
        );
        assert!(rows
            .iter()
            .any(|r| r == &("window.count".to_string(), "12".to_string())));
        assert!(rows
            .iter()
            .all(|(_, v)| v.chars().count() <= EVIDENCE_VALUE_MAX));
        assert_eq!(rows.len(), 4);
        let many: serde_json::Map<String, Value> = (0..50)
            .map(|i| (format!("k{i:02}"), Value::from(i)))
            .collect();
        let rows = evidence_rows(&many);
        assert_eq!(rows.len(), EVIDENCE_ROWS_MAX + 1);
        assert_eq!(rows.last().unwrap().1, "… 20 more in the alert record");
    }

    #[test]
    fn digests_count_by_severity() {
        let a = entry();
        let mut w = entry();
        w.severity = "warning".into();
        let b = render(&frame(Kind::Digest, "", &TimeZone::UTC), &[&a, &w, &w]);
        assert_eq!(b.subject, "digest: 3 alerts (1 critical, 2 warning)");
        assert_eq!(b.text.matches("\n== ").count(), 3);
    }
}
