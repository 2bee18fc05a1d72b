// Disk images over HTTP boot: OVMF copies an .img (FAT, no partition table) or an .iso
// (El Torito, EFI platform) into a RAM disk and starts \EFI\BOOT\BOOTX64.EFI from it.
import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { buildEfiApp } from '../efi/pe.ts';
import { startLab } from './fleet/lab.ts';
import { bootVm, firmwareMissing, mediaToolsMissing, plainConsole, recordingProxy, wireHeader } from './vm/harness.ts';

const run = promisify(execFile);
const missing = firmwareMissing() ?? mediaToolsMissing();

const FROM_IMG = 'img vm test media: BOOTX64.EFI from a FAT image in a RAM disk\r\n';
const FROM_ISO = 'iso vm test media: BOOTX64.EFI from an El Torito ISO in a RAM disk\r\n';
const POWEROFF = 'dispatch: nothing left to run, powering off\r\n';
const head = (message: string) => message.slice(0, 12);

/** A FAT image with no partition table holding \EFI\BOOT\BOOTX64.EFI (dosfstools + mtools). */
async function fatImage(dir: string, name: string, app: Buffer): Promise<Buffer> {
  const image = join(dir, name);
  const efi = join(dir, `${name}.efi`);
  await writeFile(efi, app);
  await run('mkfs.fat', ['-C', image, '1440']);
  await run('mmd', ['-i', image, '::/EFI', '::/EFI/BOOT']);
  await run('mcopy', ['-i', image, efi, '::/EFI/BOOT/BOOTX64.EFI']);
  return readFile(image);
}

/** An ISO whose El Torito EFI boot image is such a FAT image (xorriso). */
async function efiIso(dir: string, app: Buffer): Promise<Buffer> {
  const tree = join(dir, 'iso');
  await mkdir(tree);
  await writeFile(join(tree, 'efiboot.img'), await fatImage(dir, 'efiboot.img', app));
  const iso = join(dir, 'cd.iso');
  await run('xorriso', ['-as', 'mkisofs', '-quiet', '-V', 'DISPATCH_TEST', '-e', 'efiboot.img', '-no-emul-boot', '-o', iso, tree]);
  return readFile(iso);
}

test('an .img and an .iso workload boot through OVMF’s RAM disk, then poweroff.efi', { skip: missing, timeout: 120_000 }, async (t) => {
  const scratch = await mkdtemp(join(tmpdir(), 'dispatch-vm-media-'));
  t.after(() => rm(scratch, { recursive: true, force: true }));
  const img = await fatImage(scratch, 'disk.img', buildEfiApp({ resetType: 'warm', message: FROM_IMG }));
  const iso = await efiIso(scratch, buildEfiApp({ resetType: 'warm', message: FROM_ISO }));

  const lab = await startLab(t, { workloads: { '1-disk.img': img, '2-cd.iso': iso } });
  const proxy = await recordingProxy(t, Number(new URL(lab.origin).port));
  const vm = await bootVm(t, { url: `http://127.0.0.1:${proxy.port}/dispatch`, timeoutMs: 75_000, maxBoots: 5, memoryMiB: 512 });
  const console = plainConsole(vm.serial);
  t.diagnostic(`VM ended after ${vm.elapsedMs} ms: ${vm.message}; QMP ${vm.events.map((e) => `${e.event}@${e.atMs}`).join(' ')}`);

  assert.equal(vm.end, 'poweroff', `${vm.message}\n${console}`);
  assert.equal(vm.boots, 3);

  // The firmware was told what each one is by Content-Type alone (the URL has no extension).
  const gets = proxy.exchanges().filter((e) => e.request.start.startsWith('GET '));
  assert.deepEqual(
    gets.map((e) => wireHeader(e.response!, 'content-type')),
    ['application/vnd.efi-img', 'application/vnd.efi-iso', 'application/efi'],
  );
  assert.ok(gets[0]!.response!.body.equals(img));
  assert.ok(gets[1]!.response!.body.equals(iso));

  // A reset right after the print can drop the tail still in the UART: match each message's head.
  const at = [FROM_IMG, FROM_ISO, POWEROFF].map((m) => console.indexOf(head(m)));
  assert.ok(at.every((i) => i >= 0), `every message on the console:\n${console}`);
  assert.deepEqual([...at].sort((a, b) => a - b), at, 'in boot order');

  const jobs = await lab.jobs();
  assert.deepEqual(
    jobs.map((j) => [j.name, j.state, j.reason]),
    [
      ['1-disk.img', 'failed', 'rebooted without report'],
      ['2-cd.iso', 'failed', 'rebooted without report'],
    ],
  );
});
