//! NAL units of an H.264 Annex-B access unit, for the little the server reads of a stream
//! it otherwise forwards untouched: the SFU finds a keyframe's SPS, the MSE door repackages
//! units into MP4.

/// The NAL units of an Annex-B byte stream (3- or 4-byte start codes), without their start
/// codes. Bytes before the first start code are not a NAL unit and are skipped; empty units
/// are dropped.
pub fn nal_units(annex_b: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = match find_start(annex_b) {
        Some((_, end)) => &annex_b[end..],
        None => &[][..],
    };
    std::iter::from_fn(move || loop {
        if rest.is_empty() {
            return None;
        }
        let (unit, next) = match find_start(rest) {
            Some((start, end)) => (&rest[..start], &rest[end..]),
            None => (rest, &[][..]),
        };
        rest = next;
        // A 4-byte start code leaves its leading zero on the unit before it.
        let unit = trim_trailing_zeros(unit);
        if !unit.is_empty() {
            return Some(unit);
        }
    })
}

/// The first `00 00 01` in `bytes`: where it starts and where the NAL unit after it starts.
fn find_start(bytes: &[u8]) -> Option<(usize, usize)> {
    bytes
        .windows(3)
        .position(|w| w == [0, 0, 1])
        .map(|i| (i, i + 3))
}

fn trim_trailing_zeros(unit: &[u8]) -> &[u8] {
    let end = unit.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    &unit[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_found_with_either_start_code() {
        let stream = [
            &[0, 0, 0, 1, 0x67, 1, 2][..],
            &[0, 0, 1, 0x68, 3][..],
            &[0, 0, 0, 1, 0x65, 4, 0, 5][..],
        ]
        .concat();
        let units: Vec<&[u8]> = nal_units(&stream).collect();
        assert_eq!(
            units,
            vec![&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 4, 0, 5][..]]
        );
    }

    #[test]
    fn malformed_streams_give_no_or_fewer_units() {
        assert_eq!(nal_units(&[]).count(), 0);
        assert_eq!(nal_units(&[1, 2, 3, 4]).count(), 0, "no start code");
        assert_eq!(nal_units(&[0, 0, 1]).count(), 0, "a start code alone");
        assert_eq!(nal_units(&[0, 0, 1, 0, 0, 0, 1]).count(), 0, "only zeros");
        let units: Vec<&[u8]> = nal_units(&[9, 9, 0, 0, 1, 0x41, 7]).collect();
        assert_eq!(units, vec![&[0x41, 7][..]], "leading garbage skipped");
    }
}
