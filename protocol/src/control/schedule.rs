//! A camera's schedule: presets applied at set times of day, in the publisher's local time.
//!
//! ```json
//! [{"at":"07:00","preset":"day"},{"at":"20:00","preset":"night"}]
//! ```
//!
//! Viewers replace the whole list with `set_schedule` (an empty list clears it); the state
//! and every reply list it in `status.schedule`. Entries are kept sorted by time, at most one
//! per minute of the day.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::{ControlError, ControlErrorCode};
use crate::ids::validate_preset_name;

/// Most entries a schedule holds: a change every hour, with room to spare.
pub const MAX_SCHEDULE_ENTRIES: usize = 24;

/// One entry: at `at` ("HH:MM", 24-hour, the publisher's local time) apply `preset`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ScheduleEntry {
    pub at: String,
    pub preset: String,
}

impl ScheduleEntry {
    /// Minutes since local midnight (0..1440). Entries are only made by [`parse_schedule`],
    /// so `at` is well-formed; a malformed one counts as midnight.
    pub fn minute_of_day(&self) -> u32 {
        parse_time(&self.at).unwrap_or(0)
    }
}

/// "HH:MM" as minutes since midnight.
fn parse_time(at: &str) -> Option<u32> {
    let (h, m) = at.split_once(':')?;
    let two_digits =
        |s: &str| (s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit())).then_some(());
    two_digits(h)?;
    two_digits(m)?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

/// A schedule from a command's `schedule` field (or a settings file): a list of
/// `{"at":"HH:MM","preset":NAME}`, sorted by time on the way in. Errors name the entry.
/// Whether the presets exist is for the publisher to say.
pub fn parse_schedule(value: &Value) -> Result<Vec<ScheduleEntry>, ControlError> {
    let bad =
        |message: String| ControlError::field(ControlErrorCode::InvalidValue, "schedule", message);
    let Value::Array(items) = value else {
        return Err(bad(format!(
            "expected a list of {{\"at\":\"HH:MM\",\"preset\":NAME}}, got {value}"
        )));
    };
    if items.len() > MAX_SCHEDULE_ENTRIES {
        return Err(bad(format!(
            "{} entries; a schedule holds at most {MAX_SCHEDULE_ENTRIES}",
            items.len()
        )));
    }
    let mut entries = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let entry = |message: String| bad(format!("entry {}: {message}", i + 1));
        let Value::Object(map) = item else {
            return Err(entry(format!(
                "expected {{\"at\":\"HH:MM\",\"preset\":NAME}}, got {item}"
            )));
        };
        if let Some(k) = map.keys().find(|k| !["at", "preset"].contains(&k.as_str())) {
            return Err(entry(format!("unknown field `{k}`")));
        }
        let at = match map.get("at") {
            Some(Value::String(at)) if parse_time(at).is_some() => at.clone(),
            Some(v) => {
                return Err(entry(format!(
                    "`at` {v} is not a time as \"HH:MM\" (00:00..23:59)"
                )))
            }
            None => return Err(entry("missing `at`".into())),
        };
        let preset = match map.get("preset") {
            Some(Value::String(p)) => {
                validate_preset_name(p).map_err(|e| entry(e.message))?;
                p.clone()
            }
            Some(v) => return Err(entry(format!("`preset` {v} is not a preset name"))),
            None => return Err(entry("missing `preset`".into())),
        };
        if entries.iter().any(|e: &ScheduleEntry| e.at == at) {
            return Err(entry(format!("two entries at {at}")));
        }
        entries.push(ScheduleEntry { at, preset });
    }
    entries.sort();
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn parses_and_sorts_by_time() {
        let s = parse_schedule(&json!([
            {"at":"20:00","preset":"night"},
            {"at":"07:00","preset":"day"},
            {"at":"00:00","preset":"low_bandwidth"},
            {"at":"23:59","preset":"late night"}
        ]))
        .unwrap();
        let at: Vec<&str> = s.iter().map(|e| e.at.as_str()).collect();
        assert_eq!(at, ["00:00", "07:00", "20:00", "23:59"]);
        let minutes: Vec<u32> = s.iter().map(ScheduleEntry::minute_of_day).collect();
        assert_eq!(minutes, [0, 420, 1200, 1439]);
        assert_eq!(parse_schedule(&json!([])).unwrap(), []);
    }

    #[test]
    fn malformed_schedules_say_which_entry_and_why() {
        let err = |v: Value| {
            let e = parse_schedule(&v).unwrap_err();
            assert_eq!(
                (e.code, e.field.as_deref()),
                (ControlErrorCode::InvalidValue, Some("schedule"))
            );
            e.message
        };
        assert!(err(json!({"at":"07:00"})).contains("expected a list"));
        assert!(err(json!("07:00 day")).contains("expected a list"));
        assert!(err(json!([5])).contains("entry 1"));
        for at in [
            "24:00", "7:00", "07:60", "07-00", "0700", "", "07:00:00", "aa:bb", "+7:00",
        ] {
            let m = err(json!([{"at":"01:00","preset":"a"},{"at":at,"preset":"day"}]));
            assert!(m.contains("entry 2") && m.contains("HH:MM"), "{at}: {m}");
        }
        assert!(err(json!([{"at":7,"preset":"day"}])).contains("HH:MM"));
        assert!(err(json!([{"preset":"day"}])).contains("missing `at`"));
        assert!(err(json!([{"at":"07:00"}])).contains("missing `preset`"));
        assert!(err(json!([{"at":"07:00","preset":"../x"}])).contains("entry 1"));
        assert!(err(json!([{"at":"07:00","preset":3}])).contains("not a preset name"));
        assert!(err(json!([{"at":"07:00","preset":"a","x":1}])).contains("unknown field `x`"));
        assert!(
            err(json!([{"at":"07:00","preset":"a"},{"at":"07:00","preset":"b"}]))
                .contains("two entries at 07:00")
        );
        let many: Vec<Value> = (0..=MAX_SCHEDULE_ENTRIES)
            .map(|i| json!({"at": format!("{:02}:00", i % 24), "preset": "a"}))
            .collect();
        assert!(err(Value::Array(many)).contains("at most 24"));
    }
}
