import { randomUUID } from 'node:crypto';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { IssueRef } from '../github/index.ts';
import type { Log } from '../log.ts';
import { removeDurably, writeAtomic, type WriteOptions } from '../store/index.ts';
import { sayingRemade } from './directory.ts';
import type { Filing } from './types.ts';

/** One report on its way to GitHub, and how far it got. Rewritten durably at every step. */
export interface OutboxEntry {
  readonly version: 1;
  /** Also the idempotency marker's id. */
  readonly id: string;
  readonly createdAt: number;
  readonly filing: Filing;
  /** Issue creations started; above 0, look for the marker before creating again. */
  attempts: number;
  issue: IssueRef | null;
  /** Comments (parts 2…) posted. */
  comments: number;
  /** Attempts at posting the next comment; above 0, look for its marker first. */
  commentAttempts: number;
  /** A late report (rule 4): the comment on its failure issue that links to it is posted. */
  linked?: boolean;
  /** Attempts at posting that comment; above 0, look for its marker first. */
  linkAttempts?: number;
}

/** What is kept of a filed report. */
export interface FiledRecord {
  readonly id: string;
  readonly issue: IssueRef | null;
}

/**
 * The durable queue between "200 to the workload" and "issue on GitHub": a
 * directory with one JSON file per pending report. A report is in it before
 * the 200 goes out and leaves it only once it is filed, so a crash at any
 * point loses nothing; the next start files what is left.
 */
export class Outbox {
  readonly dir: string;
  #ready: Promise<unknown> | undefined;
  readonly #write: WriteOptions;

  constructor(dir: string, log?: Log) {
    this.dir = dir;
    this.#write = sayingRemade(log);
  }

  /** Store a new entry; `id` may be chosen first, so the caller knows it before the file can be seen. */
  async add(filing: Filing, now: number, id: string = randomUUID()): Promise<OutboxEntry> {
    const entry: OutboxEntry = { version: 1, id, createdAt: now, filing, attempts: 0, issue: null, comments: 0, commentAttempts: 0 };
    await this.save(entry);
    return entry;
  }

  async save(entry: OutboxEntry): Promise<void> {
    this.#ready ??= mkdir(join(this.dir, 'filed'), { recursive: true });
    await this.#ready;
    await writeAtomic(this.path(entry), JSON.stringify(entry), this.#write);
  }

  /** Filed: keep a small record of where it went, then drop the pending copy. */
  async complete(entry: OutboxEntry, filedAt: number): Promise<void> {
    const record = { id: entry.id, title: entry.filing.report.title, workload: entry.filing.job.name, ip: entry.filing.job.ip, issue: entry.issue, filedAt };
    await writeAtomic(join(this.dir, 'filed', `${entry.id}.json`), JSON.stringify(record), this.#write);
    await removeDurably(this.path(entry));
  }

  /** Reports not yet filed, oldest first. Unreadable files are reported, never deleted. */
  async pending(onBad: (file: string, reason: string) => void): Promise<OutboxEntry[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const entries: OutboxEntry[] = [];
    for (const name of names.filter((n) => n.endsWith('.json'))) {
      try {
        const entry = JSON.parse(await readFile(join(this.dir, name), 'utf8')) as OutboxEntry;
        if (entry.version !== 1 || typeof entry.id !== 'string' || !entry.filing?.report) throw new Error('not an outbox entry');
        entries.push(entry);
      } catch (err) {
        onBad(join(this.dir, name), (err as Error).message);
      }
    }
    return entries.sort((a, b) => a.createdAt - b.createdAt);
  }

  /** Where the report stored at `path` (an entry's path) went, once it is filed; undefined before. */
  async filed(path: string): Promise<FiledRecord | undefined> {
    const id = basename(path, '.json');
    try {
      return JSON.parse(await readFile(join(this.dir, 'filed', `${id}.json`), 'utf8')) as FiledRecord;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  path(entry: OutboxEntry): string {
    return join(this.dir, `${entry.id}.json`);
  }
}
