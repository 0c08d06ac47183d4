//! Annex-B framing: split an access unit into NAL units and read their types. What is inside
//! a parameter set is [`crate::h264::profile`]'s business.

/// NAL unit types we care about.
pub const NAL_IDR: u8 = 5;
pub const NAL_SPS: u8 = 7;
pub const NAL_PPS: u8 = 8;

/// The NAL units of an Annex-B byte stream, without their start codes.
pub fn split_annex_b(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new(); // (start code begins, payload begins)
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            let sc = if i > 0 && data[i - 1] == 0 { i - 1 } else { i };
            starts.push((sc, i + 3));
            i += 3;
        } else {
            i += 1;
        }
    }
    starts
        .iter()
        .enumerate()
        .map(|(k, &(_, begin))| {
            let end = starts.get(k + 1).map_or(data.len(), |&(sc, _)| sc);
            &data[begin..end]
        })
        .filter(|n| !n.is_empty())
        .collect()
}

/// The type of a NAL unit (low 5 bits of its header byte).
pub fn nal_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|b| b & 0x1f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_three_and_four_byte_start_codes() {
        let data = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 9, 9,
        ];
        let nals = split_annex_b(&data);
        assert_eq!(
            nals,
            vec![&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 9, 9][..]]
        );
        assert_eq!(
            nals.iter()
                .map(|n| nal_type(n).unwrap())
                .collect::<Vec<_>>(),
            [7, 8, 5]
        );
        assert!(split_annex_b(&[1, 2, 3]).is_empty());
    }
}
