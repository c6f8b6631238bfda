import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** A file the dashboard serves, read once at start (the whole set is under 100 KiB). */
export interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/** Where the dashboard's files are served from; everything under it is static and holds no data. */
export const DASHBOARD_PREFIX = '/dashboard/';

/**
 * The dashboard's Content-Security-Policy: its own scripts and styles only (no inline code,
 * no eval), fetches to this origin only, no plugins, no framing, no <base> rewriting. Data
 * reaches the page only as JSON and is rendered with textContent.
 */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** Headers on every dashboard file. */
export const DASHBOARD_HEADERS: Record<string, string> = {
  'content-security-policy': DASHBOARD_CSP,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  // Revalidate every time (a 304 costs a round trip): a new server version's files are never mixed with old ones.
  'cache-control': 'no-cache',
};

/**
 * The dashboard's files by URL path: `assets/index.html` at `/`, every other file of
 * `assets/` under `/dashboard/`, and uPlot from its package under `/dashboard/vendor/`.
 * Only these paths are served, so a request cannot reach any other file.
 */
export function loadAssets(): Map<string, Asset> {
  const dir = join(dirname(fileURLToPath(import.meta.url)), 'assets');
  const out = new Map<string, Asset>();
  const add = (path: string, file: string) => {
    const type = TYPES[extname(file)];
    if (!type) return;
    const body = readFileSync(file);
    out.set(path, { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` });
  };
  for (const file of walk(dir)) {
    const rel = relative(dir, file).split(sep).join('/');
    add(rel === 'index.html' ? '/' : DASHBOARD_PREFIX + rel, file);
  }
  const require = createRequire(import.meta.url);
  add(`${DASHBOARD_PREFIX}vendor/uPlot.iife.min.js`, require.resolve('uplot/dist/uPlot.iife.min.js'));
  add(`${DASHBOARD_PREFIX}vendor/uPlot.min.css`, require.resolve('uplot/dist/uPlot.min.css'));
  return out;
}

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else out.push(p);
  }
  return out;
}
