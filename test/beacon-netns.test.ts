/**
 * beacon finding dispatch on its own, as in a lab: two dispatch instances in namespace A,
 * a "server" in namespace B that HTTP-boots from the second one (as its firmware would),
 * then runs beacon with no URL and no firmware variables. beacon must find both over mDNS
 * and reach the one that holds its job (the other answers 417). Skipped, with the reason,
 * where network namespaces cannot be made.
 */
import { strict as assert } from 'node:assert';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Lab, unavailable, which, type Started } from './netns/lab.ts';

const reason = (await unavailable()) ?? ((await which('curl')) ? undefined : 'curl is not installed');
const NET = `10.79.${(process.pid % 200) + 20}`;
const SERVER = `${NET}.1`;
const PORTS = [18180, 18181] as const;

describe('beacon finds dispatch over mDNS', { skip: reason && `skipped: ${reason}` }, () => {
  const lab = new Lab();
  let a = '';
  let b = '';
  let scratch = '';
  const dispatches: Started[] = [];

  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'dispatch-beacon-netns-'));
    await mkdir(join(scratch, 'efivars'));
    a = await lab.namespace('c');
    b = await lab.namespace('d');
    await lab.link(a, b, NET, 5);
    for (const port of PORTS) {
      const started = lab.spawn(a, process.execPath, ['--import', 'tsx', 'src/cli/main.ts', '--dir', 'examples/workloads', '--bind', `0.0.0.0:${port}`, '--reports', join(scratch, `reports-${port}`), '--state-dir', join(scratch, `state-${port}`)]);
      await started.stdout.wait(/mdns {2}advertising dispatch-[0-9a-f]{4}\._dispatch\._tcp\.local/);
      await started.stdout.wait(/listening on/);
      dispatches.push(started);
    }
  });

  after(async () => {
    await lab.destroy();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  const beacon = (args: string[], input?: string) =>
    lab.exec(b, 'sh', ['-c', `${input === undefined ? '' : `printf '%s' "$BODY" | `}"${process.execPath}" --import tsx beacon/main.ts --efivars "${join(scratch, 'efivars')}" --timeout 40s --verbose ${args.map((x) => `'${x}'`).join(' ')}`], {
      env: { ...process.env, BODY: input ?? '' },
      timeoutMs: 45_000,
    });

  test('with no URL, beacon boot and report reach the dispatch that holds the job', async () => {
    const holder = `http://${SERVER}:${PORTS[1]}/dispatch`;
    // The server's firmware: HEAD then GET from the second dispatch.
    const head = await lab.exec(b, 'curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-I', holder]);
    assert.equal(head.stdout, '200', head.stderr);
    const get = await lab.exec(b, 'curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', holder]);
    assert.equal(get.stdout, '200', get.stderr);

    const boot = await beacon(['boot']);
    assert.equal(boot.code, 0, boot.stdout + boot.stderr);
    assert.match(boot.stdout, new RegExp(`boot taken by http://${SERVER.replace(/\./g, '\\.')}:${PORTS[1]}/dispatch \\(mDNS\\)`));

    const report = await beacon(['report', '--title', 'memtest: 0 errors', '--label', 'memtest'], 'all 64 GiB tested\n');
    assert.equal(report.code, 0, report.stdout + report.stderr);
    const files = await readdir(join(scratch, `reports-${PORTS[1]}`));
    assert.equal(files.length, 1);
    const text = await readFile(join(scratch, `reports-${PORTS[1]}`, files[0]!), 'utf8');
    assert.match(text, /^title: "memtest: 0 errors"$/m);
    assert.match(text, /^labels: \["memtest"\]$/m);
    assert.match(text, new RegExp(`^ip: "${NET.replace(/\./g, '\\.')}\\.2"$`, 'm'));
    assert.ok(text.endsWith('\n---\nall 64 GiB tested\n'));
    // The other dispatch holds nothing for this server and wrote nothing.
    assert.deepEqual(await readdir(join(scratch, `reports-${PORTS[0]}`)).catch(() => []), []);
    // A job event line ends with its event; the other one may log its 417 refusal, which names no job.
    assert.match(dispatches[1]!.stdout.text, /\S+\.efi {2}\S+ {2}booting$/m);
    assert.doesNotMatch(dispatches[0]!.stdout.text, /\.efi {2}\S+ {2}booting$/m);
  });
});
