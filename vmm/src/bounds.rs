//! Bounds of numeric flags, checked after parsing: a value that parses but is out of range is
//! one the VMM cannot honour (exit status 66), unlike one that does not parse (64, clap's).

use std::ops::RangeInclusive;

/// `value` of `flag` if it lies in `range`; otherwise why not, as one line.
pub fn within(flag: &str, value: u64, range: RangeInclusive<u64>) -> Result<u64, String> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(format!(
            "invalid {flag} {value}: must be {} to {}",
            range.start(),
            range.end()
        ))
    }
}

/// A number of seconds for clap: a finite number, not negative (else a usage error, 64); its
/// range is checked later (66).
pub fn seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && s >= 0.0 => Ok(s),
        Ok(_) => Err("not a finite number of seconds from 0 up".into()),
        Err(_) => Err("not a number of seconds".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_says_the_range() {
        assert_eq!(within("--runs", 3, 1..=10), Ok(3));
        assert_eq!(
            within("--runs", 0, 1..=10_000),
            Err("invalid --runs 0: must be 1 to 10000".into())
        );
        assert!(seconds("-1").is_err());
        assert!(seconds("nan").is_err());
        assert!(seconds("inf").is_err());
        assert!(seconds("x").is_err());
        assert_eq!(seconds("0"), Ok(0.0));
        assert_eq!(seconds("2.5"), Ok(2.5));
    }
}
