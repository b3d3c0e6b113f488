//! `stockflow demo`: the main job in one command. It starts stockflow on the embedded store
//! with a temporary data directory, the Shopify, Amazon and TikTok Shop sandboxes, the buyers
//! and the warehouse, and plays the seed's story (a consumer electronics SKU turns into a
//! TikTok trend overnight) in about a minute, then prints the operators' KPIs and writes a
//! timeline chart.
//!
//! - [`stage`]: the sandboxes, stockflow configured for them, the storefronts and the
//!   warehouse, in one process (the end-to-end tests use it too).
//! - `play`: the story's clock: buyers, shipping, the warehouse's script, the surge signal,
//!   progress lines and the timeline samples.
//! - `report`: the KPI table.
//! - `chart`: the timeline as SVG.

mod chart;
mod play;
mod report;
pub mod stage;

use std::path::PathBuf;
use std::time::Duration;

pub use report::Report;

/// `stockflow demo` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// The story's seed: the same seed, the same buyers wanting the same things at the same
    /// moments (wall-clock latencies vary).
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// How long the story takes in real time (a day of the story; e.g. 60s, 2m, 10s).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Keep the journal here instead of a temporary directory that is removed at the end.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Where the timeline chart (SVG) is written.
    #[arg(long, default_value = "stockflow-demo.svg")]
    pub chart: PathBuf,
    /// Play the story without the buffer policies, for comparison.
    #[arg(long)]
    pub no_buffers: bool,
}

/// `500ms`, `10s`, `2m`, or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 60s, 2m, 500ms)"))?;
    let seconds = match unit {
        "ms" => value / 1_000.0,
        "s" => value,
        "m" | "min" => value * 60.0,
        _ => return Err(format!("unknown unit {unit:?} (ms, s, m)")),
    };
    if !(1.0..=3_600.0).contains(&seconds) {
        return Err("a demo lasts between 1 s and 1 h".to_owned());
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Runs the demo and prints as it goes; returns the KPIs.
pub async fn run(args: DemoArgs) -> anyhow::Result<Report> {
    play::run(args).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1_500)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert!(parse_duration("10h").is_err());
        assert!(parse_duration("0s").is_err());
    }
}
