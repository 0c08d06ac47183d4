//! The publisher's end of the `control` data channel: the bytes in and out, nothing more.
//! The publisher opens the channel itself in its offer (the SFU never opens channels); the
//! SFU relays viewers' commands on it, tagged `"from":"peer-7"`, and routes what we send by
//! its `"to"` (replies) or to every viewer (`state`, `capabilities`). What the messages mean
//! is decided by [`crate::control::ControlState`] through the station; the session loop sends
//! what comes back. Kept apart from [`super::peer`] so the byte-level rules (text only,
//! UTF-8) are tested alone.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, warn};
use webrtc::data_channel::{DataChannel, DataChannelEvent};

/// What happened on the channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlEvent {
    /// Open: announce capabilities and state.
    Open,
    /// One text message (a command relayed from a viewer).
    Text(String),
    /// Closed for good (with the peer connection).
    Closed,
}

/// The channel as the session loop holds it.
#[derive(Clone)]
pub struct ControlChannel {
    channel: Arc<dyn DataChannel>,
}

impl ControlChannel {
    pub fn new(channel: Arc<dyn DataChannel>) -> Self {
        ControlChannel { channel }
    }

    /// The channel's label (`control` for ours); empty if it cannot be read.
    pub async fn label(&self) -> String {
        self.channel.label().await.unwrap_or_default()
    }

    /// Read the channel's events into `events` until it closes. Abort the task at teardown.
    pub fn spawn_reader(&self, events: mpsc::UnboundedSender<ControlEvent>) -> JoinHandle<()> {
        self.spawn_reader_with(move |e| events.send(e).is_ok())
    }

    /// Hand the channel's events to `deliver` until it closes or `deliver` says the session
    /// is gone (returns false). Abort the task at teardown.
    pub fn spawn_reader_with(
        &self,
        deliver: impl Fn(ControlEvent) -> bool + Send + 'static,
    ) -> JoinHandle<()> {
        let channel = Arc::clone(&self.channel);
        tokio::spawn(async move {
            while let Some(event) = channel.poll().await {
                let out = match event {
                    DataChannelEvent::OnOpen => ControlEvent::Open,
                    DataChannelEvent::OnMessage(msg) => match decode(msg.is_string, &msg.data) {
                        Ok(text) => ControlEvent::Text(text),
                        Err(why) => {
                            warn!("control channel: {why}; ignored");
                            continue;
                        }
                    },
                    DataChannelEvent::OnClose => {
                        deliver(ControlEvent::Closed);
                        return;
                    }
                    other => {
                        debug!("control channel: {other:?}");
                        continue;
                    }
                };
                if !deliver(out) {
                    return; // the session is gone
                }
            }
            deliver(ControlEvent::Closed);
        })
    }

    /// Send texts in order. A failure is logged, not fatal: the channel comes back with the
    /// next peer connection, and viewers get the full state again then.
    pub async fn send_all(&self, texts: &[String]) {
        for text in texts {
            if let Err(e) = self.channel.send_text(text).await {
                warn!("control channel: sending failed: {e}");
                return;
            }
        }
    }
}

/// A message's text. Commands are JSON text; binary or non-UTF-8 messages are not ours.
fn decode(is_string: bool, data: &[u8]) -> Result<String, String> {
    if !is_string {
        return Err(format!(
            "a binary message of {} bytes (commands are JSON text)",
            data.len()
        ));
    }
    String::from_utf8(data.to_vec()).map_err(|_| "a text message that is not UTF-8".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_utf8_text_is_taken() {
        assert_eq!(decode(true, b"{\"v\":1}"), Ok("{\"v\":1}".to_owned()));
        assert!(decode(false, b"{\"v\":1}").unwrap_err().contains("binary"));
        assert!(decode(true, &[0xff, 0xfe]).unwrap_err().contains("UTF-8"));
        assert_eq!(decode(true, b""), Ok(String::new()));
    }
}
