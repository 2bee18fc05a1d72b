import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { request } from 'node:http';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MAIN = join(ROOT, 'src/cli/main.ts');
// Every run saves its state (for --resume) under $XDG_STATE_HOME: a scratch one, not the tester's.
const STATE_HOME = mkdtempSync(join(tmpdir(), 'dispatch-cli-state-'));
after(() => rmSync(STATE_HOME, { recursive: true, force: true }));
const ENV = { ...process.env, XDG_STATE_HOME: STATE_HOME };

interface Exit {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run the CLI as a user would, to the end. */
async function dispatch(args: string[], cwd = ROOT): Promise<Exit> {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd, env: ENV, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d));
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  return { code, stdout, stderr };
}

async function scratch(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'dispatch-cli-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Start the CLI and wait for the URL it listens on; killed when the test ends. */
async function serving(t: { after(fn: () => void): void }, args: string[]) {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: ROOT, env: ENV, stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => child.kill('SIGKILL'));
  const output = { stdout: '' };
  child.stdout.on('data', (d: Buffer) => (output.stdout += d));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no URL in ${output.stdout}`)), 15_000);
    child.stdout.on('data', () => {
      const match = /listening on (\S+)/.exec(output.stdout);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
  });
  /** Send a signal and wait for the exit code. */
  const stop = async (signal: NodeJS.Signals) => {
    child.kill(signal);
    const [code] = (await once(child, 'exit')) as [number | null];
    return code;
  };
  return { url, output, stop };
}

/** A HEAD of the boot path from one loopback address (a server of its own); its status. */
function head(url: string, localAddress: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'HEAD', localAddress, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

/** A bad command line: exit 2, exactly one line on stderr, no stack trace. */
function assertUsageError(result: Exit, pattern: RegExp) {
  assert.equal(result.code, 2, `exit code (stderr: ${result.stderr})`);
  assert.equal(result.stderr.trimEnd().split('\n').length, 1, `one line: ${JSON.stringify(result.stderr)}`);
  assert.match(result.stderr, /^dispatch: /);
  assert.match(result.stderr, pattern);
  assert.doesNotMatch(result.stderr, /\n\s+at /);
}

describe('command line', () => {
  test('--help lists every flag with its default and exits 0', async () => {
    const result = await dispatch(['--help']);
    assert.equal(result.code, 0);
    for (const expected of ['--dir <dir>', '--reports <dir>', '-b, --bind <host:port>', '-p, --path <path>', '--no-mdns', '--max-report-bytes <size>', '--download-timeout <duration>', '[filter...]']) {
      assert.ok(result.stdout.includes(expected), `help mentions ${expected}`);
    }
    // Help wraps at the terminal's width: compare with the wrapping undone.
    const flat = result.stdout.replace(/\s+/g, ' ');
    for (const value of ['"./reports"', '"0.0.0.0:8080"', '"/dispatch"', '"10MiB"', '"5m"']) {
      assert.ok(flat.includes(`(default: ${value})`), `help shows default ${value}`);
    }
  });

  test('bad values are one line on stderr and exit 2', async (t) => {
    const dir = await scratch(t);
    await writeFile(join(dir, 'a.efi'), 'MZ');
    const cases: Array<[string[], RegExp]> = [
      [['--dir', dir, '--bind', '0.0.0.0:70000'], /port 70000 is out of range/],
      [['--dir', dir, '--bind', 'nonsense'], /not HOST:PORT/],
      [['--dir', dir, '--frobnicate'], /unknown option '--frobnicate'/],
      [['--dir', dir, '--download-timeout', '300'], /not a duration/],
      [['--dir', dir, '--max-report-bytes', 'lots'], /not a size/],
      [['--dir', dir, '--path', 'dispatch'], /absolute URL path/],
      [[], /no workloads to serve: pass --owner O --repo R --tag T .* or --dir DIR/],
      [['--dir'], /argument missing/],
    ];
    for (const [args, pattern] of cases) assertUsageError(await dispatch(args), pattern);
  });

  test('a missing, empty or workload-less directory is refused with exit 2', async (t) => {
    const dir = await scratch(t);
    await mkdir(join(dir, 'empty'));
    await mkdir(join(dir, 'junk'));
    await writeFile(join(dir, 'junk', 'notes.txt'), 'not a workload');
    await writeFile(join(dir, 'junk', 'zero.efi'), '');
    await writeFile(join(dir, 'file.efi'), 'MZ');
    assertUsageError(await dispatch(['--dir', join(dir, 'nope')]), /cannot read workload directory .*nope: no such directory/);
    assertUsageError(await dispatch(['--dir', join(dir, 'empty')]), /no workloads in .*empty/);
    assertUsageError(await dispatch(['--dir', join(dir, 'junk')]), /no workloads in .*junk/);
    assertUsageError(await dispatch(['--dir', join(dir, 'file.efi')]), /not a directory/);
    assertUsageError(await dispatch(['--dir', join(ROOT, 'examples/workloads'), 'no-such-name']), /no workloads matching "no-such-name"/);
  });

  test('a port already in use is one line and a failure exit', async (t) => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    t.after(() => blocker.close());
    const port = (blocker.address() as { port: number }).port;
    const dir = await scratch(t);
    const result = await dispatch(['--dir', join(ROOT, 'examples/workloads'), '--reports', dir, '--bind', `127.0.0.1:${port}`]);
    assert.equal(result.code, 1);
    assert.equal(result.stderr, `dispatch: cannot listen on 127.0.0.1:${port}: address already in use\n`);
  });
});

describe('a run', () => {
  test('serves the filtered workloads, logs one line per event, and stops cleanly on SIGTERM', async (t) => {
    const dir = await scratch(t);
    await writeFile(join(dir, 'b-second.efi'), Buffer.alloc(2048, 2));
    await writeFile(join(dir, 'a-first.img'), Buffer.alloc(1024, 1));
    await writeFile(join(dir, 'c-skip.iso'), Buffer.alloc(512, 3));
    await writeFile(join(dir, 'README.md'), 'ignored');
    await writeFile(join(dir, 'notes.txt'), 'ignored');
    const reports = join(dir, 'out');
    const { url, output, stop } = await serving(t, ['--dir', dir, '--reports', reports, '--bind', '127.0.0.1:0', '--no-mdns', 'first', 'second']);
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/dispatch$/);
    const head = await fetch(url, { method: 'HEAD' });
    assert.equal(head.headers.get('content-type'), 'application/vnd.efi-img');
    assert.equal(head.headers.get('content-length'), '1024');
    const jobs = (await (await fetch(new URL('/api/jobs', url))).json()) as { jobs: Array<{ name: string }> };
    assert.deepEqual(jobs.jobs.map((j) => j.name), ['a-first.img', 'b-second.efi']);

    assert.equal(await stop('SIGTERM'), 0);
    const { stdout } = output;
    assert.equal(stdout.match(/ignoring 2 file\(s\)/g)?.length, 1, 'ignored files are said once');
    assert.match(stdout, /README\.md, notes\.txt/);
    assert.match(stdout, /^\S+Z {2}a-first\.img {2}127\.0\.0\.1 {2}assigned to 127\.0\.0\.1 \(HEAD\)$/m);
    assert.doesNotMatch(stdout, /mdns/i, '--no-mdns is quiet');
  });

  test('log lines written in batches arrive all and in order, up to the stop', async (t) => {
    const dir = await scratch(t);
    const servers = 40;
    for (let i = 0; i < servers; i += 1) await writeFile(join(dir, `w${String(i).padStart(2, '0')}.efi`), Buffer.alloc(64, i));
    const { url, output, stop } = await serving(t, ['--dir', dir, '--reports', join(dir, 'out'), '--bind', '127.0.0.1:0', '--no-mdns']);
    // Every server asks at once: their lines are logged in the same few turns.
    const statuses = await Promise.all(Array.from({ length: servers }, (_, i) => head(url, `127.0.0.${i + 2}`)));
    assert.deepEqual(statuses, Array(servers).fill(200));
    assert.equal(await stop('SIGTERM'), 0);
    const lines = output.stdout.trimEnd().split('\n');
    const assigned = lines.filter((line) => / {2}assigned to /.test(line));
    assert.equal(assigned.length, servers, output.stdout);
    // The pool hands jobs out in name order: the lines say so in the order they happened.
    assert.deepEqual(assigned.map((line) => line.split('  ')[1]), Array.from({ length: servers }, (_, i) => `w${String(i).padStart(2, '0')}.efi`));
    const times = lines.map((line) => line.slice(0, line.indexOf(' ')));
    assert.deepEqual(times, [...times].sort(), 'lines in time order');
    assert.match(lines.at(-1)!, /dispatch {2}SIGTERM: stopping$/);
  });

  test('the bundled examples serve as the README says', async (t) => {
    const dir = await scratch(t);
    const { url, stop } = await serving(t, ['--dir', 'examples/workloads', '--reports', dir, '--bind', '127.0.0.1:0']);
    const body = Buffer.from(await (await fetch(url)).arrayBuffer());
    assert.deepEqual(body, await readFile(join(ROOT, 'examples/workloads/01-hello.efi')));
    assert.equal(await stop('SIGINT'), 0);
  });
});
