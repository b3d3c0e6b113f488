//! Commands that talk to a running server: `stockflow reconcile counts FILE` (streams a cycle
//! count to `POST /v1/reconcile/counts`, showing upload progress, then the report) and
//! `stockflow audit export` (streams `GET /v1/audit/export` to a file, showing progress).

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// How often progress is shown at most.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);
/// Upload chunk size.
const CHUNK_BYTES: usize = 256 * 1024;
/// Rows of a report printed at most (the rest is counted; `--json` prints everything).
const PRINTED_ROWS_MAX: usize = 20;

#[derive(Args, Debug)]
pub struct CountsArgs {
    /// The count file: CSV (sku,location,counted,counted_at[,unit_cost]) or JSON (an array of
    /// row objects, or JSON lines).
    pub file: PathBuf,
    /// The stockflow server, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "STOCKFLOW_SERVER")]
    pub server: String,
    /// Apply every difference (the default is a dry run).
    #[arg(long, conflicts_with = "apply_policy")]
    pub apply: bool,
    /// Apply the differences within the server's threshold policy; flag the rest.
    #[arg(long)]
    pub apply_policy: bool,
    /// Apply the valid rows even when some rows are malformed.
    #[arg(long)]
    pub apply_valid_rows: bool,
    /// csv or json; by default from the file's extension.
    #[arg(long)]
    pub format: Option<String>,
    /// RFC 3339: the count time of rows that do not give one.
    #[arg(long)]
    pub counted_at: Option<String>,
    /// Print the whole report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ExportFormat {
    Csv,
    Jsonl,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    #[arg(long, env = "STOCKFLOW_SERVER")]
    pub server: String,
    #[arg(long, value_enum, default_value = "csv")]
    pub format: ExportFormat,
    /// Where to write the export (`-` for standard output).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long)]
    pub sku: Option<String>,
    #[arg(long)]
    pub location: Option<String>,
    #[arg(long)]
    pub channel: Option<String>,
    /// The producer of events.
    #[arg(long)]
    pub source: Option<String>,
    #[arg(long)]
    pub actor: Option<String>,
    #[arg(long)]
    pub reason: Option<String>,
    /// RFC 3339: entries at or after.
    #[arg(long)]
    pub since: Option<String>,
    /// RFC 3339: entries before.
    #[arg(long)]
    pub until: Option<String>,
    /// Resume after this audit id.
    #[arg(long)]
    pub after: Option<u64>,
    /// Rows at most.
    #[arg(long)]
    pub limit: Option<usize>,
}

/// Shows progress on standard error, at most every [`PROGRESS_EVERY`].
struct Progress {
    started: Instant,
    shown: Instant,
}

impl Progress {
    fn new() -> Self {
        let now = Instant::now();
        Self {
            started: now,
            shown: now,
        }
    }

    fn show(&mut self, line: impl FnOnce() -> String) {
        if self.shown.elapsed() >= PROGRESS_EVERY {
            self.shown = Instant::now();
            eprint!("\r{}", line());
            let _ = std::io::stderr().flush();
        }
    }

    fn done(&self, line: String) {
        eprintln!("\r{line} in {:.1} s", self.started.elapsed().as_secs_f64());
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

pub async fn counts(args: CountsArgs) -> anyhow::Result<()> {
    let size = tokio::fs::metadata(&args.file)
        .await
        .with_context(|| format!("reading {}", args.file.display()))?
        .len();
    let format = match (&args.format, args.file.extension().and_then(|e| e.to_str())) {
        (Some(format), _) => format.clone(),
        (None, Some("json" | "jsonl" | "ndjson")) => "json".into(),
        (None, _) => "csv".into(),
    };
    let apply = if args.apply {
        "all"
    } else if args.apply_policy {
        "policy"
    } else {
        "dry_run"
    };
    let mut url = reqwest::Url::parse(&format!(
        "{}/v1/reconcile/counts",
        args.server.trim_end_matches('/')
    ))
    .context("the server URL")?;
    url.query_pairs_mut()
        .append_pair("format", &format)
        .append_pair("apply", apply)
        .append_pair("apply_valid_rows", &args.apply_valid_rows.to_string());
    if let Some(counted_at) = &args.counted_at {
        url.query_pairs_mut().append_pair("counted_at", counted_at);
    }
    let body = upload_body(args.file.clone(), size).await?;
    let content_type = if format == "json" {
        "application/json"
    } else {
        "text/csv"
    };
    let response = reqwest::Client::new()
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .body(body)
        .send()
        .await
        .context("sending the count")?;
    let status = response.status();
    let report: Value = response
        .json()
        .await
        .context("reading the server's answer")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    match status.as_u16() {
        200 => {
            if !args.json {
                print_report(&report);
            }
            Ok(())
        }
        422 if report["code"] == "malformed_rows" => {
            if !args.json {
                print_report(&report["context"]);
            }
            bail!(
                "{}",
                report["detail"]
                    .as_str()
                    .unwrap_or("malformed rows; nothing was applied")
            )
        }
        _ => bail!(
            "the server answered {status}: {}",
            report["detail"].as_str().unwrap_or(&report.to_string())
        ),
    }
}

/// The file as a stream of chunks, showing how much has gone.
async fn upload_body(file: PathBuf, size: u64) -> anyhow::Result<reqwest::Body> {
    let file = tokio::fs::File::open(&file)
        .await
        .with_context(|| format!("opening {}", file.display()))?;
    let state = (file, 0u64, Progress::new());
    let stream = file_chunks(state, size);
    Ok(reqwest::Body::wrap_stream(stream))
}

fn file_chunks(
    state: (tokio::fs::File, u64, Progress),
    size: u64,
) -> impl futures::Stream<Item = std::io::Result<Vec<u8>>> + Send + 'static {
    futures::stream::unfold(Some(state), move |state| async move {
        use tokio::io::AsyncReadExt;
        let (mut file, mut sent, mut progress) = state?;
        let mut chunk = vec![0u8; CHUNK_BYTES];
        match file.read(&mut chunk).await {
            Ok(0) => {
                progress.done(format!("uploaded {:.1} MiB", mib(sent)));
                None
            }
            Ok(read) => {
                chunk.truncate(read);
                sent += read as u64;
                progress.show(|| {
                    format!(
                        "uploaded {:.1} of {:.1} MiB ({:.0}%)",
                        mib(sent),
                        mib(size),
                        sent as f64 * 100.0 / size.max(1) as f64
                    )
                });
                Some((Ok(chunk), Some((file, sent, progress))))
            }
            Err(error) => Some((Err(error), None)),
        }
    })
}

fn print_report(report: &Value) {
    let number = |field: &str| report[field].as_u64().unwrap_or(0);
    println!(
        "count {} ({}): {} rows, {} malformed, {} match, {} discrepancies: {} applied, {} flagged, {} conflicts, {} failed",
        report["count_id"].as_str().unwrap_or("?"),
        report["mode"].as_str().unwrap_or("?"),
        number("rows"),
        report["malformed"].as_array().map_or(0, Vec::len),
        number("matched"),
        number("discrepancies_total"),
        number("applied"),
        number("flagged"),
        number("conflicts"),
        number("failed"),
    );
    for row in report["malformed"]
        .as_array()
        .into_iter()
        .flatten()
        .take(PRINTED_ROWS_MAX)
    {
        println!(
            "  line {}: {}",
            row["line"],
            row["error"].as_str().unwrap_or("")
        );
    }
    for d in report["discrepancies"]
        .as_array()
        .into_iter()
        .flatten()
        .take(PRINTED_ROWS_MAX)
    {
        let value = d["value"]
            .as_f64()
            .map(|v| format!(" value {v:.2}"))
            .unwrap_or_default();
        println!(
            "  line {} {} @ {}: counted {} expected {} difference {:+}{value}: {}",
            d["line"],
            d["sku"].as_str().unwrap_or(""),
            d["location"].as_str().unwrap_or(""),
            d["counted"],
            d["expected"],
            d["difference"].as_i64().unwrap_or(0),
            d["status"].as_str().unwrap_or(""),
        );
    }
    let listed = report["discrepancies"].as_array().map_or(0, Vec::len);
    if number("discrepancies_total") as usize > listed.min(PRINTED_ROWS_MAX) {
        println!("  ... (--json prints every listed discrepancy)");
    }
}

pub async fn export(args: ExportArgs) -> anyhow::Result<()> {
    let mut url = reqwest::Url::parse(&format!(
        "{}/v1/audit/export",
        args.server.trim_end_matches('/')
    ))
    .context("the server URL")?;
    {
        let mut query = url.query_pairs_mut();
        query.append_pair(
            "format",
            match args.format {
                ExportFormat::Csv => "csv",
                ExportFormat::Jsonl => "jsonl",
            },
        );
        let filters = [
            ("sku", &args.sku),
            ("location", &args.location),
            ("channel", &args.channel),
            ("source", &args.source),
            ("actor", &args.actor),
            ("reason", &args.reason),
            ("since", &args.since),
            ("until", &args.until),
        ];
        for (name, value) in filters {
            if let Some(value) = value {
                query.append_pair(name, value);
            }
        }
        if let Some(after) = args.after {
            query.append_pair("after", &after.to_string());
        }
        if let Some(limit) = args.limit {
            query.append_pair("limit", &limit.to_string());
        }
    }
    let mut response = reqwest::get(url).await.context("asking for the export")?;
    if !response.status().is_success() {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        bail!("the server answered {status}: {body}");
    }
    let mut file = if args.out.as_os_str() == "-" {
        None
    } else {
        Some(
            tokio::fs::File::create(&args.out)
                .await
                .with_context(|| format!("creating {}", args.out.display()))?,
        )
    };
    let mut progress = Progress::new();
    let (mut bytes, mut lines) = (0u64, 0u64);
    while let Some(chunk) = response.chunk().await.context("reading the export")? {
        match &mut file {
            Some(file) => file.write_all(&chunk).await.context("writing the export")?,
            None => std::io::stdout()
                .write_all(&chunk)
                .context("writing the export")?,
        }
        bytes += chunk.len() as u64;
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        progress.show(|| format!("{lines} lines, {:.1} MiB", mib(bytes)));
    }
    match &mut file {
        Some(file) => file.flush().await?,
        None => std::io::stdout().flush()?,
    }
    let rows = match args.format {
        ExportFormat::Csv => lines.saturating_sub(1),
        ExportFormat::Jsonl => lines,
    };
    progress.done(format!(
        "exported {rows} audit entries ({:.1} MiB) to {}",
        mib(bytes),
        args.out.display()
    ));
    Ok(())
}
