//! Business hours: days of week and time ranges in an IANA time zone, holidays, and
//! declared change windows. Pure functions of an event timestamp.

use jiff::civil::Weekday;
use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::parse::time::{parse_rfc3339_nanos, parse_time_bound};
use crate::yaml::{self, Ctx, MapReader, Node};

#[derive(Clone, Debug)]
pub struct ChangeWindow {
    pub start: i64,
    pub end: i64,
    pub id: String,
}

#[derive(Clone, Debug)]
pub struct BusinessHours {
    pub time_zone_name: String,
    pub tz: TimeZone,
    /// Monday first.
    pub days: [bool; 7],
    /// Minute-of-day ranges, start inclusive, end exclusive.
    pub ranges: Vec<(u32, u32)>,
    /// Holidays as (year, month, day) in the configured zone.
    pub holidays: Vec<(i16, i8, i8)>,
    pub change_windows: Vec<ChangeWindow>,
}

impl Default for BusinessHours {
    fn default() -> Self {
        BusinessHours {
            time_zone_name: "UTC".into(),
            tz: TimeZone::UTC,
            days: [true, true, true, true, true, false, false],
            ranges: vec![(8 * 60, 19 * 60)],
            holidays: Vec::new(),
            change_windows: Vec::new(),
        }
    }
}

/// Where an instant falls relative to business hours.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HoursVerdict {
    Inside,
    Outside { local: String, reason: &'static str },
    ChangeWindow(String),
}

impl BusinessHours {
    /// Classify an event time (Unix ns).
    pub fn classify(&self, nanos: i64) -> HoursVerdict {
        if let Some(w) = self
            .change_windows
            .iter()
            .find(|w| w.start <= nanos && nanos < w.end)
        {
            return HoursVerdict::ChangeWindow(w.id.clone());
        }
        let Ok(ts) = Timestamp::from_nanosecond(nanos as i128) else {
            return HoursVerdict::Inside;
        };
        let z = ts.to_zoned(self.tz.clone());
        let local = z.strftime("%Y-%m-%dT%H:%M:%S%:z %a").to_string();
        let day = z.weekday().to_monday_zero_offset() as usize;
        if !self.days[day] {
            return HoursVerdict::Outside {
                local,
                reason: "weekend or non-working day",
            };
        }
        if self
            .holidays
            .iter()
            .any(|&(y, m, d)| z.year() == y && z.month() == m && z.day() == d)
        {
            return HoursVerdict::Outside {
                local,
                reason: "holiday",
            };
        }
        let minute = z.hour() as u32 * 60 + z.minute() as u32;
        if self.ranges.iter().any(|&(s, e)| s <= minute && minute < e) {
            HoursVerdict::Inside
        } else {
            HoursVerdict::Outside {
                local,
                reason: "outside working hours",
            }
        }
    }

    pub(super) fn apply(&mut self, ctx: &mut Ctx, node: &Node) {
        let Some(mut m) = MapReader::new(ctx, node, "business_hours") else {
            return;
        };
        if let Some(n) = m.take("time_zone") {
            if let Some(name) = yaml::string(ctx, n, "time_zone") {
                match TimeZone::get(&name) {
                    Ok(tz) => {
                        self.tz = tz;
                        self.time_zone_name = name;
                    }
                    Err(_) => ctx.error(
                        n,
                        format!(
                            "time_zone: `{name}` is not an IANA time zone (e.g. Europe/Berlin)"
                        ),
                    ),
                }
            }
        }
        if let Some(n) = m.take("days") {
            let mut days = [false; 7];
            for item in yaml::list(ctx, n, "days") {
                let Some(s) = yaml::string(ctx, item, "a day") else {
                    continue;
                };
                match weekday(&s) {
                    Some(d) => days[d.to_monday_zero_offset() as usize] = true,
                    None => ctx.error(
                        item,
                        format!(
                            "`{s}` is not a day of the week (mon, tue, wed, thu, fri, sat, sun)"
                        ),
                    ),
                }
            }
            self.days = days;
        }
        if let Some(n) = m.take("hours") {
            let mut ranges = Vec::new();
            for item in yaml::list(ctx, n, "hours") {
                let Some(s) = yaml::string(ctx, item, "an hours range") else {
                    continue;
                };
                match parse_range(&s) {
                    Some(r) => ranges.push(r),
                    None => ctx.error(
                        item,
                        format!("`{s}` is not a time range like 08:00-19:00 (start before end)"),
                    ),
                }
            }
            self.ranges = ranges;
        }
        if let Some(n) = m.take("holidays") {
            let mut out = Vec::new();
            for item in yaml::list(ctx, n, "holidays") {
                let Some(s) = yaml::string(ctx, item, "a holiday") else {
                    continue;
                };
                match s.parse::<jiff::civil::Date>() {
                    Ok(d) if s.len() == 10 => out.push((d.year(), d.month(), d.day())),
                    _ => ctx.error(item, format!("`{s}` is not a date like 2026-12-25")),
                }
            }
            self.holidays = out;
        }
        if let Some(n) = m.take("change_windows") {
            let mut out = Vec::new();
            for item in yaml::list(ctx, n, "change_windows") {
                let Some(mut w) = MapReader::new(ctx, item, "a change window") else {
                    continue;
                };
                let time = |w: &mut MapReader, ctx: &mut Ctx, key: &'static str| {
                    let n = w.require(ctx, key, "a change window")?;
                    let s = yaml::string(ctx, n, key)?;
                    let t = parse_rfc3339_nanos(&s).or_else(|| parse_time_bound(&s));
                    if t.is_none() {
                        ctx.error(n, format!("{key}: `{s}` is not an RFC 3339 time"));
                    }
                    t
                };
                let start = time(&mut w, ctx, "start");
                let end = time(&mut w, ctx, "end");
                let id = w
                    .take("id")
                    .and_then(|n| yaml::string(ctx, n, "id"))
                    .unwrap_or_else(|| "change window".into());
                if let (Some(s), Some(e)) = (start, end) {
                    if s < e {
                        out.push(ChangeWindow {
                            start: s,
                            end: e,
                            id,
                        });
                    } else {
                        ctx.error(w.node(), "a change window must end after it starts");
                    }
                }
                w.finish(ctx, "a change window");
            }
            self.change_windows = out;
        }
        m.finish(ctx, "business_hours");
    }
}

fn weekday(s: &str) -> Option<Weekday> {
    Some(match s.to_ascii_lowercase().as_str() {
        "mon" | "monday" => Weekday::Monday,
        "tue" | "tuesday" => Weekday::Tuesday,
        "wed" | "wednesday" => Weekday::Wednesday,
        "thu" | "thursday" => Weekday::Thursday,
        "fri" | "friday" => Weekday::Friday,
        "sat" | "saturday" => Weekday::Saturday,
        "sun" | "sunday" => Weekday::Sunday,
        _ => return None,
    })
}

fn parse_range(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once('-')?;
    let hm = |t: &str| -> Option<u32> {
        let (h, m) = t.trim().split_once(':')?;
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        (h <= 24 && m < 60 && h * 60 + m <= 24 * 60).then_some(h * 60 + m)
    };
    let (start, end) = (hm(a)?, hm(b)?);
    (start < end).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        parse_rfc3339_nanos(s).unwrap()
    }

    #[test]
    fn default_is_weekdays_eight_to_seven_utc() {
        let b = BusinessHours::default();
        assert_eq!(b.classify(at("2026-03-02T10:00:00Z")), HoursVerdict::Inside); // Monday
        assert!(matches!(
            b.classify(at("2026-03-02T03:00:00Z")),
            HoursVerdict::Outside { .. }
        ));
        assert!(matches!(
            b.classify(at("2026-03-02T19:00:00Z")),
            HoursVerdict::Outside { .. }
        ));
        assert!(matches!(
            b.classify(at("2026-03-07T10:00:00Z")),
            HoursVerdict::Outside { .. }
        )); // Saturday
    }

    #[test]
    fn time_zone_holidays_and_change_windows() {
        let mut ctx = Ctx::new("t");
        let node = ctx
            .load("time_zone: Europe/Berlin\nholidays: ['2026-03-03']\nchange_windows:\n  - {start: '2026-03-04T01:00:00Z', end: '2026-03-04T03:00:00Z', id: CHG-1}\n")
            .unwrap();
        let mut b = BusinessHours::default();
        b.apply(&mut ctx, &node);
        assert!(ctx.problems.is_empty(), "{:?}", ctx.problems);
        // 07:30 UTC is 08:30 in Berlin (CET).
        assert_eq!(b.classify(at("2026-03-02T07:30:00Z")), HoursVerdict::Inside);
        assert!(matches!(
            b.classify(at("2026-03-03T10:00:00Z")),
            HoursVerdict::Outside {
                reason: "holiday",
                ..
            }
        ));
        assert_eq!(
            b.classify(at("2026-03-04T02:00:00Z")),
            HoursVerdict::ChangeWindow("CHG-1".into())
        );
    }
}
