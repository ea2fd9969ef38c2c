//! Timestamps: a fast path for the RFC 3339 forms Vault and OpenBao write, to Unix
//! nanoseconds, and the formatting used in alert records.
//!
//! Vault writes `time.Now().UTC().Format(RFC3339Nano)` (`2026-03-02T14:07:00.123456789Z`);
//! Vault 0.6/0.7 wrote whole seconds; `token_issue_time` carries a local offset. All of
//! those are accepted; anything else is `None` and the entry is counted as untimed.

/// Parse an RFC 3339 timestamp (`Z` or `±hh:mm` offset, optional fraction) to Unix ns.
pub fn parse_rfc3339_nanos(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let year = digits(&b[0..4])? as i64;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let hour = digits(&b[11..13])?;
    let min = digits(&b[14..16])?;
    let sec = digits(&b[17..19])?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos: i64 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 9 {
                nanos = nanos * 10 + (b[i] - b'0') as i64;
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        for _ in n..9 {
            nanos *= 10;
        }
    }
    let offset_secs: i64 = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let oh = digits(&b[i + 1..i + 3])? as i64;
            let om = digits(&b[i + 4..i + 6])? as i64;
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if *sign == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour as i64 * 3600 + min as i64 * 60 + sec as i64 - offset_secs;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

fn digits(b: &[u8]) -> Option<u32> {
    let mut v = 0u32;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as u32;
    }
    Some(v)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date (year, month, day) of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Format Unix ns as RFC 3339 UTC: microseconds, or nanoseconds when they are not zero.
pub fn format_rfc3339(nanos: i64) -> String {
    let secs = nanos.div_euclid(1_000_000_000);
    let frac = nanos.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (sod / 3600, (sod % 3600) / 60, sod % 60);
    if frac % 1000 == 0 {
        format!(
            "{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{:06}Z",
            frac / 1000
        )
    } else {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{frac:09}Z")
    }
}

/// Parse a user-supplied time bound: RFC 3339, or a bare date `YYYY-MM-DD` (UTC midnight).
pub fn parse_time_bound(s: &str) -> Option<i64> {
    if let Some(n) = parse_rfc3339_nanos(s) {
        return Some(n);
    }
    let b = s.as_bytes();
    if b.len() == 10 && b[4] == b'-' && b[7] == b'-' {
        let y = digits(&b[0..4])? as i64;
        let m = digits(&b[5..7])?;
        let d = digits(&b[8..10])?;
        if (1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m) {
            return Some(days_from_civil(y, m, d) * 86_400 * 1_000_000_000);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vault_forms() {
        assert_eq!(parse_rfc3339_nanos("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_nanos("2017-12-12T08:12:38Z"),
            Some(1_513_066_358_000_000_000)
        );
        assert_eq!(
            parse_rfc3339_nanos("2026-03-02T14:07:00.123456789Z"),
            Some(1_772_460_420_123_456_789)
        );
        assert_eq!(
            parse_rfc3339_nanos("2025-12-16T15:05:28+04:00"),
            parse_rfc3339_nanos("2025-12-16T11:05:28Z")
        );
        assert_eq!(parse_rfc3339_nanos("2026-02-30T00:00:00Z"), None);
        assert_eq!(parse_rfc3339_nanos("garbage"), None);
        assert_eq!(parse_rfc3339_nanos("2026-03-02T14:07:00."), None);
    }

    #[test]
    fn formats_round_trip() {
        let n = parse_rfc3339_nanos("2026-03-02T14:07:00.123456Z").unwrap();
        assert_eq!(format_rfc3339(n), "2026-03-02T14:07:00.123456Z");
        let n = parse_rfc3339_nanos("2026-03-02T14:07:00.123456789Z").unwrap();
        assert_eq!(format_rfc3339(n), "2026-03-02T14:07:00.123456789Z");
        for days in [-1000, 0, 59, 60, 365, 11_000, 20_513] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn time_bounds() {
        assert_eq!(
            parse_time_bound("2026-03-02"),
            parse_rfc3339_nanos("2026-03-02T00:00:00Z")
        );
        assert_eq!(parse_time_bound("2026-13-02"), None);
    }
}
