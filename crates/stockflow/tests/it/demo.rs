//! `stockflow demo` as a user runs it, with a short duration: it prints progress, the
//! dashboard's address and the KPI table, and writes the chart where it says.

use std::process::Command;

/// The value cells of a KPI row (the label, then one cell per channel and a total).
fn row<'a>(output: &'a str, label: &str) -> Vec<&'a str> {
    let line = output
        .lines()
        .find(|line| line.starts_with(label))
        .unwrap_or_else(|| panic!("no {label:?} row in:\n{output}"));
    line[label.len()..].split_whitespace().collect()
}

fn number(cell: &str) -> f64 {
    cell.parse()
        .unwrap_or_else(|_| panic!("{cell:?} is not a number"))
}

#[test]
fn a_short_demo_prints_its_kpis_and_writes_its_chart() {
    let dir = tempfile::tempdir().unwrap();
    let chart = dir.path().join("timeline.svg");
    let output = Command::new(env!("CARGO_BIN_EXE_stockflow"))
        .args(["demo", "--duration", "10s", "--seed", "7", "--chart"])
        .arg(&chart)
        .env("STOCKFLOW_LOG", "error")
        .output()
        .expect("the demo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("time runs x8640"),
        "the scale is stated:\n{stdout}"
    );
    assert!(
        stdout.contains("http://127.0.0.1:"),
        "an address is printed"
    );
    assert!(stdout.contains(" peak "), "progress lines name the phases");
    assert!(stdout.contains("== KPIs =="));
    assert_eq!(
        row(&stdout, "KPI"),
        ["shopify", "amazon", "tiktok", "total"]
    );
    assert!(number(row(&stdout, "events ingested")[0]) > 0.0);
    for label in [
        "propagation latency p50 (ms)",
        "propagation latency p99 (ms)",
        "under 1 s target (%)",
    ] {
        let cells = row(&stdout, label);
        assert_eq!(cells.len(), 3, "{label}: a figure per channel: {cells:?}");
        for cell in cells {
            assert!(number(cell) >= 0.0);
        }
    }
    for label in [
        "oversells, platforms (orders)",
        "oversells, platforms (units short)",
        "oversell incidents, ledger",
    ] {
        let cells = row(&stdout, label);
        assert_eq!(cells.len(), 4, "{label}: {cells:?}");
        cells.iter().for_each(|cell| assert!(number(cell) >= 0.0));
    }
    assert!(number(row(&stdout, "orders")[3]) > 0.0, "buyers bought");
    let releases = row(&stdout, "buffer releases (decays + releases)");
    assert!(
        number(releases[0]) > 0.0,
        "the buffer was released as demand subsided"
    );
    let written = std::fs::read_to_string(&chart).expect("the chart is where the demo says");
    assert!(stdout.contains("timeline chart written to"));
    assert!(written.contains("<svg") && written.contains("tiktok shows"));
}
