//! Reading H.264 syntax elements from a NAL unit's payload: emulation-prevention bytes
//! removed (`00 00 03` → `00 00`), then fixed-width and Exp-Golomb fields bit by bit.
//! Every read is checked: input from a camera may be truncated or garbage.

/// The NAL unit's payload with emulation-prevention bytes removed (the RBSP).
pub fn unescape(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len());
    let mut zeros = 0;
    for &b in payload {
        if zeros >= 2 && b == 3 {
            // An emulation-prevention byte: drop it, the zero run starts over.
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// The stream ended before a field did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncated;

/// A big-endian bit reader over an RBSP.
pub struct BitReader<'a> {
    data: &'a [u8],
    /// Position in bits.
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        BitReader { data, pos: 0 }
    }

    pub fn bit(&mut self) -> Result<bool, Truncated> {
        let byte = self.data.get(self.pos / 8).ok_or(Truncated)?;
        let bit = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Ok(bit == 1)
    }

    /// `n` bits (at most 32) as an unsigned number.
    pub fn bits(&mut self, n: u32) -> Result<u32, Truncated> {
        debug_assert!(n <= 32);
        let mut v = 0u32;
        for _ in 0..n {
            v = (v << 1) | self.bit()? as u32;
        }
        Ok(v)
    }

    /// Unsigned Exp-Golomb `ue(v)`. Values past `u32::MAX` (32 leading zeros or more) are
    /// not valid H.264 and read as truncated input.
    pub fn ue(&mut self) -> Result<u32, Truncated> {
        let mut zeros = 0;
        while !self.bit()? {
            zeros += 1;
            if zeros > 31 {
                return Err(Truncated);
            }
        }
        let rest = self.bits(zeros)?;
        Ok(((1u64 << zeros) - 1 + rest as u64) as u32)
    }

    /// Signed Exp-Golomb `se(v)`.
    pub fn se(&mut self) -> Result<i32, Truncated> {
        let k = self.ue()? as i64;
        let v = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        Ok(v as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_emulation_prevention_bytes_only_after_two_zeros() {
        assert_eq!(unescape(&[0, 0, 3, 1]), [0, 0, 1]);
        assert_eq!(unescape(&[0, 0, 3, 0, 0, 3]), [0, 0, 0, 0]);
        assert_eq!(unescape(&[0, 3, 0, 3]), [0, 3, 0, 3]);
        assert_eq!(unescape(&[1, 0, 0, 0, 3, 3]), [1, 0, 0, 0, 3]);
        assert!(unescape(&[]).is_empty());
    }

    #[test]
    fn reads_bits_and_exp_golomb() {
        // 1 | 010 | 011 | 00100 | 00101 | 1..: ue 0, 1, 2, 3; then se(4) = -2.
        let data = [0b1010_0110, 0b0100_0010, 0b1000_0000];
        let mut r = BitReader::new(&data);
        assert_eq!(r.ue().unwrap(), 0);
        assert_eq!(r.ue().unwrap(), 1);
        assert_eq!(r.ue().unwrap(), 2);
        assert_eq!(r.ue().unwrap(), 3);
        assert_eq!(r.se().unwrap(), -2);
        let mut r = BitReader::new(&[0xab, 0xcd]);
        assert_eq!(r.bits(12).unwrap(), 0xabc);
        assert_eq!(r.bits(4).unwrap(), 0xd);
        assert_eq!(r.bit(), Err(Truncated));
    }

    #[test]
    fn truncated_or_endless_exp_golomb_is_an_error() {
        assert_eq!(BitReader::new(&[]).ue(), Err(Truncated));
        // Leading zeros then the end.
        assert_eq!(BitReader::new(&[0, 0]).ue(), Err(Truncated));
        // 40 zero bits: more than any valid ue(v) has.
        assert_eq!(BitReader::new(&[0, 0, 0, 0, 0, 0xff]).ue(), Err(Truncated));
        // The prefix is there, the suffix bits are not.
        assert_eq!(BitReader::new(&[0b0000_0001]).ue(), Err(Truncated));
    }
}
