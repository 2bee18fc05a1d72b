import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import { formatDuration, parseBind, parseBytes, parseDuration, parsePath } from '../src/cli/units.ts';
import { parseRange, resolveRange } from '../src/http/index.ts';

describe('durations', () => {
  test('read like 750ms, 90s, 5m, 1h, and combined', () => {
    assert.equal(parseDuration('750ms'), 750);
    assert.equal(parseDuration('90s'), 90_000);
    assert.equal(parseDuration('5m'), 300_000);
    assert.equal(parseDuration('1h'), 3_600_000);
    assert.equal(parseDuration('1h30m'), 5_400_000);
    assert.equal(parseDuration('1.5s'), 1_500);
  });

  test('a bare number, zero, nonsense or beyond setTimeout is refused with the reason', () => {
    assert.throws(() => parseDuration('300'), /not a duration.*750ms/);
    assert.throws(() => parseDuration('0s'), /longer than zero/);
    assert.throws(() => parseDuration('5 minutes'), /not a duration/);
    assert.throws(() => parseDuration('-5m'), /not a duration/);
    assert.throws(() => parseDuration('1000h'), /too long/);
  });

  test('format back to the shortest exact unit', () => {
    assert.equal(formatDuration(300_000), '5m');
    assert.equal(formatDuration(750), '750ms');
    assert.equal(formatDuration(90_000), '90s');
  });
});

describe('sizes', () => {
  test('plain bytes and binary or decimal units', () => {
    assert.equal(parseBytes('1048576'), 1_048_576);
    assert.equal(parseBytes('10MiB'), 10 * 1024 * 1024);
    assert.equal(parseBytes('10MB'), 10_000_000);
    assert.equal(parseBytes('512k'), 512 * 1024);
  });

  test('zero, negative and unknown units are refused', () => {
    assert.throws(() => parseBytes('0'), /positive/);
    assert.throws(() => parseBytes('-1'), /not a size/);
    assert.throws(() => parseBytes('10 parsecs'), /not a size/);
  });
});

describe('bind address', () => {
  test('HOST:PORT, [IPv6]:PORT and :PORT', () => {
    assert.deepEqual(parseBind('0.0.0.0:8080'), { host: '0.0.0.0', port: 8080 });
    assert.deepEqual(parseBind('[::]:80'), { host: '::', port: 80 });
    assert.deepEqual(parseBind(':9000'), { host: '0.0.0.0', port: 9000 });
    assert.deepEqual(parseBind('localhost:0'), { host: 'localhost', port: 0 });
  });

  test('a port out of range or a missing port is refused', () => {
    assert.throws(() => parseBind('0.0.0.0:65536'), /out of range/);
    assert.throws(() => parseBind('0.0.0.0:99999'), /out of range/);
    assert.throws(() => parseBind('0.0.0.0'), /HOST:PORT/);
    assert.throws(() => parseBind('::8080'), /HOST:PORT/);
  });
});

describe('protocol path', () => {
  test('absolute, trailing slash dropped', () => {
    assert.equal(parsePath('/dispatch'), '/dispatch');
    assert.equal(parsePath('/lab/boot/'), '/lab/boot');
    assert.equal(parsePath('/'), '/');
  });

  test('relative paths and the API prefix are refused', () => {
    assert.throws(() => parsePath('dispatch'), /absolute/);
    assert.throws(() => parsePath('/api/jobs'), /monitoring API/);
    assert.throws(() => parsePath('/a b'), /absolute/);
  });
});

describe('Range header', () => {
  test('the forms EDK2 and other clients send', () => {
    assert.deepEqual(parseRange('bytes=100-199'), { kind: 'from', start: 100, end: 199 });
    assert.deepEqual(parseRange('bytes=100-'), { kind: 'from', start: 100, end: undefined });
    assert.deepEqual(parseRange('bytes=-50'), { kind: 'suffix', length: 50 });
  });

  test('what we do not handle is ignored (whole body), as RFC 9110 allows', () => {
    assert.equal(parseRange(undefined), undefined);
    assert.equal(parseRange('bytes=0-1,5-6'), undefined);
    assert.equal(parseRange('items=0-5'), undefined);
    assert.equal(parseRange('bytes=9-3'), undefined);
    assert.equal(parseRange('bytes=abc'), undefined);
  });

  test('resolved against the size: clipped at the end, none past it', () => {
    assert.deepEqual(resolveRange({ kind: 'from', start: 10, end: 10_000 }, 100), { start: 10, end: 99 });
    assert.deepEqual(resolveRange({ kind: 'from', start: 10, end: undefined }, 100), { start: 10, end: 99 });
    assert.deepEqual(resolveRange({ kind: 'suffix', length: 30 }, 100), { start: 70, end: 99 });
    assert.deepEqual(resolveRange({ kind: 'suffix', length: 300 }, 100), { start: 0, end: 99 });
    assert.equal(resolveRange({ kind: 'from', start: 100, end: undefined }, 100), undefined);
    assert.equal(resolveRange({ kind: 'suffix', length: 0 }, 100), undefined);
  });
});
