//! Reservations on one hot SKU over HTTP: the real server (`stockflow_server::Server`) started
//! in this process on a free port with a temporary data directory, driven by concurrent
//! keep-alive clients that each reserve one unit at a time and wait for the answer. Every
//! granted reservation is durable before it is answered (the server's journal settings).

use super::report::{LatencyRecorder, Throughput};
use anyhow::Context;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use stockflow_server::{Config, Server};
use tokio::sync::Barrier;

const SKU: &str = "HOT-1";
const LOCATION: &str = "hot";
/// Attempts per client after the stock ran out, each of which must be refused.
const PROBES_PER_CLIENT: u64 = 4;

pub struct HotSkuHttp {
    /// Where the temporary data directory goes; `None`: the system's temporary directory.
    pub dir: Option<PathBuf>,
    pub clients: usize,
    /// Reservations in the measured phase; the stock is exactly this much.
    pub reservations: u64,
}

/// One run: the throughput of the measured phase and what the oversell check saw.
pub struct HotSkuRun {
    pub throughput: Throughput,
    pub stock: u64,
    pub granted: u64,
    pub refused: u64,
    /// Attempts after the stock ran out (all refused, or the run fails).
    pub probes: u64,
    /// `reserved` of the hot SKU as the ledger shows it at the end.
    pub ledger_reserved: i64,
    /// Read back from the journal's SQLite database after the run.
    pub durability: String,
    /// Group commit in the measured phase, from the server's own metrics.
    pub commits: Commits,
}

/// Batches committed in the measured phase: how many requests shared each fsync.
#[derive(Debug, Clone, Copy, Default)]
pub struct Commits {
    pub batches: f64,
    pub requests: f64,
    pub seconds: f64,
}

impl Commits {
    /// Reads the cumulative commit metrics of the server's `/metrics`.
    async fn read(connection: &mut Connection) -> anyhow::Result<Commits> {
        let (status, body) = connection.call(Method::GET, "/metrics", None).await?;
        anyhow::ensure!(status.is_success(), "GET /metrics answered {status}");
        let text = String::from_utf8_lossy(&body);
        let value = |name: &str| -> f64 {
            text.lines()
                .filter(|line| line.starts_with(name))
                .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        Ok(Commits {
            batches: value("stockflow_batch_requests_count"),
            requests: value("stockflow_batch_requests_sum"),
            seconds: value("stockflow_journal_commit_seconds_sum"),
        })
    }

    fn since(self, before: Commits) -> Commits {
        Commits {
            batches: self.batches - before.batches,
            requests: self.requests - before.requests,
            seconds: self.seconds - before.seconds,
        }
    }
}

impl std::fmt::Display for Commits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let batches = self.batches.max(1.0);
        write!(
            f,
            "{:.0} commits, {:.1} requests per commit, {:.2} ms per commit (SQLite and fsync)",
            self.batches,
            self.requests / batches,
            self.seconds / batches * 1e3
        )
    }
}

enum Answer {
    Granted,
    Refused,
}

pub async fn run(bench: &HotSkuHttp) -> anyhow::Result<HotSkuRun> {
    let dir = match &bench.dir {
        Some(parent) => tempfile::tempdir_in(parent),
        None => tempfile::tempdir(),
    }
    .context("creating the server's data directory")?;
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("a valid address"),
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    let server = Server::start(config).await.context("starting the server")?;
    let url = server.url();
    let result = drive(&url, bench).await;
    server.shutdown().await.context("stopping the server")?;
    let mut run = result?;
    let store = stockflow_store::SqliteStore::open(stockflow_store::SqliteConfig::new(
        dir.path().join("stockflow.db"),
    ))
    .context("reopening the journal")?;
    let settings = store.settings().context("reading the journal's settings")?;
    run.durability = format!(
        "journal_mode={} synchronous={}",
        settings.journal_mode, settings.synchronous
    );
    Ok(run)
}

async fn drive(url: &str, bench: &HotSkuHttp) -> anyhow::Result<HotSkuRun> {
    let mut setup = Connection::open(url).await?;
    let stock = bench.reservations.max(1);
    let received = json!({"event_id": "bench-stock-1", "source": "bench", "seq": 1,
        "type": "received", "sku": SKU, "location": LOCATION, "quantity": stock});
    let (status, answer) = setup
        .call(Method::POST, "/v1/events", Some(received.to_string()))
        .await?;
    anyhow::ensure!(
        status.is_success(),
        "stocking the hot SKU failed: {}",
        String::from_utf8_lossy(&answer)
    );

    let clients = bench.clients.max(1);
    let ready = Arc::new(Barrier::new(clients + 1));
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let requests = (client as u64..stock).step_by(clients).count() as u64;
            let url = url.to_owned();
            let ready = ready.clone();
            tokio::spawn(async move { reserve_client(url, client, requests, ready).await })
        })
        .collect();
    let commits_before = Commits::read(&mut setup).await?;
    ready.wait().await;
    let started = Instant::now();
    let mut latencies = LatencyRecorder::new();
    let (mut granted, mut refused) = (0, 0);
    let mut clients_back = Vec::with_capacity(clients);
    for task in tasks {
        let (client, recorder, client_granted, client_refused) =
            task.await.context("a client panicked")??;
        latencies.merge(&recorder);
        granted += client_granted;
        refused += client_refused;
        clients_back.push(client);
    }
    let throughput = latencies.throughput(started.elapsed());
    let commits = Commits::read(&mut setup).await?.since(commits_before);
    anyhow::ensure!(
        granted <= stock,
        "OVERSOLD: {granted} reservations granted for a stock of {stock}"
    );

    // The stock is gone (or nearly, if some were refused): every further attempt, from every
    // client at once, must be refused.
    let probes: Vec<_> = clients_back
        .into_iter()
        .enumerate()
        .map(|(index, mut connection)| {
            tokio::spawn(async move {
                let mut answers = Vec::new();
                for attempt in 0..PROBES_PER_CLIENT {
                    let id = format!("probe-{index}-{attempt}");
                    answers.push(reserve(&mut connection, &id).await?);
                }
                anyhow::Ok(answers)
            })
        })
        .collect();
    let mut probes_granted = 0;
    let mut probe_count = 0;
    for task in probes {
        for answer in task.await.context("a probe panicked")?? {
            probe_count += 1;
            if matches!(answer, Answer::Granted) {
                probes_granted += 1;
            }
        }
    }
    granted += probes_granted;
    anyhow::ensure!(
        granted <= stock,
        "OVERSOLD: {granted} reservations granted for a stock of {stock}"
    );
    let (_, answer) = setup
        .call(Method::GET, &format!("/v1/skus/{SKU}"), None)
        .await?;
    let view: Value = serde_json::from_slice(&answer).context("the SKU view is not JSON")?;
    let ledger_reserved = view["totals"]["reserved"]
        .as_i64()
        .context("the SKU view has no reserved total")?;
    anyhow::ensure!(
        ledger_reserved == granted as i64,
        "the ledger shows {ledger_reserved} reserved, {granted} reservations were granted"
    );
    Ok(HotSkuRun {
        throughput,
        stock,
        granted,
        refused: refused + probe_count - probes_granted,
        probes: probe_count,
        ledger_reserved,
        durability: String::new(),
        commits,
    })
}

/// One keep-alive HTTP/1.1 connection (hyper's client, the library the server is built on),
/// reserving one unit at a time. The load generator shares the machine's cores with the
/// server, so it keeps its own work small: no pool, no URL parsing, bodies written directly.
struct Connection {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    host: String,
}

impl Connection {
    async fn open(url: &str) -> anyhow::Result<Connection> {
        let host = url
            .strip_prefix("http://")
            .context("the server's address is not http://")?
            .to_owned();
        let stream = tokio::net::TcpStream::connect(&host)
            .await
            .with_context(|| format!("connecting to {host}"))?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "a benchmark connection ended");
            }
        });
        Ok(Connection { sender, host })
    }

    /// Sends one request and reads the whole answer (status, body).
    async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.host);
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

async fn reserve_client(
    url: String,
    client_index: usize,
    requests: u64,
    ready: Arc<Barrier>,
) -> anyhow::Result<(Connection, LatencyRecorder, u64, u64)> {
    let mut connection = Connection::open(&url).await?;
    // One request before the start (a lookup of the SKU: it changes nothing), so that the
    // connection is warm when the measurement starts.
    connection
        .call(Method::GET, &format!("/v1/skus/{SKU}"), None)
        .await?;
    ready.wait().await;
    let mut latencies = LatencyRecorder::new();
    let (mut granted, mut refused) = (0, 0);
    for index in 0..requests {
        let id = format!("c{client_index}-{index}");
        let begun = Instant::now();
        let answer = reserve(&mut connection, &id).await?;
        latencies.record(begun.elapsed());
        match answer {
            Answer::Granted => granted += 1,
            Answer::Refused => refused += 1,
        }
    }
    Ok((connection, latencies, granted, refused))
}

async fn reserve(connection: &mut Connection, id: &str) -> anyhow::Result<Answer> {
    let body = format!(
        r#"{{"reservation_id":"{id}","lines":[{{"sku":"{SKU}","location":"{LOCATION}","quantity":1}}],"ttl_seconds":3600}}"#
    );
    let (status, answer) = connection
        .call(Method::POST, "/v1/reservations", Some(body))
        .await
        .context("sending a reservation")?;
    match status.as_u16() {
        201 => Ok(Answer::Granted),
        409 => {
            let problem: Value = serde_json::from_slice(&answer)?;
            anyhow::ensure!(
                problem["code"] == "insufficient_stock",
                "reservation {id}: unexpected refusal {problem}"
            );
            Ok(Answer::Refused)
        }
        status => anyhow::bail!(
            "reservation {id}: unexpected answer {status}: {}",
            String::from_utf8_lossy(&answer)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_unit_is_granted_once_and_requests_share_commits() {
        let run = run(&HotSkuHttp {
            dir: None,
            clients: 8,
            reservations: 400,
        })
        .await
        .unwrap();
        assert_eq!((run.stock, run.granted), (400, 400));
        assert_eq!(run.ledger_reserved, 400);
        assert_eq!(run.probes, 8 * PROBES_PER_CLIENT);
        assert_eq!(
            run.refused, run.probes,
            "every attempt after the stock ran out"
        );
        assert_eq!(run.throughput.operations, 400);
        // Every reservation was committed, in fewer commits than requests (8 clients at once).
        assert!(run.commits.requests >= 400.0, "{}", run.commits);
        assert!(
            run.commits.batches < run.commits.requests,
            "{}",
            run.commits
        );
        assert!(
            run.durability.contains("synchronous=full"),
            "{}",
            run.durability
        );
    }
}
