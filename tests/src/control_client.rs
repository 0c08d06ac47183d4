//! The headless viewer's side of camera control (protocol: `sightline_protocol::control`):
//! what arrived on its `control` data channel, in order, and waiting for a reply or a
//! broadcast. The viewer's task fills a [`ControlInbox`]; tests read it through
//! [`crate::HeadlessViewer`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use serde_json::Value;
use sightline_protocol::control::{
    parse_message, Capabilities, ControlMessage, Response, StateUpdate, Welcome, VERSION,
};
use tokio::sync::Notify;

/// One control message as the viewer received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub message: ControlMessage,
    /// When the viewer's task read it off the channel.
    pub at: Instant,
    /// Which subscription of the viewer (1, 2, ... across reconnects) received it.
    pub session: u32,
}

#[derive(Debug, Default)]
struct Inbox {
    messages: Vec<Received>,
    /// Texts that were not control messages, with why.
    bad: Vec<String>,
    open: bool,
}

/// Everything a viewer's control channel delivered, shared between the viewer's task and
/// the test. Nothing is ever dropped: control traffic is a few messages per second.
#[derive(Debug, Default)]
pub struct ControlInbox {
    inner: Mutex<Inbox>,
    changed: Notify,
}

impl ControlInbox {
    /// Record one message's text (the viewer's task calls this).
    pub(crate) fn receive(&self, text: &str, session: u32) -> Option<ControlMessage> {
        let parsed = parse_message(text);
        let mut inbox = self.inner.lock().unwrap();
        let out = match parsed {
            Ok(message) => {
                inbox.messages.push(Received {
                    message: message.clone(),
                    at: Instant::now(),
                    session,
                });
                Some(message)
            }
            Err(e) => {
                tracing::warn!("viewer got a bad control message: {e}: {text}");
                inbox.bad.push(format!("{e}: {text}"));
                None
            }
        };
        drop(inbox);
        self.changed.notify_waiters();
        out
    }

    pub(crate) fn set_open(&self, open: bool) {
        self.inner.lock().unwrap().open = open;
        self.changed.notify_waiters();
    }

    /// The channel is open now.
    pub fn is_open(&self) -> bool {
        self.inner.lock().unwrap().open
    }

    /// Every message so far, oldest first.
    pub fn messages(&self) -> Vec<Received> {
        self.inner.lock().unwrap().messages.clone()
    }

    /// Texts that did not parse as control messages (should stay empty).
    pub fn bad_messages(&self) -> Vec<String> {
        self.inner.lock().unwrap().bad.clone()
    }

    /// The `welcome` of the latest session.
    pub fn welcome(&self) -> Option<Welcome> {
        self.find_last(|m| match m {
            ControlMessage::Welcome(w) => Some(w.clone()),
            _ => None,
        })
    }

    /// The last `state` broadcast received (the latest by arrival, which is the publisher's
    /// order: the SFU relays each camera's messages in order).
    pub fn last_state(&self) -> Option<StateUpdate> {
        self.find_last(|m| match m {
            ControlMessage::State(s) => Some(s.clone()),
            _ => None,
        })
    }

    /// The last `capabilities` broadcast received.
    pub fn last_capabilities(&self) -> Option<Capabilities> {
        self.find_last(|m| match m {
            ControlMessage::Capabilities(c) => Some(c.clone()),
            _ => None,
        })
    }

    /// Every `state` broadcast so far, oldest first.
    pub fn states(&self) -> Vec<StateUpdate> {
        self.messages()
            .into_iter()
            .filter_map(|r| match r.message {
                ControlMessage::State(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    /// The response to `request_id`, if it came.
    pub fn response(&self, request_id: &str) -> Option<Response> {
        self.find_last(|m| match m {
            ControlMessage::Response(r) if r.request_id.as_deref() == Some(request_id) => {
                Some(r.clone())
            }
            _ => None,
        })
    }

    fn find_last<T>(&self, pick: impl FnMut(&ControlMessage) -> Option<T>) -> Option<T> {
        let mut pick = pick;
        let inbox = self.inner.lock().unwrap();
        inbox.messages.iter().rev().find_map(|r| pick(&r.message))
    }

    /// Wait until `check` finds what it wants among all messages so far (it is called again
    /// after every new message), or fail after `timeout` naming `what`.
    pub async fn wait_for<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut check: impl FnMut(&[Received]) -> Option<T>,
    ) -> anyhow::Result<T> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Register for the next notification before looking, so a message arriving in
            // between is not missed.
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let inbox = self.inner.lock().unwrap();
                if let Some(t) = check(&inbox.messages) {
                    return Ok(t);
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let got: Vec<String> = self
                    .messages()
                    .iter()
                    .rev()
                    .take(5)
                    .map(|r| r.message.to_json())
                    .collect();
                bail!(
                    "timed out after {timeout:?} waiting for {what}; last control messages (newest first): {got:?}"
                );
            }
        }
    }

    /// Wait until the last `state` received satisfies `pred`; returns it.
    pub async fn wait_state(
        &self,
        timeout: Duration,
        what: &str,
        mut pred: impl FnMut(&StateUpdate) -> bool,
    ) -> anyhow::Result<StateUpdate> {
        self.wait_for(timeout, what, |msgs| {
            msgs.iter()
                .rev()
                .find_map(|r| match &r.message {
                    ControlMessage::State(s) => Some(s),
                    _ => None,
                })
                .filter(|s| pred(s))
                .cloned()
        })
        .await
    }

    /// Wait until some `capabilities` arrived; returns the last.
    pub async fn wait_capabilities(&self, timeout: Duration) -> anyhow::Result<Capabilities> {
        self.wait_for(timeout, "capabilities", |msgs| {
            msgs.iter().rev().find_map(|r| match &r.message {
                ControlMessage::Capabilities(c) => Some(c.clone()),
                _ => None,
            })
        })
        .await
    }

    /// Wait for the response to `request_id`.
    pub async fn wait_response(
        &self,
        request_id: &str,
        timeout: Duration,
    ) -> anyhow::Result<Response> {
        self.wait_for(
            timeout,
            &format!("the response to `{request_id}`"),
            |msgs| {
                msgs.iter().rev().find_map(|r| match &r.message {
                    ControlMessage::Response(resp)
                        if resp.request_id.as_deref() == Some(request_id) =>
                    {
                        Some(resp.clone())
                    }
                    _ => None,
                })
            },
        )
        .await
    }
}

/// A fresh request id (`t1`, `t2`, ... unique in this process).
pub fn next_request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("t{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Complete a command for the wire: `"v"` and a fresh `request_id` are added when missing.
/// Returns the text and the request id. Only objects are commands.
pub fn prepare_command(mut command: Value) -> anyhow::Result<(String, String)> {
    let Value::Object(map) = &mut command else {
        return Err(anyhow!(
            "a control command must be a JSON object, got {command}"
        ));
    };
    map.entry("v").or_insert(VERSION.into());
    let id = match map.get("request_id") {
        Some(Value::String(id)) => id.clone(),
        Some(other) => bail!("request_id must be a string, got {other}"),
        None => {
            let id = next_request_id();
            map.insert("request_id".into(), id.clone().into());
            id
        }
    };
    Ok((command.to_string(), id))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn prepare_fills_version_and_request_id() {
        let (text, id) = prepare_command(json!({"type": "get_status"})).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["v"], 1);
        assert_eq!(v["request_id"], id.as_str());
        assert!(id.starts_with('t'));
        let (_, other) = prepare_command(json!({"type": "get_status"})).unwrap();
        assert_ne!(id, other, "ids are unique");
    }

    #[test]
    fn prepare_keeps_what_is_given() {
        let (text, id) =
            prepare_command(json!({"v": 7, "type": "get_status", "request_id": "mine"})).unwrap();
        assert_eq!(id, "mine");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["v"], 7, "a deliberately wrong version goes out as it is");
    }

    #[test]
    fn prepare_refuses_non_objects_and_bad_ids() {
        assert!(prepare_command(json!([1])).is_err());
        assert!(prepare_command(json!("get_status")).is_err());
        assert!(prepare_command(json!({"type": "get_status", "request_id": 5})).is_err());
    }

    #[tokio::test]
    async fn inbox_keeps_order_and_wakes_waiters() {
        let inbox = std::sync::Arc::new(ControlInbox::default());
        let waiter = {
            let inbox = inbox.clone();
            tokio::spawn(async move {
                inbox
                    .wait_response("r2", Duration::from_secs(5))
                    .await
                    .unwrap()
            })
        };
        tokio::task::yield_now().await;
        let state = r#"{"v":1,"type":"state","version":3,"settings":{"fps":15},
            "status":{"streaming":true},"changed":["fps"],"timestamp":1}"#;
        assert!(inbox.receive(state, 1).is_some());
        assert!(inbox.receive("not json", 1).is_none());
        let reply = r#"{"v":1,"type":"response","request_id":"r2","success":true,
            "message":"ok","timestamp":2}"#;
        inbox.receive(reply, 1);
        let r = waiter.await.unwrap();
        assert!(r.success);
        assert_eq!(inbox.last_state().unwrap().version, 3);
        assert_eq!(inbox.bad_messages().len(), 1);
        assert_eq!(inbox.messages().len(), 2);
        assert!(inbox.response("r1").is_none());
        assert!(inbox
            .wait_response("r1", Duration::from_millis(50))
            .await
            .is_err());
    }
}
