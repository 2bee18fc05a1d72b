import type { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { Transfer } from '../jobs/index.ts';

/**
 * A web stream over a Node stream that counts what it hands on and tells the
 * transfer how it ended. Pull-based, so at most one chunk sits in memory per
 * download and a slow server slows the disk reads, not our heap.
 */
export function countedBody(source: Readable, transfer: Transfer | undefined, outgoing: ServerResponse | undefined): ReadableStream<Uint8Array> {
  const chunks = source[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let sent = 0;
  if (transfer && outgoing) {
    // On a real socket, "delivered" means the last byte left for the kernel:
    // 'finish' says so, a 'close' before it means the server went away.
    outgoing.once('finish', () => transfer.end(true));
    outgoing.once('close', () => transfer.end(false));
  }
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        let next: IteratorResult<Buffer>;
        try {
          next = await chunks.next();
        } catch (err) {
          const permanent = (err as { permanent?: unknown }).permanent === true;
          if (permanent) transfer?.fail((err as Error).message);
          else transfer?.end(false);
          if (outgoing) {
            // Cut the connection ourselves: the client must see a broken
            // transfer, and the HTTP adapter would print the error to stderr.
            outgoing.destroy();
            controller.close();
          } else {
            controller.error(err);
          }
          return;
        }
        if (next.done) {
          controller.close();
          if (!outgoing) transfer?.end(true);
          return;
        }
        sent += next.value.byteLength;
        transfer?.progress(sent);
        controller.enqueue(new Uint8Array(next.value.buffer, next.value.byteOffset, next.value.byteLength));
      },
      async cancel() {
        transfer?.end(false);
        await chunks.return?.();
      },
    },
    { highWaterMark: 0 },
  );
}
