import { strict as assert } from 'node:assert';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, openSync, writeSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
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

test(
  'a report that finds the reports disk full gets a 500 and leaves nothing behind; sent again once there is room, it is stored once',
  { skip: canMount() ? false : 'needs root to mount a small tmpfs for --reports' },
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'dispatch-full-'));
    const workloads = join(dir, 'workloads');
    const reports = join(dir, 'reports');
    await mkdir(workloads);
    await mkdir(reports);
    await writeFile(join(workloads, 'memtest.efi'), Buffer.alloc(4096, 1));
    assert.equal(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=128k', 'tmpfs', reports]).status, 0, 'mounted a 128 KiB tmpfs for --reports');
    t.after(async () => {
      spawnSync('umount', ['-l', reports]);
      await rm(dir, { recursive: true, force: true });
    });

    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, '--dir', workloads, '--reports', reports, '--bind', '127.0.0.1:0', '--no-mdns', '--log', 'plain'], {
      cwd: ROOT,
      env: { ...process.env, XDG_STATE_HOME: join(dir, 'state') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    t.after(() => child.kill('SIGKILL'));
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d));
    child.stderr.on('data', (d: Buffer) => (output += d));
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no URL in ${output}`)), 15_000);
      child.stdout.on('data', () => {
        const match = /servers boot from (\S+)/.exec(output);
        if (match) {
          clearTimeout(timer);
          resolve(match[1]!);
        }
      });
    });

    assert.equal((await call(url, 'HEAD')).status, 200);
    assert.equal((await call(url, 'GET')).status, 200);
    assert.equal((await call(url, 'POST')).status, 200);
    // The disk fills while the workload runs.
    const filler = join(reports, 'filler');
    fill(filler);
    const report = JSON.stringify({ title: 'memtest: 0 errors', body: 'pass\n'.repeat(2000) });
    const refused = await call(url, 'PUT', report);
    assert.equal(refused.status, 500, 'not acknowledged: beacon sends it again');
    assert.deepEqual(await readdir(reports), ['filler'], 'no report and no temporary file left on the full disk');
    assert.match(output, /PUT \/dispatch from 127\.0\.9\.1 failed: ENOSPC/, 'the log says why');

    await unlink(filler);
    const stored = await call(url, 'PUT', report);
    assert.equal(stored.status, 200, stored.text);
    const files = await readdir(reports);
    assert.equal(files.length, 1, `one report: ${files.join(', ')}`);
    const text = await readFile(join(reports, files[0]!), 'utf8');
    assert.match(text, /title: "memtest: 0 errors"/);
    assert.ok(text.includes('pass\n'.repeat(2000)), 'the whole body');

    child.kill('SIGTERM');
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.equal(code, 0);
  },
);
