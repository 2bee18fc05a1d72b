// Real UEFI firmware (EDK2 OVMF under QEMU) HTTP-boots from dispatch: two workloads that
// reboot without reporting, then poweroff.efi switches the machine off.
import { strict as assert } from 'node:assert';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { buildEfiApp } from '../efi/pe.ts';
import { splitReport, startLab } from './fleet/lab.ts';
import { bootVm, firmwareMissing, plainConsole, recordingProxy, wireHeader, type Exchange } from './vm/harness.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const missing = firmwareMissing();

const FIRST = 'w1 vm test workload: booted by OVMF, rebooting without a report\r\n';
const SECOND = 'w2 vm test workload: booted by OVMF, rebooting without a report\r\n';
const POWEROFF = 'dispatch: nothing left to run, powering off\r\n';
const head = (message: string) => message.slice(0, 12);

/** The firmware's requests, exactly as FACTS §A measured them: no port in Host, no Range. */
function assertFirmwareRequest(exchange: Exchange, method: 'HEAD' | 'GET') {
  assert.equal(exchange.request.start, `${method} /dispatch HTTP/1.1`);
  assert.deepEqual(exchange.request.headers, ['Host: 10.0.2.2', 'Accept: */*', 'User-Agent: UefiHttpBoot/1.0']);
  assert.equal(wireHeader(exchange.request, 'range'), undefined);
}

test('OVMF boots workload 1, workload 2, then poweroff.efi switches it off', { skip: missing, timeout: 120_000 }, async (t) => {
  const first = buildEfiApp({ resetType: 'warm', message: FIRST });
  const second = buildEfiApp({ resetType: 'warm', message: SECOND });
  const lab = await startLab(t, { workloads: { '1-first.efi': first, '2-second.efi': second } });
  const proxy = await recordingProxy(t, Number(new URL(lab.origin).port));

  const vm = await bootVm(t, { url: `http://127.0.0.1:${proxy.port}/dispatch`, timeoutMs: 75_000, maxBoots: 5, memoryMiB: 512 });
  const console = plainConsole(vm.serial);
  t.diagnostic(`VM ended after ${vm.elapsedMs} ms: ${vm.message}; QMP ${vm.events.map((e) => `${e.event}@${e.atMs}`).join(' ')}`);

  // QEMU ended because the guest switched itself off, after two warm resets.
  assert.equal(vm.end, 'poweroff', `${vm.message}\n${console}`);
  assert.equal(vm.exitCode, 0);
  assert.equal(vm.boots, 3);
  const qmp = vm.events.filter((e) => e.event === 'RESET' || e.event === 'SHUTDOWN').map((e) => `${e.event} ${String(e.data?.reason)}`);
  assert.deepEqual(qmp, ['RESET guest-reset', 'RESET guest-reset', 'SHUTDOWN guest-shutdown']);

  // Each boot: HEAD then GET for the same bytes, on one connection.
  const exchanges = proxy.exchanges();
  assert.deepEqual(exchanges.map((e) => e.request.start.split(' ')[0]), ['HEAD', 'GET', 'HEAD', 'GET', 'HEAD', 'GET']);
  const served = [first, second, await readFile(join(ROOT, 'efi/poweroff.efi'))];
  for (let boot = 0; boot < 3; boot++) {
    const head = exchanges[2 * boot]!;
    const get = exchanges[2 * boot + 1]!;
    assertFirmwareRequest(head, 'HEAD');
    assertFirmwareRequest(get, 'GET');
    assert.equal(head.connection, get.connection, `boot ${boot + 1}: HEAD and GET share a connection`);
    for (const response of [head.response, get.response]) {
      assert.ok(response, `boot ${boot + 1}: answered`);
      assert.equal(response.start, 'HTTP/1.1 200 OK');
      assert.equal(wireHeader(response, 'content-type'), 'application/efi');
      assert.equal(wireHeader(response, 'content-length'), String(served[boot]!.length));
    }
    assert.ok(get.response!.body.equals(served[boot]!), `boot ${boot + 1}: served the expected bytes`);
  }

  // The console shows each workload, then the committed poweroff.efi, in that order.
  // A reset right after the print can drop the tail still in the UART: match each message's head.
  const at = [FIRST, SECOND, POWEROFF].map((m) => console.indexOf(head(m)));
  assert.ok(at.every((i) => i >= 0), `every message on the console:\n${console}`);
  assert.deepEqual([...at].sort((a, b) => a - b), at, 'in boot order');

  // Both jobs failed for the reboot, and their failure reports were written.
  const jobs = await lab.jobs();
  assert.deepEqual(
    jobs.map((j) => [j.name, j.state, j.reason, j.ip]),
    [
      ['1-first.efi', 'failed', 'rebooted without report', '127.0.0.1'],
      ['2-second.efi', 'failed', 'rebooted without report', '127.0.0.1'],
    ],
  );
  await lab.until('two failure reports', async () => (await readdir(lab.reports).catch(() => [])).filter((f) => f.endsWith('-failed.md')).length === 2);
  const reports = (await readdir(lab.reports)).filter((f) => f.endsWith('-failed.md')).sort();
  for (const [i, name] of ['1-first.efi', '2-second.efi'].entries()) {
    const file = reports.find((f) => f.includes(name));
    assert.ok(file, `a failure report for ${name} in ${reports.join(', ')}`);
    const { front, body } = splitReport(await readFile(join(lab.reports, file), 'utf8'));
    assert.match(JSON.stringify(front) + body, /rebooted without report/, `report ${i + 1} says why`);
  }
});
