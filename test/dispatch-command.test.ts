import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import command from '../src/cli/dispatch.cts';
import { START_FLAGS } from './bench/processes.ts';
import { builtCli } from './support/built.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** A running `dispatch` command: its process, its boot URL, and what it has printed. */
interface Started {
  child: ChildProcess;
  url: string;
  output: () => string;
}

/** Start the built command with node flags and CLI arguments, and wait until it says where servers boot from. */
async function startCommand(t: TestContext, nodeFlags: readonly string[], args: readonly string[], env: NodeJS.ProcessEnv): Promise<Started> {
  const child = spawn(process.execPath, [...nodeFlags, await builtCli(), ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => child.kill('SIGKILL'));
  let output = '';
  child.stderr!.on('data', (d: Buffer) => (output += d));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no boot URL in: ${output}`)), 30_000);
    child.stdout!.on('data', (d: Buffer) => {
      output += d;
      const match = /servers boot from (http:\S+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
  });
  return { child, url, output: () => output };
}

/** Stop a started command as a user would (SIGTERM) and check it exits cleanly. */
async function stopCommand({ child, output }: Started): Promise<void> {
  child.kill('SIGTERM');
  const [code] = await once(child, 'exit');
  assert.equal(code, 0, output());
}

/** What a process runs: its /proc cmdline, as arguments. */
async function cmdlineOf(pid: number): Promise<string[]> {
  return (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').slice(0, -1);
}

describe("the dispatch command sizes libuv's thread pool", () => {
  test('as many threads as cores, at least 4, and a size the user set stands', () => {
    assert.equal(command.threadPoolSize({}, 1), '4');
    assert.equal(command.threadPoolSize({}, 2), '4');
    assert.equal(command.threadPoolSize({}, 16), '16');
    assert.equal(command.threadPoolSize({}, 4096), '1024', "libuv's own limit");
    assert.equal(command.threadPoolSize({ UV_THREADPOOL_SIZE: '7' }, 16), '7');
    assert.equal(command.threadPoolSize({ UV_THREADPOOL_SIZE: '' }, 16), '16');
  });

  test('before the pool starts: a 12-core machine runs 8 threads more than one where the user set 4', { timeout: 120_000 }, async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'dispatch-command-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    // Loaded before the command: this machine now says it has 12 cores.
    const cores = join(dir, 'cores.cjs');
    await writeFile(cores, "require('node:os').availableParallelism = () => 12;\n");
    const { UV_THREADPOOL_SIZE: _, ...env } = process.env;

    /** Start the command, check it serves, and count its threads. */
    const threadsOf = async (name: string, extraEnv: Record<string, string>): Promise<number> => {
      const args = ['--dir', join(ROOT, 'examples/workloads'), '--bind', '127.0.0.1:0', '--no-mdns', '--log', 'plain', '--state-dir', join(dir, name, 'state'), '--reports', join(dir, name, 'reports')];
      const started = await startCommand(t, ['--require', cores], args, { ...env, ...extraEnv });
      const status = await new Promise<number | undefined>((resolve, reject) => {
        request(started.url, { method: 'HEAD' }, (res) => resolve(res.statusCode)).on('error', reject).end();
      });
      assert.equal(status, 200, started.output());
      const threads = (await readdir(`/proc/${started.child.pid}/task`)).length;
      await stopCommand(started);
      return threads;
    };

    const sized = await threadsOf('sized', {});
    const userSet = await threadsOf('user', { UV_THREADPOOL_SIZE: '4' });
    assert.equal(sized - userSet, 8);
  });

  test('passes on what the CLI says and its exit code', { timeout: 120_000 }, async () => {
    const cli = await builtCli();
    const child = spawn(process.execPath, [cli, '--dir', join(ROOT, 'no-such-folder')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    const [code] = await once(child, 'exit');
    assert.equal(code, 2);
    assert.match(stderr, /^dispatch: cannot read workload directory .*no-such-folder: no such directory\n$/);
  });
});

describe("the dispatch command runs under npm start's young-generation limit", () => {
  const node = '/usr/bin/node';
  const script = '/opt/dispatch/dist/cli/dispatch.cjs';
  const flag = command.YOUNG_GENERATION_FLAG;

  test('npm start gives node the same flag the command runs itself again with', () => {
    assert.ok(START_FLAGS.includes(flag), `npm start's flags: ${START_FLAGS.join(' ')}`);
  });

  test('run without it, the command runs again with it, keeping node\'s other flags and its own arguments in order', () => {
    assert.deepEqual(command.rerunArgs(node, [], script, ['--dir', 'w'], undefined), [node, flag, script, '--dir', 'w']);
    assert.deepEqual(command.rerunArgs(node, ['--require', 'x.cjs', '--max-old-space-size=900'], script, ['--log', 'plain'], '--no-warnings'), [node, flag, '--require', 'x.cjs', '--max-old-space-size=900', script, '--log', 'plain']);
    assert.deepEqual(command.rerunArgs(node, ['--semi-space-growth-factor=2'], script, [], ''), [node, flag, '--semi-space-growth-factor=2', script], 'another young-generation flag is no size');
  });

  test('a size given to node stands, on its command line or in NODE_OPTIONS, with dashes or underscores', () => {
    assert.equal(command.rerunArgs(node, ['--max-semi-space-size=8'], script, [], undefined), undefined);
    assert.equal(command.rerunArgs(node, ['--max_semi_space_size=64'], script, [], undefined), undefined);
    assert.equal(command.rerunArgs(node, [], script, [], '--max-old-space-size=900  --max-semi-space-size=4'), undefined);
    assert.equal(command.rerunArgs(node, [], script, [], '"--max-semi-space-size=4"'), undefined);
  });

  test('a debugger keeps the program it attached to', () => {
    assert.equal(command.rerunArgs(node, ['--inspect-brk=0'], script, [], undefined), undefined);
    assert.equal(command.rerunArgs(node, [], script, [], '--inspect'), undefined);
  });

  test('the built command runs again with the flag in its own process where Node has process.execve, and serves', { timeout: 120_000 }, async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'dispatch-command-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const { NODE_OPTIONS: _, ...env } = process.env;
    const cli = await builtCli();
    const args = ['--dir', join(ROOT, 'examples/workloads'), '--bind', '127.0.0.1:0', '--no-mdns', '--log', 'plain', '--state-dir', join(dir, 'state'), '--reports', join(dir, 'reports')];

    const bare = await startCommand(t, [], args, env);
    // The pid node was started with now runs the command again: stopping it by that pid stops dispatch.
    const expected = 'execve' in process ? [process.execPath, flag, cli, ...args] : [process.execPath, cli, ...args];
    assert.deepEqual(await cmdlineOf(bare.child.pid!), expected, `Node ${process.version}`);
    await stopCommand(bare);

    const given = await startCommand(t, ['--max-semi-space-size=8'], args, env);
    assert.deepEqual(await cmdlineOf(given.child.pid!), [process.execPath, '--max-semi-space-size=8', cli, ...args]);
    await stopCommand(given);
  });
});
