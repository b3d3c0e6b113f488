// Drives the dashboard of a running stockflow in Debian's headless Chromium:
//
//   node dashboard.mjs <base url> <screenshot.png> <sku to change> <sku to open>
//
// loads the page, waits for live data, makes a change through the API and waits for it to
// appear without a reload, counts the stream's updates per second while stock keeps changing,
// expands a row's buffers, opens a SKU's audit trail and saves a screenshot. Prints one JSON
// line of what it measured; exits 1 with the reason on any failure.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [base, screenshot, changedSku, auditSku] = process.argv.slice(2);
if (!base || !screenshot || !changedSku || !auditSku) {
  console.error("usage: node dashboard.mjs <base url> <screenshot.png> <sku to change> <sku to open>");
  process.exit(2);
}
const executablePath = process.env.STOCKFLOW_CHROMIUM || "/usr/bin/chromium";
const TIMEOUT_MS = 15000;
const CHURN_MS = 4000;

let seq = 1_000_000;
async function post(path, body) {
  const response = await fetch(`${base}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`POST ${path}: ${response.status} ${await response.text()}`);
  return response.json();
}

function received(sku, quantity) {
  seq += 1;
  return { event_id: `browser-${seq}`, source: "browser-test", seq: seq - 1_000_000, type: "received", sku, location: "east", quantity };
}

async function cellText(page, sku, column) {
  return page.$eval(`tr.sku-row[data-sku="${sku}"] td.${column}`, (cell) => cell.textContent.replace(/,/g, ""));
}

const userDataDir = mkdtempSync(join(tmpdir(), "stockflow-chromium-"));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath,
  headless: true,
  viewport: { width: 1440, height: 1000 },
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
  ],
});
const result = {};
try {
  const page = context.pages()[0] || (await context.newPage());
  // Exceptions thrown by the page's script (a 404 of an optional endpoint is not one).
  const scriptErrors = [];
  page.on("pageerror", (error) => scriptErrors.push(String(error)));
  page.setDefaultTimeout(TIMEOUT_MS);

  await page.goto(`${base}/`);
  // Live data: the stream is open, a first update came, the tiles and the row are drawn.
  await page.waitForFunction(() => window.stockflowDashboard && window.stockflowDashboard.updates >= 1);
  await page.waitForSelector(`tr.sku-row[data-sku="${changedSku}"]`);
  await page.waitForSelector(".tile");
  await page.waitForSelector('#status[data-state="live"]');
  result.tiles = await page.$$eval(".tile .label", (labels) => labels.map((l) => l.textContent));

  // A change through the API appears without a reload.
  await page.evaluate(() => { window.__sameDocument = "yes"; });
  const before = Number(await cellText(page, changedSku, "on_hand"));
  const changedAt = Date.now();
  await post("/v1/events", received(changedSku, 7));
  await page.waitForFunction(
    ([sku, expected]) => {
      const cell = document.querySelector(`tr.sku-row[data-sku="${sku}"] td.on_hand`);
      return cell && cell.textContent.replace(/,/g, "") === String(expected);
    },
    [changedSku, before + 7],
  );
  result.change_seen_ms = Date.now() - changedAt;
  result.same_document = await page.evaluate(() => window.__sameDocument === "yes" && performance.getEntriesByType("navigation").length === 1);
  if (!result.same_document) throw new Error("the page reloaded");

  // While stock changes every 50 ms, the stream still sends only a few updates a second.
  const start = await page.evaluate(() => window.stockflowDashboard.updates);
  const churnStart = Date.now();
  let churned = 0;
  while (Date.now() - churnStart < CHURN_MS) {
    await post("/v1/events", received(changedSku, 1));
    churned += 1;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const seconds = (Date.now() - churnStart) / 1000;
  const end = await page.evaluate(() => window.stockflowDashboard.updates);
  result.changes_during_churn = churned;
  result.updates_per_second = (end - start) / seconds;
  await page.waitForFunction(
    ([sku, expected]) => {
      const cell = document.querySelector(`tr.sku-row[data-sku="${sku}"] td.on_hand`);
      return cell && cell.textContent.replace(/,/g, "") === String(expected);
    },
    [changedSku, before + 7 + churned],
  );

  // The buffers of a row, with their reasons.
  await page.click(`tr.sku-row[data-sku="${auditSku}"] button.expand`);
  await page.waitForSelector(`tr.detail[data-detail="${auditSku}"]`);
  result.buffer_reasons = await page.$$eval(`tr.detail[data-detail="${auditSku}"] li`, (items) => items.map((i) => i.textContent));

  // The audit trail of a SKU, on click.
  await page.click(`a.sku[data-sku="${auditSku}"]`);
  await page.waitForSelector("#audit:not([hidden]) #audit-table tbody tr[data-audit-id]");
  result.audit_entries = await page.$$eval("#audit-table tbody tr[data-audit-id]", (rows) => rows.length);
  result.audit_first_cause = await page.$eval("#audit-table tbody tr[data-audit-id] td:nth-child(4)", (cell) => cell.textContent);

  result.alerts_text = await page.$eval("#alerts", (box) => box.textContent.trim());
  result.script_errors = scriptErrors;
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: screenshot, fullPage: true });
  result.screenshot = screenshot;
  console.log(JSON.stringify(result));
} catch (error) {
  console.error(`dashboard test failed: ${error.stack || error}`);
  console.error(JSON.stringify(result));
  process.exitCode = 1;
} finally {
  await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
