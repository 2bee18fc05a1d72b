import { strict as assert } from 'node:assert';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { runFleet, type FleetLog, type ServerPlan } from './fleet/simulator.ts';
import { childOf, threadsOf } from './bench/processes.ts';
import { builtCli } from './support/built.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MAIN = join(ROOT, 'src/cli/main.ts');
const run = promisify(execFile);

interface Cleanup {
  after(fn: () => unknown): void;
}

/** A scratch lab: workload files of the given sizes and a reports folder. */
async function scratchLab(t: Cleanup, workloads: Readonly<Record<string, number>>) {
  const dir = await mkdtemp(join(tmpdir(), 'dispatch-tui-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await mkdir(join(dir, 'workloads'));
  for (const [name, size] of Object.entries(workloads)) {
    // Distinct bytes per file; content does not matter beyond that.
    await writeFile(join(dir, 'workloads', name), Buffer.alloc(size, name));
  }
  return { dir, workloads: join(dir, 'workloads'), reports: join(dir, 'reports'), state: join(dir, 'state') };
}

/** dispatch in CI mode, as a child process: resolves with its exit code and output once it exits by itself. */
function ciRun(t: Cleanup, args: readonly string[]) {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, '--bind', '127.0.0.1:0', '--no-mdns', '--exit-when-done', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => child.kill('SIGKILL'));
  const output = { stdout: '', stderr: '' };
  child.stdout.on('data', (d: Buffer) => (output.stdout += d));
  child.stderr.on('data', (d: Buffer) => (output.stderr += d));
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  const url = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no URL in ${output.stdout}${output.stderr}`)), 20_000);
    const look = () => {
      const match = /listening on (http:[^"\s]+)/.exec(output.stdout);
      if (!match) return;
      clearTimeout(timer);
      child.stdout.off('data', look);
      resolve(match[1]!);
    };
    child.stdout.on('data', look);
  });
  return { url, exited, output };
}

/** Each thread of a process and its nice value (Linux: /proc/PID/task/TID/stat, field 19). */
async function threadNiceness(pid: number): Promise<Map<number, number>> {
  return new Map((await threadsOf(pid)).map((thread) => [thread.tid, thread.nice]));
}

function assertFleetClean(log: FleetLog) {
  for (const server of log.servers) assert.deepEqual(server.violations, [], server.ip);
}

describe('--exit-when-done (CI mode)', () => {
  test('a run with one failing workload exits 1 with a summary naming the failure', async (t) => {
    const lab = await scratchLab(t, { 'a-ok.efi': 2048, 'b-hangs.efi': 2048, 'c-ok.efi': 2048 });
    const dispatch = ciRun(t, ['--dir', lab.workloads, '--reports', lab.reports, '--state-dir', lab.state, '--log', 'plain', '--linger', '30s']);
    // Server 1 takes a-ok.efi and reboots without reporting (rule 3 fails it), server 2 b-…; both go on to the rest.
    const plans: ServerPlan[] = [{ boots: [{ reports: [] }] }, {}];
    const fleet = await runFleet({ url: await dispatch.url, servers: plans, firmwareRetries: 3, deadlineMs: 30_000 });
    assertFleetClean(fleet);
    assert.deepEqual(fleet.servers.map((s) => s.stopped), ['poweroff', 'poweroff']);
    const code = await Promise.race([dispatch.exited, delay(15_000).then(() => 'still running')]);
    assert.equal(code, 1, dispatch.output.stdout + dispatch.output.stderr);
    const summary = dispatch.output.stdout.slice(dispatch.output.stdout.indexOf('WORKLOAD'));
    const lines = summary.trimEnd().split('\n');
    assert.match(lines[0]!, /^WORKLOAD\s+SERVER\s+RESULT\s+ISSUE\/REPORT\s+TIME$/);
    assert.match(summary, /^a-ok\.efi\s+127\.0\.0\.2\s+failed: rebooted without report\s+\S+\.md\s+\d+s$/m);
    assert.match(summary, /^b-hangs\.efi\s+127\.0\.0\.3\s+finished\s+\S+\.md\s+\d+s$/m);
    assert.match(summary, /^c-ok\.efi\s+127\.0\.0\.\d\s+finished\s+\S+\.md\s+\d+s$/m);
    assert.match(lines.at(-1)!, /^3 job\(s\): 2 finished, 1 failed; exit 1$/);
    // Two reports and one failure report, all written before the exit.
    assert.equal((await readdir(lab.reports)).length, 3);
  });

  test('a clean run exits 0; with --log json every line of output is one JSON object, the summary last', async (t) => {
    const lab = await scratchLab(t, { 'one.efi': 1024, 'two.efi': 1024 });
    const dispatch = ciRun(t, ['--dir', lab.workloads, '--reports', lab.reports, '--state-dir', lab.state, '--log', 'json']);
    const fleet = await runFleet({ url: await dispatch.url, servers: 2, firmwareRetries: 3, deadlineMs: 30_000 });
    assertFleetClean(fleet);
    const code = await Promise.race([dispatch.exited, delay(15_000).then(() => 'still running')]);
    assert.equal(code, 0, dispatch.output.stdout + dispatch.output.stderr);
    const records = dispatch.output.stdout.trimEnd().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    const events = records.filter((r) => 'job' in r);
    assert.ok(events.length >= 10, `${events.length} job events`);
    for (const event of events) {
      assert.deepEqual(Object.keys(event).slice(0, 4), ['time', 'job', 'server', 'event']);
      assert.ok(!Number.isNaN(Date.parse(String(event.time))));
    }
    assert.ok(events.some((e) => e.job === 'one.efi' && e.state === 'finished'));
    assert.ok(events.some((e) => e.job === 'poweroff.efi' && String(e.event).startsWith('GET poweroff.efi')));
    const last = records.at(-1)!;
    assert.equal(last.code, 0);
    assert.equal(last.failed, 0);
    assert.deepEqual((last.summary as Array<{ workload: string; result: string }>).map((row) => `${row.workload} ${row.result}`), ['one.efi finished', 'two.efi finished']);
  });

  test('a server that never fetches poweroff.efi holds the exit back only for --linger', async (t) => {
    const lab = await scratchLab(t, { 'only.efi': 1024 });
    const dispatch = ciRun(t, ['--dir', lab.workloads, '--reports', lab.reports, '--state-dir', lab.state, '--log', 'plain', '--linger', '2s']);
    // One boot, then the server is switched off by hand: it never comes back for poweroff.efi.
    const fleet = await runFleet({ url: await dispatch.url, servers: 1, maxBoots: 1, deadlineMs: 30_000 });
    assert.equal(fleet.servers[0]!.stopped, 'max-boots');
    const started = Date.now();
    const code = await Promise.race([dispatch.exited, delay(15_000).then(() => 'still running')]);
    assert.equal(code, 0, dispatch.output.stdout + dispatch.output.stderr);
    assert.ok(Date.now() - started >= 1_000, 'did not linger');
    assert.match(dispatch.output.stdout, /never fetched poweroff\.efi: 127\.0\.0\.2; exit 0$/m);
  });

  test('--linger without --exit-when-done, or a bad --log, is a usage error', async () => {
    for (const [args, pattern] of [
      [['--dir', '.', '--linger', '1m'], /--linger only makes sense with --exit-when-done/],
      [['--dir', '.', '--log', 'fancy'], /"fancy" is not one of auto, tui, plain, json/],
      [['--dir', '.', '--exit-when-done', '--linger', 'soon'], /"soon" is not a duration/],
    ] as const) {
      const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d));
      const [code] = await once(child, 'exit');
      assert.equal(code, 2, stderr);
      assert.match(stderr, pattern);
      assert.equal(stderr.trimEnd().split('\n').length, 1);
    }
  });
});

/** tmux on a private socket: a real pseudo terminal we can type into and read. */
async function tmuxAvailable(): Promise<boolean> {
  return run('tmux', ['-V']).then(
    () => true,
    () => false,
  );
}

describe('the TUI in a real terminal (tmux)', async () => {
  const skip = (await tmuxAvailable()) ? false : 'tmux is not installed (apt-get install tmux)';

  test('shows the boot URL and the job table live, q quits with exit 0 and the cursor back', { skip, timeout: 120_000 }, async (t) => {
    // The built CLI, as a user runs it.
    const cli = await builtCli();
    const lab = await scratchLab(t, { 'big-1.efi': 24 * 1024 * 1024, 'big-2.efi': 24 * 1024 * 1024, 'small.efi': 4096 });
    const socket = `dispatch-test-${process.pid}`;
    const tmux = (...args: string[]) => run('tmux', ['-L', socket, ...args]).then((r) => r.stdout);
    t.after(() => tmux('kill-server').catch(() => undefined));
    const exitFile = join(lab.dir, 'exit');
    // CI=true on purpose: ink alone would draw nothing live under CI; dispatch must still show its TUI on a terminal.
    const command = `CI=true node ${cli} --dir ${lab.workloads} --reports ${lab.reports} --state-dir ${lab.state} --bind 127.0.0.1:0 --no-mdns; echo $? > ${exitFile}; sleep 60`;
    await tmux('new-session', '-d', '-s', 'lab', '-x', '100', '-y', '30', command);
    const screen = () => tmux('capture-pane', '-p', '-t', 'lab');
    const waitFor = async (what: RegExp, ms = 20_000): Promise<string> => {
      const until = Date.now() + ms;
      let text = '';
      while (Date.now() < until) {
        text = await screen();
        if (what.test(text)) return text;
        await delay(200);
      }
      throw new Error(`the screen never showed ${what}:\n${text}`);
    };

    const first = await waitFor(/servers boot from http:\/\/127\.0\.0\.1:(\d+)\/dispatch/);
    const url = /servers boot from (http:\/\/127\.0\.0\.1:\d+\/dispatch)/.exec(first)![1]!;
    assert.match(first, /^\s+JOB\s+SERVER\s+SEEN\s+SIZE\s+PROGRESS\s+IN STATE\s+ISSUE/m);
    assert.match(first, /^· big-1\.efi\s+-\s+24\.0M/m);
    assert.match(first, /3 unassigned {2}0 finished {2}0 failed {2}0 powered off/);

    // Drawing yields to serving: the drawing thread runs at the lowest priority, the thread that answers the servers at its own.
    const shell = Number((await tmux('display-message', '-p', '-t', 'lab', '#{pane_pid}')).trim());
    const dispatchPid = childOf(shell);
    assert.ok(dispatchPid !== undefined, 'dispatch is not running under the pane');
    // Every thread starts at the nice value the shell gave dispatch (0 unless the test itself runs niced).
    const base = (await threadNiceness(shell)).get(shell)!;
    const niceness = await threadNiceness(dispatchPid);
    const threads = JSON.stringify([...niceness]);
    assert.equal(niceness.get(dispatchPid), base, `the main thread; threads and their nice values: ${threads}`);
    if (base < 19) assert.deepEqual([...niceness.values()].filter((nice) => nice !== base), [19], `threads and their nice values: ${threads}`);

    // Two slow servers: the downloads are on screen while they run.
    const fleet = runFleet({ url, servers: 2, bytesPerSecond: 6 * 1024 * 1024, firmwareRetries: 3, deadlineMs: 60_000 });
    const during = await waitFor(/^↓ big-\d\.efi\s+127\.0\.0\.\d\s+\d+s\s+24\.0M [█░]{6}\s+\d+%/m);
    assert.match(during, /\d+ downloading/);
    const log = await fleet;
    assertFleetClean(log);
    const after = await waitFor(/2 powered off/);
    assert.match(after, /✔ big-1\.efi {2}127\.0\.0\.\d {2}finished/);
    assert.match(after, /3 finished {2}0 failed/);

    // A narrower terminal: the frame follows, dropping columns rather than wrapping.
    await tmux('resize-window', '-t', 'lab', '-x', '70', '-y', '30');
    const narrow = await waitFor(/^\s+JOB\s+SERVER\s+PROGRESS/m);
    assert.ok(narrow.split('\n').every((line) => line.length <= 70), narrow);

    await tmux('send-keys', '-t', 'lab', 'q');
    const until = Date.now() + 15_000;
    let code = '';
    while (Date.now() < until && code === '') {
      code = await readFile(exitFile, 'utf8').catch(() => '');
      await delay(100);
    }
    assert.equal(code.trim(), '0');
    assert.equal((await tmux('display-message', '-p', '-t', 'lab', '#{cursor_flag}')).trim(), '1', 'the cursor is still hidden');
  });

  for (const death of [
    { name: 'a crash', signal: undefined, exit: '1', shown: /a bug, on purpose/ },
    { name: 'a fatal signal (SIGHUP)', signal: 'SIGHUP', exit: '129', shown: /Hangup/ },
  ] as const) {
    test(`${death.name} with the TUI on screen gives the terminal back: cursor shown, line mode restored`, { skip, timeout: 60_000 }, async (t) => {
      const dir = await mkdtemp(join(tmpdir(), 'dispatch-tui-'));
      t.after(() => rm(dir, { recursive: true, force: true }));
      const socket = `dispatch-crash-${process.pid}-${death.exit}`;
      const tmux = (...args: string[]) => run('tmux', ['-L', socket, ...args]).then((r) => r.stdout);
      t.after(() => tmux('kill-server').catch(() => undefined));
      const script = join(ROOT, 'test/support/tui-crash.tsx');
      // The fixture loads ink directly: without CI, or ink draws nothing live.
      const command = `cd ${ROOT} && env -u CI -u CONTINUOUS_INTEGRATION node --import tsx ${script} ${death.signal ?? ''}; echo $? > ${dir}/exit; stty -a > ${dir}/stty; sleep 60`;
      await tmux('new-session', '-d', '-s', 'crash', '-x', '100', '-y', '30', command);
      let stty = '';
      for (const until = Date.now() + 30_000; Date.now() < until && stty === ''; await delay(200)) {
        stty = await readFile(join(dir, 'stty'), 'utf8').catch(() => '');
      }
      assert.equal((await readFile(join(dir, 'exit'), 'utf8')).trim(), death.exit);
      const screen = await tmux('capture-pane', '-p', '-t', 'crash');
      assert.match(screen, death.shown);
      // Raw mode would show as -icanon -echo.
      assert.match(stty, /(^|\s)icanon(\s|$)/m);
      assert.match(stty, /(^|\s)echo(\s|$)/m);
      assert.equal((await tmux('display-message', '-p', '-t', 'crash', '#{cursor_flag}')).trim(), '1', 'the cursor is still hidden');
    });
  }
});
