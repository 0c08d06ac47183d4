//! When a camera's schedule fires ([`ScheduleEntry`]: a preset at a time of day), as plain
//! state with the local time passed in; [`local_minute_now`] reads the clock.
//!
//! Times are whole minutes counted in local time (minutes since the Unix epoch as a local
//! wall clock reads), so a day is 1440 of them and `t % 1440` is the minute of the day. An
//! entry fires when the clock enters its minute. The check runs every second; if it missed
//! some (the machine slept), only the latest entry passed meanwhile fires, since that is
//! the one that would be in force. The first check, and the first after the schedule
//! changed, counts the current minute as entered: setting `20:00 night` at 20:00 applies it.
//! A clock that goes back (summer time ending) fires nothing twice.

use sightline_protocol::control::ScheduleEntry;

const MINUTES_PER_DAY: i64 = 24 * 60;

/// Which minutes have been checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScheduleClock {
    /// The last minute checked; `None`: nothing yet (or the schedule changed).
    checked: Option<i64>,
}

impl ScheduleClock {
    /// The entry to apply now, if the clock entered one's minute since the last check.
    /// `now`: local minutes ([`local_minute_now`]).
    pub fn due<'a>(&mut self, entries: &'a [ScheduleEntry], now: i64) -> Option<&'a ScheduleEntry> {
        let from = match self.checked {
            Some(last) if now <= last => return None, // the same minute, or the clock went back
            Some(last) => (last + 1).max(now - MINUTES_PER_DAY + 1),
            None => now,
        };
        self.checked = Some(now);
        // Each entry's latest occurrence at or before now; the latest one since `from` wins.
        entries
            .iter()
            .map(|e| {
                let since = (now - i64::from(e.minute_of_day())).rem_euclid(MINUTES_PER_DAY);
                (now - since, e)
            })
            .filter(|(at, _)| *at >= from)
            .max_by_key(|(at, _)| *at)
            .map(|(_, e)| e)
    }

    /// The schedule changed: the next check counts the current minute again.
    pub fn restart(&mut self) {
        self.checked = None;
    }
}

/// The local wall clock in whole minutes (see the module doc).
pub fn local_minute_now() -> i64 {
    chrono::Local::now()
        .naive_local()
        .and_utc()
        .timestamp()
        .div_euclid(60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(list: &[(&str, &str)]) -> Vec<ScheduleEntry> {
        list.iter()
            .map(|(at, preset)| ScheduleEntry {
                at: (*at).into(),
                preset: (*preset).into(),
            })
            .collect()
    }

    /// Day `d`, `hh:mm`, as local minutes.
    fn t(d: i64, hh: i64, mm: i64) -> i64 {
        d * MINUTES_PER_DAY + hh * 60 + mm
    }

    fn fired(clock: &mut ScheduleClock, s: &[ScheduleEntry], now: i64) -> Option<String> {
        clock.due(s, now).map(|e| e.preset.clone())
    }

    #[test]
    fn fires_once_when_the_clock_enters_the_minute() {
        let s = entries(&[("07:00", "day"), ("20:00", "night")]);
        let mut c = ScheduleClock::default();
        assert_eq!(fired(&mut c, &s, t(100, 19, 58)), None);
        assert_eq!(fired(&mut c, &s, t(100, 19, 59)), None);
        assert_eq!(fired(&mut c, &s, t(100, 20, 0)).as_deref(), Some("night"));
        assert_eq!(fired(&mut c, &s, t(100, 20, 0)), None, "once per minute");
        assert_eq!(fired(&mut c, &s, t(100, 20, 1)), None);
        // Across midnight to the morning entry.
        assert_eq!(fired(&mut c, &s, t(101, 6, 59)), None);
        assert_eq!(fired(&mut c, &s, t(101, 7, 0)).as_deref(), Some("day"));
    }

    #[test]
    fn the_current_minute_counts_at_the_start_and_after_a_change() {
        let s = entries(&[("20:00", "night")]);
        let mut c = ScheduleClock::default();
        assert_eq!(fired(&mut c, &s, t(3, 20, 0)).as_deref(), Some("night"));
        assert_eq!(fired(&mut c, &s, t(3, 20, 0)), None);
        c.restart();
        assert_eq!(fired(&mut c, &s, t(3, 20, 0)).as_deref(), Some("night"));
        // Starting later than the entry fires nothing: the settings persisted anyway.
        let mut c = ScheduleClock::default();
        assert_eq!(fired(&mut c, &s, t(3, 21, 0)), None);
    }

    #[test]
    fn missed_minutes_fire_only_the_latest_entry() {
        let s = entries(&[("07:00", "day"), ("12:00", "noon"), ("20:00", "night")]);
        let mut c = ScheduleClock::default();
        assert_eq!(fired(&mut c, &s, t(5, 6, 0)), None);
        // Asleep from 06:00 to 13:00: day and noon passed; noon is in force.
        assert_eq!(fired(&mut c, &s, t(5, 13, 0)).as_deref(), Some("noon"));
        // Asleep for three days: the latest is night (20:00 yesterday).
        assert_eq!(fired(&mut c, &s, t(8, 6, 0)).as_deref(), Some("night"));
    }

    #[test]
    fn a_clock_that_goes_back_fires_nothing_twice() {
        let s = entries(&[("02:30", "late")]);
        let mut c = ScheduleClock::default();
        assert_eq!(fired(&mut c, &s, t(9, 2, 29)), None);
        assert_eq!(fired(&mut c, &s, t(9, 2, 30)).as_deref(), Some("late"));
        assert_eq!(fired(&mut c, &s, t(9, 2, 59)), None);
        // 03:00 becomes 02:00 again: 02:30 comes round a second time, and does not fire.
        assert_eq!(fired(&mut c, &s, t(9, 2, 0)), None);
        assert_eq!(fired(&mut c, &s, t(9, 2, 30)), None);
        assert_eq!(fired(&mut c, &s, t(9, 3, 0)), None);
        assert_eq!(fired(&mut c, &s, t(10, 2, 30)).as_deref(), Some("late"));
    }

    #[test]
    fn an_empty_schedule_fires_nothing() {
        let mut c = ScheduleClock::default();
        assert_eq!(fired(&mut c, &[], t(0, 0, 0)), None);
        assert_eq!(fired(&mut c, &[], t(0, 0, 1)), None);
    }

    #[test]
    fn the_local_clock_reads_a_sane_minute() {
        let now = local_minute_now();
        let utc = (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            / 60) as i64;
        assert!(
            (now - utc).abs() <= 15 * 60,
            "within any time zone's offset"
        );
    }
}
