import { strict as assert } from 'node:assert';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, openSync, writeSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { setTimeout as delay } from 'node:timers/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MAIN = join(ROOT, 'src/cli/main.ts');
const SERVER = '127.0.9.1';

/** A small tmpfs of our own can be mounted here (root, and a kernel that lets us). */
function canMount(): boolean {
  if (process.getuid?.() !== 0) return false;
  return spawnSync('unshare', ['-m', 'sh', '-c', 'd=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs "$d" && umount "$d" && rmdir "$d"'], { stdio: 'ignore' }).status === 0;
}

/** One request from the server's address; its status and body. */
function call(url: string, method: string, body?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, localAddress: SERVER, agent: false, headers: body === undefined ? {} : { 'Content-Type': 'application/json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('close', () => {
        if (!res.complete) reject(new Error('cut before the answer was whole'));
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Write to `path` until the file system says it is full. */
function fill(path: string): void {
  const fd = openSync(path, 'w');
  const block = Buffer.alloc(4096, 0x55);
  try {
    for (;;) writeSync(fd, block);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    closeSync(fd);
  }
}

/** The CLI serving `workloads`, its reports in `reports`; its boot URL and all it printed. */
async function serve(t: { after(fn: () => void): void }, dir: string, workloads: string, reports: string) {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, '--dir', workloads, '--reports', reports, '--bind', '127.0.0.1:0', '--no-mdns', '--log', 'plain'], {
    cwd: ROOT,
    env: { ...process.env, XDG_STATE_HOME: join(dir, 'state') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => child.kill('SIGKILL'));
  const out = { text: '' };
  child.stdout.on('data', (d: Buffer) => (out.text += d));
  child.stderr.on('data', (d: Buffer) => (out.text += d));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no URL in ${out.text}`)), 15_000);
    child.stdout.on('data', () => {
      const match = /servers boot from (\S+)/.exec(out.text);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
  });
  /** SIGTERM, and the exit code. */
  const stop = async () => {
    child.kill('SIGTERM');
    const [code] = (await once(child, 'exit')) as [number | null];
    return code;
  };
  return { url, out, stop };
}

/**
 * A scratch folder with one workload, and an empty folder for reports (a
 * tmpfs of `tmpfs` bytes if asked); unmounted and removed when the test ends.
 */
async function lab(t: { after(fn: () => Promise<void>): void }, tmpfs?: number) {
  const dir = await mkdtemp(join(tmpdir(), 'dispatch-report-disk-'));
  const workloads = join(dir, 'workloads');
  const reports = join(dir, 'reports');
  t.after(async () => {
    if (tmpfs !== undefined) spawnSync('umount', ['-l', reports]);
    await rm(dir, { recursive: true, force: true });
  });
  await mkdir(workloads);
  await mkdir(reports);
  if (tmpfs !== undefined) assert.equal(spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${tmpfs}`, 'tmpfs', reports]).status, 0, `mounted a ${tmpfs}-byte tmpfs for --reports`);
  await writeFile(join(workloads, 'memtest.efi'), Buffer.alloc(4096, 1));
  return { dir, workloads, reports };
}

/** Wait (up to 5 s) for the CLI to print `line`: its output reaches us after its answers. */
async function said(out: { readonly text: string }, line: string): Promise<void> {
  for (let waited = 0; !out.text.includes(line); waited += 20) {
    if (waited >= 5_000) assert.fail(`never said ${JSON.stringify(line)}:\n${out.text}`);
    await delay(20);
  }
}

/** HEAD, GET and POST from the server: its job is booting. */
async function boot(url: string) {
  assert.equal((await call(url, 'HEAD')).status, 200);
  assert.equal((await call(url, 'GET')).status, 200);
  assert.equal((await call(url, 'POST')).status, 200);
}

const REPORT = JSON.stringify({ title: 'memtest: 0 errors', body: 'pass\n'.repeat(2000) });

/** The only report in `reports`, checked whole. */
async function theReport(reports: string) {
  const files = (await readdir(reports)).filter((name) => name !== 'filler');
  assert.equal(files.length, 1, `one report: ${files.join(', ')}`);
  const text = await readFile(join(reports, files[0]!), 'utf8');
  assert.match(text, /title: "memtest: 0 errors"/);
  assert.ok(text.includes('pass\n'.repeat(2000)), 'the whole body');
}

test(
  'a report that finds the reports disk full gets a 500 and leaves nothing behind; sent again once there is room, it is stored once',
  { skip: canMount() ? false : 'needs root to mount a small tmpfs for --reports' },
  async (t) => {
    const { dir, workloads, reports } = await lab(t, 128 * 1024);
    const { url, out, stop } = await serve(t, dir, workloads, reports);

    await boot(url);
    // The disk fills while the workload runs.
    const filler = join(reports, 'filler');
    fill(filler);
    const refused = await call(url, 'PUT', REPORT);
    assert.equal(refused.status, 500, 'not acknowledged: beacon sends it again');
    assert.deepEqual(await readdir(reports), ['filler'], 'no report and no temporary file left on the full disk');
    await said(out, 'PUT /dispatch from 127.0.9.1 failed: ENOSPC');

    await unlink(filler);
    const stored = await call(url, 'PUT', REPORT);
    assert.equal(stored.status, 200, stored.text);
    await theReport(reports);
    assert.equal(await stop(), 0);
  },
);

test('the reports folder removed while dispatch runs is made again by the next report', async (t) => {
  const { dir, workloads, reports } = await lab(t);
  const { url, out, stop } = await serve(t, dir, workloads, reports);
  await boot(url);
  assert.equal((await call(url, 'PUT', JSON.stringify({ title: 'memtest: started' }))).status, 200);
  assert.equal((await readdir(reports)).length, 1);
  // A clean-up of old reports that took the folder with them; the workload reports again.
  await rm(reports, { recursive: true });
  const stored = await call(url, 'PUT', REPORT);
  assert.equal(stored.status, 200, stored.text);
  await theReport(reports);
  await said(out, `report  ${reports} was gone (removed while dispatch runs?): made it again`);
  assert.equal(await stop(), 0);
});

test('a workload removed from disk while dispatch runs: its download is cut, and the log says why', async (t) => {
  const { dir, workloads, reports } = await lab(t);
  const { url, out, stop } = await serve(t, dir, workloads, reports);
  assert.equal((await call(url, 'HEAD')).status, 200);
  await rm(join(workloads, 'memtest.efi'));
  // Cut before its headers left (socket hang up) or after: never a short answer taken for a whole one.
  await assert.rejects(call(url, 'GET'), /socket hang up|cut before the answer was whole/);
  await said(out, `127.0.9.1: memtest.efi could not be read, its transfer is cut: ENOENT: no such file or directory, open '${join(workloads, 'memtest.efi')}'`);
  assert.equal(await stop(), 0);
});
