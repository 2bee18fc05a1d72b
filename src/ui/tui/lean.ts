/**
 * How the drawing thread loads ink with less memory (drawer.ts uses these).
 * Measured on Node 24.22, a worker that imports ink grew by 56 MB of RSS
 * (and only 18 MB of it is the bare worker); two parts of that are avoidable:
 *
 * - ink 6 takes `throttle` from `es-toolkit/compat`, whose index loads all of
 *   es-toolkit's few hundred compat modules. `throttle` has a module of its
 *   own (`es-toolkit/compat/throttle`, one of the package's exports), which
 *   the resolve hook below hands ink instead.
 * - yoga's loader (Emscripten) fetches its WebAssembly from a `data:` URL
 *   when `fetch` exists, which loads Node's bundled undici and instantiates
 *   through a Response; without `fetch` it decodes the same bytes itself.
 *
 * Both together: 87 MB of RSS for the worker with ink loaded, instead of
 * 102 MB (Node 24.22; a scratch worker, three runs each).
 */

/** What `module.registerHooks` gives a resolve hook (Node 22.15, 23.5 and later; not in @types/node 20). */
export interface ResolveContext {
  readonly parentURL?: string | undefined;
  readonly conditions?: readonly string[];
  readonly importAttributes?: Record<string, string>;
}
export interface Resolved {
  readonly url: string;
  readonly format?: string | null | undefined;
  readonly shortCircuit?: boolean;
}
export type NextResolve = (specifier: string, context?: ResolveContext) => Resolved;
export type RegisterHooks = (hooks: { resolve: (specifier: string, context: ResolveContext, next: NextResolve) => Resolved }) => unknown;

/** The one module of ink that imports from `es-toolkit/compat`, and what it takes: `throttle`. */
const INK_MODULE = /\/node_modules\/ink\/build\/ink\.js$/;

/**
 * Resolve `es-toolkit/compat`, imported by ink, to a module that gives
 * `throttle` alone: the package's own `es-toolkit/compat/throttle` module
 * (found from ink, as ink would find the package), under the name ink
 * imports. Anything else, and anything this cannot find, resolves as it
 * would without the hook. Should a later ink take more from there, its
 * import fails to link and the run goes on with plain lines (Tui's #fail);
 * test/ui.test.tsx draws through this thread and would say so first.
 */
export function resolveLean(specifier: string, context: ResolveContext, next: NextResolve): Resolved {
  if (specifier === 'es-toolkit/compat' && context.parentURL !== undefined && INK_MODULE.test(pathOf(context.parentURL))) {
    let throttle: string | undefined;
    try {
      throttle = next('es-toolkit/compat/throttle', context).url;
    } catch {
      // Not there in this es-toolkit: ink gets the whole index, as without the hook.
    }
    if (throttle !== undefined) {
      const source = `export { default as throttle } from ${JSON.stringify(throttle)};`;
      return { url: `data:text/javascript,${encodeURIComponent(source)}`, format: 'module', shortCircuit: true };
    }
  }
  return next(specifier, context);
}

/** A URL's path, without a query a loader may have added (tsx adds one to what it imports). */
function pathOf(url: string): string {
  try {
    return new URL(url).pathname;
  } catch {
    return url;
  }
}

/**
 * Run `load` with `fetch` out of `scope`, and put it back after, whatever
 * happens. yoga's loader looks for `fetch` when it loads, once.
 */
export async function withoutFetch<T>(scope: object, load: () => Promise<T>): Promise<T> {
  const fetch = Object.getOwnPropertyDescriptor(scope, 'fetch');
  if (fetch === undefined || !fetch.configurable) return load();
  Reflect.deleteProperty(scope, 'fetch');
  try {
    return await load();
  } finally {
    Object.defineProperty(scope, 'fetch', fetch);
  }
}
