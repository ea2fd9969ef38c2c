//! The settings of the detector kinds that learn what normal looks like, as rule data:
//! `first_seen` (a value a key never had during its learning period) and `hour_profile`
//! (an hour of the week a key was never active in). Nothing here runs; the engine's
//! `detect::first_seen` and `detect::hour_profile` do.

use crate::yaml::{self, Ctx, MapReader};

use super::condition::{self, Field};

/// How a `first_seen` value is normalised before it is learned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Normalise {
    /// The value as it is.
    None,
    /// A KV path to the secret it names: the KV v2 API segments (`data/`, `metadata/`,
    /// `delete/`, `undelete/`, `destroy/`, `subkeys/`) after the mount are dropped, and a
    /// trailing `/` (a LIST) too, so reading a secret, its metadata and its versions are one
    /// secret.
    KvSecret,
}

/// Settings of a `first_seen` detector.
#[derive(Clone, Debug, PartialEq)]
pub struct FirstSeenSpec {
    pub key: Vec<Field>,
    /// Every value of this field is learned (a multi-valued field: each of them).
    pub value: Field,
    pub normalise: Normalise,
    /// The learning period; `None` takes the config's `learning.period_secs`.
    pub learn_secs: Option<u64>,
    /// Only a new value among these is a finding; the others are learned only. Empty: any.
    pub fire_on: Vec<String>,
    /// Whether a value has a learning period of its own, from anyone's first entry with
    /// it (a new tenant's paths). `false` for a small fixed set (identity classes): a value
    /// first seen now is new for the key all the same.
    pub learn_values: bool,
    pub max_keys: u64,
    /// (key, value) pairs kept in all, and distinct values kept.
    pub max_values: u64,
    pub max_values_per_key: u64,
}

/// Settings of an `hour_profile` detector.
#[derive(Clone, Debug, PartialEq)]
pub struct HourProfileSpec {
    pub key: Vec<Field>,
    pub learn_secs: Option<u64>,
    /// A slot this many hours from one with history (same week, either side) counts as
    /// known: a start 20 minutes early is no finding.
    pub tolerance_hours: u64,
    /// The workdays of the config's `business_hours.days` are alike: an hour with history
    /// on any workday is known on every workday (a person whose meetings move around the
    /// week), while the other days keep their own hours.
    pub workdays_alike: bool,
    pub max_keys: u64,
}

/// The fields these kinds take besides `kind` (for the rule decoder's list).
pub const FIELDS: &[&str] = &[
    "value",
    "normalise",
    "learn_secs",
    "fire_on",
    "learn_values",
    "max_values",
    "max_values_per_key",
    "tolerance_hours",
    "workdays_alike",
];

/// The largest `learn_secs` (a year).
const MAX_LEARN_SECS: u64 = crate::config::learning::MAX_PERIOD_SECS;

fn learn_secs(ctx: &mut Ctx, m: &mut MapReader) -> Option<Option<u64>> {
    match m.take("learn_secs") {
        None => Some(None),
        Some(n) => yaml::positive_at_most(ctx, n, "learn_secs", MAX_LEARN_SECS).map(Some),
    }
}

/// Decode a `first_seen` detector's fields (the key is read by the caller).
pub fn decode_first_seen(
    ctx: &mut Ctx,
    m: &mut MapReader,
    key: Option<Vec<Field>>,
) -> Option<FirstSeenSpec> {
    let value = m.require(ctx, "value", "detector").and_then(|n| {
        let s = yaml::string(ctx, n, "value")?;
        let f = Field::parse(&s);
        if f.is_none() {
            ctx.error(
                n,
                format!(
                    "value: unknown field `{s}`; expected one of: {}",
                    condition::FIELD_NAMES.join(", ")
                ),
            );
        }
        f
    });
    let normalise = match m.take("normalise") {
        None => Some(Normalise::None),
        Some(n) => match yaml::string(ctx, n, "normalise").as_deref() {
            Some("none") => Some(Normalise::None),
            Some("kv_secret") => Some(Normalise::KvSecret),
            Some(other) => {
                ctx.error(
                    n,
                    format!("normalise: unknown `{other}`; expected one of: none, kv_secret"),
                );
                None
            }
            None => None,
        },
    };
    let learn = learn_secs(ctx, m);
    let fire_on = m
        .take("fire_on")
        .map_or(Vec::new(), |n| yaml::string_list(ctx, n, "fire_on"));
    let learn_values = m
        .take("learn_values")
        .map_or(Some(true), |n| yaml::boolean(ctx, n, "learn_values"));
    let max_keys = m.positive_or(ctx, "max_keys", super::DEFAULT_MAX_KEYS);
    let max_values = m.positive_or(ctx, "max_values", 1_000_000);
    let per_key = m.positive_or(ctx, "max_values_per_key", 10_000);
    Some(FirstSeenSpec {
        key: key?,
        value: value?,
        normalise: normalise?,
        learn_secs: learn?,
        fire_on,
        learn_values: learn_values?,
        max_keys: max_keys?,
        max_values: max_values?,
        max_values_per_key: per_key?,
    })
}

/// Decode an `hour_profile` detector's fields (the key is read by the caller).
pub fn decode_hour_profile(
    ctx: &mut Ctx,
    m: &mut MapReader,
    key: Option<Vec<Field>>,
) -> Option<HourProfileSpec> {
    let learn = learn_secs(ctx, m);
    let tolerance = m.take("tolerance_hours").map_or(Some(0), |n| {
        yaml::uint_at_most(ctx, n, "tolerance_hours", 12)
    });
    let alike = m
        .take("workdays_alike")
        .map_or(Some(false), |n| yaml::boolean(ctx, n, "workdays_alike"));
    let max_keys = m.positive_or(ctx, "max_keys", super::DEFAULT_MAX_KEYS);
    Some(HourProfileSpec {
        key: key?,
        learn_secs: learn?,
        tolerance_hours: tolerance?,
        workdays_alike: alike?,
        max_keys: max_keys?,
    })
}

/// A KV path to the secret it names (see [`Normalise::KvSecret`]). `mount` is the
/// request's mount point when the audit entry carries it (`secret/`, `kv/team-a/`); without
/// it the first segment is taken as the mount.
pub fn kv_secret<'a>(path: &'a str, mount: Option<&str>) -> std::borrow::Cow<'a, str> {
    const API: &[&str] = &[
        "data/",
        "metadata/",
        "delete/",
        "undelete/",
        "destroy/",
        "subkeys/",
    ];
    let path = path.trim_end_matches('/');
    let mount_len = match mount.filter(|m| !m.is_empty() && path.starts_with(m)) {
        Some(m) => m.len(),
        None => path.find('/').map_or(path.len(), |i| i + 1),
    };
    let (head, rest) = path.split_at(mount_len.min(path.len()));
    match API.iter().find_map(|a| rest.strip_prefix(a)) {
        Some(secret) => std::borrow::Cow::Owned(format!("{head}{secret}")),
        None => match API.iter().find(|a| rest == a.trim_end_matches('/')) {
            // `secret/metadata` (a LIST of the mount's root): the mount itself.
            Some(_) => std::borrow::Cow::Owned(head.trim_end_matches('/').to_string()),
            None => std::borrow::Cow::Borrowed(path),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_of_these_kinds_is_known_to_the_rule_decoder() {
        for f in FIELDS {
            assert!(super::super::DETECTOR_FIELDS.contains(f), "{f}");
        }
    }

    #[test]
    fn kv_v2_paths_name_their_secret() {
        let cases = [
            (
                "secret/data/bookstore-platform/acme/db",
                None,
                "secret/bookstore-platform/acme/db",
            ),
            (
                "secret/metadata/bookstore-platform/acme/db",
                Some("secret/"),
                "secret/bookstore-platform/acme/db",
            ),
            (
                "secret/metadata/bookstore-platform/acme/",
                None,
                "secret/bookstore-platform/acme",
            ),
            ("secret/destroy/app/x", None, "secret/app/x"),
            ("secret/metadata", None, "secret"),
            ("kv/team-a/data/app", Some("kv/team-a/"), "kv/team-a/app"),
            // Without the mount point, a nested mount is not guessed: left as it is.
            ("kv/team-a/data/app", None, "kv/team-a/data/app"),
            (
                "database/creds/bookstore-platform-acme",
                None,
                "database/creds/bookstore-platform-acme",
            ),
            ("secret/app/data", None, "secret/app/data"),
            ("", None, ""),
        ];
        for (path, mount, want) in cases {
            assert_eq!(kv_secret(path, mount), want, "{path} {mount:?}");
        }
    }
}
