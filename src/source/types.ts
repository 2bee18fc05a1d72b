import type { Readable } from 'node:stream';

/** The three content types UEFI HTTP boot understands (EDK2 HttpBootCheckImageType). */
export type BootContentType = 'application/efi' | 'application/vnd.efi-iso' | 'application/vnd.efi-img';

/** An inclusive byte range, as HTTP `Range: bytes=start-end` names it. */
export interface ByteRange {
  readonly start: number;
  readonly end: number;
}

/** One thing a server can boot: a release asset or a file in a directory. */
export interface Workload {
  readonly name: string;
  readonly size: number;
  readonly contentType: BootContentType;
  /**
   * What these exact bytes are (an asset's id and updated_at, a file's size
   * and mtime): a saved run is resumed only if every fingerprint matches.
   */
  readonly fingerprint?: string;
  /** A fresh stream of the workload's bytes (or of one range of them). */
  read(range?: ByteRange): Readable;
  /**
   * The file on disk that holds exactly these bytes, when there is one now (a
   * directory's file, a complete cached asset): a sender may read it into
   * buffers of its own rather than take a fresh buffer for every chunk.
   */
  file?(): string | undefined;
}

/** Where workloads come from. The consumer (the queue) needs nothing else. */
export interface WorkloadSource {
  /** A name for logs and for refusing to resume a different run. */
  readonly description: string;
  load(): Promise<readonly Workload[]>;
}

/** A problem with the source the user must fix (bad directory, no workloads, …). */
export class SourceError extends Error {
  override name = 'SourceError';
}
