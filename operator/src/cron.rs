//! Five-field cron schedules (UTC) for recurring benchmarks.
//!
//! Fields: minute (0-59), hour (0-23), day of month (1-31), month (1-12), day of week
//! (0-7, 0 and 7 are Sunday). Each field accepts `*`, numbers, ranges `a-b`, steps
//! `*/n` and `a-b/n`, and comma lists. As in Vixie cron, when both day fields are
//! restricted a day matches if *either* matches.

use jiff::civil::{Date, DateTime, Time};
use jiff::{Timestamp, tz::TimeZone};

/// A parsed schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    minutes: u64,
    hours: u64,
    days_of_month: u64,
    months: u64,
    days_of_week: u64,
    dom_restricted: bool,
    dow_restricted: bool,
}

/// Why a schedule could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CronError {
    #[error("a cron schedule has 5 fields (minute hour day-of-month month day-of-week), found {0}")]
    FieldCount(usize),
    #[error("{field} field {text:?}: {problem}")]
    Field {
        field: &'static str,
        text: String,
        problem: &'static str,
    },
}

fn parse_field(
    text: &str,
    field: &'static str,
    min: u32,
    max: u32,
) -> Result<(u64, bool), CronError> {
    let bad = |problem| CronError::Field {
        field,
        text: text.to_string(),
        problem,
    };
    let mut bits = 0u64;
    let mut restricted = false;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s.parse().map_err(|_| bad("step is not a number"))?;
                if step == 0 {
                    return Err(bad("step must be at least 1"));
                }
                (r, step)
            }
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            restricted = true;
            let a: u32 = a.parse().map_err(|_| bad("range start is not a number"))?;
            let b: u32 = b.parse().map_err(|_| bad("range end is not a number"))?;
            (a, b)
        } else {
            restricted = true;
            let v: u32 = range
                .parse()
                .map_err(|_| bad("not a number, range, step or *"))?;
            (v, if step > 1 { max } else { v })
        };
        if range == "*" && step > 1 {
            restricted = true;
        }
        if lo < min || hi > max || lo > hi {
            return Err(bad("value out of range"));
        }
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok((bits, restricted))
}

impl std::str::FromStr for Schedule {
    type Err = CronError;
    fn from_str(s: &str) -> Result<Self, CronError> {
        let fields: Vec<&str> = s.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(CronError::FieldCount(fields.len()));
        }
        let (minutes, _) = parse_field(fields[0], "minute", 0, 59)?;
        let (hours, _) = parse_field(fields[1], "hour", 0, 23)?;
        let (days_of_month, dom_restricted) = parse_field(fields[2], "day-of-month", 1, 31)?;
        let (months, _) = parse_field(fields[3], "month", 1, 12)?;
        let (mut days_of_week, dow_restricted) = parse_field(fields[4], "day-of-week", 0, 7)?;
        if days_of_week & (1 << 7) != 0 {
            days_of_week |= 1;
        }
        Ok(Self {
            minutes,
            hours,
            days_of_month,
            months,
            days_of_week,
            dom_restricted,
            dow_restricted,
        })
    }
}

impl Schedule {
    fn day_matches(&self, date: Date) -> bool {
        if self.months & (1 << date.month()) == 0 {
            return false;
        }
        let dom = self.days_of_month & (1 << date.day()) != 0;
        let dow = self.days_of_week & (1 << date.weekday().to_sunday_zero_offset()) != 0;
        match (self.dom_restricted, self.dow_restricted) {
            (true, true) => dom || dow,
            (true, false) => dom,
            (false, true) => dow,
            (false, false) => true,
        }
    }

    /// The first tick strictly after `after`, within the next 5 years (None if the
    /// schedule never fires, e.g. `0 0 31 2 *`).
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let start = after.to_zoned(TimeZone::UTC).datetime();
        let mut date = start.date();
        for _ in 0..(366 * 5) {
            if self.day_matches(date) {
                for hour in 0..24i8 {
                    if self.hours & (1 << hour) == 0 {
                        continue;
                    }
                    for minute in 0..60i8 {
                        if self.minutes & (1 << minute) == 0 {
                            continue;
                        }
                        let candidate =
                            DateTime::from_parts(date, Time::constant(hour, minute, 0, 0));
                        if candidate > start {
                            return candidate
                                .to_zoned(TimeZone::UTC)
                                .ok()
                                .map(|z| z.timestamp());
                        }
                    }
                }
            }
            date = date.tomorrow().ok()?;
        }
        None
    }

    /// The latest tick at or before `now` that is after `since` (the tick a controller
    /// that was down should run now), if any.
    pub fn latest_due(&self, since: Timestamp, now: Timestamp) -> Option<Timestamp> {
        let mut due = None;
        let mut cursor = since;
        // Bounded: at most one tick per minute over the missed interval, capped.
        for _ in 0..100_000 {
            match self.next_after(cursor) {
                Some(t) if t <= now => {
                    due = Some(t);
                    cursor = t;
                }
                _ => break,
            }
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn nightly_fires_at_two() {
        let s: Schedule = "0 2 * * *".parse().unwrap();
        assert_eq!(
            s.next_after(ts("2026-11-21T08:00:00Z")),
            Some(ts("2026-11-22T02:00:00Z"))
        );
        assert_eq!(
            s.next_after(ts("2026-11-21T01:59:00Z")),
            Some(ts("2026-11-21T02:00:00Z"))
        );
        assert_eq!(
            s.next_after(ts("2026-11-21T02:00:00Z")),
            Some(ts("2026-11-22T02:00:00Z"))
        );
    }

    #[test]
    fn steps_ranges_lists_and_weekdays() {
        let s: Schedule = "*/15 9-17 * * 1-5".parse().unwrap();
        // 2026-11-21 is a Saturday: next is Monday 09:00.
        assert_eq!(
            s.next_after(ts("2026-11-21T10:00:00Z")),
            Some(ts("2026-11-23T09:00:00Z"))
        );
        assert_eq!(
            s.next_after(ts("2026-11-23T09:00:00Z")),
            Some(ts("2026-11-23T09:15:00Z"))
        );
        let s: Schedule = "30 0 1,15 * 7".parse().unwrap();
        // Either the 1st/15th or a Sunday.
        assert_eq!(
            s.next_after(ts("2026-11-21T00:00:00Z")),
            Some(ts("2026-11-22T00:30:00Z"))
        );
        let never: Schedule = "0 0 31 2 *".parse().unwrap();
        assert_eq!(never.next_after(ts("2026-01-01T00:00:00Z")), None);
    }

    #[test]
    fn latest_due_skips_missed_ticks() {
        let s: Schedule = "0 * * * *".parse().unwrap();
        assert_eq!(
            s.latest_due(ts("2026-11-21T00:30:00Z"), ts("2026-11-21T03:10:00Z")),
            Some(ts("2026-11-21T03:00:00Z"))
        );
        assert_eq!(
            s.latest_due(ts("2026-11-21T03:00:00Z"), ts("2026-11-21T03:10:00Z")),
            None
        );
    }

    #[test]
    fn bad_schedules_say_what_is_wrong() {
        assert_eq!("0 2 * *".parse::<Schedule>(), Err(CronError::FieldCount(4)));
        let e = "61 2 * * *".parse::<Schedule>().unwrap_err();
        assert!(e.to_string().contains("minute"), "{e}");
        assert!("*/0 * * * *".parse::<Schedule>().is_err());
        assert!("a * * * *".parse::<Schedule>().is_err());
        assert!("5-2 * * * *".parse::<Schedule>().is_err());
    }
}
