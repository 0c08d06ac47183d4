//! Where a publisher's control message goes: routed by its envelope and `to`. (What the SFU
//! does with a viewer's message is the relay's rules, `sightline_protocol::control::relay`,
//! which a publisher serving a direct viewer follows too.) Plain code, no I/O.

use serde_json::Value;
use sightline_protocol::control::Envelope;

use crate::PeerId;

/// What the SFU does with a publisher's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PublisherRoute {
    /// A reply: only to this viewer.
    To(PeerId),
    /// To every viewer of the camera; `cache` says whether new viewers get it too.
    Broadcast { cache: Option<CacheSlot> },
}

/// The publisher broadcasts the SFU keeps the last of, per camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CacheSlot {
    Capabilities,
    State,
}

/// Where a publisher's message goes. The publisher is trusted to speak the protocol; what is
/// not even an envelope is dropped (with the reason, for the log).
pub(crate) fn route_publisher_message(data: &[u8], binary: bool) -> Result<PublisherRoute, String> {
    if binary {
        return Err("control messages are JSON text, not binary".into());
    }
    let envelope = Envelope::parse(data).map_err(|e| e.message)?;
    match envelope.body.get("to") {
        Some(Value::String(to)) => to
            .parse::<PeerId>()
            .map(PublisherRoute::To)
            .map_err(|_| format!("`to` is not a viewer id: {to:?}")),
        Some(other) => Err(format!("`to` must be a viewer id string, got {other}")),
        None => Ok(PublisherRoute::Broadcast {
            cache: match envelope.ty.as_str() {
                "capabilities" => Some(CacheSlot::Capabilities),
                "state" => Some(CacheSlot::State),
                _ => None,
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publisher_messages_are_routed() {
        let r = |t: &str| route_publisher_message(t.as_bytes(), false);
        assert_eq!(
            r(r#"{"v":1,"type":"response","to":"peer-12","success":true}"#),
            Ok(PublisherRoute::To(PeerId(12)))
        );
        assert_eq!(
            r(r#"{"v":1,"type":"state","settings":{}}"#),
            Ok(PublisherRoute::Broadcast {
                cache: Some(CacheSlot::State)
            })
        );
        assert_eq!(
            r(r#"{"v":1,"type":"capabilities","settings":{}}"#),
            Ok(PublisherRoute::Broadcast {
                cache: Some(CacheSlot::Capabilities)
            })
        );
        assert_eq!(
            r(r#"{"v":1,"type":"notice"}"#),
            Ok(PublisherRoute::Broadcast { cache: None })
        );
        assert!(r(r#"{"v":1,"type":"response","to":"bob"}"#).is_err());
        assert!(r(r#"{"v":1,"type":"response","to":7}"#).is_err());
        assert!(r(r#"{"v":2,"type":"state"}"#).is_err());
        assert!(r("garbage").is_err());
        assert!(route_publisher_message(br#"{"v":1,"type":"state"}"#, true).is_err());
    }
}
