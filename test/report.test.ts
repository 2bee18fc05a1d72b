import { strict as assert } from 'node:assert';
import { mkdtemp, readdir, readFile, rm, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { JobView } from '../src/jobs/index.ts';
import { checkReportDirectory, directorySink, failureReport, parseReport, renderMarkdown, type Report } from '../src/report/index.ts';

const job: JobView = {
  id: 0,
  name: '01-hello.efi',
  state: 'booting',
  ip: '10.0.0.7',
  size: 1024,
  contentType: 'application/efi',
  attempts: 1,
  broken: 0,
  since: Date.UTC(2026, 10, 23, 12, 0, 0),
  reports: [],
  reason: null,
  bytes: 1024,
  timeline: [
    { at: Date.UTC(2026, 10, 23, 11, 59, 0), what: 'assigned to 10.0.0.7 (HEAD)', ip: '10.0.0.7' },
    { at: Date.UTC(2026, 10, 23, 12, 0, 0), what: 'booting', ip: '10.0.0.7' },
  ],
  dropped: 0,
};

const report: Report = { title: 'memtest: 0 errors', body: 'line 1\n---\nline "3"\n', labels: ['hw', 'ok'], assignees: ['octocat'], milestone: 'v1.0' };

describe('report validation', () => {
  test('a full report is read as sent', () => {
    const parsed = parseReport(JSON.stringify({ ...report, extra: 1 }));
    assert.deepEqual(parsed, { ok: true, value: report });
  });

  test('absent, null and empty optional fields mean none', () => {
    assert.deepEqual(parseReport('{"title":"t","milestone":"","labels":null,"body":null}'), {
      ok: true,
      value: { title: 't', body: '', labels: [], assignees: [], milestone: null },
    });
  });

  test('each bad report gets its own short reason', () => {
    const reason = (text: string) => {
      const parsed = parseReport(text);
      return parsed.ok ? 'accepted' : parsed.reason;
    };
    assert.equal(reason('{"title": '), 'report is not valid JSON');
    assert.equal(reason(''), 'report is not valid JSON');
    assert.equal(reason('[1]'), 'report must be a JSON object');
    assert.equal(reason('"title"'), 'report must be a JSON object');
    assert.equal(reason('{}'), 'report needs a title');
    assert.equal(reason('{"title":"  "}'), 'report needs a title');
    assert.equal(reason('{"title":5}'), 'title must be a string');
    assert.equal(reason('{"title":"t","body":{}}'), 'body must be a string');
    assert.equal(reason('{"title":"t","labels":"bug"}'), 'labels must be a list of strings');
    assert.equal(reason('{"title":"t","assignees":[1]}'), 'assignees must be a list of strings');
    assert.equal(reason('{"title":"t","milestone":3}'), 'milestone must be a string');
  });
});

describe('Markdown rendering', () => {
  test('front matter names the report and its job; the body follows verbatim', () => {
    const text = renderMarkdown({ kind: 'report', report, job, receivedAt: Date.UTC(2026, 10, 23, 12, 1, 0) });
    const [front, body] = splitFrontMatter(text);
    assert.equal(body, report.body);
    assert.match(front, /^title: "memtest: 0 errors"$/m);
    assert.match(front, /^labels: \["hw", "ok"\]$/m);
    assert.match(front, /^assignees: \["octocat"\]$/m);
    assert.match(front, /^milestone: "v1.0"$/m);
    assert.match(front, /^workload: "01-hello.efi"$/m);
    assert.match(front, /^ip: "10.0.0.7"$/m);
    assert.match(front, /^received: 2026-11-23T12:01:00.000Z$/m);
    assert.match(front, /^ {2}- at: 2026-11-23T11:59:00.000Z\n {4}event: "assigned to 10.0.0.7 \(HEAD\)"$/m);
  });

  test('a hostile title cannot break out of the front matter', () => {
    const nasty = { ...report, title: 'x"\n---\nmilestone: evil' };
    const [front] = splitFrontMatter(renderMarkdown({ kind: 'report', report: nasty, job, receivedAt: 0 }));
    assert.equal(front.split('\n').filter((l) => l.startsWith('milestone:')).length, 1);
    assert.equal(JSON.parse(front.split('\n')[0]!.slice('title: '.length)), nasty.title);
  });

  test('a failure report names the workload, the server, the reason and the timeline', () => {
    const failed = failureReport({ ...job, state: 'failed', reason: 'rebooted without report' });
    assert.equal(failed.title, '01-hello.efi failed on 10.0.0.7: rebooted without report');
    assert.match(failed.body, /\*\*01-hello.efi\*\*/);
    assert.match(failed.body, /`10.0.0.7`/);
    assert.match(failed.body, /2026-11-23T11:59:00.000Z \[10.0.0.7\] assigned to 10.0.0.7 \(HEAD\)/);
  });
});

describe('directory sink', () => {
  test('each report is its own complete file, even with the same second and job', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'dispatch-reports-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const sink = directorySink(join(dir, 'nested', 'reports'));
    const filing = { kind: 'report' as const, report, job, receivedAt: 1_000 };
    const first = await sink.store(filing);
    const second = await sink.store(filing);
    assert.notEqual(first.ref, second.ref);
    assert.equal(await sink.file(first), first.ref);
    const names = await readdir(join(dir, 'nested', 'reports'));
    assert.deepEqual(names.sort(), [first.ref, second.ref].map((p) => p.split('/').pop()!).sort(), 'no temporary files left behind');
    assert.equal(await readFile(first.ref, 'utf8'), renderMarkdown(filing));
  });

  test('an unusable reports directory is refused up front', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'dispatch-reports-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'file'), 'x');
    await assert.rejects(checkReportDirectory(join(dir, 'file')), /cannot write reports to .*file: not a directory/);
    if (process.getuid?.() !== 0) {
      await chmod(dir, 0o500);
      await assert.rejects(checkReportDirectory(join(dir, 'sub')), /permission denied/);
    }
  });
});

function splitFrontMatter(text: string): [string, string] {
  assert.ok(text.startsWith('---\n'));
  const end = text.indexOf('\n---\n', 4);
  assert.ok(end > 0, 'front matter is closed');
  return [text.slice(4, end), text.slice(end + 5)];
}
