//! The campaign report's plots, as SVG (plotters): cases per class for each target x kind as
//! stacked bars, and the cumulative distribution of recovery latency.

use super::summary::Summary;
use crate::faults::classify::Class;
use hdrhistogram::Histogram;
use plotters::prelude::*;

/// One colour per class, worst first (reds for the bad ones, greens for recovery, greys for
/// nothing seen).
fn colour(class: &str) -> RGBColor {
    match class {
        "vmm-error" => RGBColor(90, 0, 0),
        "propagated" => RGBColor(170, 20, 20),
        "silent-corruption" => RGBColor(230, 50, 40),
        "timeout" => RGBColor(240, 130, 40),
        "fail-stop" => RGBColor(240, 190, 60),
        "recovered-lossy" => RGBColor(120, 180, 90),
        "recovered" => RGBColor(40, 140, 60),
        "masked" => RGBColor(70, 120, 190),
        "no-effect" => RGBColor(150, 170, 200),
        "not-activated" => RGBColor(190, 190, 190),
        _ => RGBColor(225, 225, 225),
    }
}

/// Stacked bars: per target x kind, the share of its cases in each class.
pub fn classes(summary: &Summary) -> String {
    let mut svg = String::new();
    let rows = summary.cells.len().max(1);
    let height = 120 + 28 * rows as u32;
    {
        let root = SVGBackend::with_string(&mut svg, (900, height)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let labels: Vec<String> = summary
            .cells
            .iter()
            .map(|c| format!("{} {}", c.target, c.kind))
            .collect();
        let chart = ChartBuilder::on(&root)
            .caption(
                format!("{}: cases per class", summary.campaign),
                ("sans-serif", 18),
            )
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(180)
            .build_cartesian_2d(0f64..100f64, 0..rows);
        if let Ok(mut chart) = chart {
            draw_bars(&mut chart, summary, &labels, rows);
        }
        legend(&root, height);
        let _ = root.present();
    }
    svg_or_empty(svg)
}

type Bars<'a> = ChartContext<
    'a,
    SVGBackend<'a>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordusize>,
>;

fn draw_bars(chart: &mut Bars<'_>, summary: &Summary, labels: &[String], rows: usize) {
    let _ = chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc("% of cases")
        .y_labels(rows)
        .y_label_formatter(&|y| labels.get(*y).cloned().unwrap_or_default())
        .draw();
    for (row, cell) in summary.cells.iter().enumerate() {
        let mut left = 0.0;
        for class in Class::ALL {
            let n = *cell.classes.get(&class).unwrap_or(&0);
            if n == 0 {
                continue;
            }
            let width = n as f64 * 100.0 / cell.cases.max(1) as f64;
            let _ = chart.draw_series(std::iter::once(Rectangle::new(
                [(left, row), (left + width, row + 1)],
                colour(class.name()).filled(),
            )));
            left += width;
        }
    }
}

fn legend(root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>, height: u32) {
    for (i, class) in Class::ALL.iter().enumerate() {
        let x = 10 + (i as i32 % 6) * 148;
        let y = height as i32 - 40 + (i as i32 / 6) * 16;
        let _ = root.draw(&Rectangle::new(
            [(x, y), (x + 10, y + 10)],
            colour(class.name()).filled(),
        ));
        let _ = root.draw(&Text::new(
            class.name(),
            (x + 14, y),
            ("sans-serif", 11).into_font(),
        ));
    }
}

/// The cumulative distribution of recovery latency (microseconds, from 0 to a tenth past the
/// slowest: recoveries of one kind sit close together, and a log axis from 1 us hid them).
pub fn latency_cdf(histogram: &Histogram<u64>) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (700, 420)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let max = histogram.max().max(2) as f64;
        let chart = ChartBuilder::on(&root)
            .caption("Recovery latency, cumulative", ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(45)
            .build_cartesian_2d(0f64..max * 1.1, 0f64..1f64);
        if let Ok(mut chart) = chart {
            draw_cdf(&mut chart, histogram);
        }
        let _ = root.present();
    }
    svg_or_empty(svg)
}

type Cdf<'a> = ChartContext<
    'a,
    SVGBackend<'a>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

fn draw_cdf(chart: &mut Cdf<'_>, histogram: &Histogram<u64>) {
    let _ = chart
        .configure_mesh()
        .x_desc("latency (us)")
        .y_desc("share of recoveries")
        .draw();
    let total = histogram.len().max(1) as f64;
    let mut seen = 0u64;
    let points: Vec<(f64, f64)> = histogram
        .iter_recorded()
        .map(|v| {
            seen += v.count_at_value();
            (v.value_iterated_to().max(1) as f64, seen as f64 / total)
        })
        .collect();
    let _ = chart.draw_series(LineSeries::new(
        points,
        RGBColor(40, 140, 60).stroke_width(2),
    ));
}

fn svg_or_empty(svg: String) -> String {
    if svg.is_empty() {
        "<svg xmlns=\"http://www.w3.org/2000/svg\"/>\n".to_owned()
    } else {
        svg
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::summary::tests::rec;
    use crate::fleet::summary::{latency_histogram, summarize};

    #[test]
    fn plots_are_svg_with_a_bar_per_cell_and_a_curve() {
        let records = vec![
            rec(0, "kv", "recovered", Some("panic")),
            rec(1, "fs", "silent-corruption", None),
        ];
        let h = latency_histogram(&records);
        let s = summarize("c", &records, &[0, 1], &h, 2, 1.0);
        let bars = classes(&s);
        assert!(bars.starts_with("<svg"), "{bars}");
        assert!(bars.contains("kv panic") && bars.contains("fs panic"));
        assert!(bars.contains("silent-corruption"));
        let cdf = latency_cdf(&h);
        assert!(
            cdf.starts_with("<svg") && cdf.contains("<polyline"),
            "{cdf}"
        );
    }
}
