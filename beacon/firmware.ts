import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BOOT_CURRENT_FILE, BOOT_ORDER_FILE, bootOptionNumber, bootUris, type FirmwareVariables } from './efivars.ts';

/** Where Linux mounts efivarfs. */
export const DEFAULT_EFIVARS = '/sys/firmware/efi/efivars';

// A load option is a few hundred bytes; anything this big is not one.
const MAX_VARIABLE_BYTES = 64 * 1024;

async function readVariable(path: string, log: (message: string) => void): Promise<Uint8Array | undefined> {
  try {
    const bytes = await readFile(path);
    if (bytes.byteLength > MAX_VARIABLE_BYTES) {
      log(`${path}: ${bytes.byteLength} bytes, too big for a boot variable; skipped`);
      return undefined;
    }
    return bytes;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') log(`${path}: cannot read (${code ?? (err as Error).message}); skipped`);
    return undefined;
  }
}

/** Read BootCurrent, BootOrder and every Boot#### from an efivarfs directory. A missing directory has none. */
export async function readFirmwareVariables(dir: string, log: (message: string) => void = () => undefined): Promise<FirmwareVariables> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    log(`${dir}: ${code === 'ENOENT' ? 'not there (not booted through UEFI, or efivarfs not mounted)' : `cannot list (${code ?? (err as Error).message})`}`);
    return { options: new Map() };
  }
  const options = new Map<number, Uint8Array>();
  for (const name of names.sort()) {
    const number = bootOptionNumber(name);
    if (number === undefined) continue;
    const bytes = await readVariable(join(dir, name), log);
    if (bytes !== undefined) options.set(number, bytes);
  }
  return {
    bootCurrent: await readVariable(join(dir, BOOT_CURRENT_FILE), log),
    bootOrder: await readVariable(join(dir, BOOT_ORDER_FILE), log),
    options,
  };
}

/** The HTTP boot URIs in an efivarfs directory, most likely first. */
export async function firmwareBootUris(dir: string, log: (message: string) => void = () => undefined): Promise<string[]> {
  return bootUris(await readFirmwareVariables(dir, log));
}
