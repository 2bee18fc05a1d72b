// Builds the standalone beacon: `npm run build:beacon` (or `npx tsx beacon/build.ts`).
//
// 1. esbuild bundles beacon/main.ts and everything it imports into dist/beacon.cjs:
//    Node's single-executable applications run one CommonJS script (Node 20 and 24).
// 2. `node --experimental-sea-config` turns it into a blob.
// 3. The running node binary is copied, its symbols stripped when `strip` is there,
//    and postject writes the blob into it and flips the SEA fuse.
// The result, dist/beacon-linux-x64, needs no Node: only glibc and libstdc++, as node does.
// Everything it writes is under dist/; the binary appears in one rename, never half-built.

import { execFile } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { chmod, copyFile, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { build, type Plugin } from 'esbuild';

const run = promisify(execFile);

const beaconDir = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(beaconDir, '..');
export const DIST = join(ROOT, 'dist');
export const BINARY = join(DIST, 'beacon-linux-x64');
const BUNDLE = join(DIST, 'beacon.cjs');
const STAMP = join(DIST, 'beacon-linux-x64.json');

/** The fuse Node's SEA loader looks for (fixed by Node; see its single-executable-applications docs). */
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
const MDNS_BROWSE = join(ROOT, 'src', 'mdns', 'browse.ts');

export interface BuildResult {
  readonly binary: string;
  readonly bytes: number;
  readonly bundleBytes: number;
  readonly ms: number;
  /** The Node version inside the binary. */
  readonly node: string;
  readonly stripped: boolean;
  readonly mdns: boolean;
}

export interface BuildOptions {
  /** The node binary to embed (and to make the blob with: they must be the same version). Default: this one. */
  readonly node?: string;
  readonly log?: (message: string) => void;
}

/**
 * main.ts imports src/mdns/browse.ts, written alongside. If a build runs before it exists,
 * bundle a module that fails to load, which main.ts treats as "no mDNS", rather than fail.
 */
function mdnsWhenMissing(log: (message: string) => void): Plugin {
  return {
    name: 'mdns-when-missing',
    setup(b) {
      b.onResolve({ filter: /[\\/]mdns[\\/]browse\.ts$/ }, () => {
        if (existsSync(MDNS_BROWSE)) return undefined;
        log('src/mdns/browse.ts is missing: this beacon will have no mDNS discovery');
        return { path: 'browse.ts', namespace: 'mdns-missing' };
      });
      b.onLoad({ filter: /.*/, namespace: 'mdns-missing' }, () => ({
        contents: "throw new Error('built without src/mdns/browse.ts');",
        loader: 'js',
      }));
    },
  };
}

async function newestMtime(dir: string): Promise<number> {
  let newest = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.ts')) continue;
    // Node 20 names the folder `path`, later versions `parentPath`.
    const folder = (entry as { parentPath?: string; path?: string }).parentPath ?? (entry as { path?: string }).path ?? dir;
    newest = Math.max(newest, statSync(join(folder, entry.name)).mtimeMs);
  }
  return newest;
}

/** Is dist/beacon-linux-x64 newer than its sources and made from this node binary? */
export async function isFresh(node: string = process.execPath): Promise<boolean> {
  try {
    const stamp = JSON.parse(await readFile(STAMP, 'utf8')) as { node?: string; nodeMtime?: number };
    const built = (await stat(BINARY)).mtimeMs;
    const nodeStat = await stat(node);
    if (stamp.node !== node || stamp.nodeMtime !== nodeStat.mtimeMs) return false;
    const inputs = Math.max(await newestMtime(beaconDir), await newestMtime(join(ROOT, 'src')), (await stat(join(ROOT, 'package.json'))).mtimeMs);
    return built > inputs;
  } catch {
    return false;
  }
}

async function hasStrip(): Promise<boolean> {
  try {
    await run('strip', ['--version']);
    return true;
  } catch {
    return false;
  }
}

export async function buildBeacon(options: BuildOptions = {}): Promise<BuildResult> {
  const node = options.node ?? process.execPath;
  const log = options.log ?? (() => undefined);
  // The binary is the node binary that runs this: it is only linux-x64 when this is.
  if (process.platform !== 'linux' || process.arch !== 'x64') throw new Error(`beacon-linux-x64 is built on Linux x64 (this is ${process.platform}/${process.arch})`);
  const started = Date.now();
  await mkdir(DIST, { recursive: true });
  // Names of this build's own, so two builds at once (two test files) never mix their parts.
  const own = (name: string) => join(DIST, `${name}.${process.pid}.${Math.random().toString(16).slice(2, 8)}`);
  const bundle = own('beacon.cjs');
  const blob = own('beacon.blob');
  const seaConfig = own('beacon-sea-config.json');
  const partial = own('beacon-linux-x64');
  try {
    return await buildParts({ node, log, started, bundle, blob, seaConfig, partial });
  } finally {
    await Promise.all([bundle, blob, seaConfig, partial].map((file) => rm(file, { force: true })));
  }
}

async function buildParts(p: { node: string; log: (m: string) => void; started: number; bundle: string; blob: string; seaConfig: string; partial: string }): Promise<BuildResult> {
  const { node, log, started, bundle, blob, seaConfig, partial } = p;
  let mdns = true;

  const bundled = await build({
    entryPoints: [join(beaconDir, 'main.ts')],
    outfile: bundle,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    legalComments: 'eof',
    logLevel: 'silent',
    plugins: [mdnsWhenMissing((m) => {
      mdns = false;
      log(m);
    })],
  });
  for (const warning of bundled.warnings) log(`esbuild: ${warning.text}`);
  const bundleBytes = (await stat(bundle)).size;

  await writeFile(seaConfig, `${JSON.stringify({ main: bundle, output: blob, disableExperimentalSEAWarning: true, useCodeCache: true }, null, 2)}\n`);
  await run(node, ['--experimental-sea-config', seaConfig], { cwd: ROOT });
  const { stdout: version } = await run(node, ['--version']);

  await copyFile(node, partial);
  await chmod(partial, 0o755);
  const stripped = await hasStrip();
  // Symbols and debug info are about 15 MB of the binary; the SEA runs without them.
  if (stripped) await run('strip', ['--strip-all', partial]);
  // postject's CLI, in a child: its ELF library prints harmless warnings about note sections.
  const postject = join(dirname(createRequire(import.meta.url).resolve('postject')), 'cli.js');
  await run(process.execPath, [postject, partial, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', SEA_FUSE]);
  await rename(bundle, BUNDLE);
  await rename(partial, BINARY);
  await writeFile(STAMP, `${JSON.stringify({ node, nodeMtime: (await stat(node)).mtimeMs, version: version.trim() })}\n`);

  return { binary: BINARY, bytes: (await stat(BINARY)).size, bundleBytes, ms: Date.now() - started, node: version.trim(), stripped, mdns };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  buildBeacon({ log: (m) => console.log(`build:beacon: ${m}`) }).then(
    (result) => {
      const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
      console.log(
        `dist/beacon-linux-x64: ${mib(result.bytes)} (node ${result.node}${result.stripped ? ', symbols stripped' : ''}; ` +
          `bundle ${(result.bundleBytes / 1024).toFixed(0)} KiB${result.mdns ? '' : ', no mDNS'}) in ${(result.ms / 1000).toFixed(1)} s`,
      );
    },
    (err: unknown) => {
      console.error(`build:beacon: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    },
  );
}
