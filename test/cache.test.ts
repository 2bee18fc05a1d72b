import { strict as assert } from 'node:assert';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { describe, test } from 'node:test';
import { AssetCache, cacheKey, type CacheItem } from '../src/store/index.ts';

const silent = () => undefined;

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function item(bytes: Buffer, sha256: string | null = createHash('sha256').update(bytes).digest('hex')): CacheItem {
  return { id: 7, name: 'memtest.efi', size: bytes.length, sha256, updatedAt: '2026-11-23T00:00:00Z' };
}

async function scratch(t: { after(fn: () => Promise<void>): void }) {
  const dir = await mkdtemp(join(tmpdir(), 'dispatch-cache-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** An upstream whose bytes the test releases chunk by chunk. */
function upstream() {
  const fetches: PassThrough[] = [];
  const fetch = async () => {
    const body = new PassThrough();
    fetches.push(body);
    return body;
  };
  /** Until the cache has asked upstream for its `count`th download (a fixed sleep was too short on a loaded CI machine). */
  const started = async (count: number) => {
    for (const until = Date.now() + 10_000; fetches.length < count; await new Promise((resolve) => setTimeout(resolve, 5))) {
      if (Date.now() > until) throw new Error(`the cache asked upstream ${fetches.length} times, not ${count}`);
    }
  };
  return { fetch, fetches, started };
}

describe('asset cache', () => {
  test('readers during the download get bytes as they arrive, and the asset is fetched once', async (t) => {
    const dir = await scratch(t);
    const bytes = randomBytes(3 * 1024 * 1024);
    const { fetch, fetches, started } = upstream();
    const cache = new AssetCache(dir, fetch, silent);
    const first = cache.read(item(bytes), 0, bytes.length - 1);
    const firstBytes = collect(first);
    await started(1);
    assert.equal(fetches.length, 1);
    fetches[0]!.write(bytes.subarray(0, 1024 * 1024));
    const second = cache.read(item(bytes), 0, bytes.length - 1);
    // The second reader sees the first megabyte while two are still to come.
    const early = await new Promise<Buffer>((resolve) => second.once('data', resolve));
    assert.deepEqual(early, bytes.subarray(0, early.length));
    const secondBytes = collect(second);
    fetches[0]!.end(bytes.subarray(1024 * 1024));
    assert.ok((await firstBytes).equals(bytes));
    assert.ok(Buffer.concat([early, await secondBytes]).equals(bytes));
    assert.equal(fetches.length, 1, 'one upstream download for both');
    // Afterwards: straight from disk, still no new download, ranges too.
    assert.ok((await collect(cache.read(item(bytes), 100, 199))).equals(bytes.subarray(100, 200)));
    assert.equal(fetches.length, 1);
    assert.equal(cache.fetched.get(7), 1);
  });

  test('bytes that do not match the digest are never served or kept', async (t) => {
    const dir = await scratch(t);
    const bytes = randomBytes(64 * 1024);
    const { fetch, fetches, started } = upstream();
    const cache = new AssetCache(dir, fetch, silent);
    const wrong = item(bytes, 'f'.repeat(64));
    const reader = collect(cache.read(wrong, 0, bytes.length - 1));
    await started(1);
    fetches[0]!.end(bytes);
    await assert.rejects(reader, /does not match the release's digest/);
    assert.deepEqual((await readdir(dir)).filter((n) => !n.startsWith('.')), [], 'no file left in the cache');
  });

  test('a short or long upstream body is an error', async (t) => {
    const dir = await scratch(t);
    const bytes = randomBytes(1000);
    const { fetch, fetches, started } = upstream();
    const cache = new AssetCache(dir, fetch, silent);
    const short = collect(cache.read(item(bytes, null), 0, 999));
    await started(1);
    fetches[0]!.end(bytes.subarray(0, 500));
    await assert.rejects(short, /sent 500 of 1000 bytes/);
    const long = collect(cache.read(item(bytes, null), 0, 999));
    await started(2);
    fetches[1]!.end(Buffer.concat([bytes, bytes]));
    await assert.rejects(long, /more than the 1000 bytes/);
  });

  test('a verified file is reused by the next run without a download', async (t) => {
    const dir = await scratch(t);
    const bytes = randomBytes(10_000);
    const first = upstream();
    const reader = collect(new AssetCache(dir, first.fetch, silent).read(item(bytes), 0, bytes.length - 1));
    await first.started(1);
    first.fetches[0]!.end(bytes);
    await reader;
    const next = upstream();
    const again = await collect(new AssetCache(dir, next.fetch, silent).read(item(bytes), 0, bytes.length - 1));
    assert.ok(again.equals(bytes));
    assert.equal(next.fetches.length, 0);
  });

  test('assets with the same digest (one image uploaded once per server) are one download, and the complete file is offered as a file', async (t) => {
    const dir = await scratch(t);
    const bytes = randomBytes(300_000);
    const { fetch, fetches, started } = upstream();
    const cache = new AssetCache(dir, fetch, silent);
    const copies = [7, 8, 9].map((id) => ({ ...item(bytes), id, name: `memtest-${id}.efi` }));
    const reads = copies.map((copy) => collect(cache.read(copy, 0, bytes.length - 1)));
    assert.equal(cache.file(copies[0]!), undefined, 'no file to offer while it downloads');
    await started(1);
    fetches[0]!.end(bytes);
    for (const read of reads) assert.ok((await read).equals(bytes));
    assert.equal(fetches.length, 1, 'one upstream download for three assets');
    const file = cache.file(copies[2]!);
    assert.ok(file !== undefined);
    assert.ok((await readFile(file)).equals(bytes));
  });

  test('a digest that is not hex never names a file outside the cache', () => {
    const odd = { ...item(Buffer.from('x')), sha256: '../../escape' };
    assert.ok(!cacheKey(odd).includes('/'));
  });
});
