//! `stockflow bench sync --quick` as a process: the real server, the three sandboxes and a
//! short load in one command; every channel is measured and the checks hold.

use std::process::Command;

const BINARY: &str = env!("CARGO_BIN_EXE_stockflow");

/// The count column of the table row whose name starts with `name`.
fn count(stdout: &str, name: &str) -> u64 {
    let row = stdout
        .lines()
        .find(|line| line.starts_with(&format!("| {name} |")))
        .unwrap_or_else(|| panic!("no row {name:?} in:\n{stdout}"));
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    cells[2]
        .replace(',', "")
        .parse()
        .unwrap_or_else(|_| panic!("no count in {row:?}"))
}

#[test]
fn a_quick_sync_bench_measures_every_channel_within_the_platforms_limits() {
    let output = Command::new(BINARY)
        .args(["bench", "sync", "--quick", "--seconds", "2"])
        .env("STOCKFLOW_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "status {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    for channel in ["shopify", "tiktok"] {
        assert!(
            count(&stdout, &format!("{channel}: ingest -> acknowledged")) > 0,
            "{stdout}"
        );
    }
    assert!(count(&stdout, "amazon: ingest -> acknowledged, drops to zero") > 0);
    for channel in ["shopify", "tiktok", "amazon"] {
        assert!(
            count(
                &stdout,
                &format!("{channel}: ingest -> call sent (internal)")
            ) > 0,
            "{stdout}"
        );
    }
    assert!(
        stdout.contains("sandbox limit violations (must be 0): shopify 0, tiktok 0, amazon 0: ok"),
        "{stdout}"
    );
    let quantities = stdout
        .lines()
        .find(|line| line.starts_with("quantities after the drain:"))
        .unwrap_or_else(|| panic!("no quantity check in:\n{stdout}"));
    assert!(quantities.ends_with(": ok"), "{quantities}");
    assert!(stdout.contains("backlog when the load stopped"), "{stdout}");
}
