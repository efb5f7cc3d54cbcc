/**
 * The status page in a real browser: a 3-node cluster on 127.0.0.1 (A, then B and C
 * bootstrapped to A, all with --http on a free port), A's page open in headless Chromium
 * (Debian's /usr/bin/chromium driven by playwright-core), and the page must follow the
 * cluster live, over server-sent events, without a reload:
 *   1. it lists 3 nodes (self + 2 up), all in sync;
 *   2. a PUT through B's HTTP gateway raises A's #total-keys within 2 s;
 *   3. C killed (SIGKILL) shows as unreachable within 5 s.
 * Screenshots (full page, plus one at a phone's width) go to test-artifacts/ (git-ignored).
 *
 * DOM contract: `#nodes tr.node[data-peer-id][data-state=self|up|left|unreachable]
 * [data-in-sync=true|false]`, `#total-keys` (this node's live key count), `#last-update` (ISO
 * time of the last snapshot, changes every second while live).
 *
 * Without Chromium this test FAILS as root or under CI=true (`npm test` installs it first, as
 * root: scripts/test-prerequisites.mjs); not root, it is skipped with "cannot run here: not
 * root". Nothing is downloaded: only requests to 127.0.0.1 are let through, everything else is
 * aborted.
 * No fixed sleeps: every wait is a browser-side waitForFunction or a poll with a deadline.
 */
import { after, before, describe, it, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { freePorts } from '../../src/util/free-ports.js';
import { fetchWithin, repoRoot, startNode, waitFor, type NodeProcess } from '../../harness/testing.js';
import { loopbackPage } from '../helpers/browser-page.js';
import { statusJson } from '../helpers/partitioned.js';
import { whenMissing } from '../helpers/prerequisites.js';

const chromiumPath = '/usr/bin/chromium';
const artifacts = join(repoRoot, 'test-artifacts');
const fast = ['--sync-interval-ms', '200'];

// The functions passed to page.evaluate / waitForFunction run in the page, not in Node. The
// project compiles without the DOM lib, so this declares the little of it they use.
interface DomElement {
  textContent: string | null;
  getAttribute(name: string): string | null;
}
declare const document: {
  querySelector(selector: string): DomElement | null;
  querySelectorAll(selector: string): ArrayLike<DomElement>;
  documentElement: { scrollWidth: number; clientWidth: number };
};

/** What the page shows, read in the page (for assertions and failure messages). */
interface PageView {
  rows: { peerId: string | null; state: string | null; inSync: string | null }[];
  totalKeys: string | null;
  lastUpdate: string | null;
}

function readView(page: Page): Promise<PageView> {
  return page.evaluate(() => ({
    rows: Array.from(document.querySelectorAll('#nodes tr.node')).map((row) => ({
      peerId: row.getAttribute('data-peer-id'),
      state: row.getAttribute('data-state'),
      inSync: row.getAttribute('data-in-sync'),
    })),
    totalKeys: document.querySelector('#total-keys')?.textContent ?? null,
    lastUpdate: document.querySelector('#last-update')?.textContent ?? null,
  }));
}

/** `work`, with what the page showed (and the nodes' logs' tails) added to a failure. */
async function explained<T>(page: Page, nodes: Record<string, NodeProcess>, what: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    const view = await readView(page).catch((e: unknown) => `(page unreadable: ${String(e)})`);
    const logs = Object.entries(nodes)
      .map(([name, node]) => `--- ${name} stderr (tail):\n${node.stderrText().split('\n').slice(-15).join('\n')}`)
      .join('\n');
    const message = error instanceof Error ? error.message : String(error);
    throw new Error(`${what}: ${message}\npage shows: ${JSON.stringify(view, null, 2)}\n${logs}`, { cause: error });
  }
}

/** The node's libp2p address on 127.0.0.1 with /p2p/<peer id> (listenAddresses[0] normally). */
async function bootstrapAddress(node: NodeProcess): Promise<{ address: string; peerId: string }> {
  const status = await node.status();
  const first = status.listenAddresses[0];
  const address =
    first !== undefined && first.startsWith('/ip4/127.0.0.1/tcp/') && first.includes('/p2p/')
      ? first
      : status.listenAddresses.find((a) => a.startsWith('/ip4/127.0.0.1/tcp/') && a.includes('/p2p/'));
  if (address === undefined) throw new Error(`no 127.0.0.1 tcp address with /p2p/: ${status.listenAddresses.join(' ')}`);
  return { address, peerId: status.peerId };
}

function measure(name: string, fields: Record<string, string | number>): void {
  console.log(`[measure] ${name}: ${Object.entries(fields).map(([k, v]) => `${k}=${v}`).join(' ')}`);
}

async function launchBrowser(): Promise<Browser> {
  if (!existsSync(chromiumPath)) throw new Error(`Chromium is not installed (${chromiumPath} is missing)`);
  mkdirSync(artifacts, { recursive: true });
  try {
    return await chromium.launch({
      executablePath: chromiumPath,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
    });
  } catch (error) {
    throw new Error(`could not launch ${chromiumPath}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
}

/** The status page at 127.0.0.1:`port` (only 127.0.0.1 let through), once the HTTP server answers. */
async function openPage(browser: Browser, port: number, blocked: string[], pageErrors: string[]): Promise<Page> {
  const page = await loopbackPage(browser, { width: 1280, height: 800 }, blocked, pageErrors);
  // The HTTP server may come up just after the control socket: wait for it to answer.
  const pageUrl = `http://127.0.0.1:${port}/`;
  await waitFor(
    async () => {
      const reply = await fetchWithin(pageUrl, {}, 2000);
      await reply.body?.cancel();
      return true;
    },
    { deadlineMs: 10_000, intervalMs: 100, what: `the status page at ${pageUrl} (ckv node start --http) to answer` },
  );
  const response = await page.goto(pageUrl, { waitUntil: 'domcontentloaded', timeout: 10_000 });
  assert.ok(response, 'no response for GET /');
  assert.equal(response.status(), 200, `GET / on ${pageUrl} answered ${response.status()}`);
  return page;
}

/** The partitioned line as the page shows it (null: there is none). */
function readPartitioned(page: Page): Promise<Record<string, string | null> | null> {
  return page.evaluate(() => {
    const line = document.querySelector('#partitioned');
    if (!line) return null;
    const names = ['class', 'data-replicas', 'data-layout-version', 'data-owned', 'data-under-replicated', 'data-pending', 'data-done', 'data-blocked-by'];
    return Object.fromEntries([['text', line.textContent], ...names.map((name) => [name, line.getAttribute(name)])]) as Record<string, string | null>;
  });
}

const missing = existsSync(chromiumPath) ? undefined : whenMissing(`Chromium is not installed (${chromiumPath} is missing)`);

if (missing !== undefined && 'skip' in missing) test('status page in a browser, 3-node cluster', { skip: missing.skip }, () => undefined);
else describe('status page in a browser, 3-node cluster', { timeout: 90_000 }, () => {
  let browser: Browser | undefined;
  let page: Page;
  const nodes: Record<string, NodeProcess> = {};
  const peerIds: Record<string, string> = {};
  const httpPorts: Record<string, number> = {};
  const pageErrors: string[] = [];
  const blocked: string[] = [];

  before(async () => {
    if (missing !== undefined && 'fail' in missing) throw new Error(missing.fail);
    browser = await launchBrowser();

    const [portA, portB, portC] = (await freePorts(3)) as [number, number, number];
    Object.assign(httpPorts, { A: portA, B: portB, C: portC });
    nodes.A = await startNode({ args: ['--http', `127.0.0.1:${portA}`, ...fast] });
    const a = await bootstrapAddress(nodes.A);
    peerIds.A = a.peerId;
    const [b, c] = await Promise.all(
      (['B', 'C'] as const).map((name) =>
        startNode({ args: ['--http', `127.0.0.1:${httpPorts[name]}`, '--bootstrap', a.address, ...fast] }),
      ),
    );
    nodes.B = b!;
    nodes.C = c!;
    peerIds.B = (await nodes.B.status()).peerId;
    peerIds.C = (await nodes.C.status()).peerId;

    page = await openPage(browser, portA, blocked, pageErrors);
    // Set once: if the page reloaded itself, this would be gone.
    await page.evaluate(() => {
      (globalThis as unknown as { ckvTestMarker: number }).ckvTestMarker = 1;
    });
  });

  after(async () => {
    await browser?.close();
  });

  it('1. lists 3 nodes (self + 2 up), all in sync, and updates live', { timeout: 30_000 }, async () => {
    const startedMs = Date.now();
    await explained(page, nodes, 'A\'s page never showed self + 2 up, all in sync, within 10 s', () =>
      page.waitForFunction(
        (ids: Record<string, string>) => {
          const rows = Array.from(document.querySelectorAll('#nodes tr.node'));
          if (rows.length !== 3) return false;
          const state = (id: string | undefined): string | null | undefined =>
            rows.find((r) => r.getAttribute('data-peer-id') === id)?.getAttribute('data-state');
          return (
            state(ids.A) === 'self' &&
            state(ids.B) === 'up' &&
            state(ids.C) === 'up' &&
            rows.every((r) => r.getAttribute('data-in-sync') === 'true')
          );
        },
        peerIds,
        { timeout: 10_000, polling: 50 },
      ),
    );
    measure('browser page shows 3 nodes in sync', { ms: Date.now() - startedMs });
    assert.equal(await readPartitioned(page), null, 'a full-replication page has no partitioned line');

    const view = await readView(page);
    assert.match(view.totalKeys ?? '', /^\s*\d+\s*$/, `#total-keys is not a number: ${JSON.stringify(view.totalKeys)}`);
    const firstUpdate = view.lastUpdate ?? '';
    assert.ok(!Number.isNaN(Date.parse(firstUpdate)), `#last-update is not an ISO time: ${JSON.stringify(firstUpdate)}`);
    // Live: the snapshot time moves on by itself (every second), with no reload.
    await explained(page, nodes, '#last-update did not change within 3 s', () =>
      page.waitForFunction((before: string) => (document.querySelector('#last-update')?.textContent ?? '') !== before, firstUpdate, {
        timeout: 3000,
        polling: 50,
      }),
    );
    const next = (await readView(page)).lastUpdate ?? '';
    assert.ok(Date.parse(next) > Date.parse(firstUpdate), `#last-update went from ${firstUpdate} to ${next}`);

    await page.screenshot({ path: join(artifacts, 'status-page-1-three-nodes.png'), fullPage: true });
  });

  it('2. a PUT through B raises A\'s #total-keys within 2 s, without a reload', { timeout: 15_000 }, async () => {
    const before = Number((await readView(page)).totalKeys);
    assert.ok(Number.isFinite(before), 'no #total-keys before the PUT');
    const key = `browser-test-${Date.now()}`;
    const putUrl = `http://127.0.0.1:${httpPorts.B}/kv/${encodeURIComponent(key)}`;
    const reply = await fetchWithin(putUrl, { method: 'PUT', body: 'hello from the browser test' });
    const putDoneMs = Date.now();
    const replyText = await reply.text();
    assert.ok(reply.ok, `PUT ${putUrl} answered ${reply.status}: ${replyText}`);

    // The predicate returns the page's clock (same machine clock as ours) when it first sees the
    // rise; polled every 10 ms, so that is the DOM change time to within ~10 ms.
    const seenAt = await explained(page, nodes, `A's #total-keys did not rise above ${before}`, async () => {
      const handle = await page.waitForFunction(
        (previous: number) => {
          const now = Number(document.querySelector('#total-keys')?.textContent ?? 'NaN');
          return now > previous ? Date.now() : false;
        },
        before,
        { timeout: 4000, polling: 10 },
      );
      return (await handle.jsonValue()) as number;
    });
    const ms = seenAt - putDoneMs;
    measure('browser PUT on B -> A #total-keys rises', { ms, before, after: (await readView(page)).totalKeys ?? '?' });
    assert.ok(ms <= 2000, `A's #total-keys rose ${ms} ms after the PUT response (limit 2000 ms)`);
    assert.equal(await page.evaluate(() => (globalThis as unknown as { ckvTestMarker?: number }).ckvTestMarker), 1, 'the page reloaded');
  });

  it('3. C killed shows as unreachable on A\'s page within 5 s', { timeout: 20_000 }, async () => {
    await nodes.C!.kill();
    const killedMs = Date.now();
    const seenAt = await explained(page, nodes, 'C never showed as unreachable', async () => {
      const handle = await page.waitForFunction(
        (c: string) => {
          const row = Array.from(document.querySelectorAll('#nodes tr.node')).find((r) => r.getAttribute('data-peer-id') === c);
          return row?.getAttribute('data-state') === 'unreachable' ? Date.now() : false;
        },
        peerIds.C!,
        { timeout: 8000, polling: 10 },
      );
      return (await handle.jsonValue()) as number;
    });
    const ms = seenAt - killedMs;
    measure('browser C SIGKILL -> unreachable on A\'s page', { ms });
    assert.ok(ms <= 5000, `C showed as unreachable ${ms} ms after the kill (limit 5000 ms)`);

    const view = await readView(page);
    const stateOf = (id: string | undefined): string | null | undefined => view.rows.find((r) => r.peerId === id)?.state;
    assert.equal(stateOf(peerIds.A), 'self', 'A\'s own row');
    assert.equal(stateOf(peerIds.B), 'up', 'B\'s row after C was killed');
    assert.equal(await page.evaluate(() => (globalThis as unknown as { ckvTestMarker?: number }).ckvTestMarker), 1, 'the page reloaded');
    await page.screenshot({ path: join(artifacts, 'status-page-3-c-unreachable.png'), fullPage: true });

    // A phone's width: the same page, for a look at whether it stays readable.
    await page.setViewportSize({ width: 390, height: 844 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    measure('browser phone viewport 390x844', { horizontalOverflowPx: overflow });
    await page.screenshot({ path: join(artifacts, 'status-page-phone-390.png'), fullPage: true });
  });

  it('loaded nothing from outside 127.0.0.1 and logged no page errors', () => {
    assert.deepEqual(blocked, [], 'the page asked for resources outside 127.0.0.1');
    assert.deepEqual(pageErrors, [], 'the page logged errors');
  });
});

if (missing !== undefined && 'skip' in missing) test('status page in a browser, partitioned mode', { skip: missing.skip }, () => undefined);
else describe('status page in a browser, partitioned mode (K = 2)', { timeout: 90_000 }, () => {
  let browser: Browser | undefined;
  let page: Page;
  const nodes: Record<string, NodeProcess> = {};
  const pageErrors: string[] = [];
  const blocked: string[] = [];
  const partitioned = ['--replicas', '2', ...fast];

  before(async () => {
    if (missing !== undefined && 'fail' in missing) throw new Error(missing.fail);
    browser = await launchBrowser();
    const [portA] = (await freePorts(1)) as [number];
    nodes.A = await startNode({ args: ['--http', `127.0.0.1:${portA}`, ...partitioned] });
    const a = await bootstrapAddress(nodes.A);
    nodes.B = await startNode({ args: ['--http', 'off', '--bootstrap', a.address, ...partitioned] });
    // The page opens once A has a layout: before it a partitioned node refuses prefix reads
    // (503, "no layout yet"), and the key browser's refused request would log as a page error.
    await waitFor(async () => ((await statusJson(nodes.A!)).partitioned?.layoutVersion ?? 0) >= 1, { deadlineMs: 30_000, what: 'A to have a layout' });
    page = await openPage(browser, portA, blocked, pageErrors);
  });

  after(async () => {
    await browser?.close();
  });

  it('shows K, the layout version, partitions owned, under-replicated and rebalance progress, live', { timeout: 60_000 }, async () => {
    // B joins (layout v2); with K = 2 of 2 nodes, A owns every partition and none is under-replicated.
    await explained(page, nodes, "A's page never showed layout v2 with 256 partitions owned, none under-replicated, no rebalance", () =>
      page.waitForFunction(
        () => {
          const line = document.querySelector('#partitioned');
          return (
            line?.getAttribute('data-layout-version') === '2' &&
            line.getAttribute('data-owned') === '256' &&
            line.getAttribute('data-under-replicated') === '0' &&
            /rebalance: none in progress/.test(line.textContent ?? '')
          );
        },
        undefined,
        { timeout: 30_000, polling: 100 },
      ),
    );
    const settled = await readPartitioned(page);
    assert.equal(settled?.['data-replicas'], '2');
    assert.equal(settled?.class, 'health ok');
    assert.equal(settled?.text, 'partitioned \u00b7 replicas 2 \u00b7 layout v2 \u00b7 256 partitions owned \u00b7 0 under-replicated \u00b7 rebalance: none in progress');
    await page.screenshot({ path: join(artifacts, 'status-page-partitioned.png'), fullPage: true });

    // B killed: every partition has one owner up of K = 2, shown without a reload.
    await nodes.B!.kill();
    await explained(page, nodes, "A's page never showed 256 partitions under-replicated after B was killed", () =>
      page.waitForFunction(() => document.querySelector('#partitioned')?.getAttribute('data-under-replicated') === '256', undefined, { timeout: 30_000, polling: 100 }),
    );
    const down = await readPartitioned(page);
    assert.equal(down?.class, 'health warn');
    assert.match(down?.text ?? '', /256 under-replicated/);
    assert.deepEqual(blocked, [], 'the page asked for resources outside 127.0.0.1');
    assert.deepEqual(pageErrors, [], 'the page logged errors');
  });
});
