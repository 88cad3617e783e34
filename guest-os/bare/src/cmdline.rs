//! The guest command line: space-separated `key=value` tokens.
//!
//! `arg(b"mode=echo exit=3", b"exit")` is `Some(b"3")`. The first token with the key wins; a
//! token without `=` is a key with no value and never matches. Any ASCII whitespace separates.

use crate::num;

/// The value of the first `key=value` token, if any.
pub fn arg<'a>(cmdline: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    tokens(cmdline).find_map(|token| token.strip_prefix(key)?.strip_prefix(b"="))
}

/// The value of `key` as a decimal number: `None` when absent, `Some(Err(value))` when present
/// but not a number (so that a caller can complain about it), `Some(Ok(n))` otherwise.
pub fn dec_arg<'a>(cmdline: &'a [u8], key: &[u8]) -> Option<Result<u64, &'a [u8]>> {
    let value = arg(cmdline, key)?;
    Some(num::parse_dec(value).ok_or(value))
}

/// The non-empty whitespace-separated tokens.
pub fn tokens(cmdline: &[u8]) -> impl Iterator<Item = &[u8]> {
    cmdline
        .split(|b| b.is_ascii_whitespace())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_values_by_key() {
        let line = b"mode=echo  exit=3\tflood=10";
        assert_eq!(arg(line, b"mode"), Some(&b"echo"[..]));
        assert_eq!(arg(line, b"exit"), Some(&b"3"[..]));
        assert_eq!(arg(line, b"flood"), Some(&b"10"[..]));
        assert_eq!(arg(line, b"missing"), None);
    }

    #[test]
    fn keys_match_whole() {
        let line = b"modex=1 xmode=2 mode";
        assert_eq!(arg(line, b"mode"), None);
        assert_eq!(arg(b"mode=", b"mode"), Some(&b""[..]));
        assert_eq!(arg(b"a=b=c", b"a"), Some(&b"b=c"[..]));
    }

    #[test]
    fn first_token_wins() {
        assert_eq!(arg(b"exit=1 exit=2", b"exit"), Some(&b"1"[..]));
    }

    #[test]
    fn empty_lines_have_nothing() {
        assert_eq!(arg(b"", b"mode"), None);
        assert_eq!(arg(b"   ", b"mode"), None);
        assert_eq!(tokens(b"  a  b ").count(), 2);
    }

    #[test]
    fn decimal_values() {
        assert_eq!(dec_arg(b"exit=7", b"exit"), Some(Ok(7)));
        assert_eq!(dec_arg(b"exit=x", b"exit"), Some(Err(&b"x"[..])));
        assert_eq!(dec_arg(b"mode=hello", b"exit"), None);
    }
}
