//! The envelope every control message shares: at most [`MAX_CONTROL_MESSAGE_BYTES`] of JSON,
//! one object, `"v":1`, a string `type`. Checked the same way by the SFU (which reads no
//! further into a viewer's command) and by the publisher and clients (which do).

use serde_json::{Map, Value};

use super::error::{ControlError, ControlErrorCode};
use super::{MAX_CONTROL_MESSAGE_BYTES, VERSION};

/// A control message whose envelope is sound.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// Its `type`.
    pub ty: String,
    /// The whole object, `v` and `type` included.
    pub body: Map<String, Value>,
}

impl Envelope {
    /// Check the envelope of one message (JSON text, as bytes).
    pub fn parse(data: &[u8]) -> Result<Envelope, ControlError> {
        if data.len() > MAX_CONTROL_MESSAGE_BYTES {
            return Err(ControlError::new(
                ControlErrorCode::TooLarge,
                format!(
                    "control message is {} bytes; the limit is {MAX_CONTROL_MESSAGE_BYTES}",
                    data.len()
                ),
            ));
        }
        let value: Value = serde_json::from_slice(data).map_err(|e| {
            ControlError::new(
                ControlErrorCode::BadMessage,
                format!("control message is not valid JSON: {e}"),
            )
        })?;
        let Value::Object(body) = value else {
            return Err(ControlError::new(
                ControlErrorCode::BadMessage,
                "control message must be a JSON object",
            ));
        };
        match body.get("v") {
            None => {
                return Err(ControlError::new(
                    ControlErrorCode::BadMessage,
                    format!("control message has no `v` field (the protocol version; this side speaks v{VERSION})"),
                ))
            }
            Some(v) if v.as_u64() == Some(VERSION) => {}
            Some(v) => {
                return Err(ControlError::new(
                    ControlErrorCode::UnsupportedVersion,
                    format!("protocol version {v} is not supported; this side speaks v{VERSION}"),
                ))
            }
        }
        let ty = match body.get("type") {
            Some(Value::String(t)) => t.clone(),
            Some(_) => {
                return Err(ControlError::new(
                    ControlErrorCode::BadMessage,
                    "field `type` must be a string",
                ))
            }
            None => {
                return Err(ControlError::new(
                    ControlErrorCode::BadMessage,
                    "control message has no `type` field",
                ))
            }
        };
        Ok(Envelope { ty, body })
    }

    /// Its `request_id`, when that is a string.
    pub fn request_id(&self) -> Option<&str> {
        self.body.get("request_id").and_then(Value::as_str)
    }
}

/// The `request_id` of a message, if it is a JSON object of at most
/// [`MAX_CONTROL_MESSAGE_BYTES`] with a string one: for refusing a message (too fast, or
/// whose envelope is broken) so that the reply still matches its request.
pub fn peek_request_id(data: &[u8]) -> Option<String> {
    if data.len() > MAX_CONTROL_MESSAGE_BYTES {
        return None;
    }
    let value: Value = serde_json::from_slice(data).ok()?;
    value.get("request_id")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> ControlErrorCode {
        Envelope::parse(text.as_bytes()).unwrap_err().code
    }

    #[test]
    fn a_sound_envelope_keeps_the_whole_object() {
        let e =
            Envelope::parse(br#"{"v":1,"type":"get_status","request_id":"a","x":[1]}"#).unwrap();
        assert_eq!(e.ty, "get_status");
        assert_eq!(e.request_id(), Some("a"));
        assert_eq!(e.body.len(), 4);
        // Any type: which types exist is the caller's business.
        assert_eq!(
            Envelope::parse(br#"{"v":1,"type":"dance"}"#).unwrap().ty,
            "dance"
        );
    }

    #[test]
    fn broken_envelopes_are_told_apart() {
        assert_eq!(code("{nope"), ControlErrorCode::BadMessage);
        assert_eq!(code("[]"), ControlErrorCode::BadMessage);
        assert_eq!(
            code(r#"{"type":"get_status"}"#),
            ControlErrorCode::BadMessage
        );
        assert_eq!(
            code(r#"{"v":2,"type":"get_status"}"#),
            ControlErrorCode::UnsupportedVersion
        );
        assert_eq!(
            code(r#"{"v":"1","type":"get_status"}"#),
            ControlErrorCode::UnsupportedVersion
        );
        assert_eq!(code(r#"{"v":1}"#), ControlErrorCode::BadMessage);
        assert_eq!(code(r#"{"v":1,"type":7}"#), ControlErrorCode::BadMessage);
        let big = vec![b' '; MAX_CONTROL_MESSAGE_BYTES + 1];
        assert_eq!(
            Envelope::parse(&big).unwrap_err().code,
            ControlErrorCode::TooLarge
        );
        assert_eq!(
            Envelope::parse(&[0xff, 0xfe]).unwrap_err().code,
            ControlErrorCode::BadMessage
        );
    }

    #[test]
    fn request_ids_are_peeked_from_objects_only() {
        assert_eq!(
            peek_request_id(br#"{"v":9,"request_id":"r"}"#).as_deref(),
            Some("r")
        );
        assert_eq!(peek_request_id(br#"{"request_id":5}"#), None);
        assert_eq!(peek_request_id(br#"["request_id"]"#), None);
        assert_eq!(peek_request_id(b"{oops"), None);
        let mut big = br#"{"request_id":"r","pad":""#.to_vec();
        big.resize(MAX_CONTROL_MESSAGE_BYTES, b'x');
        big.extend_from_slice(br#""}"#);
        assert_eq!(peek_request_id(&big), None);
    }
}
