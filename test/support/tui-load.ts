/**
 * Load the TUI as dispatch does and print, as JSON, which React builds came
 * with it and what the environment says afterwards. Run by test/ui.test.tsx
 * in a process of its own: React picks its build once per process.
 */
import { createRequire } from 'node:module';
import { loadTui } from '../../src/ui/tui/load.ts';

await loadTui();
// Both builds are in the cache (Node reads each file a CommonJS module may re-export to find its names); only one ran.
const cache = createRequire(import.meta.url).cache;
const ran = Object.keys(cache).filter((path) => cache[path]?.loaded === true);
const build = (name: string) => {
  const builds = ran.flatMap((path) => new RegExp(`/${name}\\.(production|development)\\.js$`).exec(path)?.[1] ?? []);
  return builds.length === 1 ? builds[0] : builds.join('+') || null;
};
process.stdout.write(`${JSON.stringify({ react: build('react'), reconciler: build('react-reconciler'), NODE_ENV: process.env.NODE_ENV ?? null, CI: process.env.CI ?? null })}\n`);
