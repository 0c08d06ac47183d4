//! Just enough H.264 Annex-B parsing to check what the encoder emits: split an access unit
//! into NAL units and read the profile/level bytes of an SPS.

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

/// profile_idc, constraint flags byte and level_idc of an SPS, the three bytes that make up
/// an SDP `profile-level-id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfileLevel {
    pub profile_idc: u8,
    pub constraints: u8,
    pub level_idc: u8,
}

impl ProfileLevel {
    /// constraint_set1_flag: the stream obeys Main-profile limits, which together with
    /// profile_idc 66 makes it Constrained Baseline.
    pub fn constraint_set1(&self) -> bool {
        self.constraints & 0x40 != 0
    }
}

/// Read the profile/level bytes of an SPS NAL unit (header byte included).
pub fn sps_profile_level(nal: &[u8]) -> Option<ProfileLevel> {
    if nal_type(nal)? != NAL_SPS || nal.len() < 4 {
        return None;
    }
    Some(ProfileLevel {
        profile_idc: nal[1],
        constraints: nal[2],
        level_idc: nal[3],
    })
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

    #[test]
    fn reads_profile_level() {
        let pl = sps_profile_level(&[0x67, 0x42, 0xe0, 0x1f, 0xaa]).unwrap();
        assert_eq!((pl.profile_idc, pl.level_idc), (66, 31));
        assert!(pl.constraint_set1());
        assert_eq!(sps_profile_level(&[0x68, 0x42, 0xe0, 0x1f]), None);
        assert_eq!(sps_profile_level(&[0x67, 0x42]), None);
    }
}
