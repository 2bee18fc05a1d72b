/**
 * The drawing thread's entry (app.ts starts it): load the drawing
 * (worker.tsx, with ink) the lean way lean.ts tells, then it runs. The hook
 * is registered in this thread only, before ink is resolved; Node 20 has no
 * `module.registerHooks` and loads ink as it is.
 */
import * as nodeModule from 'node:module';
import { resolveLean, withoutFetch, type RegisterHooks } from './lean.ts';

const registerHooks = (nodeModule as { registerHooks?: RegisterHooks }).registerHooks;
registerHooks?.({ resolve: resolveLean });
await withoutFetch(globalThis, () => import('./worker.tsx'));
