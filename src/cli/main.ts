#!/usr/bin/env node
import { readFileSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import { Completion, systemClock, type Verdict } from '../jobs/index.ts';
import type { Log } from '../log.ts';
import { ReportError } from '../report/index.ts';
import { SourceError } from '../source/index.ts';
import { FdOutput, jsonLog, logQueue, plainLog, summaryRow, summaryTable } from '../ui/index.ts';
import { Tui } from '../ui/tui/app.ts';
import { InfoExit, parseCommandLine, UsageError, type Config, type UiConfig } from './options.ts';
import { startDispatch } from './start.ts';
import { vmMain } from './vm.ts';

const version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
/**
 * stdout, written on libuv's threads (src/ui/output.ts): a terminal or a
 * pipe that stops reading must never stop dispatch answering the servers,
 * and a log line per job event must not cost a system call each on the
 * request path. What is queued is written before the process ends, however
 * it ends: `exit` is emitted for process.exit(), for an empty event loop and
 * for an uncaught error (before Node prints it).
 */
let logFormat: 'plain' | 'json' = 'plain';
const stdout = new FdOutput(1, {
  droppedNotice: (lines, since) => {
    let text = '';
    const say = logFormat === 'json' ? jsonLog((line) => (text = line), systemClock) : plainLog((line) => (text = line), systemClock);
    say('dispatch', `${lines} line(s) of output dropped here: stdout took nothing from ${new Date(since).toISOString()} on`);
    return `${text}\n`;
  },
  onClosed: (err) => {
    try {
      writeSync(2, `dispatch: stdout is closed (${err.code ?? err.message}): the lab goes on, without its log\n`);
    } catch {
      // stderr is gone too: nothing can be said.
    }
  },
});
process.on('exit', () => stdout.flushSync());
const write = (line: string) => stdout.write(`${line}\n`);

/** The TUI while it is on screen, so an error can give the terminal back before it is printed. */
let screen: Tui | undefined;

async function main(argv: readonly string[]): Promise<number> {
  const parsed = parseCommandLine(argv, version, { out: (text) => stdout.write(text), env: process.env, home: homedir() });
  if (parsed.command === 'vm') {
    return vmMain(parsed.config, { stdout: (chunk) => process.stdout.write(chunk), stderr: (line) => process.stderr.write(`${line}\n`) });
  }
  const { config, ui } = parsed;
  const mode = ui.log === 'auto' ? (process.stdout.isTTY ? 'tui' : 'plain') : ui.log;
  if (mode === 'json') logFormat = 'json';

  let quit: (why: string) => void = () => process.exit(130);
  let log: Log;
  if (mode === 'tui') {
    // ink and its layout engine load in the TUI's drawing thread: plain and JSON runs never pay for them.
    screen = new Tui({ stdout: process.stdout, out: stdout, stdin: process.stdin, clock: systemClock, loading: `loading workloads from ${describeSource(config)}`, onQuit: () => quit('q') });
    log = screen.log;
  } else {
    log = mode === 'json' ? jsonLog(write, systemClock) : plainLog(write, systemClock);
  }
  // A signal during loading stops at once; once serving, it stops gracefully (below).
  const early = (signal: NodeJS.Signals) => quit(signal);
  process.on('SIGINT', early);
  process.on('SIGTERM', early);

  const running = await startDispatch(config, { log, env: process.env, version });
  if (screen) screen.attach(running.queue, { version, source: running.source, reports: running.reports, bootUrls: running.bootUrls });
  else logQueue(running.queue, write, mode === 'json' ? 'json' : 'plain');
  log('http', `listening on ${running.url}`);
  for (const url of running.bootUrls) log('http', `servers boot from ${url}`);

  return new Promise<number>((resolve) => {
    let stopping = false;
    let completion: Completion | undefined;
    /** Stop serving (in-flight answers get their grace), give the terminal back, then print. */
    const end = (code: number, verdict?: Verdict) => {
      stopping = true;
      completion?.stop();
      void running
        .close()
        .catch((err: unknown) => log('dispatch', `stopping went wrong: ${err instanceof Error ? err.message : String(err)}`))
        .then(() => {
          screen?.unmount();
          screen = undefined;
          if (verdict) printVerdict(verdict, mode === 'json' ? 'json' : 'text', ui);
          resolve(code);
        });
    };
    quit = (why) => {
      if (stopping) {
        // A second signal (or q) means now.
        process.exit(130);
      }
      screen?.status(`${why}: stopping… (again to quit at once)`);
      log('dispatch', `${why}: stopping`);
      if (!ui.exitWhenDone) return end(0);
      // A CI run cut short has not passed, whatever it had done so far.
      log('dispatch', 'stopped before every job was done: exit 1');
      end(1, undefined);
    };
    if (ui.exitWhenDone) {
      completion = new Completion(running.queue, {
        clock: systemClock,
        lingerMs: ui.lingerMs,
        filing: () => running.reporter.filing,
        onDone: (verdict) => {
          log('dispatch', `every job is done (${verdict.failed} failed): exiting ${verdict.code}`);
          end(verdict.code, verdict);
        },
      });
    }
  });
}

function describeSource(config: Config): string {
  const github = config.github;
  if (github?.tag !== undefined) return `release ${github.tag} of ${github.owner}/${github.repo}`;
  return `directory ${config.dir ?? '.'}`;
}

function printVerdict(verdict: Verdict, format: 'text' | 'json', ui: UiConfig): void {
  if (format === 'json') {
    write(JSON.stringify({ time: new Date().toISOString(), summary: verdict.jobs.map(summaryRow), failed: verdict.failed, unfiled: verdict.unfiled, lingered: verdict.lingered, code: verdict.code }));
    return;
  }
  if (verdict.lingered.length > 0) write(`\n(waited ${Math.round(ui.lingerMs / 1000)} s for poweroff.efi)`);
  write(`\n${summaryTable(verdict)}`);
}

main(process.argv.slice(2)).then(
  // What is still queued for stdout is written first (a reader that has stopped gets two seconds).
  (code) => stdout.idle(2000).then(() => process.exit(code)),
  (err: unknown) => {
    screen?.unmount();
    if (err instanceof InfoExit) process.exit(0);
    const usage = err instanceof UsageError || err instanceof SourceError || err instanceof ReportError;
    // What was logged before the error, before it.
    stdout.flushSync();
    process.stderr.write(`dispatch: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(usage ? 2 : 1);
  },
);
