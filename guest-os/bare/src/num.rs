//! Numbers to text and back, by hand (no `core::fmt`, which brings SSE code into ring 0).

/// Buffer size that holds any `u64` in decimal.
pub const DEC_LEN: usize = 20;
/// Buffer size that holds any `u64` in hex with its `0x` prefix.
pub const HEX_LEN: usize = 18;

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Writes `value` in decimal at the end of `buf` and returns the digits.
pub fn format_dec(mut value: u64, buf: &mut [u8; DEC_LEN]) -> &[u8] {
    let mut start = DEC_LEN;
    for slot in buf.iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
        start -= 1;
        if value == 0 {
            break;
        }
    }
    buf.get(start..).unwrap_or_default()
}

/// Writes `value` in lower-case hex with a `0x` prefix and no leading zeros at the end of `buf`
/// and returns the text.
pub fn format_hex(mut value: u64, buf: &mut [u8; HEX_LEN]) -> &[u8] {
    let mut start = HEX_LEN;
    // Two slots stay free for the prefix: 16 hex digits fill the rest exactly.
    for slot in buf.iter_mut().skip(2).rev() {
        *slot = HEX_DIGITS[(value & 0xf) as usize];
        value >>= 4;
        start -= 1;
        if value == 0 {
            break;
        }
    }
    start -= 2;
    if let Some(prefix) = buf.get_mut(start..start + 2) {
        prefix.copy_from_slice(b"0x");
    }
    buf.get(start..).unwrap_or_default()
}

/// Parses an unsigned decimal number: one or more ASCII digits and nothing else, no overflow.
pub fn parse_dec(text: &[u8]) -> Option<u64> {
    if text.is_empty() {
        return None;
    }
    let mut value: u64 = 0;
    for &b in text {
        let digit = b.checked_sub(b'0').filter(|d| *d < 10)?;
        value = value.checked_mul(10)?.checked_add(u64::from(digit))?;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(v: u64) -> String {
        let mut buf = [0; DEC_LEN];
        String::from_utf8(format_dec(v, &mut buf).to_vec()).unwrap()
    }

    fn hex(v: u64) -> String {
        let mut buf = [0; HEX_LEN];
        String::from_utf8(format_hex(v, &mut buf).to_vec()).unwrap()
    }

    #[test]
    fn decimal_matches_std() {
        for v in [0, 1, 9, 10, 99, 100, 12345, 1 << 32, u64::MAX - 1, u64::MAX] {
            assert_eq!(dec(v), v.to_string());
        }
    }

    #[test]
    fn hex_matches_std() {
        for v in [0, 1, 0xf, 0x10, 0x10_0000, 0xdead_beef, 1 << 63, u64::MAX] {
            assert_eq!(hex(v), format!("{v:#x}"));
        }
    }

    #[test]
    fn decimal_parses_digits_only() {
        assert_eq!(parse_dec(b"0"), Some(0));
        assert_eq!(parse_dec(b"007"), Some(7));
        assert_eq!(parse_dec(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_dec(b"18446744073709551616"), None);
        assert_eq!(parse_dec(b""), None);
        assert_eq!(parse_dec(b"-1"), None);
        assert_eq!(parse_dec(b"12a"), None);
        assert_eq!(parse_dec(b" 1"), None);
        assert_eq!(parse_dec(b"0x10"), None);
    }

    #[test]
    fn round_trip() {
        for v in [0, 42, 1 << 40, u64::MAX] {
            let mut buf = [0; DEC_LEN];
            assert_eq!(parse_dec(format_dec(v, &mut buf)), Some(v));
        }
    }
}
