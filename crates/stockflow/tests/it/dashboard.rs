//! The dashboard in a real browser: `stockflow serve` with two webhook channels (served by small
//! receivers here), an Amazon channel with a buffer policy and some stock and orders; then
//! `tests/browser/dashboard.mjs` drives Debian's headless Chromium through playwright-core.
//!
//! Skips, saying why, when Chromium, Node.js or playwright-core (`npm ci` in tests/browser) is
//! missing; with `STOCKFLOW_REQUIRE_BROWSER=1` (set by CI) a missing tool fails the test.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

const BINARY: &str = env!("CARGO_BIN_EXE_stockflow");
/// The page's stream sends at most two updates a second (500 ms interval); a little slack for
/// the measurement's edges.
const UPDATES_PER_SECOND_MAX: f64 = 3.0;
const BROWSER_TIMEOUT: Duration = Duration::from_secs(120);

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn chromium() -> PathBuf {
    std::env::var_os("STOCKFLOW_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

fn runs(program: &str, args: &[&str], dir: &Path) -> bool {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Why the browser test cannot run here, if it cannot. Installs playwright-core from the
/// lockfile when npm is there and it is missing.
fn missing_tool() -> Option<String> {
    let dir = browser_dir();
    if !chromium().exists() {
        return Some(format!(
            "{} is missing (apt-get install chromium)",
            chromium().display()
        ));
    }
    if !runs("node", &["--version"], &dir) {
        return Some("node is missing".to_owned());
    }
    let playwright = dir.join("node_modules/playwright-core");
    if !playwright.exists() && !runs("npm", &["ci", "--no-audit", "--no-fund"], &dir) {
        return Some(format!(
            "playwright-core is missing and `npm ci` failed in {}",
            dir.display()
        ));
    }
    None
}

/// Answers every HTTP request with 200 after `delay`: a channel's webhook endpoint.
async fn webhook_receiver(delay: Duration) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/inventory", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(answer_requests(socket, delay));
        }
    });
    url
}

async fn answer_requests(socket: tokio::net::TcpStream, delay: Duration) {
    let mut socket = tokio::io::BufReader::new(socket);
    loop {
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            match socket.read_line(&mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if socket.read_exact(&mut body).await.is_err() {
            return;
        }
        tokio::time::sleep(delay).await;
        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        if socket.get_mut().write_all(answer).await.is_err() {
            return;
        }
    }
}

fn config(outlet: &str, wholesale: &str) -> String {
    format!(
        r#"
[dashboard]
stream_interval_ms = 500

[channels.outlet]
kind = "webhook"
serves = ["east"]
url = "{outlet}"
secret = "outlet-secret"

[channels.wholesale]
kind = "webhook"
serves = ["east", "west"]
policies = ["slow-payers"]
url = "{wholesale}"
secret = "wholesale-secret"

[channels.amazon]
kind = "amazon"
serves = ["east"]
policies = ["viral-guard"]

[[policies]]
id = "viral-guard"
strategy = {{ kind = "static", amount = {{ percent = 10 }} }}

[[policies]]
id = "slow-payers"
strategy = {{ kind = "static", amount = {{ units = 2 }} }}
"#
    )
}

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(data_dir: &Path, config_file: &Path) -> Server {
    std::fs::create_dir_all(data_dir).unwrap();
    let log = std::fs::File::create(data_dir.join("server.log")).unwrap();
    let mut child = Command::new(BINARY)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .arg("--config")
        .arg(config_file)
        .env("STOCKFLOW_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("the binary starts");
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
        .unwrap_or_else(|_| {
            let log = std::fs::read_to_string(data_dir.join("server.log")).unwrap_or_default();
            panic!("stockflow serve did not start: {log}")
        });
    Server { child, url }
}

async fn post(client: &reqwest::Client, url: &str, body: Value) -> Value {
    let response = client.post(url).json(&body).send().await.unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "POST {url}: {status} {body}");
    body
}

/// 120 SKUs at east (a few at west too), some Amazon orders, and an operator's release.
async fn seed(client: &reqwest::Client, base: &str) {
    let events: Vec<Value> = (1..=120)
        .map(|i| {
            json!({"event_id": format!("wms-{i}"), "source": "wms", "seq": i, "type": "received",
                   "sku": format!("SKU-{i:04}"), "location": if i % 7 == 0 { "west" } else { "east" },
                   "quantity": 20 + (i * 37) % 180})
        })
        .collect();
    post(
        client,
        &format!("{base}/v1/events"),
        json!({"events": events}),
    )
    .await;
    for (order, sku, quantity) in [
        ("amz-1", "SKU-0002", 3),
        ("amz-2", "SKU-0005", 1),
        ("amz-3", "SKU-0002", 2),
    ] {
        let body = json!({"reservation_id": order, "channel": "amazon",
                          "lines": [{"sku": sku, "quantity": quantity}]});
        post(client, &format!("{base}/v1/reservations"), body).await;
    }
    post(
        client,
        &format!("{base}/v1/reservations/amz-1/confirm"),
        json!({}),
    )
    .await;
    post(
        client,
        &format!("{base}/v1/reservations/amz-2/release"),
        json!({}),
    )
    .await;
}

/// Waits until both webhook channels acknowledged something (the chart has data).
async fn wait_for_acknowledgements(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let sync: Value = client
            .get(format!("{base}/v1/sync"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let acknowledged = sync["channels"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["acknowledged"].as_u64().unwrap_or(0) > 0)
            .count();
        if acknowledged == 2 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the webhook channels never acknowledged");
}

fn run_browser(base: &str, screenshot: &Path) -> Value {
    let mut child = Command::new("node")
        .arg("dashboard.mjs")
        .args([base, screenshot.to_str().unwrap(), "SKU-0003", "SKU-0002"])
        .current_dir(browser_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node starts");
    let deadline = Instant::now() + BROWSER_TIMEOUT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the browser script ran longer than {BROWSER_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser script failed:\n{stderr}\n{stdout}"
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|_| panic!("no result line from the browser script:\n{stdout}\n{stderr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_is_live_in_a_real_browser() {
    if let Some(reason) = missing_tool() {
        assert!(
            std::env::var("STOCKFLOW_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "the browser test must run here (STOCKFLOW_REQUIRE_BROWSER=1): {reason}"
        );
        eprintln!("skipped the_dashboard_is_live_in_a_real_browser: {reason}");
        return;
    }
    let data_dir = std::env::temp_dir().join(format!("stockflow-browser-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    std::fs::create_dir_all(&data_dir).unwrap();
    let outlet = webhook_receiver(Duration::from_millis(15)).await;
    let wholesale = webhook_receiver(Duration::from_millis(180)).await;
    let config_file = data_dir.join("stockflow.toml");
    std::fs::write(&config_file, config(&outlet, &wholesale)).unwrap();
    let server = serve(&data_dir.join("data"), &config_file);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    seed(&client, &server.url).await;
    wait_for_acknowledgements(&client, &server.url).await;

    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let base = server.url.clone();
    let shot = screenshot.clone();
    let result = tokio::task::spawn_blocking(move || run_browser(&base, &shot))
        .await
        .unwrap();
    println!("browser: {result}");
    println!("screenshot: {}", screenshot.display());

    assert_eq!(result["same_document"], true, "{result}");
    let rate = result["updates_per_second"].as_f64().unwrap();
    assert!(
        rate > 0.0,
        "the stream sent nothing while stock changed: {result}"
    );
    assert!(
        rate <= UPDATES_PER_SECOND_MAX,
        "{rate:.2} updates/s for {} changes: the stream forwards events: {result}",
        result["changes_during_churn"]
    );
    assert!(result["audit_entries"].as_u64().unwrap() >= 1, "{result}");
    let reasons = result["buffer_reasons"].as_array().unwrap();
    assert!(
        reasons
            .iter()
            .any(|r| r.as_str().unwrap().contains("viral-guard")),
        "the expanded row explains the Amazon buffer: {result}"
    );
    assert_eq!(result["script_errors"], json!([]), "{result}");
    assert!(screenshot.exists());
    drop(server);
    let _ = std::fs::remove_dir_all(&data_dir);
}
