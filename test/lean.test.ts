import { strict as assert } from 'node:assert';
import * as nodeModule from 'node:module';
import { describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { resolveLean, withoutFetch, type NextResolve, type ResolveContext } from '../src/ui/tui/lean.ts';

const INK = import.meta.resolve('ink');
const INK_MODULE = new URL('./ink.js', INK).href;
const THROTTLE = 'file:///lab/node_modules/es-toolkit/compat/throttle.mjs';

/** A next resolver that answers from a table and records what it was asked. */
function resolver(table: Record<string, string>) {
  const asked: string[] = [];
  const next: NextResolve = (specifier) => {
    asked.push(specifier);
    const url = table[specifier];
    if (url === undefined) throw Object.assign(new Error(`Cannot find package '${specifier}'`), { code: 'ERR_MODULE_NOT_FOUND' });
    return { url };
  };
  return { asked, next };
}

describe('loading ink lean in the drawing thread', () => {
  test('es-toolkit/compat, imported by ink, is a module giving throttle alone, from the package found from ink', () => {
    const { asked, next } = resolver({ 'es-toolkit/compat/throttle': THROTTLE, 'es-toolkit/compat': 'file:///lab/node_modules/es-toolkit/dist/compat/index.mjs' });
    // tsx adds a query to the URLs it loads: the module is still ink's.
    for (const parentURL of [INK_MODULE, `${INK_MODULE}?tsx-namespace=1`]) {
      const resolved = resolveLean('es-toolkit/compat', { parentURL }, next);
      assert.equal(resolved.format, 'module');
      assert.equal(resolved.shortCircuit, true);
      assert.ok(resolved.url.startsWith('data:text/javascript,'), resolved.url);
      assert.equal(decodeURIComponent(resolved.url.slice('data:text/javascript,'.length)), `export { default as throttle } from "${THROTTLE}";`);
    }
    assert.deepEqual(asked, ['es-toolkit/compat/throttle', 'es-toolkit/compat/throttle']);
  });

  test('what the module gives is es-toolkit\'s own throttle', async () => {
    const resolved = resolveLean('es-toolkit/compat', { parentURL: INK_MODULE }, (specifier, context) => ({ url: import.meta.resolve(specifier, context?.parentURL) }));
    const lean = (await import(resolved.url)) as { throttle: unknown };
    const own = (await import(import.meta.resolve('es-toolkit/compat/throttle', INK_MODULE))) as { default: unknown };
    assert.equal(typeof lean.throttle, 'function');
    assert.equal(lean.throttle, own.default);
  });

  test('anything else resolves as it would without the hook', () => {
    const { asked, next } = resolver({ 'es-toolkit/compat': 'file:///lab/compat/index.mjs', react: 'file:///lab/react/index.js', 'es-toolkit/compat/throttle': THROTTLE });
    const cases: [string, ResolveContext][] = [
      ['es-toolkit/compat', { parentURL: 'file:///lab/node_modules/other/build/ink.js' }],
      ['es-toolkit/compat', { parentURL: new URL('./components/Box.js', INK).href }],
      ['es-toolkit/compat', {}],
      ['react', { parentURL: INK_MODULE }],
    ];
    for (const [specifier, context] of cases) {
      assert.deepEqual(resolveLean(specifier, context, next), { url: specifier === 'react' ? 'file:///lab/react/index.js' : 'file:///lab/compat/index.mjs' });
    }
    assert.deepEqual(asked, ['es-toolkit/compat', 'es-toolkit/compat', 'es-toolkit/compat', 'react']);
  });

  test('an es-toolkit without the throttle module gives ink the whole index, as before', () => {
    const { asked, next } = resolver({ 'es-toolkit/compat': 'file:///lab/compat/index.mjs' });
    assert.deepEqual(resolveLean('es-toolkit/compat', { parentURL: INK_MODULE }, next), { url: 'file:///lab/compat/index.mjs' });
    assert.deepEqual(asked, ['es-toolkit/compat/throttle', 'es-toolkit/compat']);
  });

  test('fetch is out of scope while loading, and back after, the same, whether loading works or fails', async () => {
    const fetch = async () => new Response('');
    const scope: { fetch?: unknown } = {};
    Object.defineProperty(scope, 'fetch', { value: fetch, writable: true, configurable: true, enumerable: false });
    const before = Object.getOwnPropertyDescriptor(scope, 'fetch');
    assert.equal(await withoutFetch(scope, async () => typeof scope.fetch), 'undefined');
    assert.deepEqual(Object.getOwnPropertyDescriptor(scope, 'fetch'), before);
    await assert.rejects(withoutFetch(scope, async () => {
      assert.equal('fetch' in scope, false);
      throw new Error('ink failed to load');
    }), /ink failed to load/);
    assert.deepEqual(Object.getOwnPropertyDescriptor(scope, 'fetch'), before);
    // No fetch at all: loading goes on as it is.
    assert.equal(await withoutFetch({}, async () => 'loaded'), 'loaded');
  });

  const hooks = typeof (nodeModule as { registerHooks?: unknown }).registerHooks === 'function';
  test(`a thread loading ink this way loads ${hooks ? "neither es-toolkit's compat index nor" : 'no'} undici, and ink works${hooks ? '' : " (the hook needs Node 22.15 or 23.5 and later: es-toolkit's index is loaded here)"}`, async () => {
    const lean = JSON.stringify(new URL('../src/ui/tui/lean.ts', import.meta.url).href);
    const tsx = JSON.stringify(import.meta.resolve('tsx/esm/api'));
    const source = `
      const { parentPort } = require('node:worker_threads');
      const { registerHooks } = require('node:module');
      (async () => {
        const { resolveLean, withoutFetch } = await (await import(${tsx})).tsImport(${lean}, ${lean});
        const resolved = [];
        if (registerHooks) {
          registerHooks({ resolve: resolveLean });
          // Registered last, so it runs first: it sees what the chain resolved.
          registerHooks({ resolve: (specifier, context, next) => { const r = next(specifier, context); resolved.push(r.url); return r; } });
        }
        const ink = await withoutFetch(globalThis, () => import(${JSON.stringify(INK)}));
        parentPort.postMessage({ resolved, render: typeof ink.render, fetch: typeof fetch, undici: process.moduleLoadList.filter((m) => m.includes('undici')) });
      })().catch((err) => parentPort.postMessage({ error: String(err && err.stack || err) }));`;
    const worker = new Worker(source, { eval: true, env: { ...process.env, NODE_ENV: 'production' } });
    const result = (await new Promise((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    })) as { error?: string; resolved: string[]; render: string; fetch: string; undici: string[] };
    await worker.terminate();
    assert.equal(result.error, undefined);
    assert.equal(result.render, 'function');
    assert.deepEqual(result.undici, [], 'yoga loaded through fetch, and undici with it');
    assert.equal(result.fetch, 'function', 'fetch is back');
    if (!hooks) return;
    const toolkit = result.resolved.filter((url) => url.includes('/es-toolkit/'));
    assert.ok(result.resolved.some((url) => url.startsWith('data:text/javascript,')), 'ink got the throttle module');
    assert.ok(toolkit.length > 0 && toolkit.length <= 8, `es-toolkit modules loaded: ${toolkit.length}`);
    assert.ok(!toolkit.some((url) => url.includes('/dist/compat/index.')), 'the compat index was loaded');
  });
});
