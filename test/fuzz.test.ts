import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { FIRMWARE_HEADERS, send } from './fleet/http.ts';
import { BOOTED, makeCase, seeded, type Case } from './support/fuzz-cases.ts';
import { raw, type RawOutcome } from './support/raw.ts';

// Issue #7: a seeded fuzz pass over the boot (HEAD/GET) and report (PUT)
// handlers of dispatch running as its own process, as a lab runs it: random
// bytes on raw sockets, random, oversized and duplicated headers, bad
// Content-Length, bad Range values, bad JSON. Every answer is a 2xx or a 4xx,
// no socket hangs, the process neither crashes nor grows without bound, and it
// still answers a clean HEAD afterwards.

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MAIN = join(ROOT, 'src/cli/main.ts');
const SEED = 0x7_2026;
const WARMUP = 500;
const TOTAL = 3_000;
const WORKERS = 16;

/** The dispatch process's resident set, from /proc. */
async function rssKiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)![1]);
}

describe('fuzz', () => {
  test(`${TOTAL} seeded hostile requests: never a 5xx, never a hung socket, no crash, bounded memory`, { timeout: 60_000 }, async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'dispatch-fuzz-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const workloads = join(dir, 'workloads');
    await mkdir(workloads);
    for (let i = 0; i < 40; i += 1) await writeFile(join(workloads, `w${String(i).padStart(2, '0')}.efi`), Buffer.alloc(4096, i));
    // A capped old space: V8 then collects before it grows, on Node 20 as on 24 (whose heap grows lazier),
    // so what RSS still gains is what could not be collected.
    const child = spawn(process.execPath, ['--max-old-space-size=64', '--import', 'tsx', MAIN, '--dir', workloads, '--reports', join(dir, 'reports'), '--state-dir', join(dir, 'state'), '--bind', '127.0.0.1:0', '--no-mdns'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    t.after(() => child.kill('SIGKILL'));
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no URL in ${stdout}${stderr}`)), 20_000);
      child.stdout.on('data', () => {
        const match = /listening on (\S+)/.exec(stdout);
        if (match) {
          clearTimeout(timer);
          resolve(match[1]!);
        }
      });
    });
    const port = Number(new URL(url).port);
    const agent = new http.Agent({ keepAlive: false });
    t.after(() => agent.destroy());
    for (const ip of BOOTED) {
      for (const method of ['HEAD', 'GET', 'POST']) {
        const answer = await send({ url, method, localAddress: ip, agent, timeoutMs: 5_000, headers: method === 'POST' ? {} : FIRMWARE_HEADERS });
        assert.equal(answer.status, 200, `${method} from ${ip}`);
      }
    }

    const rand = seeded(SEED);
    const cases = Array.from({ length: TOTAL }, () => makeCase(rand));
    const statuses = new Map<string, number>();
    const problems: string[] = [];
    const check = (c: Case, outcome: RawOutcome) => {
      const key = `${c.kind} ${outcome.status ?? 'no answer'}`;
      statuses.set(key, (statuses.get(key) ?? 0) + 1);
      const what = `${c.kind} from ${c.ip}: ${JSON.stringify(c.bytes.subarray(0, 80).toString('latin1'))}`;
      if (outcome.end === 'timeout') problems.push(`hung: ${what}`);
      else if (outcome.status === null) problems.push(`closed without an answer: ${what}`);
      else if (outcome.status >= 500 || outcome.status < 200) problems.push(`${outcome.status}: ${what}`);
    };
    const pass = async (from: number, to: number) => {
      let next = from;
      await Promise.all(
        Array.from({ length: WORKERS }, async () => {
          while (next < to) {
            const c = cases[next]!;
            next += 1;
            check(c, await raw({ port, localAddress: c.ip, chunks: [c.bytes], limitMs: 10_000 }));
          }
        }),
      );
    };

    const before = await rssKiB(child.pid!);
    const started = Date.now();
    await pass(0, WARMUP);
    const warm = await rssKiB(child.pid!);
    await pass(WARMUP, TOTAL);
    const after = await rssKiB(child.pid!);
    const ms = Date.now() - started;

    const clean = await send({ url, method: 'HEAD', localAddress: '127.0.1.1', timeoutMs: 5_000, headers: FIRMWARE_HEADERS });
    assert.equal(clean.status, 200, 'a clean HEAD is still answered');
    assert.equal(child.exitCode, null, 'dispatch is still running');
    assert.deepEqual(problems.slice(0, 10), [], `${problems.length} of ${TOTAL} requests went wrong`);
    assert.equal(stderr, '', 'nothing on stderr: no stack trace, no adapter error');

    const lines = stdout.split('\n').filter((l) => / refused \(\d{3}\)/.test(l)).length;
    t.diagnostic(`${TOTAL} requests in ${ms} ms; answers: ${[...statuses].sort().map(([k, n]) => `${k}×${n}`).join(', ')}`);
    t.diagnostic(`RSS ${Math.round(before / 1024)} MiB at start, ${Math.round(warm / 1024)} MiB after ${WARMUP} requests, ${Math.round(after / 1024)} MiB after ${TOTAL}; ${lines} refusal log lines`);
    // Generous: V8 grows its heap before it collects. A leak of even 10 KiB per request would pass 25 MiB here.
    assert.ok(after - warm < 64 * 1024, `RSS grew ${Math.round((after - warm) / 1024)} MiB after the warm-up`);

    child.kill('SIGTERM');
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.equal(code, 0, 'and it stops cleanly');
  });
});
