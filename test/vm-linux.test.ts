import { strict as assert } from 'node:assert';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { BINARY, buildBeacon, isFresh } from '../beacon/build.ts';
import { buildLinuxWorkload, defaultCacheDir, IMAGE_NAME, missingTools, type WorkloadResult } from '../examples/linux-workload/build.ts';
import { startDispatch, type Running } from '../src/cli/start.ts';
import { findFirmware, runVm, type VmResult } from '../src/vm/index.ts';
import { splitReport } from './fleet/lab.ts';

// Test C of issue #5, the whole stack on real firmware: OVMF HTTP-boots a Linux unified
// kernel image from dispatch (examples/linux-workload, built from Debian packages), whose
// /init runs the standalone beacon (`beacon boot`, a tiny test, `beacon report`) and
// reboots; the firmware comes back, gets poweroff.efi, and the VM switches itself off.
// The image has no URL in it: beacon reads the firmware's Boot#### variable, the URI the
// firmware booted from (efivarfs), which is how a real lab machine finds its dispatch.

// Measured with TCG on 2 cores: HEAD at ~8 s, the 43 MiB image downloaded by ~12 s, /init
// at ~20 s, report at ~26 s, poweroff.efi at ~34 s. The rest is headroom for a slower machine.
const VM_TIMEOUT_MS = 120_000;
// A cold build: the beacon binary (~10 s) and about 70 MB of Debian packages.
const BUILD_TIMEOUT_MS = 300_000;

async function why(): Promise<string | false> {
  if (process.platform !== 'linux' || process.arch !== 'x64') return `the Linux workload is built on Linux x64 (this is ${process.platform}/${process.arch})`;
  const firmware = findFirmware();
  if (typeof firmware === 'string') return firmware;
  const tools = await missingTools();
  if (tools.length > 0) {
    const packages = [...new Set(tools.map((t) => /\((.+)\)$/.exec(t)?.[1] ?? t))];
    return `the Linux workload build needs ${tools.join(', ')}: apt-get install ${packages.join(' ')}`;
  }
  return false;
}

const skip = await why();
if (skip) process.stderr.write(`vm-linux: skipped: ${skip}\n`);

/** A line of progress on stderr. */
function note(message: string): void {
  process.stderr.write(`vm-linux: ${message}\n`);
}

describe('a Linux workload on OVMF, reporting through the standalone beacon (test C)', { skip }, () => {
  let built: WorkloadResult;
  let dir: string;
  let running: Running | undefined;
  const stop = new AbortController();
  let vm: Promise<VmResult> | undefined;
  const logs: string[] = [];

  before(async () => {
    if (!(await isFresh())) {
      const beacon = await buildBeacon();
      note(`built ${BINARY}: ${(beacon.bytes / 1024 / 1024).toFixed(1)} MiB in ${(beacon.ms / 1000).toFixed(1)} s`);
    }
    const cache = defaultCacheDir();
    built = await buildLinuxWorkload({ out: join(cache, 'test-image'), cache, beacon: BINARY, log: note });
    note(
      `${built.image}: ${(built.bytes / 1024 / 1024).toFixed(1)} MiB (${built.kernel}), ` +
        `${built.reused ? 'unchanged since the last build' : 'built'} in ${(built.ms / 1000).toFixed(1)} s`,
    );
    dir = await mkdtemp(join(tmpdir(), 'vm-linux-'));
    await mkdir(join(dir, 'workloads'));
    await copyFile(built.image, join(dir, 'workloads', IMAGE_NAME));
  }, { timeout: BUILD_TIMEOUT_MS });

  after(async () => {
    // A VM still running (the test failed or timed out) is switched off: runVm kills QEMU and resolves.
    stop.abort();
    if (vm !== undefined) await Promise.race([vm.catch(() => undefined), delay(10_000, undefined, { ref: false })]);
    await running?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  test('boots, runs beacon boot and beacon report, reboots, gets poweroff.efi and powers off', { timeout: VM_TIMEOUT_MS + 30_000 }, async () => {
    running = await startDispatch(
      {
        dir: join(dir, 'workloads'),
        reports: join(dir, 'reports'),
        github: undefined,
        stateDir: join(dir, 'state'),
        host: '127.0.0.1',
        port: 0,
        path: '/dispatch',
        mdns: false,
        maxReportBytes: 64 * 1024,
        downloadTimeoutMs: 60_000,
        filters: [],
      },
      { log: (subsystem, message) => logs.push(`${subsystem}: ${message}`) },
    );
    const queue = running.queue;

    let startedAt = Date.now();
    const at = () => ((Date.now() - startedAt) / 1000).toFixed(1);
    const states: string[] = [];
    const moments: string[] = [];
    queue.subscribe((event) => {
      if (event.kind === 'job') {
        if (states.at(-1) !== event.job.state) states.push(event.job.state);
        moments.push(`${at()} s ${event.job.name}: ${event.what} → ${event.job.state}`);
      } else if (event.kind === 'poweroff') {
        moments.push(`${at()} s poweroff.efi to ${event.ip}: ${event.what}`);
      }
    });
    // Serial milestones, timed as they arrive.
    const milestones: Array<[RegExp, string]> = [
      [/Linux version /, 'kernel started'],
      [/Run \/init as init process/, '/init started'],
      [/linux-workload: eth0 up/, 'eth0 configured'],
      [/beacon boot exited/, 'beacon boot done'],
      [/beacon report exited/, 'beacon report done'],
      [/reboot: Restarting system/, 'reboot'],
    ];
    let serialText = '';
    const serialLog = join(dir, 'serial.log');

    startedAt = Date.now();
    let result: VmResult;
    try {
      vm = runVm({
        url: running.url,
        serialLog,
        memoryMiB: 1024,
        timeoutMs: VM_TIMEOUT_MS,
        maxBoots: 3,
        signal: stop.signal,
        log: (m) => moments.push(`${at()} s vm: ${m}`),
        onSerial: (chunk) => {
          serialText += chunk.toString('utf8');
          for (const seen of milestones.filter(([pattern]) => pattern.test(serialText))) {
            moments.push(`${at()} s serial: ${seen[1]}`);
            milestones.splice(milestones.indexOf(seen), 1);
          }
        },
      });
      result = await vm;
    } finally {
      note(`timeline:\n  ${moments.join('\n  ')}`);
    }
    const failure = () => `${result.message}\n--- dispatch log\n${logs.join('\n')}\n--- serial (tail)\n${result.serial.slice(-6_000)}`;

    assert.equal(result.end, 'poweroff', failure());
    assert.equal(result.boots, 2, `one boot into Linux, one into poweroff.efi\n${failure()}`);
    assert.deepEqual(
      result.events.filter((e) => e.event === 'SHUTDOWN').map((e) => e.data?.reason),
      ['guest-shutdown'],
      failure(),
    );
    assert.deepEqual(
      result.events.filter((e) => e.event === 'RESET').map((e) => e.data?.reason),
      ['guest-reset'],
      failure(),
    );

    // The job: downloaded by the firmware, booting (beacon boot), reported, finished.
    const [job] = queue.list();
    assert.equal(job?.name, IMAGE_NAME);
    assert.equal(job.state, 'finished', failure());
    for (const state of ['downloading', 'booting', 'reported', 'finished']) assert.ok(states.includes(state), `${state} in ${states.join(' → ')}`);
    assert.ok(states.indexOf('booting') < states.indexOf('reported') && states.indexOf('reported') < states.indexOf('finished'), states.join(' → '));
    assert.equal(job.reports.length, 1);

    // The report: the title /init gave it, and the guest's own uname output as its body.
    const files = (await readdir(join(dir, 'reports'))).filter((f) => f.endsWith('.md'));
    assert.equal(files.length, 1, files.join(', '));
    const report = splitReport(await readFile(join(dir, 'reports', files[0]!), 'utf8'));
    assert.equal(report.front.title, '"linux-workload on vm-525400123456"');
    const uname = /^Linux vm-525400123456 (\S+) #1 SMP .* x86_64 GNU\/Linux$/m.exec(report.body);
    assert.ok(uname, `uname -a in the body:\n${report.body}`);
    assert.ok(built.kernel.endsWith(uname[1]!), `the kernel that ran (${uname[1]}) is the one built in (${built.kernel})`);
    assert.match(report.body, /^MemTotal: /m);
    assert.match(report.body, /^ok$/m);

    // And the guest's console says the same: beacon found dispatch through the firmware's boot option.
    assert.match(result.serial, /beacon: boot taken by http:\/\/10\.0\.2\.2:\d+\/dispatch \(firmware\): booting linux-workload\.efi/);
    assert.match(result.serial, /beacon boot exited 0/);
    assert.match(result.serial, /beacon report exited 0/);
  });
});
