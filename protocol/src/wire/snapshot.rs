//! The publisher's answer to `snapshot_request`: one binary WebSocket message, the request
//! id (8 bytes, big-endian) and then the JPEG. Binary, because a JPEG in JSON would grow by a
//! third and be copied twice; the id in front, so no second message has to be paired with it.

use super::MAX_MESSAGE_BYTES;

/// The largest snapshot message a publisher may send (the server's WebSocket limit for
/// every message is this too). A picture whose JPEG is larger is sent at lower quality.
pub const MAX_SNAPSHOT_MESSAGE_BYTES: usize = 16 * MAX_MESSAGE_BYTES;
/// Snapshot widths a request may ask for (`?width=`).
pub const SNAPSHOT_WIDTHS: std::ops::RangeInclusive<u32> = 16..=7680;

/// The binary message answering request `request` with `jpeg`.
pub fn snapshot_reply(request: u64, jpeg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + jpeg.len());
    out.extend_from_slice(&request.to_be_bytes());
    out.extend_from_slice(jpeg);
    out
}

/// Read a snapshot message: `(request, jpeg)`. An error says what is wrong with it.
pub fn parse_snapshot_reply(message: &[u8]) -> Result<(u64, &[u8]), String> {
    let Some((id, jpeg)) = message.split_first_chunk::<8>() else {
        return Err(format!(
            "a binary message is a snapshot: 8 bytes of request id and a JPEG; this one has {} bytes",
            message.len()
        ));
    };
    if !jpeg.starts_with(&[0xff, 0xd8]) {
        return Err("the snapshot after the request id is not a JPEG (no FF D8 start)".into());
    }
    Ok((u64::from_be_bytes(*id), jpeg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_reads_back() {
        let msg = snapshot_reply(0x0102_0304_0506_0708, &[0xff, 0xd8, 1, 2]);
        assert_eq!(&msg[..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(
            parse_snapshot_reply(&msg),
            Ok((0x0102_0304_0506_0708, &[0xff, 0xd8, 1, 2][..]))
        );
    }

    #[test]
    fn malformed_replies_are_refused() {
        assert!(parse_snapshot_reply(&[]).is_err());
        assert!(parse_snapshot_reply(&[0; 7]).is_err());
        assert!(parse_snapshot_reply(&[0; 8]).is_err(), "no JPEG");
        assert!(parse_snapshot_reply(&[0, 0, 0, 0, 0, 0, 0, 1, b'G', b'I', b'F']).is_err());
    }
}
