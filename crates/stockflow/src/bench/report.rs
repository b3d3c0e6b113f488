//! Latency and throughput figures shared by every benchmark, the median of repeated runs, and
//! the table the command prints.

use hdrhistogram::Histogram;
use std::fmt;
use std::time::Duration;

/// Request latencies in microseconds (1 us to 60 s, 3 significant figures).
pub struct LatencyRecorder {
    histogram: Histogram<u64>,
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyRecorder {
    pub fn new() -> Self {
        Self {
            histogram: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
        }
    }

    pub fn record(&mut self, latency: Duration) {
        let micros = (latency.as_micros() as u64).clamp(1, 60_000_000);
        self.histogram.record(micros).expect("clamped into bounds");
    }

    pub fn merge(&mut self, other: &LatencyRecorder) {
        self.histogram.add(&other.histogram).expect("same bounds");
    }

    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// Every recorded request as one operation, over `elapsed`.
    pub fn throughput(&self, elapsed: Duration) -> Throughput {
        Throughput {
            operations: self.histogram.len(),
            elapsed,
            p50: Duration::from_micros(self.histogram.value_at_quantile(0.50)),
            p99: Duration::from_micros(self.histogram.value_at_quantile(0.99)),
        }
    }
}

/// Operations over a wall-clock span, with request latency percentiles.
#[derive(Debug, Clone, Copy)]
pub struct Throughput {
    pub operations: u64,
    pub elapsed: Duration,
    pub p50: Duration,
    pub p99: Duration,
}

impl Throughput {
    pub fn per_second(&self) -> f64 {
        self.operations as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for Throughput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:>9}/s  ({} in {:.2} s)  p50 {:.2} ms  p99 {:.2} ms",
            thousands(self.per_second()),
            self.operations,
            self.elapsed.as_secs_f64(),
            millis(self.p50),
            millis(self.p99)
        )
    }
}

impl From<&stockflow_engine::bench::BenchReport> for Throughput {
    fn from(report: &stockflow_engine::bench::BenchReport) -> Self {
        Throughput {
            operations: report.operations,
            elapsed: report.elapsed,
            p50: report.request_p50,
            p99: report.request_p99,
        }
    }
}

/// The runs of one benchmark. Its figure is the median run by rate (the middle one; with an
/// even count, the upper of the two middle ones), whose latencies are reported with it, so
/// that the rate and the percentiles of a row come from the same run.
#[derive(Debug, Clone, Default)]
pub struct Runs(pub Vec<Throughput>);

impl Runs {
    pub fn push(&mut self, run: Throughput) {
        self.0.push(run);
    }

    pub fn median(&self) -> Option<Throughput> {
        let mut runs = self.0.clone();
        runs.sort_by(|a, b| a.per_second().total_cmp(&b.per_second()));
        runs.get(runs.len() / 2).copied()
    }

    /// Every run's rate, in the order they ran.
    pub fn rates(&self) -> String {
        self.0
            .iter()
            .map(|run| thousands(run.per_second()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// 1234567.8 -> "1,234,568".
pub fn thousands(value: f64) -> String {
    let whole = value.round().max(0.0) as u64;
    let digits = whole.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

pub fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// One row of the result table.
pub struct Row {
    pub name: String,
    pub runs: Runs,
    /// e.g. ">= 200,000/s"; empty when the row has no target.
    pub target: String,
    /// `Some(met)` when the row has a target.
    pub met: Option<bool>,
}

/// The table, in Markdown so that it can be pasted into BENCHMARKS.md as printed.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    out.push_str(
        "| benchmark | median/s | p50 ms | p99 ms | runs (/s) | target | met |\n\
         |---|---:|---:|---:|---|---|---|\n",
    );
    for row in rows {
        let (rate, p50, p99) = match row.runs.median() {
            Some(run) => (
                thousands(run.per_second()),
                format!("{:.2}", millis(run.p50)),
                format!("{:.2}", millis(run.p99)),
            ),
            None => ("skipped".to_owned(), "-".to_owned(), "-".to_owned()),
        };
        let met = match row.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "",
        };
        out.push_str(&format!(
            "| {} | {rate} | {p50} | {p99} | {} | {} | {met} |\n",
            row.name,
            row.runs.rates(),
            row.target
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(operations: u64, p50_micros: u64) -> Throughput {
        Throughput {
            operations,
            elapsed: Duration::from_secs(1),
            p50: Duration::from_micros(p50_micros),
            p99: Duration::from_micros(p50_micros * 2),
        }
    }

    #[test]
    fn the_median_is_the_middle_run_with_its_own_latencies() {
        let runs = Runs(vec![run(300, 3), run(100, 1), run(200, 2)]);
        let median = runs.median().unwrap();
        assert_eq!((median.operations, median.p50.as_micros()), (200, 2));
        assert_eq!(runs.rates(), "300, 100, 200");
        assert!(Runs::default().median().is_none());
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0.4), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1_234_567.8), "1,234,568");
    }

    #[test]
    fn a_skipped_row_says_so() {
        let rows = [Row {
            name: "baseline".to_owned(),
            runs: Runs::default(),
            target: String::new(),
            met: None,
        }];
        assert!(table(&rows).contains("| baseline | skipped | - | - |"));
    }
}
