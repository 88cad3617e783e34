//! `report.md`: a campaign's summary for people.

use super::campaign::Campaign;
use super::stats::cases_for_margin;
use super::summary::Summary;
use crate::faults::classify::Class;
use std::fmt::Write as _;

/// The report of `summary` of `campaign`.
pub fn report(s: &Summary, campaign: &Campaign) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "# Campaign `{}`: {}\n", s.campaign, s.verdict.name());
    let _ = writeln!(
        w,
        "{} of {} cases recorded (master seed {}).{}\n",
        s.recorded,
        s.expected,
        campaign.seed,
        if s.missing.is_empty() {
            String::new()
        } else {
            format!(
                " Missing: {}{}.",
                s.missing
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                if s.missing_count > s.missing.len() as u64 {
                    format!(", ... ({} in all)", s.missing_count)
                } else {
                    String::new()
                }
            )
        }
    );
    let _ = writeln!(
        w,
        "## Classes\n\n| class | cases | rate [95% interval] |\n|---|---|---|"
    );
    for class in Class::ALL {
        if let Some(r) = s.classes.get(&class) {
            let _ = writeln!(w, "| {} | {} | {} |", class.name(), r.k, r.percent());
        }
    }
    let _ = writeln!(
        w,
        "\n- coverage (recovered, with or without loss, of the detected faults): {} of {}: {}",
        s.coverage.k,
        s.coverage.n,
        s.coverage.percent()
    );
    let _ = writeln!(
        w,
        "- coverage of the detected faults seen used (activation known): {} of {}: {}",
        s.coverage_activated.k,
        s.coverage_activated.n,
        s.coverage_activated.percent()
    );
    let _ = writeln!(
        w,
        "- silent corruption: {} of {}: {}",
        s.silent_corruption.k,
        s.silent_corruption.n,
        s.silent_corruption.percent()
    );
    if let Some(l) = s.latency {
        let _ = writeln!(
            w,
            "- recovery latency over {} recoveries: p50 {:.0} us, p99 {:.0} us, p99.9 {:.0} us, max {:.0} us",
            l.count, l.p50, l.p99, l.p999, l.max
        );
    }
    if let Some(r) = s.cases_per_hour {
        let _ = writeln!(w, "- throughput: {r:.0} cases/hour per runner");
    }
    if s.recorded > 0 {
        let margin = 1.959_964 * (0.25 / s.recorded as f64).sqrt();
        let _ = writeln!(
            w,
            "- size: {} cases give any rate to within +-{:.1} points at 95% ({} would give +-1, {} +-5)",
            s.recorded,
            margin * 100.0,
            cases_for_margin(0.01),
            cases_for_margin(0.05)
        );
    }
    let _ = writeln!(
        w,
        "\n## By target and fault kind\n\n| target | kind | cases | coverage | classes |\n|---|---|---|---|---|"
    );
    for c in &s.cells {
        let classes = Class::ALL
            .iter()
            .filter_map(|k| c.classes.get(k).map(|n| format!("{} {n}", k.name())))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} |",
            c.target,
            c.kind,
            c.cases,
            if c.coverage.n == 0 {
                "-".to_owned()
            } else {
                c.coverage.percent()
            },
            classes
        );
    }
    let _ = writeln!(w, "\n![classes](classes.svg)\n\n![latency](latency.svg)\n");
    if s.bad.is_empty() {
        let _ = writeln!(w, "## Bad cases\n\nNone.");
    } else {
        let _ = writeln!(
            w,
            "## Bad cases, by signature\n\n| signature | class | cases | first | replay |\n|---|---|---|---|---|"
        );
        for b in &s.bad {
            let _ = writeln!(
                w,
                "| `{}` | {} | {} | {} | `{}` |",
                b.signature,
                b.class.name(),
                b.cases,
                b.first_case,
                b.replay
            );
        }
    }
    out
}
