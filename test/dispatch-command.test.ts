import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import command from '../src/cli/dispatch.cts';
import { builtCli } from './support/built.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

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
    const cli = await builtCli();
    const dir = await mkdtemp(join(tmpdir(), 'dispatch-command-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    // Loaded before the command: this machine now says it has 12 cores.
    const cores = join(dir, 'cores.cjs');
    await writeFile(cores, "require('node:os').availableParallelism = () => 12;\n");
    const { UV_THREADPOOL_SIZE: _, ...env } = process.env;

    /** Start the command, check it serves, and count its threads. */
    const threadsOf = async (name: string, extraEnv: Record<string, string>): Promise<number> => {
      const args = ['--require', cores, cli, '--dir', join(ROOT, 'examples/workloads'), '--bind', '127.0.0.1:0', '--no-mdns', '--log', 'plain'];
      const child = spawn(process.execPath, [...args, '--state-dir', join(dir, name, 'state'), '--reports', join(dir, name, 'reports')], { env: { ...env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
      t.after(() => child.kill('SIGKILL'));
      let output = '';
      child.stderr.on('data', (d: Buffer) => (output += d));
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no boot URL in: ${output}`)), 30_000);
        child.stdout.on('data', (d: Buffer) => {
          output += d;
          const match = /servers boot from (http:\S+)/.exec(output);
          if (match) {
            clearTimeout(timer);
            resolve(match[1]!);
          }
        });
      });
      const status = await new Promise<number | undefined>((resolve, reject) => {
        request(url, { method: 'HEAD' }, (res) => resolve(res.statusCode)).on('error', reject).end();
      });
      assert.equal(status, 200, output);
      const threads = (await readdir(`/proc/${child.pid}/task`)).length;
      child.kill('SIGTERM');
      const [code] = await once(child, 'exit');
      assert.equal(code, 0, output);
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
