//! The binary as a child process: `stockflow serve` on a free port (it prints the address it
//! bound), `stockflow verify`, and a JSON client.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const BINARY: &str = env!("CARGO_BIN_EXE_stockflow");

/// A temporary data directory, removed when dropped.
pub fn data_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("stockflow-bin-it-")
        .tempdir()
        .expect("a temporary directory")
}

/// A running `stockflow serve`.
pub struct Serve {
    pub child: Child,
    pub url: String,
    pub client: reqwest::Client,
}

impl Serve {
    /// Starts the binary on 127.0.0.1:0 and waits for the address it prints. Snapshots are
    /// taken every `snapshot_every_positions` journal positions, so that a restart recovers
    /// from a snapshot plus the journal's tail rather than the whole journal.
    pub fn start(data_dir: &Path, snapshot_every_positions: u64) -> Serve {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path(data_dir))
            .expect("the server's log file");
        let mut child = Command::new(BINARY)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("STOCKFLOW_LOG", "warn")
            .env(
                "STOCKFLOW_ENGINE__SNAPSHOT_EVERY_POSITIONS",
                snapshot_every_positions.to_string(),
            )
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("the binary starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("stockflow listening on ") {
                    let _ = sender.send(url.trim().to_owned());
                }
            }
        });
        let url = match receiver.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "the server did not say where it listens; its log:\n{}",
                    std::fs::read_to_string(log_path(data_dir)).unwrap_or_default()
                );
            }
        };
        Serve {
            child,
            url,
            client: client(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL (what `Child::kill` sends on Unix), and reaps the process.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL is delivered");
        self.child.wait().expect("the process is reaped");
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        get(&self.client, &self.url, path).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        post(&self.client, &self.url, path, body)
            .await
            .expect("the server answers")
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        // A test that failed half-way leaves no server behind.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn log_path(data_dir: &Path) -> PathBuf {
    data_dir.join("server.log")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("a client")
}

pub async fn get(client: &reqwest::Client, url: &str, path: &str) -> (u16, Value) {
    let response = client
        .get(format!("{url}{path}"))
        .send()
        .await
        .expect("the server answers");
    decode(response).await.expect("a whole answer")
}

/// `Err` when no whole answer came back (the connection failed: the request may or may not
/// have been applied).
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    path: &str,
    body: &Value,
) -> Result<(u16, Value), reqwest::Error> {
    let response = client
        .post(format!("{url}{path}"))
        .json(body)
        .send()
        .await?;
    decode(response).await
}

async fn decode(response: reqwest::Response) -> Result<(u16, Value), reqwest::Error> {
    let status = response.status().as_u16();
    let text = response.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

/// Runs `stockflow verify --data-dir DIR`: its exit status and what it printed.
pub fn verify(data_dir: &Path) -> (bool, String) {
    let output = Command::new(BINARY)
        .args(["verify", "--data-dir"])
        .arg(data_dir)
        .env("STOCKFLOW_LOG", "warn")
        .output()
        .expect("stockflow verify runs");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), printed)
}

/// Checks that `stockflow verify` finds the data directory consistent.
pub fn assert_consistent(data_dir: &Path) {
    let (ok, printed) = verify(data_dir);
    assert!(
        ok && printed.contains("consistent"),
        "stockflow verify: {printed}"
    );
}
