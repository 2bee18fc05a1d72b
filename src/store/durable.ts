import { randomBytes } from 'node:crypto';
import { link, open, rename, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/**
 * Files that survive a crash or a power cut: written to a temporary name,
 * fsynced, moved into place, then the directory fsynced. A crash half-way
 * leaves at most a temporary file, never half a file under its real name.
 */

/** Write `path`, replacing what was there. */
export async function writeAtomic(path: string, data: string): Promise<void> {
  const temp = await writeTemp(dirname(path), data);
  try {
    await rename(temp, path);
  } catch (err) {
    await unlink(temp).catch(() => undefined);
    throw err;
  }
  await syncDirectory(dirname(path));
}

/** Write a new file `stem.ext` in `dir`, or `stem-2.ext`, … if that name is taken; never overwrite. */
export async function writeUnique(dir: string, stem: string, ext: string, data: string): Promise<string> {
  const temp = await writeTemp(dir, data);
  try {
    for (let n = 1; ; n += 1) {
      const path = join(dir, n === 1 ? `${stem}${ext}` : `${stem}-${n}${ext}`);
      try {
        await link(temp, path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue;
        throw err;
      }
      await syncDirectory(dir);
      return path;
    }
  } finally {
    await unlink(temp).catch(() => undefined);
  }
}

/** Remove a file for good (the removal itself made durable). */
export async function removeDurably(path: string): Promise<void> {
  await unlink(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
  await syncDirectory(dirname(path));
}

async function writeTemp(dir: string, data: string): Promise<string> {
  const temp = join(dir, `.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
  const handle = await open(temp, 'wx');
  try {
    await handle.writeFile(data, 'utf8');
    await handle.sync();
  } catch (err) {
    await handle.close();
    await unlink(temp).catch(() => undefined);
    throw err;
  }
  await handle.close();
  return temp;
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
