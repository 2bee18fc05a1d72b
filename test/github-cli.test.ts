import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { send } from './fleet/http.ts';
import { startFakeGitHub, type FakeGitHub } from './github/fake.ts';

// The CLI against the fake GitHub, as a lab runs it: its own process, which
// we can kill at the worst moment and start again.

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MAIN = join(ROOT, 'src/cli/main.ts');
const TOKEN = 'ghp_S3cretTokenThatMustNeverBePrinted';
const EFI = Buffer.from('MZ'.padEnd(2048, '\u0002'));

async function github(t: TestContext): Promise<FakeGitHub> {
  const gh = await startFakeGitHub();
  t.after(() => gh.close());
  gh.addRepo({ owner: 'acme', name: 'lab', private: true });
  gh.addToken({ token: TOKEN, login: 'lab-bot', repos: { 'acme/lab': 'push' } });
  gh.addRelease('acme/lab', {
    tag: 'v1',
    assets: [
      { name: 'a.efi', contentType: 'application/vnd.dispatch+efi', bytes: EFI },
      { name: 'notes.txt', contentType: 'text/plain', bytes: 'not a workload' },
    ],
  });
  gh.addRelease('acme/lab', { tag: 'empty', assets: [{ name: 'notes.txt', contentType: 'text/plain', bytes: 'x' }] });
  return gh;
}

async function scratch(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'dispatch-ghcli-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** The environment of a lab machine with no token anywhere and no gh on the PATH. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: '/usr/bin:/bin', HOME: process.env.HOME };
  return env;
}

interface Run {
  readonly child: ChildProcess;
  readonly output: { text: string };
  exit(): Promise<number | null>;
}

/** CLIs still running when the file's tests end (a test failed midway): stopped, so the file can end. */
const running = new Set<ChildProcess>();
after(() => {
  for (const child of running) child.kill('SIGKILL');
});

function run(args: string[], env = cleanEnv()): Run {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  child.once('exit', () => running.delete(child));
  const output = { text: '' };
  child.stdout!.on('data', (d: Buffer) => (output.text += d));
  child.stderr!.on('data', (d: Buffer) => (output.text += d));
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  return { child, output, exit: () => exited };
}

async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A firmware boot and a workload report from one loopback address. */
async function bootAndReport(url: string, from: string, title: string): Promise<number> {
  const call = (method: string, body?: string) => send({ url, method, localAddress: from, timeoutMs: 10_000, ...(body === undefined ? {} : { body }) });
  assert.equal((await call('HEAD')).status, 200);
  const got = await call('GET');
  assert.equal(got.status, 200);
  assert.ok(got.body.equals(EFI), 'the workload bytes from the release');
  assert.equal((await call('POST')).status, 200);
  return (await call('PUT', JSON.stringify({ title, body: 'all good' }))).status;
}

function dispatchArgs(gh: FakeGitHub, state: string, extra: string[] = []): string[] {
  return ['--owner', 'acme', '--repo', 'lab', '--tag', 'v1', '--api-url', gh.apiUrl, '--token', TOKEN, '--state-dir', state, '--bind', '127.0.0.1:0', '--no-mdns', ...extra];
}

describe('starting against GitHub', () => {
  test('with no token anywhere, it says how to get one and exits 2', async (t) => {
    const gh = await github(t);
    const result = run(['--owner', 'acme', '--repo', 'lab', '--tag', 'v1', '--api-url', gh.apiUrl, '--state-dir', await scratch(t)]);
    assert.equal(await result.exit(), 2);
    assert.match(result.output.text, /no GitHub token found/);
    assert.match(result.output.text, /fine-grained: the repository, with Contents read-only and Issues read and write/);
    assert.match(result.output.text, /classic: the `repo` scope/);
    assert.doesNotMatch(result.output.text, /\n\s+at /, 'no stack trace');
  });

  test('the token from the environment works and is never printed', async (t) => {
    const gh = await github(t);
    const env = { ...cleanEnv(), GH_TOKEN: TOKEN };
    const result = run(['-o', 'acme', '-r', 'lab', '-t', 'v1', '--api-url', gh.apiUrl, '--state-dir', await scratch(t), '--bind', '127.0.0.1:0', '--no-mdns'], env);
    await until('listening', () => (/listening on/.test(result.output.text) ? true : undefined));
    result.child.kill('SIGTERM');
    assert.equal(await result.exit(), 0);
    assert.match(result.output.text, /using the token from GH_TOKEN/);
    assert.match(result.output.text, /1 workload\(s\) from release v1 of acme\/lab .*: a\.efi/);
    assert.ok(!result.output.text.includes(TOKEN), 'the token never appears in the output');
  });

  test('each way a release can be wrong is one clear line and exit 2', async (t) => {
    const gh = await github(t);
    const state = await scratch(t);
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const deadPort = (closed.address() as { port: number }).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const cases: Array<[string[], RegExp]> = [
      [dispatchArgs(gh, state).map((a) => (a === 'v1' ? 'v9' : a)), /release v9 of acme\/lab not found/],
      [dispatchArgs(gh, state).map((a) => (a === TOKEN ? 'ghp_wrong' : a)), /GitHub refused the token \(401 Bad credentials\)/],
      [dispatchArgs(gh, state).map((a) => (a === 'v1' ? 'empty' : a)), /release empty of acme\/lab has no dispatch assets/],
      [dispatchArgs(gh, state).map((a) => (a === gh.apiUrl ? `http://127.0.0.1:${deadPort}` : a)), /cannot load release v1 of acme\/lab: cannot reach GitHub \(ECONNREFUSED\)/],
      [[...dispatchArgs(gh, state), 'nothing-matches'], /no dispatch assets matching "nothing-matches"/],
    ];
    for (const [args, pattern] of cases) {
      const result = run(args);
      assert.equal(await result.exit(), 2, result.output.text);
      const lines = result.output.text.trimEnd().split('\n');
      assert.match(lines.at(-1)!, pattern);
      assert.match(lines.at(-1)!, /^dispatch: /);
      assert.ok(!result.output.text.includes(TOKEN));
    }
  });
});

describe('the GitHub client is loaded only by a run that uses GitHub', () => {
  const loaded = (modules: string, path: string) => modules.split('\n').some((line) => line.includes('ModuleLoadMap') && line.includes(path));

  /**
   * The CLI until it listens, then stopped, with Node's own log of the ES
   * modules it loads (NODE_DEBUG=esm, on stderr, apart from the log lines
   * on stdout: a read of the one can end in the middle of a line).
   */
  async function modulesLoaded(t: TestContext, args: string[], expected: readonly string[] = []): Promise<{ log: string; modules: string }> {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: ROOT, env: { ...cleanEnv(), NODE_DEBUG: 'esm' }, stdio: ['ignore', 'pipe', 'pipe'] });
    t.after(() => child.kill('SIGKILL'));
    let log = '';
    let modules = '';
    child.stdout!.on('data', (d: Buffer) => (log += d));
    child.stderr!.on('data', (d: Buffer) => (modules += d));
    // 'close', not 'exit': what the child wrote may still be in the pipes when it exits.
    const exited = once(child, 'close');
    await until('listening', () => (/ listening on http:/.test(log) ? true : undefined));
    // Node's module log can lag the log lines (megabytes of it), and what is
    // still unwritten at exit is lost: stop only once it names what is expected.
    await until(`${expected.join(' and ')} in Node's module log`, () => (expected.every((path) => loaded(modules, path)) ? true : undefined));
    child.kill('SIGTERM');
    assert.deepEqual(await exited, [0, null], log);
    return { log, modules };
  }

  test('a directory run with reports to a directory loads neither octokit nor undici; a GitHub run loads them', async (t) => {
    const dir = await scratch(t);
    await mkdir(join(dir, 'workloads'));
    await writeFile(join(dir, 'workloads', 'a.efi'), EFI);
    const local = await modulesLoaded(t, ['--dir', join(dir, 'workloads'), '--reports', join(dir, 'reports'), '--state-dir', join(dir, 'state'), '--bind', '127.0.0.1:0', '--no-mdns', '--log', 'plain'], ['/src/cli/start.ts', '/src/http/listen.ts']);
    // Named once the log reaches what start.ts imports after GitHub's modules, so a client imported at start would show.
    assert.ok(!loaded(local.modules, '/node_modules/@octokit/'), 'octokit was loaded');
    assert.ok(!loaded(local.modules, '/node_modules/undici/'), 'undici was loaded');

    const gh = await github(t);
    // Times out, saying which, unless both are loaded.
    const remote = await modulesLoaded(t, dispatchArgs(gh, await scratch(t)), ['/node_modules/@octokit/rest/', '/node_modules/undici/']);
    assert.ok(!remote.log.includes(TOKEN) && !remote.modules.includes(TOKEN), 'the token never appears in the output');
  });
});

describe('nothing acknowledged is lost', () => {
  for (const when of ['after', 'before'] as const) {
    test(`killed with SIGKILL right after the 200 (GitHub ${when === 'after' ? 'created the issue, the answer was lost' : 'not reached yet'}): the restart files it exactly once`, async (t) => {
      const gh = await github(t);
      const state = await scratch(t);
      // Catch the filing in flight, then kill dispatch under it.
      const hold = gh.holdNext({ method: 'POST', path: '/repos/acme/lab/issues', when });
      const first = run(dispatchArgs(gh, state));
      t.after(() => first.child.kill('SIGKILL'));
      const url = await until('the URL', () => /listening on (\S+)/.exec(first.output.text)?.[1]);
      assert.equal(await bootAndReport(url, '127.0.0.2', 'memtest: 0 errors'), 200);
      await hold.reached;
      first.child.kill('SIGKILL');
      assert.equal(await first.exit(), null);
      hold.release();
      const outbox = join(state, 'outbox');
      const pending = async () => (await readdir(outbox, { recursive: true })).filter((n) => /^[^/]+\/[^/]+\/[^/]+\/[0-9a-f-]+\.json$/.test(n));
      assert.equal((await pending()).length, 1, 'the acknowledged report is in the outbox');

      const second = run(dispatchArgs(gh, state));
      t.after(() => second.child.kill('SIGKILL'));
      await until('the outbox to empty', async () => ((await pending()).length === 0 ? true : undefined));
      const issues = gh.issues('acme/lab').filter((i) => i.title === 'memtest: 0 errors');
      assert.equal(issues.length, 1, 'filed exactly once');
      assert.match(issues[0]!.body ?? '', /all good/);
      assert.match(issues[0]!.body ?? '', /server `127\.0\.0\.2`/);
      assert.match(second.output.text, /from an earlier run are not filed yet/);
      if (when === 'after') assert.match(second.output.text, /was already filed as .*not filing it again/);
      second.child.kill('SIGTERM');
      assert.equal(await second.exit(), 0);
      assert.ok(!(first.output.text + second.output.text).includes(TOKEN));
    });
  }
});
