//! `stockflow reconcile counts` and `stockflow audit export` as processes against a running
//! `stockflow serve`.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const BINARY: &str = env!("CARGO_BIN_EXE_stockflow");

struct Server {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BINARY)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("STOCKFLOW_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("stockflow listening on ") {
                let _ = sender.send(url.trim().to_owned());
            }
        }
    });
    let url = receiver
        .recv_timeout(Duration::from_secs(60))
        .expect("the server starts");
    Server {
        child,
        url,
        _dir: dir,
    }
}

fn run(args: &[&str]) -> Output {
    Command::new(BINARY)
        .args(args)
        .env("STOCKFLOW_LOG", "warn")
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

async fn post(url: &str, body: Value) {
    let response = reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{}",
        response.text().await.unwrap()
    );
}

async fn on_hand(server: &Server, sku: &str) -> i64 {
    let body: Value = reqwest::get(format!("{}/v1/skus/{sku}", server.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["locations"][0]["on_hand"].as_i64().unwrap()
}

#[tokio::test]
async fn a_count_file_is_reported_refused_for_a_bad_row_then_applied_and_the_trail_exported() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = serve();
    let events = json!({"events": [
        {"event_id": "e1", "source": "wms", "seq": 1, "type": "received", "sku": "SKU-1", "location": "east", "quantity": 10},
        {"event_id": "e2", "source": "wms", "seq": 2, "type": "received", "sku": "SKU-2", "location": "east", "quantity": 4},
    ]});
    post(&format!("{}/v1/events", server.url), events).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("count.csv");
    let at = stockflow_server::wire::format_time(stockflow_server::app::wall_clock());
    std::fs::write(
        &file,
        format!("sku,location,counted,counted_at\nSKU-1,east,7,{at}\nSKU-2,east,oops,{at}\nSKU-2,west,1,{at}\n"),
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let url = server.url.as_str();

    let dry = run(&["reconcile", "counts", file, "--server", url]);
    assert!(dry.status.success(), "{}", text(&dry));
    let stdout = String::from_utf8_lossy(&dry.stdout);
    assert!(stdout.contains("line 3:"), "{}", text(&dry));
    assert!(
        stdout.contains("SKU-1 @ east: counted 7 expected 10 difference -3"),
        "{}",
        text(&dry)
    );
    assert!(
        String::from_utf8_lossy(&dry.stderr).contains("uploaded"),
        "progress: {}",
        text(&dry)
    );

    let refused = run(&["reconcile", "counts", file, "--server", url, "--apply"]);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("nothing was applied"),
        "{}",
        text(&refused)
    );
    assert_eq!(on_hand(&server, "SKU-1").await, 10);

    let applied = run(&[
        "reconcile",
        "counts",
        file,
        "--server",
        url,
        "--apply",
        "--apply-valid-rows",
        "--json",
    ]);
    assert!(applied.status.success(), "{}", text(&applied));
    let report: Value = serde_json::from_slice(&applied.stdout).unwrap();
    assert_eq!(report["applied"], 2, "{report}");
    assert_eq!(on_hand(&server, "SKU-1").await, 7);

    let csv = dir.path().join("audit.csv");
    let export = run(&[
        "audit",
        "export",
        "--server",
        url,
        "--format",
        "csv",
        "--sku",
        "SKU-1",
        "--out",
        csv.to_str().unwrap(),
    ]);
    assert!(export.status.success(), "{}", text(&export));
    let written = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = written.lines().collect();
    assert!(lines[0].starts_with("id,at,position,sku"), "{written}");
    assert!(
        lines.iter().skip(1).all(|l| l.contains(",SKU-1,")),
        "{written}"
    );
    assert!(lines.iter().any(|l| l.contains("cycle count")), "{written}");
    assert!(
        String::from_utf8_lossy(&export.stderr).contains("exported"),
        "{}",
        text(&export)
    );

    let jsonl = dir.path().join("audit.jsonl");
    let export = run(&[
        "audit",
        "export",
        "--server",
        url,
        "--format",
        "jsonl",
        "--source",
        "wms",
        "--out",
        jsonl.to_str().unwrap(),
    ]);
    assert!(export.status.success(), "{}", text(&export));
    let entries: Vec<Value> = std::fs::read_to_string(&jsonl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!entries.is_empty());
    assert!(entries.iter().all(|e| e["actor"] == "wms"), "{entries:?}");
}
