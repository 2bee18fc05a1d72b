import { strict as assert } from 'node:assert';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { openSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { fsyncDirectory } from '../src/store/durable.ts';
import { groupCommit, writeAtomic, writeUnique } from '../src/store/index.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

async function scratch(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'dispatch-durable-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A commit whose runs the test ends by hand, and what happened in order. */
function manualCommit() {
  const events: string[] = [];
  const runs: Array<{ key: string; offers: readonly string[]; end(err?: Error): void }> = [];
  const commit = (key: string, offers: readonly string[]) =>
    new Promise<void>((resolve, reject) => {
      events.push(`start ${key} #${runs.length}`);
      const run = runs.length;
      runs.push({
        key,
        offers,
        end: (err) => {
          events.push(`end ${key} #${run}`);
          if (err) reject(err);
          else resolve();
        },
      });
    });
  return { events, runs, share: groupCommit<string>(commit) };
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

describe('group commit', () => {
  test('a caller with no run under way starts one at once and is settled by it', async () => {
    const { events, runs, share } = manualCommit();
    let settled = false;
    const done = share('d').then(() => (settled = true));
    assert.deepEqual(events, ['start d #0']);
    await turn();
    assert.equal(settled, false);
    runs[0]!.end();
    await done;
  });

  test('callers that come while a run is under way are settled by the next, which they all share', async () => {
    const { events, runs, share } = manualCommit();
    const order: string[] = [];
    const first = share('d').then(() => order.push('first'));
    // Their changes came after run #0 began: #0 cannot cover them.
    const later = Array.from({ length: 10 }, (_, i) => share('d').then(() => order.push(`later ${i}`)));
    await turn();
    assert.deepEqual(events, ['start d #0'], 'one run at a time');
    runs[0]!.end();
    await first;
    await turn();
    assert.deepEqual(order, ['first'], 'the later callers wait for a run that started after them');
    assert.deepEqual(events, ['start d #0', 'end d #0', 'start d #1']);
    runs[1]!.end();
    await Promise.all(later);
    assert.equal(runs.length, 2, 'eleven callers, two runs');
    assert.equal(order.length, 11);
  });

  test('a failed run rejects its own callers only; the next run starts for the rest', async () => {
    const { runs, share } = manualCommit();
    const first = share('d');
    const second = share('d');
    runs[0]!.end(new Error('EIO'));
    await assert.rejects(first, /EIO/);
    await turn();
    runs[1]!.end();
    await second;
  });

  test('what callers bring goes to the run that settles them, each to exactly one', async () => {
    const { runs, share } = manualCommit();
    const first = share('d', 'a');
    const later = [share('d', 'b'), share('d'), share('d', 'c')];
    assert.deepEqual(runs.map((r) => r.offers), [['a']]);
    runs[0]!.end();
    await first;
    await turn();
    assert.deepEqual(runs.map((r) => r.offers), [['a'], ['b', 'c']]);
    runs[1]!.end();
    await Promise.all(later);
    assert.equal(runs.length, 2);
  });

  test('keys commit apart: a run on one never waits for, nor settles, another', async () => {
    const { events, runs, share } = manualCommit();
    const a = share('a');
    const b = share('b');
    assert.deepEqual(events, ['start a #0', 'start b #1']);
    runs[1]!.end();
    await b;
    runs[0]!.end();
    await a;
  });
});

describe('durable files', () => {
  test('reports stored at once under one name are each a complete file of their own, and no temporary file stays', async (t) => {
    const dir = await scratch(t);
    const paths = await Promise.all(Array.from({ length: 40 }, (_, i) => writeUnique(dir, 'same-stem', '.md', `report ${i}\n`)));
    assert.equal(new Set(paths).size, 40);
    assert.deepEqual((await readdir(dir)).sort(), paths.map((p) => p.slice(dir.length + 1)).sort());
    for (const [i, path] of paths.entries()) assert.equal(await readFile(path, 'utf8'), `report ${i}\n`);
  });

  test('a folder that is not there (removed while dispatch runs) is made again, parents too, and the file stored in it', async (t) => {
    const dir = await scratch(t);
    const nested = join(dir, 'gone', 'reports');
    const path = await writeUnique(nested, 'report', '.md', 'report\n');
    assert.equal(await readFile(path, 'utf8'), 'report\n');
    await rm(join(dir, 'gone'), { recursive: true });
    await writeAtomic(join(nested, 'entry.json'), '{}');
    assert.deepEqual(await readdir(nested), ['entry.json']);
  });

  test('a folder descriptor of a folder no longer under its name is not trusted: the sync goes by the name', async (t) => {
    const dir = await scratch(t);
    const folder = join(dir, 'reports');
    await mkdir(folder);
    const fd = openSync(folder, 'r');
    await rm(folder, { recursive: true });
    // Nothing under the name now: a sync by the name fails, where one through the old descriptor would not.
    await assert.rejects(fsyncDirectory(folder, [fd]), { code: 'ENOENT' });
    await mkdir(folder);
    // Moved away whole: the old descriptor's folder still exists, under another name.
    const moved = openSync(folder, 'r');
    await rename(folder, join(dir, 'reports.old'));
    await assert.rejects(fsyncDirectory(folder, [moved]), { code: 'ENOENT' });
    await mkdir(folder);
    const again = openSync(folder, 'r');
    await fsyncDirectory(folder, [again]);
  });

  test('folder descriptors are all closed, whichever served the sync', async (t) => {
    const dir = await scratch(t);
    const open = () => readdirSync('/proc/self/fd').length;
    await writeUnique(dir, 'warm', '.md', 'x');
    const before = open();
    await Promise.all(Array.from({ length: 50 }, (_, i) => (i % 2 ? writeUnique(dir, 'r', '.md', `${i}`) : writeAtomic(join(dir, `e${i}.json`), `${i}`))));
    // Closes run off the callers' paths: give them a moment.
    for (let i = 0; i < 50 && open() > before; i += 1) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(open(), before);
  });

  // What the kernel was asked, in the order it was asked, from strace: the
  // only way to see the syncs themselves.
  const strace = spawnSync('strace', ['-V'], { stdio: 'ignore' }).status === 0;
  test(
    'stored at once, every file is synced before it gets its name, and its name synced before it is said to be stored',
    { skip: strace ? false : 'strace is not installed (apt-get install strace)' },
    async (t) => {
      const dir = await scratch(t);
      const trace = join(dir, 'trace');
      const files = join(dir, 'files');
      await mkdir(files);
      const count = 30;
      const child = spawn('strace', ['-f', '-qq', '-s', '4096', '-e', 'trace=openat,fsync,link,rename,write', '-o', trace, process.execPath, '--import', 'tsx', join(ROOT, 'test/support/store-burst.ts'), files, String(count)], {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let stdout = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d));
      const [code] = (await once(child, 'exit')) as [number | null];
      assert.equal(code, 0);
      const stored = stdout.trimEnd().split('\n').map((line) => line.replace(/^stored /, ''));
      assert.equal(new Set(stored).size, 2 * count);

      const calls = parseTrace(await readFile(trace, 'utf8'));
      /** Start and end (indices in the trace) of the first fsync of `fd` after `after`. */
      const fsyncOf = (fd: number, after: number) => calls.find((c) => c.name === 'fsync' && c.start > after && c.args === String(fd));
      const opened = (path: string) => calls.filter((c) => c.name === 'openat' && c.args.includes(`"${path}"`) && Number(c.ret) >= 0);
      // A folder's descriptor may be opened while a file gets its name, and closed unused when another's serves the sync:
      // the directory syncs are the fsyncs of a descriptor last opened on the folder.
      const lastOpenOf = (fd: string, before: number) => calls.findLast((c) => c.name === 'openat' && c.ret === fd && c.start < before);
      const dirSyncs = calls.filter((c) => c.name === 'fsync' && lastOpenOf(c.args, c.start)?.args.includes(`"${files}"`));
      for (const path of stored) {
        const named = calls.find((c) => (c.name === 'link' || c.name === 'rename') && c.ret === '0' && c.args.endsWith(`"${path}"`));
        assert.ok(named, `${path} got its name`);
        const temp = /^"([^"]+)"/.exec(named.args)![1]!;
        const [tempOpen] = opened(temp);
        const fd = Number(tempOpen!.ret);
        // Synced by an fsync, or by each write when the file was opened O_DSYNC.
        const fileSync = /\bO_DSYNC\b/.test(tempOpen!.args)
          ? calls.find((c) => c.name === 'write' && c.start > tempOpen!.end && c.args.startsWith(`${fd}, `))
          : fsyncOf(fd, tempOpen!.end);
        assert.ok(fileSync && Number(fileSync.ret) >= 0 && fileSync.end < named.start, `${path}: its bytes are synced before it is named`);
        if (fileSync.name === 'write') assert.equal(Number(fileSync.ret), Buffer.byteLength(JSON.parse(`"${/^\d+, "(.*)", \d+$/.exec(fileSync.args)![1]!}"`)), `${path}: all of it in that write`);
        const said = calls.find((c) => c.name === 'write' && c.args.includes(`stored ${path}\\n`));
        assert.ok(said, `${path}: said to be stored`);
        assert.ok(
          dirSyncs.some((s) => s.ret === '0' && s.start > named.end && s.end < said.start), `${path}: a directory sync began after it was named and ended before it was said to be stored`,
        );
      }
      // Sixty names, far fewer directory syncs: they are shared.
      assert.ok(dirSyncs.length < stored.length, `${dirSyncs.length} directory syncs for ${stored.length} names`);
    },
  );
});

interface Call {
  readonly name: string;
  readonly args: string;
  readonly ret: string;
  /** Index of the line the call started on, and of the line it returned on. */
  readonly start: number;
  readonly end: number;
}

/** `strace -f` lines: `PID name(args) = ret`, or split in `<unfinished ...>` and `<... name resumed>`. */
function parseTrace(text: string): Call[] {
  const calls: Call[] = [];
  const open = new Map<string, { name: string; args: string; start: number }>();
  text.split('\n').forEach((line, index) => {
    const whole = /^(\d+)\s+(\w+)\((.*)\)\s+=\s+(-?\d+)/.exec(line);
    if (whole) return void calls.push({ name: whole[2]!, args: whole[3]!, ret: whole[4]!, start: index, end: index });
    const begun = /^(\d+)\s+(\w+)\((.*?)\s*<unfinished \.\.\.>$/.exec(line);
    if (begun) return void open.set(begun[1]!, { name: begun[2]!, args: begun[3]!, start: index });
    const resumed = /^(\d+)\s+<\.\.\. (\w+) resumed>(.*)\)\s+=\s+(-?\d+)/.exec(line);
    if (resumed) {
      const first = open.get(resumed[1]!);
      open.delete(resumed[1]!);
      if (first) calls.push({ name: first.name, args: first.args + resumed[3]!, ret: resumed[4]!, start: first.start, end: index });
    }
  });
  return calls.sort((a, b) => a.start - b.start);
}
