// Regenerates the checked-in .efi files: `npm run build:efi` (or `npx tsx efi/build.ts`).
// Output is deterministic, so a rebuild that changes any bytes means pe.ts or the list
// below changed — test/efi.test.ts holds the committed files to that.

import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildEfiApp, type EfiAppOptions } from './pe.ts';

const efiDir = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(efiDir, '..');
const workloadsDir = resolve(repoRoot, 'examples', 'workloads');

interface Artifact extends EfiAppOptions {
  path: string;
}

// Example workloads are served in name order, hence the numeric prefixes. None of them
// report a result: they only show dispatch handing out images one after another, each
// warm reset bringing the firmware back to dispatch for the next one.
const artifacts: Artifact[] = [
  {
    path: resolve(efiDir, 'poweroff.efi'),
    resetType: 'shutdown',
    message: 'dispatch: nothing left to run, powering off\r\n',
  },
  {
    path: resolve(efiDir, 'reboot.efi'),
    resetType: 'warm',
    message: 'dispatch: reboot.efi, warm reset\r\n',
  },
  {
    path: resolve(workloadsDir, '01-hello.efi'),
    resetType: 'warm',
    message: 'example workload 01-hello: hello from dispatch; rebooting without reporting\r\n',
  },
  {
    path: resolve(workloadsDir, '02-memtest-stub.efi'),
    resetType: 'warm',
    message:
      'example workload 02-memtest-stub: pretends to test memory; rebooting without reporting\r\n',
  },
  {
    path: resolve(workloadsDir, '03-goodbye.efi'),
    resetType: 'warm',
    message: 'example workload 03-goodbye: last example; rebooting without reporting\r\n',
  },
];

for (const artifact of artifacts) {
  const bytes = buildEfiApp({ resetType: artifact.resetType, message: artifact.message });
  mkdirSync(dirname(artifact.path), { recursive: true });
  writeFileSync(artifact.path, bytes);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const name = relative(repoRoot, artifact.path);
  console.log(`${name.padEnd(38)} ${String(bytes.length).padStart(5)} bytes  sha256 ${sha256}`);
}
