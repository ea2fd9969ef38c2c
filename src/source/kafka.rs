//! The Kafka consumer-group source's settings, client configuration and record framing.
//!
//! Audit logs of many Vault clusters, shipped to Kafka by Vector or Fluent Bit with the
//! cluster as the record key, are read by a consumer group of `auditwatch run` instances:
//! Kafka assigns the partitions, and the daemon runs one pipeline per assigned partition
//! (`crate::daemon::kafka`). This module knows no pipeline: it decodes `kind: kafka`
//! (every problem with its position), builds librdkafka's client settings from it (TLS and
//! SASL as Kafka users configure them; a password is read from a file, never written in
//! the config) and frames a record's value into whole lines, the way the other live
//! sources frame their bytes: a value may hold one entry or several lines, a line longer
//! than the cap is skipped and reported with its first bytes.

use std::path::PathBuf;

use rdkafka::ClientConfig;

use super::{start_at, StartAt};
use crate::yaml::{self, non_empty_path, Ctx, MapReader};

/// How the member authenticates with SASL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaslMechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl SaslMechanism {
    /// librdkafka's `sasl.mechanism` value.
    pub fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Sasl {
    pub mechanism: SaslMechanism,
    pub username: String,
    /// The password's file (its content, less a trailing newline).
    pub password_file: PathBuf,
}

/// TLS to the brokers: `ca_file` checks their certificates (the system's roots without
/// it); `cert_file` and `key_file`, both or neither, present a client certificate.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Tls {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct KafkaSource {
    /// Bootstrap brokers, `HOST:PORT`.
    pub brokers: Vec<String>,
    pub topics: Vec<String>,
    pub group_id: String,
    /// Where a partition without a committed offset (and without a state snapshot) starts.
    pub start_at: StartAt,
    /// One engine per record key within a partition (several clusters keyed into one
    /// partition stay apart); records without a key share one.
    pub key_as_stream: bool,
    /// The compacted topic holding each partition's engine state.
    pub state_topic: String,
    /// How often each partition's engine state is snapshotted to `state_topic`.
    pub snapshot_interval_secs: u64,
    /// Partitions with their own `partition` metric label on one member; a member given
    /// more still runs them, and their series count as `other`.
    pub max_partitions: usize,
    pub tls: Option<Tls>,
    pub sasl: Option<Sasl>,
}

/// The default cap on partitions with their own metric series per member.
pub const DEFAULT_MAX_PARTITIONS: u64 = 64;

/// Distinct record keys with their own engine per partition (`key_as_stream`); later
/// keys share the partition's keyless engine, counted
/// (`auditwatch_kafka_keyless_fallback_records_total`).
pub const MAX_STREAMS_PER_PARTITION: usize = 64;
/// The longest record key that names a stream (a cluster name); a longer one is run on
/// the partition's keyless engine, counted as above.
pub const MAX_KEY_BYTES: usize = 256;

impl KafkaSource {
    /// librdkafka's settings common to the consumer, the state producer and the state
    /// reader: brokers, TLS, SASL. The password file is read here.
    pub fn client_config(&self) -> Result<ClientConfig, String> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.brokers.join(","));
        // librdkafka logs through the client context (the daemon's log), not stderr.
        c.set("log.connection.close", "false");
        let protocol = match (&self.tls, &self.sasl) {
            (None, None) => "plaintext",
            (Some(_), None) => "ssl",
            (None, Some(_)) => "sasl_plaintext",
            (Some(_), Some(_)) => "sasl_ssl",
        };
        c.set("security.protocol", protocol);
        if let Some(t) = &self.tls {
            if let Some(p) = &t.ca_file {
                c.set("ssl.ca.location", p.display().to_string());
            }
            if let (Some(cert), Some(key)) = (&t.cert_file, &t.key_file) {
                c.set("ssl.certificate.location", cert.display().to_string());
                c.set("ssl.key.location", key.display().to_string());
            }
        }
        if let Some(s) = &self.sasl {
            let password = std::fs::read_to_string(&s.password_file).map_err(|e| {
                format!(
                    "cannot read the sasl password file {}: {e}",
                    s.password_file.display()
                )
            })?;
            c.set("sasl.mechanism", s.mechanism.as_str());
            c.set("sasl.username", &s.username);
            c.set("sasl.password", password.trim_end_matches(['\n', '\r']));
        }
        Ok(c)
    }

    /// The consumer's settings: the group, manual commits only, where to start.
    pub fn consumer_config(&self) -> Result<ClientConfig, String> {
        let mut c = self.client_config()?;
        c.set("group.id", &self.group_id)
            // Offsets are committed by the daemon once the alerts of the records before
            // them are durably with the sinks; never by a timer.
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set(
                "auto.offset.reset",
                match self.start_at {
                    StartAt::Beginning => "earliest",
                    StartAt::End => "latest",
                },
            )
            // A dead member's partitions move after this long.
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            // Eager rebalancing: a revoked partition's engine is snapshotted before anyone
            // else may read it.
            .set("partition.assignment.strategy", "range");
        Ok(c)
    }
}

/// Decode the fields of a `kind: kafka` source (the caller has taken `name` and `kind`).
pub fn kafka_source(ctx: &mut Ctx, m: &mut MapReader) -> Option<KafkaSource> {
    let brokers = m.require(ctx, "brokers", "a kafka source").and_then(|n| {
        let list = yaml::string_list(ctx, n, "brokers");
        let mut ok = !list.is_empty();
        if list.is_empty() {
            ctx.error(n, "brokers must list at least one HOST:PORT");
        }
        for b in &list {
            let port = b.rsplit_once(':').and_then(|(h, p)| {
                (!h.is_empty()).then_some(())?;
                p.parse::<u16>().ok().filter(|p| *p > 0)
            });
            if port.is_none() {
                ctx.error(n, format!("broker `{b}` must be HOST:PORT"));
                ok = false;
            }
        }
        ok.then_some(list)
    });
    let topics = m.require(ctx, "topics", "a kafka source").and_then(|n| {
        let list = yaml::string_list(ctx, n, "topics");
        let bad: Vec<&String> = list.iter().filter(|t| !valid_topic(t)).collect();
        if list.is_empty() {
            ctx.error(n, "topics must list at least one topic");
            None
        } else if let Some(t) = bad.first() {
            ctx.error(
                n,
                format!("topic `{t}` must be 1-249 of a-z, A-Z, 0-9, `.`, `_`, `-`"),
            );
            None
        } else {
            Some(list)
        }
    });
    let group_id = m.require(ctx, "group_id", "a kafka source").and_then(|n| {
        match yaml::string(ctx, n, "group_id") {
            Some(g) if !g.is_empty() && !g.contains('/') => Some(g),
            Some(_) => {
                ctx.error(n, "group_id must be non-empty and hold no `/`");
                None
            }
            None => None,
        }
    });
    let start_at = start_at(ctx, m);
    let key_as_stream = match m.take("key_as_stream") {
        None => Some(false),
        Some(n) => yaml::boolean(ctx, n, "key_as_stream"),
    };
    let state_topic = match m.take("state_topic") {
        None => group_id.as_ref().map(|g| format!("{g}.auditwatch-state")),
        Some(n) => yaml::string(ctx, n, "state_topic").and_then(|t| {
            if valid_topic(&t) {
                Some(t)
            } else {
                ctx.error(
                    n,
                    format!("state_topic `{t}` must be 1-249 of a-z, A-Z, 0-9, `.`, `_`, `-`"),
                );
                None
            }
        }),
    };
    let snapshot_interval_secs = m
        .take("snapshot_interval_secs")
        .map(|n| yaml::positive_at_most(ctx, n, "snapshot_interval_secs", 86_400))
        .unwrap_or(Some(30));
    let max_partitions = m
        .take("max_partitions")
        .map(|n| yaml::positive_at_most(ctx, n, "max_partitions", 4096))
        .unwrap_or(Some(DEFAULT_MAX_PARTITIONS));
    let tls = match m.take("tls") {
        None => Some(None),
        Some(n) => tls(ctx, n).map(Some),
    };
    let sasl = match m.take("sasl") {
        None => Some(None),
        Some(n) => sasl(ctx, n).map(Some),
    };
    Some(KafkaSource {
        brokers: brokers?,
        topics: topics?,
        group_id: group_id?,
        start_at: start_at?,
        key_as_stream: key_as_stream?,
        state_topic: state_topic?,
        snapshot_interval_secs: snapshot_interval_secs?,
        max_partitions: max_partitions? as usize,
        tls: tls?,
        sasl: sasl?,
    })
}

fn tls(ctx: &mut Ctx, n: &yaml::Node) -> Option<Tls> {
    let mut m = MapReader::new(ctx, n, "tls")?;
    let path = |m: &mut MapReader, ctx: &mut Ctx, k: &'static str| match m.take(k) {
        None => Some(None),
        Some(v) => non_empty_path(ctx, v, k).map(Some),
    };
    let ca_file = path(&mut m, ctx, "ca_file");
    let cert_file = path(&mut m, ctx, "cert_file");
    let key_file = path(&mut m, ctx, "key_file");
    m.finish(ctx, "tls");
    let t = Tls {
        ca_file: ca_file?,
        cert_file: cert_file?,
        key_file: key_file?,
    };
    if t.cert_file.is_some() != t.key_file.is_some() {
        ctx.error(n, "tls: cert_file and key_file go together");
        return None;
    }
    Some(t)
}

fn sasl(ctx: &mut Ctx, n: &yaml::Node) -> Option<Sasl> {
    let mut m = MapReader::new(ctx, n, "sasl")?;
    let mechanism = m.require(ctx, "mechanism", "sasl").and_then(|v| {
        match yaml::string(ctx, v, "mechanism").as_deref() {
            Some("PLAIN") => Some(SaslMechanism::Plain),
            Some("SCRAM-SHA-256") => Some(SaslMechanism::ScramSha256),
            Some("SCRAM-SHA-512") => Some(SaslMechanism::ScramSha512),
            Some(o) => {
                ctx.error(
                    v,
                    format!(
                        "sasl mechanism must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, found `{o}`"
                    ),
                );
                None
            }
            None => None,
        }
    });
    let username = m
        .require(ctx, "username", "sasl")
        .and_then(|v| yaml::string(ctx, v, "username"));
    if let Some(v) = m.take("password") {
        ctx.error(
            v,
            "sasl: put the password in a file and name it with `password_file` (a config file is read by more people than a secret should be)",
        );
    }
    let password_file = m
        .require(ctx, "password_file", "sasl")
        .and_then(|v| non_empty_path(ctx, v, "password_file"));
    m.finish(ctx, "sasl");
    Some(Sasl {
        mechanism: mechanism?,
        username: username?,
        password_file: password_file?,
    })
}

/// Kafka's rule for topic names.
fn valid_topic(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 249
        && t != "."
        && t != ".."
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// What [`frame_record`] made of a record's value.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Framed {
    /// Lines appended.
    pub lines: u64,
    /// Lines longer than the cap, skipped: their size (newline included) and first bytes.
    pub too_long: Vec<(u64, Vec<u8>)>,
}

/// Bytes of a skipped line kept to report it.
const HEAD_BYTES: usize = 256;

/// Append the lines of a record's value to `out`, each ending with `\n`: a value holds
/// one entry (a shipper's usual record, with or without a final newline) or several
/// lines. Blank lines are dropped; a line longer than `max_line` is skipped and returned.
pub fn frame_record(value: &[u8], max_line: usize, out: &mut Vec<u8>) -> Framed {
    let mut f = Framed::default();
    for line in value.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if line.len() > max_line {
            f.too_long.push((
                line.len() as u64 + 1,
                line[..HEAD_BYTES.min(line.len())].to_vec(),
            ));
            continue;
        }
        out.extend_from_slice(line);
        out.push(b'\n');
        f.lines += 1;
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_value_is_framed_into_lines() {
        let mut out = Vec::new();
        let f = frame_record(b"{\"a\":1}", 100, &mut out);
        assert_eq!((f.lines, out.as_slice()), (1, &b"{\"a\":1}\n"[..]));
        out.clear();
        let f = frame_record(b"{\"a\":1}\r\n\n  \n{\"b\":2}\n", 100, &mut out);
        assert_eq!(
            (f.lines, out.as_slice()),
            (2, &b"{\"a\":1}\n{\"b\":2}\n"[..])
        );
        out.clear();
        let long = vec![b'x'; 300];
        let mut v = long.clone();
        v.extend_from_slice(b"\n{}\n");
        let f = frame_record(&v, 100, &mut out);
        assert_eq!(f.lines, 1);
        assert_eq!(out, b"{}\n");
        assert_eq!(f.too_long, vec![(301, long[..256].to_vec())]);
    }
}
