/** Run inside a namespace: browse as beacon does, then HEAD every URL found. Prints one JSON line. */
import { browseDispatch } from '../../src/mdns/index.ts';

const timeoutMs = Number(process.argv[2] ?? 10_000);
const found = await browseDispatch({ timeoutMs, log: (m) => process.stderr.write(`${m}\n`) });
const heads = await Promise.all(
  found.map(async (f) => {
    try {
      return (await fetch(f.url, { method: 'HEAD', signal: AbortSignal.timeout(3_000) })).status;
    } catch (err) {
      return String(err);
    }
  }),
);
process.stdout.write(`${JSON.stringify({ found, heads })}\n`);
