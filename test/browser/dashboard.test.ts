import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FatalError, type LambdaDefinition } from '../../src/index.js';
import { onCleanup, sleep, startConveyor } from '../helpers.js';

// The dashboard in Debian's Chromium (never a downloaded browser), driven by playwright-core.
// Without Chromium the suite skips locally and fails under CI=true (.ci/run installs it).
const CHROMIUM = process.env.CONVEYOR_CHROMIUM ?? '/usr/bin/chromium';
const HAVE_CHROMIUM = existsSync(CHROMIUM);
// The screenshots of docs/dashboard.md: rewritten there with DOCS_SCREENSHOTS=1, otherwise taken
// into test-artifacts/ (git-ignored) so a plain test run leaves the tree clean.
const IMAGES = process.env.DOCS_SCREENSHOTS
  ? join(import.meta.dirname, '..', '..', 'docs', 'images')
  : join(import.meta.dirname, '..', '..', 'test-artifacts', 'screenshots');
const XSS = '<img src=x onerror=alert(1)>';

describe.runIf(!HAVE_CHROMIUM)('dashboard in Chromium (missing)', () => {
  it.skipIf(process.env.CI !== 'true')('needs Chromium', () => {
    throw new Error(`Chromium not found at ${CHROMIUM}: apt-get install -y chromium`);
  });
});

describe.runIf(HAVE_CHROMIUM)('dashboard in Chromium', () => {
  let browser: Browser;

  beforeAll(async () => {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  });

  afterAll(async () => {
    await browser?.close();
  });

  /** A fresh context (own sessionStorage) at laptop size; records page errors, console errors and dialogs. */
  async function open(url: string): Promise<{ page: Page; problems: string[]; dialogs: string[] }> {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    onCleanup(() => context.close());
    const page = await context.newPage();
    const problems: string[] = [];
    const dialogs: string[] = [];
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console: ${m.text()}`);
    });
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    await page.goto(url);
    return { page, problems, dialogs };
  }

  it('shows the overview and updates it live as tasks complete', async () => {
    const c = await startConveyor({ lambdas: [{ name: 'echo', handler: async (p) => p }] });
    const url = await c.listen({ port: 0 });
    const { page, problems } = await open(url);
    await page.locator('#live-status[data-state="live"]').waitFor();
    const succeeded = page.locator('[data-stat="succeeded"] .value');
    await expect.poll(() => succeeded.textContent(), { timeout: 10_000 }).toBe('0');
    await page.locator('tr[data-key="echo"]').waitFor();

    const tasks = await Promise.all([1, 2, 3, 4, 5].map((n) => c.submit('echo', n)));
    for (const t of tasks) await c.waitFor(t.id);
    await expect.poll(() => succeeded.textContent(), { timeout: 10_000 }).toBe('5');
    await expect.poll(() => page.locator('[data-stat="run"] .value').textContent(), { timeout: 10_000 }).toMatch(/ms$/);
    await expect.poll(() => page.locator('.legend [data-state="SUCCESS"] b').textContent(), { timeout: 10_000 }).toBe('5');
    expect(problems).toEqual([]);
  });

  it('pauses and resumes a lambda and a collection from the page, and that changes what runs', async () => {
    const runs: string[] = [];
    const c = await startConveyor({
      lambdas: [
        {
          name: 'gated',
          handler: async (p) => {
            runs.push(p as string);
          },
        },
      ],
    });
    const url = await c.listen({ port: 0 });
    const { page, problems } = await open(`${url}/#/lambdas`);
    const row = page.locator('tr[data-key="gated"]');

    await row.locator('[data-action="pause"]').click();
    await row.locator('[data-action="resume"]').waitFor();
    expect((await c.lambdas()).find((l) => l.name === 'gated')?.paused).toBe(true);
    const held = await c.submit('gated', 'held');
    await sleep(600); // a dozen sweeps (sweepIntervalMs 50): a paused lambda would have run by now
    expect(runs).toEqual([]);
    expect((await c.get(held.id)).state).not.toBe('SUCCESS');

    await row.locator('[data-action="resume"]').click();
    expect((await c.waitFor(held.id)).state).toBe('SUCCESS');
    expect(runs).toEqual(['held']);
    await row.locator('[data-action="pause"]').waitFor();

    // One collection only.
    await row.locator('summary', { hasText: 'Collection' }).click();
    await row.locator('input[name="collection"]').fill('marketing');
    await row.locator('[data-action="pause-collection"]').click();
    const badge = row.locator('.badge', { hasText: 'marketing: paused' });
    await badge.waitFor();
    const marketing = await c.submit('gated', 'marketing', { collection: 'marketing' });
    const other = await c.submit('gated', 'other', { collection: 'password-reset' });
    expect((await c.waitFor(other.id)).state).toBe('SUCCESS');
    await sleep(300);
    expect(runs).toEqual(['held', 'other']);
    await badge.locator('button', { hasText: 'resume' }).click();
    expect((await c.waitFor(marketing.id)).state).toBe('SUCCESS');
    expect(runs).toEqual(['held', 'other', 'marketing']);
    await badge.waitFor({ state: 'detached' });
    expect(problems).toEqual([]);
  });

  it('finds a task and shows every attempt on its page', async () => {
    const c = await startConveyor({
      lambdas: [
        {
          name: 'flaky',
          maxAttempts: 3,
          backoff: { baseMs: 10, maxMs: 20 },
          handler: async (_p, ctx) => {
            if (ctx.task.attempt === 1) throw new Error('first attempt fails');
            return { ok: true };
          },
        },
      ],
    });
    const url = await c.listen({ port: 0 });
    const task = await c.submit('flaky', { n: 1 }, { key: 'order-42' });
    expect((await c.waitFor(task.id)).state).toBe('SUCCESS');

    const { page, problems } = await open(`${url}/#/tasks?lambda=flaky`);
    await page.locator(`tr[data-task="${task.id}"] a`, { hasText: task.id }).click();
    await page.locator('table[data-table="attempts"]').waitFor();
    expect(await page.locator('tr[data-attempt]').count()).toBe(2);
    await expect.poll(() => page.locator('tr[data-attempt="1"]').getAttribute('data-outcome'), { timeout: 10_000 }).toBe('error');
    expect(await page.locator('tr[data-attempt="1"] summary').textContent()).toBe('first attempt fails');
    expect(await page.locator('tr[data-attempt="2"]').getAttribute('data-outcome')).toBe('success');
    expect(await page.locator('.page-head .badge').textContent()).toBe('success');
    expect(await page.locator('pre[data-field="result"]').textContent()).toContain('"ok": true');

    // By id, from the search page; and by key.
    await page.goto(`${url}/#/tasks`);
    await page.locator('input[name="id"]').fill(task.id);
    await page.getByRole('button', { name: 'Open' }).click();
    await page.locator('table[data-table="attempts"]').waitFor();
    await page.goto(`${url}/#/tasks?key=order-42`);
    await page.locator(`tr[data-task="${task.id}"]`).waitFor();
    expect(problems).toEqual([]);
  });

  it('pages the task list with Load more, each task once even on a double click', async () => {
    const c = await startConveyor({ lambdas: [{ name: 'later', handler: async (p) => p }] });
    const url = await c.listen({ port: 0 });
    const runAt = Date.now() + 3_600_000; // kept waiting: the list does not change while it is read
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const batch = await c.submitMany(Array.from({ length: 40 }, (_, n) => ({ lambda: 'later', payload: i * 40 + n, runAt })));
      ids.push(...batch.map((t) => t.id));
    }
    const { page, problems } = await open(`${url}/#/tasks?lambda=later`);
    const rows = page.locator('tr[data-task]');
    await expect.poll(() => rows.count(), { timeout: 10_000 }).toBe(50);
    const more = page.getByRole('button', { name: 'Load more' });
    await more.dblclick();
    await expect.poll(() => rows.count(), { timeout: 10_000 }).toBeGreaterThanOrEqual(100);
    await sleep(300); // a second request for the same page would have landed by now
    expect(await rows.count()).toBe(100);
    await more.click();
    await expect.poll(() => rows.count(), { timeout: 10_000 }).toBe(120);
    await more.waitFor({ state: 'detached' });
    const shown = await rows.evaluateAll((trs) => trs.map((tr) => (tr as HTMLElement).dataset.task));
    expect(shown).toEqual([...ids].sort().reverse());
    expect(problems).toEqual([]);
  });

  it('renders payloads, keys and errors as text, never as markup', async () => {
    const c = await startConveyor({
      lambdas: [
        {
          name: 'evil',
          handler: async () => {
            throw new FatalError(`${XSS}<script>alert(2)</script>`);
          },
        },
      ],
    });
    const url = await c.listen({ port: 0 });
    const task = await c.submit('evil', { html: XSS }, { key: XSS });
    expect((await c.waitFor(task.id)).state).toBe('FATAL_FAILURE');

    const { page, problems, dialogs } = await open(`${url}/#/tasks/${task.id}`);
    await page.locator('pre[data-field="payload"]').waitFor();
    expect(await page.locator('pre[data-field="payload"]').textContent()).toContain(XSS);
    await expect(page.getByText(XSS).first().isVisible()).resolves.toBe(true);
    expect(await page.locator('pre[data-field="error"]').textContent()).toContain('<script>alert(2)</script>');
    await page.goto(`${url}/#/lambdas/evil`);
    await page.locator('td.error', { hasText: XSS }).waitFor();
    await page.goto(`${url}/#/tasks?lambda=evil`);
    await page.locator('td', { hasText: XSS }).first().waitFor();
    await sleep(300); // an injected onerror would fire by now
    expect(await page.locator('img[src="x"]').count()).toBe(0);
    expect(dialogs).toEqual([]);
    expect(problems).toEqual([]);
  });

  it('shows lambdas named like Object.prototype members (constructor, toString) on every page', async () => {
    // Idle lambdas are absent from a point's per-lambda map, where such a name looked up a
    // function inherited from Object.prototype and the page threw on every tick.
    const c = await startConveyor({
      lambdas: [
        { name: 'constructor', handler: async (p) => p },
        { name: 'toString', handler: async (p) => p },
      ],
    });
    const url = await c.listen({ port: 0 });
    const { page, problems } = await open(url);
    await page.locator('tr[data-key="constructor"]').waitFor({ timeout: 5000 });
    await page.locator('tr[data-key="toString"]').waitFor({ timeout: 5000 });
    await expect.poll(() => page.locator('[data-stat="succeeded"] .value').textContent(), { timeout: 10_000 }).toBe('0');
    await page.goto(`${url}/#/lambdas`);
    await page.locator('tr[data-key="constructor"]').waitFor({ timeout: 5000 });
    await page.goto(`${url}/#/lambdas/constructor`);
    await expect.poll(() => page.locator('[data-stat="done"] .value').textContent(), { timeout: 10_000 }).toBe('0/s');
    await sleep(1500); // a few ticks: each one redraws with the lambda idle
    expect(await page.locator('#live-status').getAttribute('data-state')).toBe('live');
    expect(problems).toEqual([]);
  });

  it('asks for the token when the server has one, and works after it is entered', async () => {
    const c = await startConveyor({ lambdas: [{ name: 'echo', handler: async (p) => p }] });
    const url = await c.listen({ port: 0, token: 's3cret' });
    const { page, problems } = await open(url);
    const input = page.locator('input[name="token"]');
    await input.waitFor();
    await input.fill('wrong');
    await input.press('Enter');
    await expect.poll(() => page.locator('.form-error').textContent(), { timeout: 10_000 }).toBe('That token was refused.');
    await input.fill('s3cret');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#live-status[data-state="live"]').waitFor();
    await page.locator('tr[data-key="echo"]').waitFor();
    expect(page.url()).not.toContain('s3cret');
    expect(await page.evaluate(() => sessionStorage.getItem('conveyor.token'))).toBe('s3cret');

    const t = await c.submit('echo', 1);
    await c.waitFor(t.id);
    await expect.poll(() => page.locator('[data-stat="succeeded"] .value').textContent(), { timeout: 10_000 }).toBe('1');
    await page.reload(); // the token lasts for the tab
    await page.locator('#live-status[data-state="live"]').waitFor();
    await page.locator('#sign-out').click();
    await input.waitFor();
    // The only errors are the browser's notes about the refused requests.
    expect(problems.filter((p) => !/401/.test(p))).toEqual([]);
  });

  it('takes the screenshots of docs/dashboard.md', async () => {
    let n = 0;
    const lambdas: LambdaDefinition[] = [
      { name: 'resize-image', concurrency: 8, handler: async () => sleep(5 + (n++ % 9) * 4) },
      {
        name: 'send-email',
        maxAttempts: 3,
        backoff: { baseMs: 50, maxMs: 200 },
        handler: async (p) => {
          await sleep(20 + (n++ % 5) * 12);
          if ((p as { n: number }).n % 9 === 0) throw new Error('SMTP 451 4.7.1: mailbox temporarily unavailable, try again later');
          return { sent: true };
        },
      },
      {
        name: 'flaky',
        maxAttempts: 3,
        backoff: { baseMs: 100, maxMs: 200 },
        handler: async (_p, ctx) => {
          if (ctx.task.attempt === 1) throw new Error('upstream answered 503 Service Unavailable');
          return { ok: true };
        },
      },
    ];
    const c = await startConveyor({ lambdas });
    const url = await c.listen({ port: 0 });
    let seq = 0;
    let email = 0;
    const load = setInterval(() => {
      for (let i = 0; i < 4; i++)
        void c.submit('resize-image', { url: `https://cdn.example.com/p/${seq++}.jpg`, width: 640 }, { key: `user-${seq % 11}` });
      for (let i = 0; i < 2; i++)
        void c.submit('send-email', { n: ++email, to: 'ada@example.com' }, { collection: email % 3 ? 'marketing' : 'password-reset' });
    }, 100);
    onCleanup(() => clearInterval(load));
    const flaky = await c.submit('flaky', { invoice: 'INV-2041', amount: 129.5 }, { key: 'customer-7' });
    expect((await c.waitFor(flaky.id)).state).toBe('SUCCESS');

    mkdirSync(IMAGES, { recursive: true });
    const { page, problems } = await open(url);
    await page.locator('#live-status[data-state="live"]').waitFor();
    await sleep(9000); // nine points on the charts
    await page.screenshot({ path: join(IMAGES, 'dashboard-overview.png') });
    await page.goto(`${url}/#/lambdas/send-email`);
    await page.locator('td.error').first().waitFor();
    await sleep(1200);
    await page.screenshot({ path: join(IMAGES, 'dashboard-lambda.png'), fullPage: true });
    clearInterval(load);
    await page.goto(`${url}/#/tasks/${flaky.id}`);
    await page.locator('table[data-table="attempts"]').waitFor();
    await page.screenshot({ path: join(IMAGES, 'dashboard-task.png') });
    expect(problems).toEqual([]);
  }, 60_000);
});
