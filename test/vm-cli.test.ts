// `dispatch vm` as a user runs it: exit codes, the one-line reasons, the serial console on
// stdout and in --serial-log, and QEMU switched off when dispatch is stopped.
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { findFirmware, guestUrl, runVm, VmSetupError } from '../src/vm/index.ts';
import { parseCommandLine, UsageError } from '../src/cli/options.ts';
import type { Cleanup } from './fleet/lab.ts';
import { firmwareMissing } from './vm/harness.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MAIN = join(ROOT, 'src/cli/main.ts');
const missing = firmwareMissing();

interface Exit {
  code: number | null;
  stdout: string;
  stderr: string;
}

function dispatchVm(args: string[], options: { env?: NodeJS.ProcessEnv; limitMs?: number; onStderr?: (text: string, child: ReturnType<typeof spawn>) => void } = {}): Promise<Exit> {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'vm', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: options.env ?? process.env });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d));
  child.stderr.on('data', (d: Buffer) => {
    stderr += d;
    options.onStderr?.(stderr, child);
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), options.limitMs ?? 30_000);
  return once(child, 'exit').then(([code]) => {
    clearTimeout(timer);
    return { code: code as number | null, stdout, stderr };
  });
}

/** A server that answers every firmware request with one EFI application. */
async function serveEfi(t: Cleanup, file: string): Promise<string> {
  const bytes = await readFile(join(ROOT, file));
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/efi', 'Content-Length': bytes.length });
    res.end(req.method === 'HEAD' ? undefined : bytes);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return `http://127.0.0.1:${(server.address() as { port: number }).port}/dispatch`;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('dispatch vm', () => {
  test('a loopback URL becomes 10.0.2.2, the host as QEMU user networking shows it', () => {
    assert.equal(guestUrl('http://127.0.0.1:8080/dispatch'), 'http://10.0.2.2:8080/dispatch');
    assert.equal(guestUrl('http://localhost/dispatch'), 'http://10.0.2.2/dispatch');
    assert.equal(guestUrl('http://127.1.2.3:9/x'), 'http://10.0.2.2:9/x');
    assert.equal(guestUrl('http://[::1]:8080/dispatch'), 'http://10.0.2.2:8080/dispatch');
    assert.equal(guestUrl('http://192.168.1.5:8080/dispatch'), 'http://192.168.1.5:8080/dispatch');
    assert.throws(() => guestUrl('ftp://127.0.0.1/x'), VmSetupError);
  });

  test('vm is a subcommand with its own flags and defaults; the root command still takes filters', () => {
    const io = { out: () => undefined, env: {}, home: '/home/x' };
    assert.deepEqual(parseCommandLine(['vm', '--url', 'http://127.0.0.1:8080/dispatch'], '0', io), {
      command: 'vm',
      config: { url: 'http://127.0.0.1:8080/dispatch', serialLog: undefined, memoryMiB: 1024, timeoutMs: 600_000, maxBoots: 10, keep: false },
    });
    const all = parseCommandLine(['vm', '--url', 'http://h/x', '--serial-log', 's.log', '--memory', '2048', '--timeout', '90s', '--max-boots', '3', '--keep'], '0', io);
    assert.deepEqual(all.config, { url: 'http://h/x', serialLog: 's.log', memoryMiB: 2048, timeoutMs: 90_000, maxBoots: 3, keep: true });
    const serve = parseCommandLine(['--dir', 'w', 'mem', 'nvme'], '0', io);
    assert.equal(serve.command, 'serve');
    assert.deepEqual(serve.command === 'serve' && serve.config.filters, ['mem', 'nvme']);
    for (const [args, pattern] of [
      [['vm'], /required option '--url <url>'/],
      [['vm', '--url', 'ftp://h/x'], /must be an http or https URL/],
      [['vm', '--url', 'http://h/x', '--memory', '0'], /not a memory size in MiB/],
      [['vm', '--url', 'http://h/x', '--max-boots', 'many'], /not a boot count/],
      [['vm', '--url', 'http://h/x', '--timeout', '10'], /not a duration/],
    ] as const) {
      assert.throws(() => parseCommandLine([...args], '0', io), (err: Error) => err instanceof UsageError && pattern.test(err.message));
    }
  });

  test('without qemu on PATH: one line with the install hint, exit 2', async (t) => {
    const empty = await mkdtemp(join(tmpdir(), 'dispatch-vm-path-'));
    t.after(() => rm(empty, { recursive: true, force: true }));
    const result = await dispatchVm(['--url', 'http://127.0.0.1:8080/dispatch'], { env: { ...process.env, PATH: empty }, limitMs: 15_000 });
    assert.equal(result.code, 2);
    // A machine without OVMF either (CI installs both) gets the line that names both.
    const both = typeof findFirmware({ PATH: empty }) === 'string' && /and OVMF/.test(findFirmware({ PATH: empty }) as string);
    const line = both ? 'qemu-system-x86_64 and OVMF are missing' : 'qemu-system-x86_64 is missing';
    assert.equal(result.stderr, `dispatch: ${line}; install them: apt-get install qemu-system-x86 ovmf\n`);
  });

  test('a VM that keeps resetting stops at --max-boots: exit 1, the console on stdout and in --serial-log', { skip: missing, timeout: 60_000 }, async (t) => {
    const url = await serveEfi(t, 'efi/reboot.efi');
    const dir = await mkdtemp(join(tmpdir(), 'dispatch-vm-cli-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const log = join(dir, 'serial.log');
    const result = await dispatchVm(['--url', url, '--max-boots', '1', '--serial-log', log, '--memory', '256', '--keep'], { limitMs: 45_000 });
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, /^dispatch: the VM reset 1 times without powering off \(--max-boots 1\)$/m);
    assert.match(result.stdout, /dispatch: reboot\.efi, warm reset/);
    assert.equal(await readFile(log, 'utf8'), result.stdout, 'the log holds what stdout showed');
    const kept = /^dispatch vm: kept (\S+)$/m.exec(result.stderr)?.[1];
    assert.ok(kept, result.stderr);
    t.after(() => rm(kept, { recursive: true, force: true }));
    assert.ok((await stat(join(kept, 'vars.fd'))).size > 0);
  });

  test('--timeout ends a VM that never powers off', { skip: missing, timeout: 30_000 }, async () => {
    // Nothing listens on port 9: the firmware retries until the timeout.
    const result = await runVm({ url: 'http://127.0.0.1:9/dispatch', timeoutMs: 1_500, memoryMiB: 256 });
    assert.equal(result.end, 'timeout');
    assert.equal(result.ok, false);
    assert.match(result.message, /did not power off within 2 s \(--timeout\)/);
  });

  test('SIGTERM switches the VM off and exits 130', { skip: missing, timeout: 30_000 }, async () => {
    let pid: number | undefined;
    const result = await dispatchVm(['--url', 'http://127.0.0.1:9/dispatch', '--memory', '256'], {
      onStderr: (text, child) => {
        const started = /QEMU started \(pid (\d+)\)/.exec(text);
        if (started && pid === undefined) {
          pid = Number(started[1]);
          child.kill('SIGTERM');
        }
      },
    });
    assert.equal(result.code, 130, result.stderr);
    assert.match(result.stderr, /^dispatch: stopped by a signal; the VM was switched off$/m);
    assert.ok(pid !== undefined && !alive(pid), 'QEMU is gone');
  });
});
