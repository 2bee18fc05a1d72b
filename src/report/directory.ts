import { randomBytes } from 'node:crypto';
import { access, mkdir, open, readFile, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Log } from '../log.ts';
import { writeAtomic, writeUnique, type WriteOptions } from '../store/index.ts';
import { renderMarkdown } from './markdown.ts';
import { ReportError, type Filing, type ReportSink, type StoredFiling } from './types.ts';

/**
 * Reports as Markdown files, one per report. Storing is filing: once the file
 * is written, synced and linked into place under a name of its own, it is
 * where it belongs.
 */
export function directorySink(dir: string, log?: Log): ReportSink {
  const root = resolve(dir);
  // A folder not there yet (or removed since) is made by the write itself.
  const options = sayingRemade(log);
  return {
    description: `directory ${root}`,
    async store(filing) {
      const ref = await writeUnique(root, fileStem(filing), '.md', renderMarkdown(filing), options);
      if (filing.late) await noteOnFailure(filing.late.failureKey, ref, filing);
      return { filing, ref };
    },
    async file(stored: StoredFiling) {
      return stored.ref;
    },
    async whereFiled(ref: string) {
      return (await access(ref).then(() => true, () => false)) ? ref : undefined;
    },
  };
}

/** Durable writes that say on `log` when a report folder was gone and had to be made again. */
export function sayingRemade(log: Log | undefined): WriteOptions {
  return { remade: (folder) => log?.('report', `${folder} was gone (removed while dispatch runs?): made it again`) };
}

/** Check up front that reports can be written there, so a bad --reports fails at start, not at the first report. */
export async function checkReportDirectory(dir: string): Promise<void> {
  const root = resolve(dir);
  try {
    await mkdir(root, { recursive: true });
    const probe = join(root, `.dispatch-probe-${randomBytes(4).toString('hex')}`);
    const handle = await open(probe, 'wx');
    await handle.close();
    await unlink(probe);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ReportError(`cannot write reports to ${root}: ${code === 'EACCES' ? 'permission denied' : code === 'ENOTDIR' || code === 'EEXIST' ? 'not a directory' : (err as Error).message}`, { cause: err });
  }
}

/**
 * Rule 4: a report that came after its job timed out is named at the end of
 * the failure's file (rewritten whole, atomically), as a comment would be on
 * an issue. Before the 200, like the report itself.
 */
async function noteOnFailure(failure: string | null, late: string, filing: Filing): Promise<void> {
  if (failure === null) return;
  const text = await readFile(failure, 'utf8').catch(() => undefined);
  if (text === undefined || text.includes(late)) return;
  const note = `\n\n> **dispatch:** a report came from \`${filing.job.ip ?? 'the server'}\` after this job had timed out: ${JSON.stringify(filing.report.title)}, in ${late}\n`;
  await writeAtomic(failure, text.replace(/\n*$/, '') + note);
}

function fileStem(filing: Filing): string {
  const at = new Date(filing.receivedAt).toISOString().replace(/[-:]/g, '');
  const suffix = filing.kind === 'failure' ? '-failed' : '';
  return `${at}-${slug(filing.job.name)}-${slug(filing.job.ip ?? 'unknown')}${suffix}`;
}

function slug(text: string): string {
  return text.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 80);
}
