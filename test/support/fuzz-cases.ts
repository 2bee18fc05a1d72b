/** Seeded hostile requests for test/fuzz.test.ts: what a broken firmware, a broken workload or an attacker might send. */
import { mulberry32 } from './random.ts';

/** Servers that booted a job, so their PUTs reach the report parser (and never HEAD, which would fail their job). */
export const BOOTED = Array.from({ length: 8 }, (_, i) => `127.0.2.${i + 1}`);

/** The same requests on every run. */
export function seeded(seed: number) {
  const next = mulberry32(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1));
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => int(0, 255)));
  const token = (n: number) => Array.from({ length: n }, () => pick([...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*']))
    .join('');
  return { next, int, pick, bytes, token };
}
type Rand = ReturnType<typeof seeded>;

export interface Case {
  readonly kind: string;
  readonly ip: string;
  readonly bytes: Buffer;
}

const RANGES = ['bytes=0-', 'bytes=0-99', 'bytes=100-', 'bytes=-50', 'bytes=5-2', 'bytes=-0', 'bytes=0-0,5-9', 'bytes=abc', 'bytes=99999999999999999999999-', 'bytes=18446744073709551616-1', 'items=0-1', '', 'bytes=', 'bytes=-', 'bytes= 1 - 2 ', 'bytes=4095-', 'bytes=4096-', 'bytes=1-1e3'];
const TARGETS = ['/dispatch', '/dispatch?x=1', '/dispatch/', '//dispatch', '/%64ispatch', '/dispatch/../dispatch', '/api/jobs', '/', '*', 'http://h/dispatch', '/dispatch#f', '/%', '/%zz', '/dispatch?%', '/..', '/dispatch%00'];

function header(rand: Rand): string {
  switch (rand.int(0, 9)) {
    case 0:
      return `Content-Length: ${rand.pick(['-1', 'abc', '99999999999999999999', '1.5', ' 3', '0x10', String(rand.int(0, 100_000))])}`;
    case 1:
      return `Content-Length: ${rand.int(0, 9)}\r\nContent-Length: ${rand.int(10, 99)}`;
    case 2:
      return `Transfer-Encoding: ${rand.pick(['chunked', 'gzip', 'chunked, chunked', 'identity', rand.token(8)])}`;
    case 3:
      return `Range: ${rand.pick(RANGES)}`;
    case 4:
      return `Expect: ${rand.pick(['100-continue', '100-CONTINUE', 'tea', ''])}`;
    case 5:
      return `X-${rand.token(rand.int(1, 20))}: ${rand.token(rand.pick([1, 100, 9_000, 20_000]))}`;
    case 6:
      return Array.from({ length: rand.int(50, 400) }, (_, i) => `X-Many-${i}: ${rand.token(4)}`).join('\r\n');
    case 7:
      return `Host: ${rand.pick(['dispatch', 'a b', '', '[::1', 'dispatch:99999', rand.token(300)])}`;
    case 8:
      return `Connection: ${rand.pick(['close', 'keep-alive', 'upgrade', rand.token(5)])}${rand.next() < 0.5 ? '\r\nUpgrade: websocket' : ''}`;
    default:
      return rand.pick(['Bad Header: x', 'NoColon', ': empty-name', 'X-Nul: a\x00b', 'X-Bare: a\nb', `X-Utf8: ${'é'.repeat(10)}`]);
  }
}

/** A report body a broken or hostile workload might send. */
function reportBody(rand: Rand): Buffer {
  switch (rand.int(0, 9)) {
    case 0: {
      const n = rand.int(1, 200_000);
      return Buffer.from(rand.next() < 0.5 ? '['.repeat(n) + ']'.repeat(n) : `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`);
    }
    case 1:
      return Buffer.from(JSON.stringify({ title: 'x'.repeat(rand.int(0, 300_000)), body: 'y'.repeat(rand.int(0, 300_000)) }));
    case 2: {
      const any = () => rand.pick<unknown>([1, null, true, [], {}, 't', ['a', 1], [['x']], { a: 'b' }, -0, 1e308, '']);
      return Buffer.from(JSON.stringify({ title: any(), labels: any(), assignees: any(), milestone: any(), body: any() }));
    }
    case 3: {
      const list = (max: number, chars: number) => Array.from({ length: rand.int(0, max) }, () => rand.token(rand.int(0, chars)));
      return Buffer.from(JSON.stringify({ title: rand.token(rand.int(1, 300)), labels: list(120, 60), assignees: list(12, 45), milestone: rand.token(rand.int(0, 300)), body: rand.token(rand.int(0, 2_000)) }));
    }
    case 4:
      return rand.bytes(rand.int(0, 5_000));
    case 5:
      return Buffer.from(JSON.stringify({ title: 'cut', labels: ['a', 'b'] }).slice(0, rand.int(0, 20)));
    case 6:
      return Buffer.from(rand.pick(['1e999999', '-0', '123456789012345678901234567890', 'null', 'true', '"title"', '[]']));
    case 7:
      return Buffer.concat([Buffer.from('{"title":"'), rand.pick([Buffer.from('\\ud800'), Buffer.from([0xff, 0xfe, 0xc0]), Buffer.from('\\u0000')]), Buffer.from('"}')]);
    case 8:
      return Buffer.from('{"title":"a","title":"b","__proto__":{"labels":["x"]},"constructor":{"prototype":{"x":1}}}');
    default:
      return Buffer.from(JSON.stringify({ title: `fuzz ${rand.token(8)}`, labels: ['fuzz'] }));
  }
}

export function makeCase(rand: Rand): Case {
  const roll = rand.next();
  const stranger = () => `127.0.${rand.int(3, 60)}.${rand.int(1, 254)}`;
  if (roll < 0.15) return { kind: 'random bytes', ip: stranger(), bytes: rand.bytes(rand.int(1, 3_000)) };
  const put = roll < 0.6;
  const method = put ? rand.pick(['PUT', 'PUT', 'PUT', 'POST', 'put', 'PUTT']) : rand.pick(['HEAD', 'GET', 'GET', 'HEAD', 'DELETE', 'OPTIONS', 'TRACE', 'PRI', 'G ET', rand.token(6)]);
  const target = rand.next() < 0.7 ? '/dispatch' : rand.pick([...TARGETS, `/${rand.token(rand.int(1, 3_000))}`]);
  const version = rand.next() < 0.85 ? 'HTTP/1.1' : rand.pick(['HTTP/1.0', 'HTTP/2.0', 'HTTX/1.1', 'HTTP/1.1 ', '']);
  const lines = [`${method} ${target} ${version}`];
  if (rand.next() < 0.9) lines.push('Host: dispatch');
  for (let i = rand.int(0, 3); i > 0; i -= 1) lines.push(header(rand));
  let body: Buffer = Buffer.alloc(0);
  if (put) {
    body = reportBody(rand);
    const framing = rand.next();
    if (framing < 0.7) lines.push(`Content-Length: ${body.byteLength}`);
    else if (framing < 0.8) lines.push(`Content-Length: ${body.byteLength + rand.int(1, 100)}`);
    else if (framing < 0.9) lines.push(`Content-Length: ${Math.max(0, body.byteLength - rand.int(1, 100))}`);
    else {
      lines.push('Transfer-Encoding: chunked');
      body = Buffer.concat([Buffer.from(`${body.byteLength.toString(16)}\r\n`), body, Buffer.from(rand.next() < 0.8 ? '\r\n0\r\n\r\n' : '\r\n')]);
    }
  }
  const ip = put ? rand.pick(BOOTED) : stranger();
  return { kind: put ? 'PUT/POST' : 'HEAD/GET/other', ip, bytes: Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), body]) };
}

