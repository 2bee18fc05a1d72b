#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { systemClock } from '../jobs/index.ts';
import { ReportError } from '../report/index.ts';
import { SourceError } from '../source/index.ts';
import { logQueue, plainLog } from '../ui/index.ts';
import { InfoExit, parseCommandLine, UsageError } from './options.ts';
import { startDispatch } from './start.ts';
import { vmMain } from './vm.ts';

const version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
const write = (line: string) => process.stdout.write(`${line}\n`);

async function main(argv: readonly string[]): Promise<number> {
  const parsed = parseCommandLine(argv, version, { out: (text) => process.stdout.write(text), env: process.env, home: homedir() });
  if (parsed.command === 'vm') {
    return vmMain(parsed.config, { stdout: (chunk) => process.stdout.write(chunk), stderr: (line) => process.stderr.write(`${line}\n`) });
  }
  const config = parsed.config;
  const log = plainLog(write, systemClock);
  const running = await startDispatch(config, { log, env: process.env, version });
  logQueue(running.queue, write);
  log('http', `listening on ${running.url}`);
  for (const url of running.bootUrls) log('http', `servers boot from ${url}`);

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        // A second signal means now.
        process.exit(130);
      }
      stopping = true;
      log('dispatch', `${signal}: stopping`);
      void running.close().then(() => resolve(0));
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof InfoExit) process.exit(0);
    const usage = err instanceof UsageError || err instanceof SourceError || err instanceof ReportError;
    process.stderr.write(`dispatch: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(usage ? 2 : 1);
  },
);
