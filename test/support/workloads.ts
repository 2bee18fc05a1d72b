import { Readable } from 'node:stream';
import type { BootContentType, Workload } from '../../src/source/index.ts';

/** An in-memory workload whose bytes are a pattern of its name, for unit tests. */
export function fakeWorkload(name: string, size = 4096, contentType: BootContentType = 'application/efi'): Workload {
  const bytes = Buffer.alloc(size, name);
  return {
    name,
    size,
    contentType,
    read: (range) => Readable.from([bytes.subarray(range?.start ?? 0, (range?.end ?? size - 1) + 1)]),
  };
}
