import { existsSync } from 'node:fs';
import { createRequire, Module } from 'node:module';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { isLambdaDefinition, type LambdaDefinition } from '../core/lambda.js';

/**
 * Loads lambdas from module files (.js, .mjs, .cjs or .ts). A module exports its lambdas as
 * a default array, object or single lambda, or as named exports; a lambda is any object with a
 * `name` and a `handler`, so a module needs no import from Conveyor.
 */
export async function loadLambdaModules(files: string[]): Promise<LambdaDefinition[]> {
  const out: LambdaDefinition[] = [];
  const seen = new Map<string, string>();
  for (const file of files) {
    const path = resolve(file);
    if (!existsSync(path)) throw new Error(`lambda module ${file} does not exist`);
    // A syntax error or a throw at load says nothing of the file it came from.
    const mod = await importModule(path).catch((err: unknown) => {
      throw new Error(`lambda module ${file} failed to load: ${(err as Error)?.message ?? String(err)}`, { cause: err });
    });
    const found = lambdasOf(mod);
    if (found.length === 0) {
      throw new Error(`no lambdas in ${file}: export objects with a name and a handler, as named exports or a default array`);
    }
    for (const l of found) {
      const other = seen.get(l.name);
      if (other) throw new Error(`lambda "${l.name}" is defined in both ${other} and ${file}`);
      seen.set(l.name, file);
      out.push(l.module ? l : { ...l, module: path });
    }
  }
  return out;
}

async function importModule(path: string): Promise<Record<string, unknown>> {
  if (/\.(c|m)?ts$/.test(path)) {
    // TypeScript lambdas are compiled on the fly by tsx (esbuild); no build step for users.
    await registerTsx();
    return (await import(pathToFileURL(path).href)) as Record<string, unknown>;
  }
  return (await import(pathToFileURL(path).href)) as Record<string, unknown>;
}

let tsx: Promise<void> | null = null;

/**
 * tsx's loaders for the process, once. (Its tsImport keeps each import's modules apart under
 * a random name, which the require cache below could not be keyed by.)
 */
function registerTsx(): Promise<void> {
  tsx ??= (async () => {
    await shareConveyorWithRequire();
    (await import('tsx/esm/api')).register();
    (await import('tsx/cjs/api')).register();
  })();
  return tsx;
}

/**
 * tsx compiles a .ts module outside a "type": "module" package to CommonJS, so its
 * `import { defineLambda } from 'conveyor'` becomes a require. tsx's require hook would then
 * compile a second copy of Conveyor's ES modules to CommonJS, in which pino fails at load
 * ("reading 'Symbol(pino.wildcardFirst)'"). The require cache gets the copy already running,
 * under the file that `conveyor` resolves to, so such a require answers it.
 */
async function shareConveyorWithRequire(): Promise<void> {
  const require = createRequire(import.meta.url);
  let entry: string;
  try {
    entry = require.resolve('conveyor'); // the package's own name: its "exports" entry
  } catch {
    return; // not installed as a package (a bundle, say): nothing to share
  }
  if (require.cache[entry]) return;
  const shared = new Module(entry);
  shared.filename = entry;
  shared.loaded = true;
  shared.exports = await import(pathToFileURL(entry).href);
  require.cache[entry] = shared;
}

function lambdasOf(mod: Record<string, unknown>, unwrap = true): LambdaDefinition[] {
  // A module compiled to CommonJS (a .ts file outside a "type": "module" package, which tsx
  // compiles so; tsc's output) arrives as { default: module.exports }: its own default export
  // is one level down, beside its named exports, under the __esModule mark.
  const inner = mod.default as { __esModule?: unknown } | null | undefined;
  if (unwrap && typeof inner === 'object' && inner !== null && inner.__esModule === true)
    return lambdasOf(inner as Record<string, unknown>, false);
  const out: LambdaDefinition[] = [];
  const add = (v: unknown) => {
    if (isLambdaDefinition(v) && !out.includes(v)) out.push(v);
  };
  const dflt = mod.default;
  if (Array.isArray(dflt)) dflt.forEach(add);
  else if (isLambdaDefinition(dflt)) add(dflt);
  // A CommonJS module's exports object: Node finds its named exports by reading the source,
  // which misses `module.exports = { resize: { name, handler } }` (an object written inline).
  else if (typeof dflt === 'object' && dflt !== null) Object.values(dflt).forEach(add);
  for (const [k, v] of Object.entries(mod)) {
    if (k === 'default') continue;
    if (Array.isArray(v)) v.forEach(add);
    else add(v);
  }
  return out;
}
