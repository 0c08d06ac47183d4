//! Control commands counted by type and result, for `/metrics`. A command the relay answers
//! itself (a refusal, pause and resume, a WHIP camera's keyframe request) is counted at
//! once; one relayed to the publisher is counted when the publisher's response comes back to
//! its sender, matched by sender and request id. Plain state, no I/O.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde_json::Value;
use sightline_protocol::control::{CommandType, ControlErrorCode, Envelope};

use crate::types::ControlCount;
use crate::PeerId;

/// Commands relayed and not answered yet, at most this many; more go uncounted until the
/// oldest are answered or given up on.
const MAX_PENDING: usize = 4096;
/// A relayed command with no answer after this long is forgotten (its sender left, or the
/// publisher never answered): counted as `unanswered`.
const PENDING_FOR: Duration = Duration::from_secs(30);

/// The `command` label of messages that were not a known command.
const INVALID: &str = "invalid";

/// What the relay did with one command, for the tally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tallied {
    /// Answered by the relay: `result` is `ok` or the refusal's error code.
    Decided {
        command: Option<CommandType>,
        result: &'static str,
    },
    /// Passed to the publisher; its response to `from` will tell.
    Relayed {
        from: PeerId,
        request_id: String,
        command: CommandType,
    },
}

#[derive(Debug, Default)]
pub(crate) struct ControlTally {
    pending: HashMap<(PeerId, String), (CommandType, Instant)>,
    counts: BTreeMap<(&'static str, String), u64>,
    /// When old pending commands were last given up on (checked as new ones come).
    expired_at: Option<Instant>,
}

/// How often a new relayed command also gives up on old ones.
const EXPIRE_EVERY: Duration = Duration::from_secs(5);

impl ControlTally {
    pub(crate) fn record(&mut self, tallied: Tallied, now: Instant) {
        match tallied {
            Tallied::Decided { command, result } => {
                self.count(
                    command.map_or(INVALID, CommandType::name),
                    result.to_owned(),
                );
            }
            Tallied::Relayed {
                from,
                request_id,
                command,
            } => {
                let due = self
                    .expired_at
                    .is_none_or(|at| now.saturating_duration_since(at) >= EXPIRE_EVERY);
                if due || self.pending.len() >= MAX_PENDING {
                    self.expire(now);
                }
                if self.pending.len() < MAX_PENDING {
                    self.pending.insert((from, request_id), (command, now));
                }
            }
        }
    }

    /// The publisher's message `text` to `to`: if it answers a relayed command, count it.
    pub(crate) fn answered(&mut self, to: PeerId, text: &[u8]) {
        let Ok(envelope) = Envelope::parse(text) else {
            return;
        };
        if envelope.ty != "response" {
            return;
        }
        let Some(Value::String(request_id)) = envelope.body.get("request_id") else {
            return;
        };
        let Some((command, _)) = self.pending.remove(&(to, request_id.clone())) else {
            return;
        };
        let result = if envelope.body.get("success") == Some(&Value::Bool(true)) {
            "ok".to_owned()
        } else {
            // A publisher's message, trusted to speak the protocol, but never to panic us.
            envelope
                .body
                .get("error")
                .and_then(|e| e.get("code"))
                .and_then(Value::as_str)
                .unwrap_or("failed")
                .to_owned()
        };
        self.count(command.name(), result);
    }

    /// Forget relayed commands older than [`PENDING_FOR`], counting them `unanswered`.
    pub(crate) fn expire(&mut self, now: Instant) {
        self.expired_at = Some(now);
        let mut gone = Vec::new();
        self.pending.retain(|_, (command, at)| {
            let keep = now.saturating_duration_since(*at) < PENDING_FOR;
            if !keep {
                gone.push(command.name());
            }
            keep
        });
        for command in gone {
            self.count(command, "unanswered".to_owned());
        }
    }

    fn count(&mut self, command: &'static str, result: String) {
        *self.counts.entry((command, result)).or_default() += 1;
    }

    /// Every (command, result) seen so far and how often.
    pub(crate) fn counts(&self) -> Vec<ControlCount> {
        self.counts
            .iter()
            .map(|((command, result), &count)| ControlCount {
                command: (*command).to_owned(),
                result: result.clone(),
                count,
            })
            .collect()
    }
}

/// The command type a message names, if it is one (for a refusal's count).
pub(crate) fn command_of(data: &[u8]) -> Option<CommandType> {
    let envelope = Envelope::parse(data).ok()?;
    CommandType::parse(&envelope.ty).ok()
}

/// The error code of a refusal the relay wrote.
pub(crate) fn refusal_code(text: &str) -> &'static str {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| serde_json::from_value::<ControlErrorCode>(v["error"]["code"].clone()).ok())
        .map_or("failed", ControlErrorCode::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(t: &ControlTally) -> Vec<(String, String, u64)> {
        t.counts()
            .into_iter()
            .map(|c| (c.command, c.result, c.count))
            .collect()
    }

    #[test]
    fn decided_and_answered_commands_are_counted_by_type_and_result() {
        let now = Instant::now();
        let mut t = ControlTally::default();
        t.record(
            Tallied::Decided {
                command: Some(CommandType::Pause),
                result: "ok",
            },
            now,
        );
        t.record(
            Tallied::Decided {
                command: None,
                result: "bad_message",
            },
            now,
        );
        for (id, from) in [("a", PeerId(2)), ("b", PeerId(2)), ("a", PeerId(3))] {
            t.record(
                Tallied::Relayed {
                    from,
                    request_id: id.into(),
                    command: CommandType::UpdateSettings,
                },
                now,
            );
        }
        let ok = br#"{"v":1,"type":"response","request_id":"a","to":"peer-2","success":true,"message":"","timestamp":1}"#;
        t.answered(PeerId(2), ok);
        t.answered(PeerId(2), ok); // a repeat answers nothing
        t.answered(PeerId(3), br#"{"v":1,"type":"response","request_id":"a","success":false,"error":{"code":"invalid_value","message":"m"},"message":"","timestamp":1}"#);
        t.answered(PeerId(2), br#"{"v":1,"type":"state","settings":{}}"#);
        t.record(
            Tallied::Relayed {
                from: PeerId(4),
                request_id: "c".into(),
                command: CommandType::GetStatus,
            },
            now,
        );
        t.answered(
            PeerId(4),
            br#"{"v":1,"type":"response","request_id":"c","success":false}"#,
        );
        t.answered(PeerId(2), b"garbage");
        assert_eq!(
            counts(&t),
            [
                ("get_status".into(), "failed".into(), 1),
                ("invalid".into(), "bad_message".into(), 1),
                ("pause".into(), "ok".into(), 1),
                ("update_settings".into(), "invalid_value".into(), 1),
                ("update_settings".into(), "ok".into(), 1),
            ]
        );
        // "b" never gets an answer.
        t.expire(now + PENDING_FOR);
        assert!(counts(&t).contains(&("update_settings".into(), "unanswered".into(), 1)));
        assert!(t.pending.is_empty());
    }

    #[test]
    fn refusals_are_read_back_and_commands_named() {
        assert_eq!(
            refusal_code(r#"{"type":"response","success":false,"error":{"code":"forbidden"}}"#),
            "forbidden"
        );
        assert_eq!(refusal_code("nonsense"), "failed");
        assert_eq!(
            command_of(br#"{"v":1,"type":"get_status","request_id":"r"}"#),
            Some(CommandType::GetStatus)
        );
        assert_eq!(command_of(br#"{"v":1,"type":"dance"}"#), None);
    }
}
