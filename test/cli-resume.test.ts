import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { send } from './fleet/http.ts';
import { apiJobs } from './fleet/lab.ts';

// --run-timeout and --resume on the command line: bad values, refusals, and a
// run continued after SIGKILL, with the CLI in its own process.

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MAIN = join(ROOT, 'src/cli/main.ts');

async function scratch(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'dispatch-resume-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function start(args: string[]) {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const output = { stdout: '', stderr: '' };
  child.stdout.on('data', (d: Buffer) => (output.stdout += d));
  child.stderr.on('data', (d: Buffer) => (output.stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const exited = once(child, 'exit').then(([code]) => {
    clearTimeout(timer);
    return code as number | null;
  });
  const url = async (): Promise<string> => {
    for (let i = 0; i < 300; i += 1) {
      const match = /listening on (\S+)/.exec(output.stdout);
      if (match) return match[1]!;
      if (child.exitCode !== null) throw new Error(`exited ${child.exitCode}: ${output.stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`no URL in ${output.stdout}`);
  };
  return { child, output, exited, url };
}

/** A bad command line: exit 2, one line on stderr, no stack trace. */
async function usageError(args: string[], pattern: RegExp): Promise<void> {
  const run = start(args);
  const code = await run.exited;
  assert.equal(code, 2, `exit code (stderr: ${run.output.stderr})`);
  assert.equal(run.output.stderr.trimEnd().split('\n').length, 1, `one line: ${JSON.stringify(run.output.stderr)}`);
  assert.match(run.output.stderr, /^dispatch: /);
  assert.match(run.output.stderr, pattern);
  assert.doesNotMatch(run.output.stderr, /\n\s+at /);
}

async function lab(t: { after(fn: () => Promise<void>): void }) {
  const dir = await scratch(t);
  const workloads = join(dir, 'workloads');
  await mkdir(workloads);
  await writeFile(join(workloads, 'a.efi'), Buffer.alloc(3000, 'a'));
  await writeFile(join(workloads, 'b.efi'), Buffer.alloc(3000, 'b'));
  const args = ['--dir', workloads, '--reports', join(dir, 'reports'), '--state-dir', join(dir, 'state'), '--bind', '127.0.0.1:0', '--no-mdns'];
  return { dir, workloads, args };
}

describe('--run-timeout and --resume on the command line', () => {
  test('bad --run-timeout values are one line and exit 2', async (t) => {
    const { args } = await lab(t);
    await usageError([...args, '--run-timeout', '90'], /--run-timeout.*"90" is not a duration/);
    await usageError([...args, '--run-timeout', '0s'], /--run-timeout.*must be longer than zero/);
    await usageError([...args, '--run-timeout', 'soon'], /--run-timeout.*not a duration/);
    await usageError([...args, '--run-timeout', '999h'], /--run-timeout.*too long/);
    await usageError([...args, '--resume=yes'], /--resume/);
  });

  test('--help shows --run-timeout with its default and --resume', async () => {
    const run = start(['--help']);
    assert.equal(await run.exited, 0);
    const flat = run.output.stdout.replace(/\s+/g, ' ');
    assert.match(flat, /--run-timeout <duration> .*\(default: "60m"\)/);
    assert.match(flat, /--resume /);
  });

  test('--resume with nothing saved starts afresh and says so', async (t) => {
    const { args } = await lab(t);
    const run = start([...args, '--resume']);
    await run.url();
    assert.match(run.output.stdout, /--resume: no saved run in .*: starting afresh/);
    run.child.kill('SIGTERM');
    assert.equal(await run.exited, 0);
  });

  test('--resume refuses when the last saved run was of another source', async (t) => {
    const { args, dir } = await lab(t);
    const first = start(args);
    await first.url();
    first.child.kill('SIGTERM');
    assert.equal(await first.exited, 0);
    const other = join(dir, 'other');
    await mkdir(other);
    await writeFile(join(other, 'z.efi'), Buffer.alloc(100, 'z'));
    const otherArgs = args.map((arg) => (arg.endsWith('/workloads') ? other : arg));
    await usageError([...otherArgs, '--resume'], /cannot resume: the last run saved in .* was of directory .*\/workloads, not directory .*\/other; start without --resume/);
    // Without --resume it is simply a new run.
    const fresh = start(otherArgs);
    await fresh.url();
    fresh.child.kill('SIGTERM');
    assert.equal(await fresh.exited, 0);
  });

  test('--resume refuses a saved run whose workloads changed, in one line, and a damaged state file too', async (t) => {
    const { args, workloads, dir } = await lab(t);
    const first = start(args);
    await first.url();
    first.child.kill('SIGTERM');
    assert.equal(await first.exited, 0);
    await writeFile(join(workloads, 'b.efi'), Buffer.alloc(4000, 'b'));
    await usageError([...args, '--resume'], /cannot resume: the workloads changed since it was saved \(was: b\.efi 3000 bytes.*now: b\.efi 4000 bytes.*start without --resume/);
    await writeFile(join(workloads, 'c.efi'), Buffer.alloc(10, 'c'));
    await usageError([...args, '--resume', 'a.efi', 'b.efi'], /cannot resume: the workloads changed since it was saved \(was: filters: none; now: filters: "a\.efi", "b\.efi"\)/);
    const runs = join(dir, 'state', 'runs');
    const [folder] = await readdir(runs);
    await writeFile(join(runs, folder!, 'state.json'), '{"version": 1, "identity": ');
    await usageError([...args, '--resume'], /cannot resume: the saved run .*state\.json is damaged/);
    // Without --resume, the same state starts afresh and replaces it.
    const fresh = start(args);
    await fresh.url();
    fresh.child.kill('SIGTERM');
    assert.equal(await fresh.exited, 0);
    const saved = JSON.parse(await readFile(join(runs, folder!, 'state.json'), 'utf8')) as { queue: { jobs: unknown[] } };
    assert.equal(saved.queue.jobs.length, 3);
  });

  test('after SIGKILL, --resume continues the run: the booting job takes its report, the finished one stays finished', async (t) => {
    const { args } = await lab(t);
    const first = start(args);
    t.after(async () => void first.child.kill('SIGKILL'));
    const url = await first.url();
    const call = (base: string, from: string, method: string, body?: string) => send({ url: base, method, localAddress: from, timeoutMs: 5_000, ...(body === undefined ? {} : { body }) });
    for (const ip of ['127.0.0.2', '127.0.0.3']) {
      assert.equal((await call(url, ip, 'HEAD')).status, 200);
      assert.equal((await call(url, ip, 'GET')).status, 200);
      assert.equal((await call(url, ip, 'POST')).status, 200);
    }
    assert.equal((await call(url, '127.0.0.2', 'PUT', JSON.stringify({ title: 'a ok' }))).status, 200);
    const origin = new URL(url).origin;
    for (let i = 0; i < 100 && (await apiJobs(origin, 5_000))[0]!.state !== 'finished'; i += 1) await new Promise((r) => setTimeout(r, 50));
    first.child.kill('SIGKILL');
    await first.exited;

    const second = start([...args, '--resume']);
    t.after(async () => void second.child.kill('SIGKILL'));
    const again = await second.url();
    assert.match(second.output.stdout, /--resume: continuing run /);
    const jobs = await apiJobs(new URL(again).origin, 5_000);
    assert.deepEqual(jobs.map((j) => [j.name, j.state, j.ip]), [['a.efi', 'finished', '127.0.0.2'], ['b.efi', 'booting', '127.0.0.3']]);
    assert.equal((await call(again, '127.0.0.3', 'POST')).status, 200, 'boot again is still 200');
    assert.equal((await call(again, '127.0.0.3', 'PUT', JSON.stringify({ title: 'b ok' }))).status, 200);
    assert.equal((await call(again, '127.0.0.2', 'PUT', JSON.stringify({ title: 'a again' }))).status, 200, 'rule 6 holds across the restart');
    assert.equal((await call(again, '127.0.0.9', 'HEAD')).headers['content-type'], 'application/efi');
    second.child.kill('SIGTERM');
    assert.equal(await second.exited, 0);
  });
});
