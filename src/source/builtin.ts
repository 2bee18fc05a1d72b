import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { ByteRange, Workload } from './types.ts';

/** efi/ sits two levels up from both src/source/ and dist/source/. */
const EFI_DIR = new URL('../../efi/', import.meta.url);

/** One of the tiny EFI applications dispatch serves itself (efi/), held in memory: they are 1 KiB. */
export async function builtinEfi(file: 'poweroff.efi' | 'reboot.efi'): Promise<Workload> {
  const url = new URL(file, EFI_DIR);
  let bytes: Buffer;
  try {
    bytes = await readFile(url);
  } catch (err) {
    throw new Error(`cannot read ${fileURLToPath(url)}: ${(err as Error).message} (run \`npm run build:efi\`)`, { cause: err });
  }
  return memoryWorkload(file, bytes);
}

export function memoryWorkload(name: string, bytes: Uint8Array): Workload {
  return {
    name,
    size: bytes.byteLength,
    contentType: 'application/efi',
    read: (range?: ByteRange) => Readable.from([Buffer.from(bytes.subarray(range?.start ?? 0, (range?.end ?? bytes.byteLength - 1) + 1))]),
  };
}
