#!/usr/bin/env node
// Compiles src/ to dist/ with tsc and copies the non-TypeScript assets (SQL, dashboard files)
// that the compiled code loads at run time from beside itself.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src');
const dist = join(root, 'dist');
const ASSET = /\.(sql|html|css|js|mjs|svg|png|ico)$/;

rmSync(dist, { recursive: true, force: true });
const tsc = join(root, 'node_modules', '.bin', 'tsc');
if (!existsSync(tsc)) {
  console.error('build: typescript is not installed; run npm install first');
  process.exit(1);
}
execFileSync(tsc, ['-p', join(root, 'tsconfig.json')], { stdio: 'inherit' });

let copied = 0;
const walk = (dir) => {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (ASSET.test(name) && !name.endsWith('.d.ts')) {
      cpSync(p, join(dist, relative(src, p)));
      copied++;
    }
  }
};
walk(src);
console.error(`build: compiled src/ to dist/ and copied ${copied} assets`);
