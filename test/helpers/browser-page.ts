/**
 * A Chromium page for the browser tests that may load nothing but 127.0.0.1: any other
 * request (fonts, CDNs) is aborted and its URL pushed to `blocked`; page errors and console
 * errors (but a missing favicon's) are pushed to `pageErrors`, for the test to assert empty.
 */
import type { Browser, Page } from 'playwright-core';

export async function loopbackPage(
  browser: Browser,
  viewport: { width: number; height: number },
  blocked: string[],
  pageErrors: string[],
): Promise<Page> {
  const context = await browser.newContext({ viewport });
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (url.hostname === '127.0.0.1') return route.continue();
    blocked.push(url.href);
    return route.abort();
  });
  const page = await context.newPage();
  page.on('pageerror', (error) => pageErrors.push(`pageerror: ${error.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !msg.location().url.endsWith('/favicon.ico')) pageErrors.push(`console.error: ${msg.text()} (${msg.location().url})`);
  });
  return page;
}
