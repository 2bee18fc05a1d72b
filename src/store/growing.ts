import type { FileHandle } from 'node:fs/promises';
import { open } from 'node:fs/promises';
import { Readable } from 'node:stream';

/** What a reader needs to know about a file that is still being written. */
export interface Growth {
  /** Resolves once the partial file exists (rejects if the download failed before that). */
  created: Promise<void>;
  /**
   * Bytes a reader may have: what is written, less the last byte until the
   * whole file is verified, so a bad download never reaches a reader whole.
   */
  available(): number;
  /** Resolves when more is written, the writing ends, or it fails (then rejects). */
  next(): Promise<void>;
}

const CHUNK = 256 * 1024;

/**
 * Read bytes [start, end] of a file (its partial name, or its final one once
 * complete) while another task is still writing it:
 * read what is there, wait for more, end at `end`. This is how a server is
 * served an asset as it arrives from GitHub instead of after.
 */
export function readGrowing(paths: readonly [partial: string, final: string], growth: Growth, start: number, end: number): Readable {
  let handle: FileHandle | undefined;
  let position = start;
  return new Readable({
    highWaterMark: CHUNK,
    async construct(callback) {
      try {
        await growth.created;
        // The download may finish and rename the partial file before we open it.
        handle = await open(paths[0], 'r').catch((err: NodeJS.ErrnoException) => {
          if (err.code === 'ENOENT') return open(paths[1], 'r');
          throw err;
        });
        callback();
      } catch (err) {
        callback(err as Error);
      }
    },
    async read(size) {
      try {
        while (growth.available() <= position) await growth.next();
        const length = Math.min(size || CHUNK, CHUNK, growth.available() - position, end + 1 - position);
        const buffer = Buffer.allocUnsafe(length);
        const { bytesRead } = await handle!.read(buffer, 0, length, position);
        position += bytesRead;
        this.push(bytesRead === length ? buffer : buffer.subarray(0, bytesRead));
        if (position > end) this.push(null);
      } catch (err) {
        this.destroy(err as Error);
      }
    },
    destroy(err, callback) {
      const closing = handle?.close();
      handle = undefined;
      if (closing) closing.then(() => callback(err), () => callback(err));
      else callback(err);
    },
  });
}
