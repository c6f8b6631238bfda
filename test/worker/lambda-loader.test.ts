import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { loadLambdaModules } from '../../src/worker/lambda-loader.js';
import { tempDir } from '../helpers.js';

const run = promisify(execFile);

describe('lambda loader', () => {
  it('finds a default export of a module compiled to CommonJS (.ts outside a "type": "module" package, tsc output)', async () => {
    // A temp folder has no package.json: tsx compiles a .ts file there as CommonJS, and
    // Node hands a CommonJS module over as { default: module.exports }.
    const dir = tempDir();
    const ts = join(dir, 'lambdas.ts');
    writeFileSync(ts, `export default [{ name: 'echo-ts', async handler(p: unknown) { return p; } }];\n`);
    const single = join(dir, 'single.ts');
    writeFileSync(single, `export default { name: 'single-ts', handler: (p: unknown) => p };\n`);
    const cjs = join(dir, 'compiled.cjs');
    writeFileSync(
      cjs,
      `"use strict";\nObject.defineProperty(exports, "__esModule", { value: true });\nexports.default = [{ name: 'echo-cjs', handler: async (p) => p }];\n`,
    );
    const found = await loadLambdaModules([ts, single, cjs]);
    expect(found.map((l) => [l.name, l.module])).toEqual([
      ['echo-ts', ts],
      ['single-ts', single],
      ['echo-cjs', cjs],
    ]);
    expect(await found[0]?.handler({ a: 1 }, {} as never)).toEqual({ a: 1 });
  });

  it('finds the lambdas of a CommonJS exports object written inline, which Node does not list as named exports', async () => {
    const dir = tempDir();
    const inline = join(dir, 'inline.cjs');
    writeFileSync(
      inline,
      `module.exports = { resize: { name: 'resize', handler: async () => 1 }, crop: { name: 'crop', handler: () => 2 } };\n`,
    );
    const shorthand = join(dir, 'shorthand.cjs');
    writeFileSync(shorthand, `const thumb = { name: 'thumb', handler: () => 3 };\nmodule.exports = { thumb };\n`);
    // In a plain Node process (the built loader), as `conveyor dev` and `conveyor worker` run:
    // vitest's own CommonJS interop would list every key of module.exports as a named export.
    const loader = pathToFileURL(join(import.meta.dirname, '../../dist/worker/lambda-loader.js')).href;
    const script = `const { loadLambdaModules } = await import(${JSON.stringify(loader)});
const found = await loadLambdaModules(${JSON.stringify([inline, shorthand])});
process.stdout.write(JSON.stringify(found.map((l) => l.name)));`;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script]);
    expect(JSON.parse(stdout)).toEqual(['resize', 'crop', 'thumb']);
  });

  it('names the module that failed to load (a syntax error, a throw at load)', async () => {
    const dir = tempDir();
    const good = join(dir, 'good.mjs');
    writeFileSync(good, `export const ok = { name: 'ok', handler: () => 1 };\n`);
    const syntax = join(dir, 'syntax.mjs');
    writeFileSync(syntax, 'export const x = {;\n');
    const throws = join(dir, 'throws.mjs');
    writeFileSync(throws, `throw new Error('no config');\n`);
    await expect(loadLambdaModules([good, syntax])).rejects.toThrow(`lambda module ${syntax} failed to load: `);
    await expect(loadLambdaModules([good, throws])).rejects.toThrow(`lambda module ${throws} failed to load: no config`);
  });
});
