//! The timeline chart (SVG): the hot SKU's units on the shelf and available in stockflow's
//! ledger, what each platform showed buyers (from the sandboxes' recorders, as steps), and
//! the largest buffer withheld from a channel.

use super::play::{Sample, short};
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use stockflow_sim::Platform;
use stockflow_sim::scenario::Story;

/// The most samples kept for the chart (a long run is thinned by the sampling period).
const SAMPLES_MAX: usize = 10_000;

#[derive(Debug, Default)]
pub struct Timeline {
    /// (seconds, on the shelf, available in the ledger, largest withheld).
    pub samples: Vec<(f64, i64, i64, i64)>,
    /// Per platform, what it showed: (time since the start, quantity) at each change.
    pub shown: BTreeMap<Platform, Vec<(Duration, i64)>>,
}

impl Timeline {
    pub fn push(&mut self, at: Duration, sample: &Sample) {
        if self.samples.len() < SAMPLES_MAX {
            self.samples.push((
                at.as_secs_f64(),
                sample.on_shelf,
                sample.available,
                sample.withheld_max(),
            ));
        }
    }
}

/// A step line from change points, held until `end`.
fn steps(points: &[(Duration, i64)], end: f64) -> Vec<(f64, i64)> {
    let mut line = Vec::with_capacity(points.len() * 2 + 1);
    for (index, (at, quantity)) in points.iter().enumerate() {
        let x = at.as_secs_f64().min(end);
        if index > 0 {
            line.push((x, points[index - 1].1));
        }
        line.push((x, *quantity));
    }
    if let Some((_, last)) = points.last() {
        line.push((end, *last));
    }
    line
}

pub fn write(path: &Path, timeline: &Timeline, story: &Story) -> anyhow::Result<()> {
    let end = story.duration.as_secs_f64();
    let top = timeline
        .samples
        .iter()
        .map(|s| s.1.max(s.2))
        .chain(timeline.shown.values().flatten().map(|(_, q)| *q))
        .max()
        .unwrap_or(1)
        .max(10);
    // Head room for the legend above the lines.
    let top = top + top * 2 / 5;
    let root = SVGBackend::new(path, (1200, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(to_anyhow)?;
    let caption = format!(
        "{}: a day in {:.0} s (x{:.0}), seed {}",
        story.hot_sku,
        end,
        story.time_scale(),
        story.seed
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..end, 0i64..top)
        .map_err(to_anyhow)?;
    chart
        .configure_mesh()
        .x_desc("seconds of the run")
        .y_desc("units")
        .draw()
        .map_err(to_anyhow)?;
    let series: [Series; 3] = [
        (
            "on the shelf",
            RGBColor(40, 40, 40),
            timeline.samples.iter().map(|s| (s.0, s.1)).collect(),
        ),
        (
            "available (ledger)",
            RGBColor(30, 120, 200),
            timeline.samples.iter().map(|s| (s.0, s.2)).collect(),
        ),
        (
            "withheld (largest buffer)",
            RGBColor(200, 40, 40),
            timeline.samples.iter().map(|s| (s.0, s.3)).collect(),
        ),
    ];
    for (label, color, points) in series {
        draw(&mut chart, label, color, points)?;
    }
    let colors = [
        (Platform::Shopify, RGBColor(90, 160, 60)),
        (Platform::Amazon, RGBColor(240, 150, 20)),
        (Platform::TikTok, RGBColor(160, 60, 200)),
    ];
    for (platform, color) in colors {
        let points = timeline.shown.get(&platform).cloned().unwrap_or_default();
        let label = format!("{} shows", short(platform));
        draw(&mut chart, &label, color, steps(&points, end))?;
    }
    for phase in &story.phases {
        let x = phase.starts_at.as_secs_f64();
        chart
            .draw_series(std::iter::once(Text::new(
                phase.name,
                (x, top - 4),
                ("sans-serif", 14)
                    .into_font()
                    .color(&RGBColor(110, 110, 110)),
            )))
            .map_err(to_anyhow)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(to_anyhow)?;
    root.present().map_err(to_anyhow)?;
    Ok(())
}

/// A line to draw: its legend, its colour, its points.
type Series = (&'static str, RGBColor, Vec<(f64, i64)>);

type Chart<'a> = ChartContext<
    'a,
    SVGBackend<'a>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordi64>,
>;

fn draw(
    chart: &mut Chart<'_>,
    label: &str,
    color: RGBColor,
    points: Vec<(f64, i64)>,
) -> anyhow::Result<()> {
    chart
        .draw_series(LineSeries::new(points, color.stroke_width(2)))
        .map_err(to_anyhow)?
        .label(label.to_owned())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    Ok(())
}

fn to_anyhow(error: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("{error}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_hold_each_value_until_the_next_change() {
        let points = [(Duration::from_secs(1), 5), (Duration::from_secs(3), 2)];
        assert_eq!(
            steps(&points, 10.0),
            vec![(1.0, 5), (3.0, 5), (3.0, 2), (10.0, 2)]
        );
        assert!(steps(&[], 10.0).is_empty());
    }
}
