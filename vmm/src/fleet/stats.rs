//! Rates with their 95% confidence intervals: Wilson's score interval, and the rule of three
//! when nothing (or everything) was seen in 30 cases or more (a 95% bound of 3/n, which is
//! only sound for such n; below it Wilson's bound is used at zero too). Pure arithmetic.

use serde::Serialize;

/// The smallest number of cases for which the rule of three stands in for Wilson at 0 or n.
pub const RULE_OF_THREE_FROM: u64 = 30;

/// z for a two-sided 95% interval.
const Z: f64 = 1.959_963_984_540_054;

/// `k` of `n`, as a rate with its 95% interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Rate {
    /// Cases that had it.
    pub k: u64,
    /// Cases.
    pub n: u64,
    /// k / n (0 when n is 0).
    pub rate: f64,
    /// Lower bound of the 95% interval.
    pub low: f64,
    /// Upper bound of the 95% interval.
    pub high: f64,
}

impl Rate {
    /// `k` of `n` (k at most n).
    pub fn of(k: u64, n: u64) -> Self {
        let k = k.min(n);
        if n == 0 {
            return Self {
                k,
                n,
                rate: 0.0,
                low: 0.0,
                high: 1.0,
            };
        }
        let nf = n as f64;
        let p = k as f64 / nf;
        let (low, high) = if k == 0 && n >= RULE_OF_THREE_FROM {
            (0.0, 3.0 / nf)
        } else if k == n && n >= RULE_OF_THREE_FROM {
            (1.0 - 3.0 / nf, 1.0)
        } else {
            let z2 = Z * Z;
            let centre = (p + z2 / (2.0 * nf)) / (1.0 + z2 / nf);
            let half = Z * (p * (1.0 - p) / nf + z2 / (4.0 * nf * nf)).sqrt() / (1.0 + z2 / nf);
            ((centre - half).max(0.0), (centre + half).min(1.0))
        };
        Self {
            k,
            n,
            rate: p,
            low,
            high,
        }
    }

    /// `12.3% [9.1%, 16.0%]` (`n/a` of nothing).
    pub fn percent(&self) -> String {
        if self.n == 0 {
            return "n/a".to_owned();
        }
        format!(
            "{:.1}% [{:.1}%, {:.1}%]",
            self.rate * 100.0,
            self.low * 100.0,
            self.high * 100.0
        )
    }
}

/// Cases a campaign needs for a rate within +-`margin` at 95% confidence, the worst case
/// (p = 0.5), without a finite-population correction: Leveugle et al., DATE 2009.
pub fn cases_for_margin(margin: f64) -> u64 {
    (Z * Z * 0.25 / (margin * margin)).ceil() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 5e-4
    }

    #[test]
    fn wilson_intervals_match_the_textbook() {
        // Published values (Newcombe 1998): 81 of 263: 0.2553-0.3662.
        let r = Rate::of(81, 263);
        assert!(close(r.low, 0.2553) && close(r.high, 0.3662), "{r:?}");
        // 15 of 148: 0.0624-0.1605.
        let r = Rate::of(15, 148);
        assert!(close(r.low, 0.0624) && close(r.high, 0.1605), "{r:?}");
        let half = Rate::of(50, 100);
        assert!(close(half.rate, 0.5) && half.low < 0.5 && half.high > 0.5);
        assert!(
            close(half.high - 0.5, 0.5 - half.low),
            "symmetric at one half"
        );
    }

    #[test]
    fn nothing_or_everything_seen_uses_the_rule_of_three() {
        let none = Rate::of(0, 300);
        assert_eq!((none.low, none.high), (0.0, 0.01));
        let all = Rate::of(300, 300);
        assert_eq!((all.low, all.high), (0.99, 1.0));
        assert_eq!(Rate::of(0, 0).high, 1.0);
        assert_eq!(Rate::of(0, 0).percent(), "n/a");
        // Few cases: Wilson at the edges too (2 of 2: 34.2%-100%, Newcombe's table).
        let two = Rate::of(2, 2);
        assert!(close(two.low, 0.3424) && two.high == 1.0, "{two:?}");
        let none = Rate::of(0, 4);
        assert!(none.low == 0.0 && close(none.high, 0.4899), "{none:?}");
        // From 30 on, the rule of three.
        assert_eq!(Rate::of(0, 30).high, 0.1);
        assert!(close(Rate::of(0, 29).high, 0.1170), "Wilson below 30");
        assert_eq!(Rate::of(5, 3).k, 3, "k is capped at n");
        assert_eq!(Rate::of(1, 4).percent(), "25.0% [4.6%, 69.9%]");
    }

    #[test]
    fn campaign_sizes_follow_leveugle() {
        assert_eq!(cases_for_margin(0.01), 9604);
        assert_eq!(cases_for_margin(0.05), 385);
    }
}
