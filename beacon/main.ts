/**
 * The beacon binary: real stdin, stdout, HTTP and mDNS, then exit with runBeacon's code.
 * Bundled by build.ts into one CommonJS file and then into dist/beacon-linux-x64.
 */
import pkg from '../package.json' with { type: 'json' };
import { runBeacon } from './cli.ts';
import type { BrowseDispatch } from './discover.ts';

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** The mDNS browser from src/mdns/ (bundled into the binary); without it, mDNS finds nothing. */
async function loadBrowse(log: (message: string) => void): Promise<BrowseDispatch | undefined> {
  try {
    // Loaded only when discovery gets as far as mDNS: its sockets cost nothing before then.
    const module = await import('../src/mdns/browse.ts');
    const browse: BrowseDispatch = module.browseDispatch;
    if (typeof browse !== 'function') throw new Error('src/mdns/browse.ts has no browseDispatch');
    return browse;
  } catch (err) {
    log(`mDNS: no browser in this build (${(err as Error).message.split('\n')[0]}); mDNS finds nothing`);
    return undefined;
  }
}

runBeacon(process.argv.slice(2), pkg.version, {
  stdout: (line) => process.stdout.write(`${line}\n`),
  stderr: (line) => process.stderr.write(`${line}\n`),
  env: process.env,
  stdin: { isTTY: process.stdin.isTTY === true, read: readStdin },
  loadBrowse,
}).then(
  // Exit now: an mDNS socket or an unread stdin must not keep a finished beacon alive.
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`beacon: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
