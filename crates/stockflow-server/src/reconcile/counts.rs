//! Cycle counts: a file of (SKU, location, counted quantity, counted at) rows compared with the
//! ledger as of each row's count time, and the differences applied as audited corrections.
//!
//! The expected quantity of a row is today's on_hand less the on_hand changes that happened
//! after the count (`stockflow_core::reconcile::on_hand_at`). Those changes come from the audit
//! trail (every quantity change has an entry with its before and after), scanned once from the
//! earliest count time; an entry caused by an event recorded after the count is checked against
//! the event's own `occurred_at` in the journal, so that a pick scanned before the count but
//! reported after it is not taken back.
//!
//! Corrections are ledger events of a source of their own (`count-<micros>`), at most 1000 per
//! request, each carrying `expected_version` from the view the expected quantity was computed
//! from: a change in between refuses the row (reported as a conflict) instead of overwriting it.

use crate::app::AppState;
use crate::problem::{FieldError, Problem};
use crate::wire::format_time;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use stockflow_core::envelope::{EVENTS_PER_REQUEST_MAX, Input};
use stockflow_core::event::{Event, EventKind};
use stockflow_core::ids::{EventId, LocationId, Sku, SourceId, TenantId};
use stockflow_core::outcome::{AuditChange, Cause, Rejection, Reply};
use stockflow_core::reconcile::{self, ApplyMode, Correction, Decision, OnHandChange};
use stockflow_core::time::Timestamp;
use stockflow_store::{AuditQuery, QUERY_LIMIT_MAX, Store};

/// The formats of a count file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountFormat {
    /// A header line naming `sku`, `location`, `counted` (or `quantity`), `counted_at`, and
    /// optionally `unit_cost`.
    Csv,
    /// A JSON array of row objects, or one object per line (JSON lines).
    Json,
}

/// One valid row.
#[derive(Debug, Clone, PartialEq)]
pub struct CountRow {
    /// The line of the file it starts on.
    pub line: u64,
    pub sku: Sku,
    pub location: LocationId,
    pub counted: i64,
    pub counted_at: Timestamp,
    pub unit_cost: Option<f64>,
}

/// A row that could not be read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RowError {
    pub line: u64,
    pub error: String,
}

/// The most units a counted quantity may be.
const COUNTED_MAX: i64 = 1_000_000_000_000;

/// Reads a whole count file. A file that cannot be read at all (no header, not JSON) is a
/// problem; a row that cannot be read is a [`RowError`] with its line.
pub fn parse(
    bytes: &[u8],
    format: CountFormat,
    default_counted_at: Option<Timestamp>,
    rows_max: usize,
) -> Result<(Vec<CountRow>, Vec<RowError>), Problem> {
    let raw = match format {
        CountFormat::Csv => csv_rows(bytes)?,
        CountFormat::Json => json_rows(bytes)?,
    };
    if raw.len() > rows_max {
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_rows",
            format!("the count has {} rows; the limit is {rows_max}", raw.len()),
        ));
    }
    let mut rows = Vec::with_capacity(raw.len());
    let mut errors = Vec::new();
    let mut seen: HashMap<(Sku, LocationId), u64> = HashMap::new();
    for (line, fields) in raw {
        match fields.and_then(|f| row(line, f, default_counted_at)) {
            Ok(row) => match seen.insert((row.sku.clone(), row.location.clone()), line) {
                Some(first) => errors.push(RowError {
                    line,
                    error: format!(
                        "{} at {} was already counted on line {first}",
                        row.sku, row.location
                    ),
                }),
                None => rows.push(row),
            },
            Err(error) => errors.push(RowError { line, error }),
        }
    }
    Ok((rows, errors))
}

/// The fields of one row as text, before they are checked.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRow {
    sku: Option<String>,
    location: Option<String>,
    #[serde(alias = "quantity", alias = "counted_quantity")]
    counted: Option<serde_json::Value>,
    counted_at: Option<String>,
    unit_cost: Option<serde_json::Value>,
}

type RawRows = Vec<(u64, Result<RawRow, String>)>;

fn csv_rows(bytes: &[u8]) -> Result<RawRows, Problem> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(bytes);
    let headers = reader
        .headers()
        .map_err(|error| bad_file(format!("the header line cannot be read: {error}")))?
        .clone();
    let column = |names: &[&str]| headers.iter().position(|h| names.contains(&h));
    let columns = [
        column(&["sku"]),
        column(&["location"]),
        column(&["counted", "quantity", "counted_quantity"]),
        column(&["counted_at"]),
        column(&["unit_cost"]),
    ];
    for (index, name) in ["sku", "location", "counted"].iter().enumerate() {
        if columns[index].is_none() {
            return Err(bad_file(format!(
                "the header line names no `{name}` column"
            )));
        }
    }
    let mut rows = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        let line = reader.position().line();
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map_or(line, |p| p.line());
                let field = |index: Option<usize>| {
                    index
                        .and_then(|i| record.get(i))
                        .filter(|text| !text.is_empty())
                        .map(str::to_owned)
                };
                let raw = RawRow {
                    sku: field(columns[0]),
                    location: field(columns[1]),
                    counted: field(columns[2]).map(serde_json::Value::String),
                    counted_at: field(columns[3]),
                    unit_cost: field(columns[4]).map(serde_json::Value::String),
                };
                rows.push((line, Ok(raw)));
            }
            Err(error) => {
                let line = error.position().map_or(line + 1, |p| p.line());
                rows.push((line, Err(format!("not a CSV row: {error}"))));
                if !matches!(error.kind(), csv::ErrorKind::Utf8 { .. }) {
                    break;
                }
            }
        }
    }
    Ok(rows)
}

fn json_rows(bytes: &[u8]) -> Result<RawRows, Problem> {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace());
    if start.is_some_and(|i| bytes[i] == b'[') {
        return json_array_rows(bytes);
    }
    let mut rows = Vec::new();
    for (index, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let raw =
            serde_json::from_slice::<RawRow>(line).map_err(|e| format!("not a row object: {e}"));
        rows.push((index as u64 + 1, raw));
    }
    Ok(rows)
}

/// A JSON array: each item's line is the line its object starts on.
fn json_array_rows(bytes: &[u8]) -> Result<RawRows, Problem> {
    let items: Vec<serde_json::Value> = serde_json::from_slice(bytes).map_err(|error| {
        bad_file(format!(
            "not a JSON array of rows (line {}): {error}",
            error.line()
        ))
    })?;
    let mut starts = object_start_lines(bytes).into_iter();
    Ok(items
        .into_iter()
        .map(|item| {
            let line = starts.next().unwrap_or(0);
            let raw = serde_json::from_value::<RawRow>(item)
                .map_err(|e| format!("not a row object: {e}"));
            (line, raw)
        })
        .collect())
}

/// The lines on which the top-level objects of a JSON array start (depth 1 `{` outside strings).
fn object_start_lines(bytes: &[u8]) -> Vec<u64> {
    let (mut line, mut depth, mut in_string, mut escaped) = (1u64, 0i32, false, false);
    let mut starts = Vec::new();
    for &byte in bytes {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else {
            match byte {
                b'"' => in_string = true,
                b'[' | b'{' => {
                    if byte == b'{' && depth == 1 {
                        starts.push(line);
                    }
                    depth += 1;
                }
                b']' | b'}' => depth -= 1,
                _ => {}
            }
        }
        if byte == b'\n' {
            line += 1;
        }
    }
    starts
}

fn bad_file(detail: String) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, "invalid_count_file", detail)
}

fn row(line: u64, raw: RawRow, default_counted_at: Option<Timestamp>) -> Result<CountRow, String> {
    let sku = Sku::parse(raw.sku.ok_or("no sku")?).map_err(|e| format!("sku: {e}"))?;
    let location = LocationId::parse(raw.location.ok_or("no location")?)
        .map_err(|e| format!("location: {e}"))?;
    let counted = match raw.counted.ok_or("no counted quantity")? {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.parse::<i64>().ok(),
        _ => None,
    }
    .filter(|n| (0..=COUNTED_MAX).contains(n))
    .ok_or("counted must be a whole number of units, 0 or more")?;
    let counted_at = match raw.counted_at {
        Some(text) => parse_time(&text)?,
        None => default_counted_at.ok_or("no counted_at (and no counted_at for the whole file)")?,
    };
    let unit_cost = match raw.unit_cost {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Number(n)) => n.as_f64(),
        Some(serde_json::Value::String(s)) => {
            Some(s.parse::<f64>().map_err(|_| "unit_cost must be a number")?)
        }
        Some(_) => return Err("unit_cost must be a number".into()),
    };
    if unit_cost.is_some_and(|c| !c.is_finite() || c < 0.0) {
        return Err("unit_cost must be a number, 0 or more".into());
    }
    Ok(CountRow {
        line,
        sku,
        location,
        counted,
        counted_at,
        unit_cost,
    })
}

pub fn parse_time(text: &str) -> Result<Timestamp, String> {
    let mut errors: Vec<FieldError> = Vec::new();
    crate::wire::parse_time("counted_at", text, &mut errors)
        .ok_or_else(|| format!("counted_at {text:?} is not an RFC 3339 time"))
}

/// What the ledger says of one row's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ledger {
    on_hand_now: i64,
    version: u64,
}

/// One row compared with the ledger, and what became of it.
#[derive(Debug, Clone, Serialize)]
pub struct Discrepancy {
    pub line: u64,
    pub sku: String,
    pub location: String,
    pub counted: i64,
    pub counted_at: String,
    /// on_hand as of `counted_at`.
    pub expected: i64,
    pub on_hand_now: i64,
    /// counted - expected.
    pub difference: i64,
    /// difference x unit_cost, when the row gave a cost.
    pub value: Option<f64>,
    pub decision: Decision,
    pub correction: Option<Correction>,
    /// `reported`, `flagged`, `applied`, `conflict` (changed since; nothing done), `duplicate`
    /// (applied before), or `failed: <code>`.
    pub status: String,
    /// The event that applied it.
    pub event_id: Option<String>,
    #[serde(skip)]
    version: u64,
}

/// The answer to a count import.
#[derive(Debug, Clone, Serialize)]
pub struct CountReport {
    pub count_id: String,
    pub mode: ApplyMode,
    pub rows: u64,
    pub valid_rows: u64,
    pub malformed: Vec<RowError>,
    pub matched: u64,
    pub discrepancies_total: u64,
    pub applied: u64,
    pub flagged: u64,
    pub conflicts: u64,
    pub failed: u64,
    /// Sum of the differences, in units.
    pub difference_units: i64,
    /// Sum of the differences' values, over the rows that gave a cost.
    pub difference_value: f64,
    /// The discrepancies (up to `listed_max`), in file order.
    pub discrepancies: Vec<Discrepancy>,
    pub discrepancies_truncated: bool,
}

/// How an import is to be carried out.
#[derive(Debug, Clone, Copy)]
pub struct ImportOptions {
    pub mode: ApplyMode,
    pub apply_valid_rows: bool,
}

/// A count compared with the ledger, before anything is applied.
#[derive(Debug, Clone)]
pub struct CountPlan {
    pub count_id: String,
    /// The mode asked for, and the one in force (a dry run when malformed rows block).
    pub asked: ApplyMode,
    pub mode: ApplyMode,
    pub valid_rows: usize,
    pub malformed: Vec<RowError>,
    pub matched: u64,
    pub discrepancies: Vec<Discrepancy>,
}

/// Compares the rows with the ledger and applies what `options` says. Malformed rows stop any
/// apply unless `apply_valid_rows` (the answer is then a 422 carrying the report).
pub async fn import(
    state: &AppState,
    tenant: TenantId,
    rows: Vec<CountRow>,
    malformed: Vec<RowError>,
    options: ImportOptions,
) -> Result<CountReport, Problem> {
    let plan = plan(state, &tenant, rows, malformed, options).await?;
    execute(state, &tenant, plan).await
}

/// Compares each row with on_hand as of its count time and decides what to do with it.
pub async fn plan(
    state: &AppState,
    tenant: &TenantId,
    rows: Vec<CountRow>,
    malformed: Vec<RowError>,
    options: ImportOptions,
) -> Result<CountPlan, Problem> {
    let policy = state.config.reconcile.counts.policy;
    let ledger = expected(state, tenant, &rows).await?;
    let blocked = !malformed.is_empty() && !options.apply_valid_rows;
    let mode = if blocked {
        ApplyMode::DryRun
    } else {
        options.mode
    };
    let mut plan = CountPlan {
        count_id: format!("count-{}", crate::app::wall_clock().unix_micros()),
        asked: options.mode,
        mode,
        valid_rows: rows.len(),
        malformed,
        matched: 0,
        discrepancies: Vec::new(),
    };
    for row in &rows {
        let (known, changes) = &ledger[&(row.sku.clone(), row.location.clone())];
        let expected = expected_for(*known, changes, row);
        let difference = row.counted - expected;
        let decision = reconcile::decide(difference, expected, mode, &policy);
        if decision == Decision::Matches {
            plan.matched += 1;
        } else {
            plan.discrepancies
                .push(discrepancy(row, *known, expected, decision));
        }
    }
    Ok(plan)
}

fn discrepancy(row: &CountRow, known: Ledger, expected: i64, decision: Decision) -> Discrepancy {
    let difference = row.counted - expected;
    Discrepancy {
        line: row.line,
        sku: row.sku.to_string(),
        location: row.location.to_string(),
        counted: row.counted,
        counted_at: format_time(row.counted_at),
        expected,
        on_hand_now: known.on_hand_now,
        difference,
        value: row.unit_cost.map(|cost| cost * difference as f64),
        decision,
        correction: reconcile::correction(row.counted, expected, known.on_hand_now),
        status: match decision {
            Decision::Flagged => "flagged".into(),
            Decision::Apply => "pending".into(),
            _ => "reported".into(),
        },
        event_id: None,
        version: known.version,
    }
}

/// Applies the plan's `Apply` rows (each against the version it was computed from), records
/// the totals, and reports.
pub async fn execute(
    state: &AppState,
    tenant: &TenantId,
    mut plan: CountPlan,
) -> Result<CountReport, Problem> {
    apply(state, tenant, &plan.count_id, &mut plan.discrepancies).await?;
    let blocked = plan.mode != plan.asked;
    let report = report(plan, state.config.reconcile.counts.listed_max);
    state
        .reconciliation
        .record_count(&crate::reconcile::stats::CountTotals {
            imports: 1,
            rows: report.rows,
            malformed_rows: report.malformed.len() as u64,
            discrepancies: report.discrepancies_total,
            applied: report.applied,
            flagged: report.flagged,
            conflicts: report.conflicts,
        });
    if blocked {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "malformed_rows",
            format!(
                "{} rows could not be read; nothing was applied (apply_valid_rows=true applies the others)",
                report.malformed.len()
            ),
        )
        .with_context(serde_json::to_value(&report).unwrap_or_default()));
    }
    Ok(report)
}

/// The expected quantity of `row`: on_hand now less the changes after its count time.
fn expected_for(known: Ledger, changes: &[OnHandChange], row: &CountRow) -> i64 {
    reconcile::on_hand_at(known.on_hand_now, changes, row.counted_at)
}

fn report(plan: CountPlan, listed_max: usize) -> CountReport {
    let CountPlan {
        count_id,
        mode,
        valid_rows,
        malformed,
        matched,
        mut discrepancies,
        ..
    } = plan;
    let status_count = |prefix: &str| {
        discrepancies
            .iter()
            .filter(|d| d.status.starts_with(prefix))
            .count() as u64
    };
    let report_totals = (
        status_count("applied") + status_count("duplicate"),
        status_count("flagged"),
        status_count("conflict"),
        status_count("failed"),
    );
    let difference_units = discrepancies.iter().map(|d| d.difference).sum();
    let difference_value = discrepancies.iter().filter_map(|d| d.value).sum();
    let discrepancies_total = discrepancies.len() as u64;
    let truncated = discrepancies.len() > listed_max;
    discrepancies.truncate(listed_max);
    CountReport {
        count_id,
        mode,
        rows: valid_rows as u64 + malformed.len() as u64,
        valid_rows: valid_rows as u64,
        malformed,
        matched,
        discrepancies_total,
        applied: report_totals.0,
        flagged: report_totals.1,
        conflicts: report_totals.2,
        failed: report_totals.3,
        difference_units,
        difference_value,
        discrepancies,
        discrepancies_truncated: truncated,
    }
}

type Key = (Sku, LocationId);

/// Per key of the rows: what the ledger shows now and the on_hand changes recorded since the
/// earliest count time (with when each happened).
async fn expected(
    state: &AppState,
    tenant: &TenantId,
    rows: &[CountRow],
) -> Result<HashMap<Key, (Ledger, Vec<OnHandChange>)>, Problem> {
    let reads = state.engine.reads();
    let mut keys: HashMap<Key, (Ledger, Timestamp)> = HashMap::new();
    for row in rows {
        let view = reads.sku(tenant, &row.sku);
        let quantities = view
            .as_ref()
            .and_then(|v| v.stock.get(&row.location))
            .copied()
            .unwrap_or_default();
        keys.insert(
            (row.sku.clone(), row.location.clone()),
            (
                Ledger {
                    on_hand_now: quantities.on_hand,
                    version: quantities.version,
                },
                row.counted_at,
            ),
        );
    }
    let Some(since) = rows.iter().map(|r| r.counted_at).min() else {
        return Ok(HashMap::new());
    };
    let store = state.engine.store_for(tenant).clone();
    let tenant = tenant.clone();
    let scan_max = state.config.reconcile.counts.audit_scan_entries_max;
    tokio::task::spawn_blocking(move || changes_since(&*store, tenant, keys, since, scan_max))
        .await
        .map_err(|_| Problem::internal("the count comparison panicked"))?
}

/// Counts of at most this many keys read each key's changes through the audit trail's SKU
/// index; larger ones read the whole trail once from the earliest count time.
const PER_KEY_QUERIES_MAX: usize = 200;

type Changes = HashMap<Key, (Ledger, Vec<OnHandChange>)>;

fn changes_since(
    store: &dyn Store,
    tenant: TenantId,
    keys: HashMap<Key, (Ledger, Timestamp)>,
    since: Timestamp,
    scan_max: usize,
) -> Result<Changes, Problem> {
    let mut scan = Scan {
        store,
        keys: &keys,
        out: keys
            .iter()
            .map(|(k, (ledger, _))| (k.clone(), (*ledger, Vec::new())))
            .collect(),
        journal: JournalCache::default(),
        scanned: 0,
        scan_max,
    };
    if keys.len() <= PER_KEY_QUERIES_MAX {
        for ((sku, location), (_, counted_at)) in &keys {
            let mut query = AuditQuery::tenant(tenant.clone(), QUERY_LIMIT_MAX);
            query.sku = Some(sku.clone());
            query.location = Some(location.clone());
            query.since = Some(*counted_at);
            scan.run(query)?;
        }
    } else {
        let mut query = AuditQuery::tenant(tenant, QUERY_LIMIT_MAX);
        query.since = Some(since);
        scan.run(query)?;
    }
    Ok(scan.out)
}

/// Reads audit pages and keeps the on_hand changes of the counted keys.
struct Scan<'a> {
    store: &'a dyn Store,
    keys: &'a HashMap<Key, (Ledger, Timestamp)>,
    out: Changes,
    journal: JournalCache,
    scanned: usize,
    scan_max: usize,
}

impl Scan<'_> {
    fn run(&mut self, mut query: AuditQuery) -> Result<(), Problem> {
        let failed = |error: stockflow_store::StoreError| {
            Problem::internal(format!("reading the audit trail: {error}"))
        };
        loop {
            let page = self.store.query_audit(&query).map_err(failed)?;
            self.scanned += page.len();
            if self.scanned > self.scan_max {
                return Err(Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "count_too_old",
                    format!(
                        "more than {} changes were recorded since the count time",
                        self.scan_max
                    ),
                ));
            }
            for record in &page {
                self.keep(&record.entry).map_err(failed)?;
            }
            match page.last() {
                Some(last) if page.len() == QUERY_LIMIT_MAX => query.after_id = Some(last.id),
                _ => return Ok(()),
            }
        }
    }

    fn keep(
        &mut self,
        entry: &stockflow_core::outcome::AuditEntry,
    ) -> Result<(), stockflow_store::StoreError> {
        let AuditChange::Quantities { before, after } = &entry.change else {
            return Ok(());
        };
        let Some(location) = &entry.location else {
            return Ok(());
        };
        let key = (entry.sku.clone(), location.clone());
        let Some((ledger, counted_at)) = self.keys.get(&key) else {
            return Ok(());
        };
        // Changes after the view the expected quantity starts from are not in on_hand_now.
        if after.version > ledger.version || after.on_hand == before.on_hand {
            return Ok(());
        }
        let occurred_at = if entry.at > *counted_at {
            self.journal
                .occurred_at(self.store, entry.position, &entry.cause)?
                .unwrap_or(entry.at)
        } else {
            entry.at
        };
        self.out
            .get_mut(&key)
            .expect("same keys")
            .1
            .push(OnHandChange {
                occurred_at,
                delta: after.on_hand - before.on_hand,
            });
        Ok(())
    }
}

/// The envelope last read from the journal, so that the entries of one envelope read it once.
#[derive(Default)]
struct JournalCache {
    envelope: Option<stockflow_core::envelope::Envelope>,
}

impl JournalCache {
    /// The producer's `occurred_at` of the event that caused an entry, when it said one.
    fn occurred_at(
        &mut self,
        store: &dyn Store,
        position: u64,
        cause: &Cause,
    ) -> Result<Option<Timestamp>, stockflow_store::StoreError> {
        let Cause::Event { event_id, .. } = cause else {
            return Ok(None);
        };
        if self
            .envelope
            .as_ref()
            .is_none_or(|e| e.position != position)
        {
            self.envelope = store.read_journal(position - 1, 1)?.into_iter().next();
        }
        let Some(envelope) = &self.envelope else {
            return Ok(None);
        };
        let Input::Events(events) = &envelope.input else {
            return Ok(None);
        };
        Ok(events
            .iter()
            .find(|e| &e.event_id == event_id)
            .and_then(|e| e.occurred_at))
    }
}

/// Applies the discrepancies decided `Apply`, in requests of at most 1000 events. A row refused
/// for its `expected_version` is marked `conflict` and the rest of its request is sent again.
async fn apply(
    state: &AppState,
    tenant: &TenantId,
    count_id: &str,
    discrepancies: &mut [Discrepancy],
) -> Result<(), Problem> {
    let pending: Vec<usize> = (0..discrepancies.len())
        .filter(|&i| discrepancies[i].decision == Decision::Apply)
        .collect();
    if pending.is_empty() {
        return Ok(());
    }
    let source =
        SourceId::parse(count_id.to_owned()).map_err(|e| Problem::internal(e.to_string()))?;
    let mut seq = 1u64;
    for chunk in pending.chunks(EVENTS_PER_REQUEST_MAX) {
        let mut chunk: Vec<usize> = chunk.to_vec();
        // Each pass either applies the chunk or removes one row from it.
        while !chunk.is_empty() {
            let events: Vec<Event> = chunk
                .iter()
                .enumerate()
                .map(|(n, &i)| {
                    correction_event(count_id, &source, seq + n as u64, &discrepancies[i])
                })
                .collect::<Result<_, _>>()?;
            let submitted =
                crate::api::submit(state, tenant.clone(), Input::Events(events)).await?;
            match submitted.reply {
                Reply::Events(results) => {
                    for (&i, result) in chunk.iter().zip(&results) {
                        let status = match result.status {
                            stockflow_core::outcome::EventStatus::Applied => "applied",
                            stockflow_core::outcome::EventStatus::Duplicate => "duplicate",
                            stockflow_core::outcome::EventStatus::Held => "failed: held",
                        };
                        discrepancies[i].status = status.into();
                        discrepancies[i].event_id = Some(result.event_id.to_string());
                    }
                    seq += chunk.len() as u64;
                    chunk.clear();
                }
                Reply::Rejected(Rejection::VersionConflict { sku, location, .. }) => {
                    let Some(at) = chunk.iter().position(|&i| {
                        discrepancies[i].sku == sku.as_str()
                            && discrepancies[i].location == location.as_str()
                    }) else {
                        fail(discrepancies, &chunk, "version_conflict");
                        break;
                    };
                    discrepancies[chunk.remove(at)].status = "conflict".into();
                }
                Reply::Rejected(rejection) => {
                    fail(discrepancies, &chunk, rejection.code());
                    break;
                }
                other => {
                    tracing::error!(?other, "an events request answered something else");
                    fail(discrepancies, &chunk, "unexpected_reply");
                    break;
                }
            }
        }
    }
    Ok(())
}

fn fail(discrepancies: &mut [Discrepancy], rows: &[usize], code: &str) {
    for &i in rows {
        discrepancies[i].status = format!("failed: {code}");
    }
}

fn correction_event(
    count_id: &str,
    source: &SourceId,
    seq: u64,
    d: &Discrepancy,
) -> Result<Event, Problem> {
    let invalid = |e: stockflow_core::ids::IdError| Problem::internal(e.to_string());
    let sku = Sku::parse(d.sku.clone()).map_err(invalid)?;
    let location = LocationId::parse(d.location.clone()).map_err(invalid)?;
    // Version 0 means no record yet: nothing to compare against.
    let expected_version = (d.version > 0).then_some(d.version);
    let kind = match d.correction {
        Some(Correction::Adjust { delta }) => EventKind::Adjusted {
            sku,
            location,
            delta,
            expected_version,
        },
        _ => EventKind::Counted {
            sku,
            location,
            counted: d.counted,
            expected_version,
        },
    };
    Ok(Event {
        event_id: EventId::parse(format!("{count_id}-{}", d.line)).map_err(invalid)?,
        source: source.clone(),
        seq,
        occurred_at: None,
        reason: Some(format!("cycle count {count_id}")),
        // The reason alone, so that the audit trail's exact `reason` filter finds the count.
        reference: None,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (line, sku, counted) of the valid rows and (line, error) of the others.
    type Read = (Vec<(u64, String, i64)>, Vec<(u64, String)>);

    fn check(text: &str, format: CountFormat) -> Read {
        let (rows, errors) = parse(text.as_bytes(), format, None, 100).unwrap();
        (
            rows.into_iter()
                .map(|r| (r.line, r.sku.to_string(), r.counted))
                .collect(),
            errors.into_iter().map(|e| (e.line, e.error)).collect(),
        )
    }

    #[test]
    fn csv_rows_are_read_with_their_line_numbers_and_bad_rows_named() {
        let (rows, errors) = check(
            "sku,location,counted,counted_at\n\
             SKU-1,east,5,2026-11-28T01:00:00Z\n\
             SKU-2,east,five,2026-11-28T01:00:00Z\n\
             SKU-3,east,2,yesterday\n\
             SKU-1,east,6,2026-11-28T01:00:00Z\n\
             SKU-4,west,0,2026-11-28T01:00:00Z\n",
            CountFormat::Csv,
        );
        assert_eq!(rows, [(2, "SKU-1".into(), 5), (6, "SKU-4".into(), 0)]);
        let lines: Vec<u64> = errors.iter().map(|e| e.0).collect();
        assert_eq!(lines, [3, 4, 5], "{errors:?}");
        assert!(errors[0].1.contains("whole number"), "{errors:?}");
        assert!(
            errors[2].1.contains("already counted on line 2"),
            "{errors:?}"
        );
    }

    #[test]
    fn json_arrays_and_json_lines_are_read_with_line_numbers() {
        let (rows, errors) = check(
            "[\n  {\"sku\": \"A\", \"location\": \"east\", \"counted\": 3, \"counted_at\": \"2026-11-28T01:00:00Z\"},\n  \
             {\"sku\": \"B\", \"location\": \"east\", \"quantity\": -1, \"counted_at\": \"2026-11-28T01:00:00Z\"}\n]",
            CountFormat::Json,
        );
        assert_eq!(rows, [(2, "A".into(), 3)]);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0, 3);
        let (rows, errors) = check(
            "{\"sku\": \"A\", \"location\": \"east\", \"counted\": 3, \"counted_at\": \"2026-11-28T01:00:00Z\"}\n\n\
             {\"sku\": \"B\", \"location\": \"east\", \"counted\": 1, \"extra\": 1}\n",
            CountFormat::Json,
        );
        assert_eq!(rows, [(1, "A".into(), 3)]);
        assert_eq!(errors[0].0, 3);
    }

    #[test]
    fn a_file_without_the_needed_columns_or_over_the_row_limit_is_refused() {
        assert!(parse(b"sku,where,counted\n", CountFormat::Csv, None, 10).is_err());
        assert!(parse(b"[1, 2", CountFormat::Json, None, 10).is_err());
        let many = "sku,location,counted\nA,e,1\nB,e,1\nC,e,1\n";
        let error = parse(many.as_bytes(), CountFormat::Csv, Some(Timestamp(1)), 2).unwrap_err();
        assert_eq!(error.status, 413);
    }
}
