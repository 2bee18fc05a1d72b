import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { contentTypeForFile, matchesFilter } from './content-types.ts';
import { SourceError, type ByteRange, type Workload, type WorkloadSource } from './types.ts';

export interface DirectorySourceOptions {
  readonly dir: string;
  readonly filters: readonly string[];
  readonly log: (message: string) => void;
}

/** Workloads are the `*.efi`, `*.iso` and `*.img` files directly in one directory. */
export function directorySource(options: DirectorySourceOptions): WorkloadSource {
  const dir = resolve(options.dir);
  return {
    description: `directory ${dir}`,
    async load() {
      let names: string[];
      try {
        names = await readdir(dir);
      } catch (err) {
        throw new SourceError(`cannot read workload directory ${dir}: ${describe(err)}`, { cause: err });
      }
      const workloads: Workload[] = [];
      const ignored: string[] = [];
      // Code-unit order, not locale order: the run order must not depend on the machine's locale.
      for (const name of names.sort(byCodeUnit)) {
        const contentType = contentTypeForFile(name);
        const path = join(dir, name);
        const info = await stat(path).catch(() => undefined);
        if (!contentType || !info?.isFile()) {
          ignored.push(name);
          continue;
        }
        if (info.size === 0) {
          ignored.push(`${name} (empty)`);
          continue;
        }
        if (!matchesFilter(name, options.filters)) continue;
        workloads.push({ ...fileWorkload(name, path, info.size, contentType), fingerprint: `${name} ${info.size} bytes, modified ${new Date(info.mtimeMs).toISOString()}` });
      }
      if (ignored.length > 0) {
        options.log(`ignoring ${ignored.length} file(s) in ${dir} that are not workloads (*.efi, *.iso, *.img): ${ignored.join(', ')}`);
      }
      if (workloads.length === 0) {
        const what = options.filters.length > 0 ? ` matching ${options.filters.map((f) => JSON.stringify(f)).join(' or ')}` : '';
        throw new SourceError(`no workloads${what} in ${dir} (looked for *.efi, *.iso, *.img)`);
      }
      return workloads;
    },
  };
}

function fileWorkload(name: string, path: string, size: number, contentType: Workload['contentType']): Workload {
  return {
    name,
    size,
    contentType,
    // Never past the size we announced: a file that grew since start must not
    // make GET disagree with the Content-Length HEAD gave.
    read: (range?: ByteRange) =>
      createReadStream(path, { start: range?.start ?? 0, end: range?.end ?? size - 1, highWaterMark: 256 * 1024 }),
    file: () => path,
  };
}

function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function describe(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT') return 'no such directory';
  if (code === 'ENOTDIR') return 'not a directory';
  if (code === 'EACCES') return 'permission denied';
  return err instanceof Error ? err.message : String(err);
}
