import { strict as assert } from 'node:assert';
import { appendFile, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { SimulatedClock } from 'xstate';
import { Queue, replayChanges, type QueueState } from '../src/jobs/index.ts';
import { journalEntries, loadRun, StateError, StateWriter, type SourceIdentity, type StateSource } from '../src/store/index.ts';
import { fakeWorkload } from './support/workloads.ts';

// The run state on disk (what --resume reads): a picture and a journal of the
// changes since, written by one writer, read back and replayed. Real files.

const IDENTITY: SourceIdentity = { where: 'directory /lab', items: ['a.efi 4096 bytes'] };

async function folder(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'dispatch-state-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return join(dir, 'run');
}

/** A queue of `n` jobs, saved by a writer as dispatch saves it, counting pictures and journal entries. */
function savedLab(path: string, n = 20, options: { compactAtBytes?: number } = {}) {
  const clock = new SimulatedClock();
  clock.set(1_700_000_000_000);
  const names = Array.from({ length: n }, (_, i) => `w${String(i).padStart(3, '0')}.efi`);
  const queue = new Queue(names.map((name) => fakeWorkload(name)), { clock, downloadTimeoutMs: 60_000, run: 'run-1' });
  const counts = { pictures: 0, entries: 0 };
  const source: StateSource = {
    snapshot: () => ((counts.pictures += 1), queue.persistJson()),
    changes: () => {
      const text = queue.changesJson();
      if (text !== undefined) counts.entries += 1;
      return text;
    },
  };
  const errors: string[] = [];
  const writer = new StateWriter(path, IDENTITY, source, (err) => errors.push(err.message), options);
  queue.onChange(() => writer.changed());
  /** HEAD, a whole GET and `beacon boot` from `ip`. */
  const boot = (ip: string) => {
    const claim = queue.claim(ip, 'HEAD');
    if (claim.kind !== 'job') throw new Error(`no job for ${ip}`);
    const transfer = queue.beginTransfer(claim.id, ip, { reachesEnd: true });
    transfer.end(true);
    assert.ok(queue.boot(ip));
  };
  return { queue, writer, counts, errors, boot };
}

/** What a restart would continue from. */
async function reload(path: string): Promise<QueueState> {
  const saved = await loadRun<QueueState>(path);
  assert.ok(saved, 'a saved run');
  return replayChanges(saved.queue, saved.changes);
}

const sameAs = (queue: Queue) => JSON.parse(JSON.stringify(queue.persist())) as QueueState;
const journals = async (path: string) => (await readdir(path)).filter((n) => n.startsWith('journal-'));

describe('state writer', () => {
  test('the first save is a picture; after it, each save is one journal line with only what changed', async (t) => {
    const path = await folder(t);
    const lab = savedLab(path);
    lab.writer.changed();
    await lab.writer.flush();
    assert.equal(lab.counts.pictures, 1);
    const picture = JSON.parse(await readFile(lab.writer.path, 'utf8')) as { identity: SourceIdentity; journal: string; queue: QueueState };
    assert.deepEqual(picture.identity, IDENTITY);
    assert.deepEqual(await journals(path), [picture.journal], 'the picture names its journal, which is there and empty');
    assert.equal(await readFile(join(path, picture.journal), 'utf8'), '');
    for (let i = 0; i < 5; i += 1) {
      lab.boot(`10.0.0.${i + 1}`);
      await lab.writer.flush();
    }
    assert.equal(lab.counts.pictures, 1, 'no picture again');
    const lines = (await readFile(join(path, picture.journal), 'utf8')).split('\n').filter(Boolean);
    assert.equal(lines.length, 5, 'one line a save');
    for (const line of lines) assert.equal((JSON.parse(line) as { jobs: unknown[] }).jobs.length, 1, 'each line holds the one job that moved, not all 20');
    assert.deepEqual(await reload(path), sameAs(lab.queue));
  });

  test('changes made while a save is in flight go out together in the next, and flush waits for the latest', async (t) => {
    const path = await folder(t);
    const lab = savedLab(path);
    lab.writer.changed();
    await lab.writer.flush();
    for (let i = 0; i < 20; i += 1) lab.boot(`10.0.1.${i + 1}`);
    await lab.writer.flush();
    assert.ok(lab.counts.entries <= 2, `one save in flight and one more for the rest (${lab.counts.entries} journal lines)`);
    assert.deepEqual(await reload(path), sameAs(lab.queue));
    await lab.writer.flush(); // nothing new: resolves at once
    assert.ok(lab.counts.entries <= 2);
  });

  test('a journal that outgrows its picture is folded into a new picture; the old journal goes', async (t) => {
    const path = await folder(t);
    const lab = savedLab(path, 20, { compactAtBytes: 4096 });
    lab.writer.changed();
    await lab.writer.flush();
    const [first] = await journals(path);
    for (let i = 0; i < 20; i += 1) {
      lab.boot(`10.0.2.${i + 1}`);
      await lab.writer.flush();
    }
    assert.ok(lab.counts.pictures >= 2, `pictures again once the journal grew (${lab.counts.pictures})`);
    assert.ok(lab.counts.pictures < 20, 'but not a picture a save');
    const now = await journals(path);
    assert.equal(now.length, 1, 'one journal: the one the picture names');
    assert.notEqual(now[0], first);
    assert.deepEqual(await reload(path), sameAs(lab.queue));
  });

  test('close() leaves a picture of everything and an empty journal', async (t) => {
    const path = await folder(t);
    const lab = savedLab(path);
    lab.writer.changed();
    lab.boot('10.0.3.1');
    await lab.writer.flush();
    lab.boot('10.0.3.2');
    await lab.writer.close();
    const saved = await loadRun<QueueState>(path);
    assert.deepEqual(saved?.changes, []);
    assert.deepEqual(saved?.queue, sameAs(lab.queue));
    assert.equal((await journals(path)).length, 1);
  });

  test('a new run in the folder never has an older run’s journal replayed onto it', async (t) => {
    const path = await folder(t);
    const older = savedLab(path);
    older.writer.changed();
    for (let i = 0; i < 5; i += 1) older.boot(`10.0.4.${i + 1}`);
    await older.writer.flush();
    // The older process is killed here; a fresh run (no --resume) starts over the same folder.
    const fresh = savedLab(path);
    fresh.writer.changed();
    await fresh.writer.flush();
    assert.equal((await journals(path)).length, 1, 'the older journal is gone');
    assert.deepEqual(await reload(path), sameAs(fresh.queue));
    assert.ok((await reload(path)).jobs.every((job) => (job.snapshot as unknown as { value: string }).value === 'unassigned'));
  });

  test('a save that fails rejects flush; the next save is a whole picture and succeeds', async (t) => {
    const path = await folder(t);
    const lab = savedLab(path);
    lab.writer.changed();
    await lab.writer.flush();
    // The folder removed under a running dispatch: appending to its journal would reach no file a restart reads.
    await rm(path, { recursive: true });
    lab.boot('10.0.5.1');
    await assert.rejects(lab.writer.flush(), (err: Error) => err instanceof StateError && /cannot save the run state.*journal .* was removed/.test(err.message));
    assert.equal(lab.errors.length, 1);
    lab.boot('10.0.5.2');
    await lab.writer.flush();
    assert.equal(lab.counts.pictures, 2, 'a picture carries what the failed save held');
    assert.deepEqual(await reload(path), sameAs(lab.queue));
  });

  test('a removal seen only a little later loses nothing: the picture after it carries the changes appended meanwhile', async (t) => {
    const path = await folder(t);
    const lab = savedLab(path, 60);
    lab.writer.changed();
    await lab.writer.flush();
    lab.boot('10.0.5.1');
    await lab.writer.flush(); // an append that asked and found its journal in place
    await rm(path, { recursive: true });
    // Appends right after may not ask again (at most one question per 100 ms); one within a few seconds does.
    let refused = false;
    for (let i = 2; i < 50 && !refused; i += 1) {
      lab.boot(`10.0.5.${i}`);
      refused = await lab.writer.flush().then(
        () => false,
        (err: Error) => err instanceof StateError && /was removed/.test(err.message),
      );
      if (!refused) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.ok(refused, 'the removal was seen');
    lab.boot('10.0.5.50');
    await lab.writer.flush();
    assert.deepEqual(await reload(path), sameAs(lab.queue), 'every boot, the ones appended to the removed journal too');
  });

  test('a source that throws rejects flush, and a later save succeeds', async (t) => {
    const path = await folder(t);
    let broken = true;
    const source: StateSource = {
      snapshot: () => {
        if (broken) throw new Error('disk on fire');
        return '{"version":1}';
      },
      changes: () => undefined,
    };
    const errors: string[] = [];
    const writer = new StateWriter(path, IDENTITY, source, (err) => errors.push(err.message));
    writer.changed();
    await assert.rejects(writer.flush(), (err: Error) => err instanceof StateError && /disk on fire/.test(err.message));
    broken = false;
    writer.changed();
    await writer.flush();
    assert.deepEqual(errors, ['disk on fire']);
    assert.equal((JSON.parse(await readFile(writer.path, 'utf8')) as { queue: unknown }).queue !== undefined, true);
  });
});

describe('reading a saved run back', () => {
  test('a last journal line cut by a crash is left out; a damaged line before it is refused', async (t) => {
    const path = await folder(t);
    const lab = savedLab(path);
    lab.writer.changed();
    lab.boot('10.0.6.1');
    await lab.writer.flush();
    const before = await reload(path);
    const [journal] = await journals(path);
    await appendFile(join(path, journal!), '{"savedAt":17000000');
    assert.deepEqual(await reload(path), before, 'the torn line was never acknowledged: as if unwritten');
    await writeFile(join(path, journal!), '{"savedAt":1,"jobs":[],"servers":[]}\nnot json\n{"savedAt":2,"jobs":[],"servers":[]}\n');
    await assert.rejects(loadRun(path), (err: Error) => err instanceof StateError && /journal .* is damaged at line 2/.test(err.message));
    assert.deepEqual(journalEntries('', 'x'), []);
    assert.deepEqual(journalEntries('{"a":1}\n{"b"', 'x'), [{ a: 1 }]);
  });

  test('a picture whose journal is missing is read as having no changes; one naming a path outside its folder is damaged', async (t) => {
    const path = await folder(t);
    const lab = savedLab(path);
    lab.writer.changed();
    await lab.writer.flush();
    const [journal] = await journals(path);
    await rm(join(path, journal!));
    assert.deepEqual((await loadRun(path))?.changes, []);
    const picture = JSON.parse(await readFile(join(path, 'state.json'), 'utf8')) as Record<string, unknown>;
    await writeFile(join(path, 'state.json'), JSON.stringify({ ...picture, journal: '../../etc/passwd' }));
    await assert.rejects(loadRun(path), (err: Error) => err instanceof StateError && /damaged \(it names no journal file of its own\)/.test(err.message));
  });
});
