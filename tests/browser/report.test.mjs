// The forensics report in a real browser: Debian's headless Chromium (/usr/bin/chromium)
// driven by playwright-core (no downloaded browser). Opens the page of the incident fixture
// over file://, checks the timeline, the alert list and the filters against the golden JSON
// report, that markup from the log stays text, that nothing is fetched and nothing is
// logged as an error, and takes a screenshot.
//
// Run: `node --test tests/browser/report.test.mjs` (tests/report_browser.rs does, with
// AUDITWATCH_REPORT set to a freshly generated page). Without AUDITWATCH_REPORT the page is
// generated with `cargo run`. AUDITWATCH_SCREENSHOT=docs/report.png writes the screenshot
// there (default: a temporary file).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const golden = JSON.parse(fs.readFileSync(path.join(root, 'fixtures/report/incident.report.json'), 'utf8'));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'auditwatch-browser-'));

let reportPath = process.env.AUDITWATCH_REPORT;
if (!reportPath) {
  reportPath = path.join(tmp, 'incident.html');
  execFileSync('cargo', ['run', '-q', '--', 'replay', '--quiet', '--report', reportPath, 'fixtures/report/incident.jsonl'],
    { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
}
const url = pathToFileURL(path.resolve(reportPath)).href;
const shot = process.env.AUDITWATCH_SCREENSHOT
  ? path.resolve(root, process.env.AUDITWATCH_SCREENSHOT)
  : path.join(tmp, 'report.png');

let context, page;
const requests = [];
const problems = [];
const dialogs = [];

before(async () => {
  context = await chromium.launchPersistentContext(path.join(tmp, 'profile'), {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1440, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  page = context.pages()[0] || await context.newPage();
  page.on('request', (r) => requests.push(r.url()));
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('dialog', async (d) => { dialogs.push(d.message()); await d.dismiss(); });
  const t0 = Date.now();
  await page.goto(url, { waitUntil: 'load' });
  console.log(`# page loaded in ${Date.now() - t0} ms`);
});

after(async () => {
  await context?.close();
  fs.rmSync(path.join(tmp, 'profile'), { recursive: true, force: true });
});

const visible = () => page.locator('article.alert:not([hidden])').count();
const liveMarks = () => page.locator('#timeline circle.m:not(.off)').count();
async function setFilter(id, value) {
  const el = page.locator(id);
  if (await el.evaluate((e) => e.tagName) === 'SELECT') await el.selectOption(value);
  else await el.fill(value);
}
async function reset() {
  await page.click('#f-reset');
  assert.equal(await visible(), golden.alerts.length);
}
const alertsWhere = (pred) => golden.alerts.filter((a) => pred(a.alert)).length;

test('the timeline has a mark per alert over the traffic bars', async () => {
  assert.equal(await page.locator('#timeline circle.m').count(), golden.alerts.length);
  assert.ok(await page.locator('#timeline rect.vol').count() > 10, 'traffic bars are drawn');
  const lanes = await page.locator('#timeline text.lane-label').allTextContents();
  for (const c of golden.timeline.categories) assert.ok(lanes.includes(c), `lane for ${c}`);
});

test('every alert renders, with its summary and context', async () => {
  assert.equal(await visible(), golden.alerts.length);
  const summaries = await page.locator('article.alert .summary').allTextContents();
  assert.deepEqual(summaries, golden.alerts.map((a) => a.alert.summary));
  const triggers = await page.locator('article.alert table.ctx tr.trig').count();
  assert.equal(triggers, golden.alerts.filter((a) => [...a.context.before, ...a.context.after].some((r) => r.trigger)).length);
  assert.equal((await page.locator('h1.verdict').textContent()).startsWith(golden.verdict.split(';')[0]), true);
});

test('filters narrow the alerts and the marks', async () => {
  await setFilter('#f-sev', 'critical');
  const critical = alertsWhere((a) => a.severity === 'critical');
  assert.ok(critical > 0 && critical < golden.alerts.length);
  assert.equal(await visible(), critical);
  assert.equal(await liveMarks(), critical);
  assert.equal(await page.locator('#shown').textContent(), String(critical));
  await reset();

  await setFilter('#f-tenant', 'lumen');
  const lumen = alertsWhere((a) => a.tenant === 'lumen' || a.target_tenant === 'lumen');
  assert.ok(lumen > 0 && lumen < golden.alerts.length);
  assert.equal(await visible(), lumen);
  await setFilter('#f-cat', 'cross_tenant_read');
  assert.equal(await visible(), alertsWhere((a) => a.category === 'cross_tenant_read' && (a.tenant === 'lumen' || a.target_tenant === 'lumen')));
  await reset();

  await setFilter('#f-actor', 'userpass-alice');
  assert.equal(await visible(), alertsWhere((a) => a.actor.display_name === 'userpass-alice'));
  await reset();

  await setFilter('#f-from', '2026-03-02 03:00');
  await setFilter('#f-to', '2026-03-02 03:59');
  const hour = alertsWhere((a) => a.time >= '2026-03-02T03:00' && a.time < '2026-03-02T04:00');
  assert.ok(hour > 0 && hour < golden.alerts.length);
  assert.equal(await visible(), hour);
  await reset();

  // A table row sets a filter.
  await page.click('#tables tr[data-set="tenant"][data-v="acme"]');
  assert.equal(await page.locator('#f-tenant').inputValue(), 'acme');
  assert.equal(await visible(), alertsWhere((a) => a.tenant === 'acme' || a.target_tenant === 'acme'));
  await reset();
});

test('dragging across the timeline filters a time range', async () => {
  await page.locator('#timeline-card').evaluate((e) => e.scrollIntoView({ block: 'center' }));
  await page.waitForTimeout(100);
  const box = await page.locator('#catch').boundingBox();
  const y = box.y + box.height / 2;
  await page.mouse.move(box.x + box.width * 0.2, y);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.35, y, { steps: 5 });
  await page.mouse.up();
  assert.notEqual(await page.locator('#f-from').inputValue(), '');
  assert.notEqual(await page.locator('#f-to').inputValue(), '');
  const n = await visible();
  assert.ok(n < golden.alerts.length, `the range keeps ${n} alerts`);
  await reset();
});

test('hovering a mark shows its alert; clicking opens it', async () => {
  const first = golden.alerts.find((a) => a.alert.severity === 'critical');
  const mark = page.locator(`#timeline circle.m[data-a="${first.id}"]`);
  // Out from under the sticky filter bar.
  await page.locator('#timeline-card').evaluate((e) => e.scrollIntoView({ block: 'center' }));
  await page.waitForTimeout(100);
  await mark.hover();
  await page.locator('#tip').waitFor({ state: 'visible' });
  assert.equal(await page.locator('#tip .s').textContent(), first.alert.summary);
  await mark.click();
  const card = page.locator(`article#${first.id}`);
  assert.equal(await card.locator('details').evaluate((d) => d.open), true);
  await page.waitForFunction((id) => {
    const r = document.getElementById(id).getBoundingClientRect();
    return r.top >= 0 && r.top < window.innerHeight;
  }, first.id);
});

test('markup from the log is shown as text, never run', async () => {
  const names = await page.locator('article.alert .actor').allTextContents();
  assert.ok(names.some((n) => n.includes('jwt-<script>alert("x")</script>')), 'the display name reads literally');
  const paths = await page.locator('article.alert .who .path').allTextContents();
  assert.ok(paths.some((p) => p.includes('<img src=x onerror=alert(1)>')), 'the path reads literally');
  assert.equal(await page.locator('article.alert img, article.alert script, #tables script').count(), 0);
  assert.deepEqual(dialogs, []);
});

test('nothing but the file is fetched, and nothing is logged as an error', async () => {
  assert.deepEqual(requests, [url]);
  assert.deepEqual(problems, []);
});

test('screenshot', async () => {
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.mouse.move(0, 0);
  await page.evaluate(() => document.activeElement && document.activeElement.blur());
  await page.locator('#tip').evaluate((t) => { t.hidden = true; });
  fs.mkdirSync(path.dirname(shot), { recursive: true });
  await page.screenshot({ path: shot, clip: { x: 0, y: 0, width: 1440, height: 1240 }, fullPage: true });
  const size = fs.statSync(shot).size;
  console.log(`# screenshot ${shot} (${Math.round(size / 1024)} KB)`);
  assert.ok(size < 500 * 1024, 'the screenshot stays under 500 KB');
});
