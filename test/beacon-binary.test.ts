import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BINARY, buildBeacon, isFresh } from '../beacon/build.ts';
import { FIRMWARE_HEADERS, send } from './fleet/http.ts';
import { splitReport, startLab, type Lab } from './fleet/lab.ts';

// dist/beacon-linux-x64 as a workload image runs it: no node on PATH, an empty
// environment, a working directory with nothing of this repository in it.

const supported = process.platform === 'linux' && process.arch === 'x64';
const skip = supported ? false : `the standalone beacon is built for Linux x64 only (this is ${process.platform}/${process.arch})`;

let bare: string;

before(async () => {
  if (!supported) return;
  // Reuse a build that is newer than every source and made from this node; else build (a few seconds).
  if (!(await isFresh())) {
    const built = await buildBeacon();
    process.stderr.write(`beacon-binary: built ${BINARY}: ${(built.bytes / 1024 / 1024).toFixed(1)} MiB in ${(built.ms / 1000).toFixed(1)} s\n`);
  }
  bare = await mkdtemp(join(tmpdir(), 'beacon-bare-'));
});
after(async () => {
  if (bare !== undefined) await rm(bare, { recursive: true, force: true });
});

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** `env -i PATH=<an empty folder> dist/beacon-linux-x64 …` from that folder; killed after 20 s. */
async function binary(args: readonly string[], stdin?: string): Promise<Run> {
  const child = spawn(BINARY, args, { cwd: bare, env: { PATH: bare }, stdio: [stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d));
  child.stderr!.on('data', (d: Buffer) => (stderr += d));
  if (stdin !== undefined) child.stdin!.end(stdin);
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
  clearTimeout(timer);
  assert.equal(signal, null, `killed: ${stderr}`);
  return { code, stdout, stderr };
}

/** HEAD and GET from 127.0.0.1, the address the binary's requests come from. */
async function download(lab: Lab): Promise<void> {
  for (const method of ['HEAD', 'GET']) {
    assert.equal((await send({ url: lab.url, method, localAddress: '127.0.0.1', headers: { ...FIRMWARE_HEADERS }, timeoutMs: 5_000 })).status, 200);
  }
}

describe('dist/beacon-linux-x64, the standalone beacon', { skip }, () => {
  test('is one executable file, and the folder it runs from has no node', async () => {
    const info = await stat(BINARY);
    assert.ok(info.isFile() && (info.mode & 0o111) !== 0);
    assert.deepEqual(await readdir(bare), []);
  });

  test('--version prints the package version with no Node on PATH, and no SEA warning', async () => {
    const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    const run = await binary(['--version']);
    assert.deepEqual(run, { code: 0, stdout: `${pkg.version}\n`, stderr: '' });
  });

  test('beacon boot reaches a real dispatch and exits 0', async (t) => {
    const lab = await startLab(t, { workloads: { 'a.efi': 2048 } });
    await download(lab);
    const run = await binary(['--server', lab.url, '--no-mdns', '--efivars', bare, 'boot']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, `beacon: boot taken by ${lab.url} (--server): booting a.efi\n`);
    assert.equal(run.stderr, '');
    assert.equal((await lab.job('a.efi')).state, 'booting');
  });

  test('beacon report sends stdin as the body, and the report lands', async (t) => {
    const lab = await startLab(t, { workloads: { 'a.efi': 2048 } });
    await download(lab);
    assert.equal((await binary(['--server', lab.url, '--no-mdns', '--efivars', bare, 'boot'])).code, 0);
    const output = 'ok 1 - from the standalone beacon\n';
    const run = await binary(['--server', lab.url, '--no-mdns', '--efivars', bare, 'report', '--title', 'standalone', '--label', 'sea'], output);
    assert.equal(run.code, 0, run.stderr);
    const [name] = (await readdir(lab.reports)).filter((file) => file.endsWith('.md'));
    const stored = splitReport(await readFile(join(lab.reports, name!), 'utf8'));
    assert.deepEqual([stored.front.title, stored.front.labels, stored.body], ['"standalone"', '["sea"]', output]);
  });

  test('nothing to reach: exit 1 with one line', async () => {
    const run = await binary(['--server', 'http://127.0.0.1:1/dispatch', '--no-mdns', '--efivars', bare, '--timeout', '2s', 'boot']);
    assert.equal(run.code, 1);
    assert.equal(run.stderr.trimEnd().split('\n').length, 1, run.stderr);
    assert.match(run.stderr, /^beacon: boot: no dispatch took it: http:\/\/127\.0\.0\.1:1\/dispatch \(--server\): connection refused/);
  });

  test('carries the mDNS browser (src/mdns/browse.ts is bundled in)', async () => {
    // Looked for in the bytes rather than run: a browse would send queries on this machine's real interfaces.
    const bytes = await readFile(BINARY);
    assert.ok(bytes.includes('async function browseDispatch('), 'browseDispatch is in the binary');
    assert.ok(!bytes.includes('built without src/mdns/browse.ts'), 'not the stand-in for a missing browser');
  });
});
