/**
 * The status page as a cluster console, in a real browser: a 5-node cluster on 127.0.0.1 (A
 * with --http, B..E bootstrapped to A), A's page open in headless Chromium (Debian's
 * /usr/bin/chromium driven by playwright-core), followed live without a reload:
 *   1. the matrix (`#matrix`) shows every node's report: 5 rows answering and in sync, each
 *      seeing the 4 others up and in sync; the charts have tick labels;
 *   2. the key browser finds keys by prefix with a value preview (text, binary) and shows a
 *      tombstone only when "show tombstones" is ticked;
 *   3. E frozen (SIGSTOP) shows as not answering in the matrix; thawed, it answers again;
 *   4. D killed shows as unreachable (in the nodes table and in A's matrix row), and the
 *      timeline gains its "member down" event.
 * Full-page screenshots go to test-artifacts/ (git-ignored).
 *
 * Without Chromium this test FAILS as root or under CI=true, and is skipped otherwise (as the
 * status-page test). Only requests to 127.0.0.1 are let through. No fixed sleeps: every wait is
 * a browser-side waitForFunction with a timeout.
 */
import { after, before, describe, it, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { fetchWithin, repoRoot, startNode, waitFor, type NodeProcess } from '../../harness/testing.js';
import { loopbackPage } from '../helpers/browser-page.js';
import { whenMissing } from '../helpers/prerequisites.js';

const chromiumPath = '/usr/bin/chromium';
const artifacts = join(repoRoot, 'test-artifacts');
// Tombstone GC only when asked: the key browser shows a tombstone, which a cluster whose members
// all hold it collects at its next GC run (every 10 s by default).
const fast = ['--sync-interval-ms', '200', '--gc-interval-ms', '0'];
const names = ['A', 'B', 'C', 'D', 'E'] as const;

// Functions passed to page.evaluate / waitForFunction run in the page; the project compiles
// without the DOM lib, so this declares the little of it they use.
interface DomElement {
  textContent: string | null;
  getAttribute(name: string): string | null;
  querySelector(selector: string): DomElement | null;
  querySelectorAll(selector: string): ArrayLike<DomElement>;
}
declare const document: {
  querySelector(selector: string): DomElement | null;
  querySelectorAll(selector: string): ArrayLike<DomElement>;
};

/** The matrix as the page shows it: per reporting node, answered, in sync, and its cells. */
function readMatrix(page: Page): Promise<{ node: string | null; answered: string | null; inSync: string | null; cells: { subject: string | null; state: string | null; inSync: string | null }[]; text: string }[]> {
  return page.evaluate(() =>
    Array.from(document.querySelectorAll('#matrix tr.observer')).map((row) => ({
      node: row.getAttribute('data-node-id'),
      answered: row.getAttribute('data-answered'),
      inSync: row.getAttribute('data-in-sync'),
      cells: Array.from(row.querySelectorAll('td.cell')).map((cell) => ({
        subject: cell.getAttribute('data-subject'),
        state: cell.getAttribute('data-state'),
        inSync: cell.getAttribute('data-in-sync'),
      })),
      text: (row.textContent ?? '').slice(0, 300),
    })),
  );
}

async function explained<T>(page: Page, nodes: Record<string, NodeProcess>, what: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    const matrix = await readMatrix(page).catch((e: unknown) => `(page unreadable: ${String(e)})`);
    const timeline = await page.evaluate(() => Array.from(document.querySelectorAll('#timeline li.event')).slice(0, 12).map((li) => li.textContent)).catch(() => []);
    const logs = Object.entries(nodes)
      .map(([name, node]) => `--- ${name} stderr (tail):\n${node.stderrText().split('\n').slice(-8).join('\n')}`)
      .join('\n');
    const message = error instanceof Error ? error.message : String(error);
    throw new Error(`${what}: ${message}\nmatrix: ${JSON.stringify(matrix, null, 1)}\ntimeline: ${JSON.stringify(timeline)}\n${logs}`, { cause: error });
  }
}

const missing = existsSync(chromiumPath) ? undefined : whenMissing(`Chromium is not installed (${chromiumPath} is missing)`);

if (missing !== undefined && 'skip' in missing) test('status page console in a browser, 5-node cluster', { skip: missing.skip }, () => undefined);
else describe('status page console in a browser, 5-node cluster', { timeout: 150_000 }, () => {
  let browser: Browser | undefined;
  let page: Page;
  let base = '';
  const nodes: Record<string, NodeProcess> = {};
  const ids: Record<string, { nodeId: string; peerId: string }> = {};
  const pageErrors: string[] = [];
  const blocked: string[] = [];

  before(async () => {
    if (missing !== undefined && 'fail' in missing) throw new Error(missing.fail);
    browser = await chromium.launch({
      executablePath: chromiumPath,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
    });
    mkdirSync(artifacts, { recursive: true });
    nodes.A = await startNode({ name: 'A', args: ['--http', '127.0.0.1:0', ...fast] });
    const status = await nodes.A.status();
    base = status.httpUrl;
    const boot = status.listenAddresses.find((a) => a.startsWith('/ip4/127.0.0.1/tcp/') && a.includes('/p2p/'));
    assert.ok(boot, `no 127.0.0.1 address: ${status.listenAddresses.join(' ')}`);
    const rest = await Promise.all(names.slice(1).map((name) => startNode({ name, args: ['--bootstrap', boot, ...fast] })));
    names.slice(1).forEach((name, i) => (nodes[name] = rest[i]!));
    for (const name of names) {
      const s = await nodes[name]!.status();
      ids[name] = { nodeId: s.nodeId, peerId: s.peerId };
    }
    // Only 127.0.0.1: anything else the page asks for is aborted and reported.
    page = await loopbackPage(browser, { width: 1400, height: 900 }, blocked, pageErrors);
    await waitFor(
      async () => {
        const reply = await fetchWithin(base, {}, 2000);
        await reply.body?.cancel();
        return reply.ok;
      },
      { deadlineMs: 10_000, intervalMs: 100, what: `A's page at ${base}` },
    );
    const response = await page.goto(base, { waitUntil: 'domcontentloaded', timeout: 10_000 });
    assert.equal(response?.status(), 200);
    await page.evaluate(() => {
      (globalThis as unknown as { ckvTestMarker: number }).ckvTestMarker = 1;
    });
  });

  after(async () => {
    if (nodes.E?.frozen) nodes.E.thaw();
    await browser?.close();
  });

  it('1. the matrix: 5 nodes answering, each sees the 4 others up and in sync; charts have ticks', { timeout: 45_000 }, async () => {
    const nodeIds = names.map((n) => ids[n]!.nodeId);
    await explained(page, nodes, 'the matrix never showed 5 nodes all up and in sync', () =>
      page.waitForFunction(
        (want: string[]) => {
          const rows = Array.from(document.querySelectorAll('#matrix tr.observer'));
          if (rows.length !== want.length) return false;
          return rows.every((row) => {
            if (row.getAttribute('data-answered') !== 'true' || row.getAttribute('data-in-sync') !== 'true') return false;
            const cells = Array.from(row.querySelectorAll('td.cell'));
            return (
              cells.length === want.length &&
              want.every((id) => cells.some((c) => c.getAttribute('data-subject') === id)) &&
              cells.every((c) => (c.getAttribute('data-subject') === row.getAttribute('data-node-id') ? c.getAttribute('data-state') === 'self' : c.getAttribute('data-state') === 'up' && c.getAttribute('data-in-sync') === 'true'))
            );
          });
        },
        nodeIds,
        { timeout: 30_000, polling: 100 },
      ),
    );
    const ticks = await page.evaluate(() => Array.from(document.querySelectorAll('#convergence-axis .tick, #writes-axis .tick')).map((t) => t.textContent ?? ''));
    assert.ok(ticks.length >= 4 && ticks.every((t) => /\d/.test(t)), `chart tick labels: ${JSON.stringify(ticks)}`);
    const timeline = await page.evaluate(() => Array.from(document.querySelectorAll('#timeline li.event')).map((li) => li.getAttribute('data-kind')));
    assert.ok(timeline.includes('member up'), `the timeline shows members up: ${JSON.stringify(timeline)}`);
    await page.screenshot({ path: join(artifacts, 'console-1-five-nodes.png'), fullPage: true });
  });

  it('2. the key browser: prefix search, value previews, tombstones only when asked', { timeout: 30_000 }, async () => {
    const put = async (key: string, body: string | Uint8Array): Promise<void> => {
      const reply = await fetchWithin(`${base}kv/${encodeURIComponent(key)}`, { method: 'PUT', body });
      assert.equal(reply.status, 200, await reply.text());
    };
    await put('shop/cart-1', 'two apples and a pear');
    await put('shop/blob', new Uint8Array([0, 159, 146, 150, 255]));
    await put('shop/old', 'to be deleted');
    assert.equal((await fetchWithin(`${base}kv/shop%2Fold`, { method: 'DELETE' })).status, 200);
    await put('other/x', 'not under the prefix');

    await page.fill('#key-prefix', 'shop/');
    await page.click('#key-search');
    const rowsOf = (): Promise<{ key: string | null; deleted: string | null; preview: string }[]> =>
      page.evaluate(() =>
        Array.from(document.querySelectorAll('#key-rows tr.entry')).map((r) => ({
          key: r.getAttribute('data-key'),
          deleted: r.getAttribute('data-deleted'),
          preview: r.querySelector('td.preview')?.textContent ?? '',
        })),
      );
    await explained(page, nodes, 'the key browser never listed shop/ without its tombstone', () =>
      page.waitForFunction(
        () => {
          const keys = Array.from(document.querySelectorAll('#key-rows tr.entry')).map((r) => r.getAttribute('data-key'));
          return keys.join(',') === 'shop/blob,shop/cart-1';
        },
        undefined,
        { timeout: 10_000, polling: 50 },
      ),
    );
    const rows = await rowsOf();
    assert.equal(rows.find((r) => r.key === 'shop/cart-1')?.preview, 'two apples and a pear');
    assert.match(rows.find((r) => r.key === 'shop/blob')?.preview ?? '', /binary 5 bytes/);
    const ago = await page.evaluate(() => document.querySelector('#key-rows tr.entry .ago')?.textContent ?? '');
    assert.match(ago, /just now|\d+ s ago/, 'the version as "N s ago"');

    await page.check('#key-deleted');
    await explained(page, nodes, 'ticking "show tombstones" never listed shop/old as deleted', () =>
      page.waitForFunction(
        () => Array.from(document.querySelectorAll('#key-rows tr.entry')).some((r) => r.getAttribute('data-key') === 'shop/old' && r.getAttribute('data-deleted') === 'true' && /tombstone/.test(r.querySelector('td.preview')?.textContent ?? '')),
        undefined,
        { timeout: 10_000, polling: 50 },
      ),
    );
    await page.screenshot({ path: join(artifacts, 'console-2-key-browser.png'), fullPage: true });
  });

  it('3. E frozen (SIGSTOP) shows as not answering in the matrix; thawed, it answers again', { timeout: 45_000 }, async () => {
    nodes.E!.freeze();
    try {
      await explained(page, nodes, 'the matrix never showed E as not answering', () =>
        page.waitForFunction(
          (e: string) => {
            const row = Array.from(document.querySelectorAll('#matrix tr.observer')).find((r) => r.getAttribute('data-node-id') === e);
            return row?.getAttribute('data-answered') === 'false' && /not answering|unreachable/.test(row.textContent ?? '');
          },
          ids.E!.nodeId,
          { timeout: 20_000, polling: 100 },
        ),
      );
      await page.screenshot({ path: join(artifacts, 'console-3-e-frozen.png'), fullPage: true });
    } finally {
      nodes.E!.thaw();
    }
    await explained(page, nodes, 'E never answered again after the thaw', () =>
      page.waitForFunction(
        (e: string) => Array.from(document.querySelectorAll('#matrix tr.observer')).find((r) => r.getAttribute('data-node-id') === e)?.getAttribute('data-answered') === 'true',
        ids.E!.nodeId,
        { timeout: 20_000, polling: 100 },
      ),
    );
  });

  it('4. D killed: unreachable in the nodes table and the matrix, and a "member down" in the timeline', { timeout: 30_000 }, async () => {
    await nodes.D!.kill();
    const d = ids.D!;
    await explained(page, nodes, 'D never showed as unreachable with a timeline event', () =>
      page.waitForFunction(
        (want: { nodeId: string; peerId: string; self: string }) => {
          const nodeRow = Array.from(document.querySelectorAll('#nodes tr.node')).find((r) => r.getAttribute('data-peer-id') === want.peerId);
          const selfRow = Array.from(document.querySelectorAll('#matrix tr.observer')).find((r) => r.getAttribute('data-node-id') === want.self);
          const cell = selfRow ? Array.from(selfRow.querySelectorAll('td.cell')).find((c) => c.getAttribute('data-subject') === want.nodeId) : undefined;
          const event = Array.from(document.querySelectorAll('#timeline li.event')).some((li) => li.getAttribute('data-kind') === 'member down' && li.getAttribute('data-node-id') === want.nodeId);
          return nodeRow?.getAttribute('data-state') === 'unreachable' && cell?.getAttribute('data-state') === 'unreachable' && event;
        },
        { ...d, self: ids.A!.nodeId },
        { timeout: 15_000, polling: 100 },
      ),
    );
    const first = await page.evaluate(() => document.querySelector('#timeline li.event')?.getAttribute('data-kind') ?? '');
    assert.ok(first !== '', 'the timeline lists events, newest first');
    assert.equal(await page.evaluate(() => (globalThis as unknown as { ckvTestMarker?: number }).ckvTestMarker), 1, 'the page reloaded');
    await page.screenshot({ path: join(artifacts, 'console-4-d-killed.png'), fullPage: true });
  });

  it('loaded nothing from outside 127.0.0.1 and logged no page errors', () => {
    assert.deepEqual(blocked, []);
    assert.deepEqual(pageErrors, []);
  });
});
