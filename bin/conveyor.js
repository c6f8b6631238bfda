#!/usr/bin/env node
// The `conveyor` command. The CLI is compiled to dist/ by `npm install` (prepare) or `npm run build`.
import { existsSync } from 'node:fs';

const main = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write('error: conveyor is not built yet; run `npm install` (or `npm run build`) in the conveyor folder\n');
  process.exit(1);
}
await import(main.href);
