import { Command, CommanderError, Option } from 'commander';
import { parseDuration } from '../src/cli/units.ts';
import type { Candidate } from './discover.ts';
import { DEFAULT_EFIVARS } from './firmware.ts';
import { InfoExit, reportingOnce, UsageError, using } from '../src/cli/usage.ts';

/** The path dispatch serves by default (its --path); used when a URL names only a host. */
export const DEFAULT_PATH = '/dispatch';

export interface ReportOptions {
  readonly title: string;
  /** A file, `-` for stdin, or undefined: stdin when it is not a terminal. */
  readonly bodyFile: string | undefined;
  readonly labels: readonly string[];
  readonly assignees: readonly string[];
  readonly milestone: string | undefined;
}

/** Everything a run needs, decided once from the command line and the environment. */
export interface BeaconConfig {
  readonly command: 'boot' | 'report';
  /** --server URLs (else DISPATCH_URL), tried before anything discovered. */
  readonly explicit: readonly Candidate[];
  readonly timeoutMs: number;
  readonly verbose: boolean;
  readonly efivars: string;
  readonly mdns: boolean;
  readonly report: ReportOptions | undefined;
}

export { InfoExit, UsageError };

export interface ParseIo {
  /** Where --help and --version go. */
  readonly out: (text: string) => void;
  readonly env: Readonly<Record<string, string | undefined>>;
}

/**
 * `http://10.0.0.1:8080/dispatch`. A URL with no path at all gets dispatch's default path,
 * since that is what people type; `http://host:8080/` keeps `/`.
 */
export function parseServerUrl(text: string): string {
  const value = text.trim();
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new RangeError(`"${text}" is not a URL (for example http://10.0.0.1:8080/dispatch)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new RangeError(`"${text}" must be an http or https URL`);
  if (/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*$/i.test(value)) url.pathname = DEFAULT_PATH;
  return url.href;
}

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

const HELP_AFTER = `
Finding dispatch, in order: each --server (else DISPATCH_URL); the HTTP boot URIs in the
firmware's Boot#### variables (BootCurrent first, then BootOrder); mDNS (_dispatch._tcp,
10 s). 417 from a dispatch means "not this one": the next is tried. 5xx and network
errors are retried 3 times (0.5 s, 1 s, 2 s) before moving on.

Exit codes: 0 a dispatch took it; 1 none did (one line says what was tried), or the
report was refused as bad (400/413); 2 bad command line.`;

export function buildProgram(version: string, io: ParseIo, chosen: (command: 'boot' | 'report', options: Record<string, unknown>) => void): Command {
  const program = reportingOnce(new Command('beacon'), io.out)
    .description('Tell dispatch that this workload booted, and send it the results.')
    .version(version, '-V, --version')
    .addOption(new Option('-s, --server <url>', 'dispatch URL (repeat to try several in order; env DISPATCH_URL)').argParser((value: string, previous: string[] | undefined) => collect(using(parseServerUrl)(value), previous)))
    .addOption(new Option('--timeout <duration>', 'give up after this long, whatever is left to try').default('60s'))
    .addOption(new Option('--efivars <dir>', 'where to read the firmware\'s Boot#### variables').default(DEFAULT_EFIVARS))
    .addOption(new Option('--no-mdns', 'do not browse mDNS for dispatch'))
    .addOption(new Option('-v, --verbose', 'say what is tried, on stderr'))
    .addHelpText('after', HELP_AFTER);
  program
    .command('boot')
    .description('say "I booted": the job this server downloaded is now running')
    .action((options: Record<string, unknown>) => chosen('boot', options));
  program
    .command('report')
    .description('send a report: dispatch files it as an issue (or a file)')
    .addOption(new Option('-t, --title <title>', 'the report\'s title').makeOptionMandatory())
    .addOption(new Option('-b, --body <file>', 'the report\'s body (Markdown); default: stdin, when it is not a terminal; - for stdin'))
    .addOption(new Option('-l, --label <label>', 'a label (repeat for more)').argParser(collect))
    .addOption(new Option('-a, --assignee <login>', 'a GitHub login to assign (repeat for more)').argParser(collect))
    .addOption(new Option('-m, --milestone <title>', 'a milestone, by title'))
    .action((options: Record<string, unknown>) => chosen('report', options));
  return program;
}

/** Parse argv (without node and script) into a BeaconConfig, or throw UsageError / InfoExit. */
export function parseArgs(argv: readonly string[], version: string, io: ParseIo): BeaconConfig {
  let command: 'boot' | 'report' | undefined;
  let commandOptions: Record<string, unknown> = {};
  const program = buildProgram(version, io, (name, options) => {
    command = name;
    commandOptions = options;
  });
  try {
    program.parse([...argv], { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.exitCode === 0) throw new InfoExit(err.code);
      // Commander's "no command given" is a help screen; say it in one line instead.
      if (err.code === 'commander.help') throw new UsageError('say what to send: beacon boot, or beacon report --title TITLE (see beacon --help)');
      throw new UsageError(err.message.replace(/^error: /, '').split('\n')[0]!);
    }
    throw err;
  }
  if (command === undefined) throw new UsageError('say what to send: beacon boot, or beacon report --title TITLE (see beacon --help)');

  const opts = program.opts<{ server?: string[]; timeout: string; efivars: string; mdns: boolean; verbose?: boolean }>();
  let timeoutMs: number;
  try {
    timeoutMs = parseDuration(opts.timeout);
  } catch (err) {
    throw new UsageError(`--timeout: ${(err as Error).message}`);
  }
  if (opts.efivars.trim() === '') throw new UsageError('--efivars is empty');

  let explicit: Candidate[];
  if (opts.server !== undefined) {
    explicit = opts.server.map((url) => ({ url, origin: '--server' as const }));
  } else if (io.env.DISPATCH_URL !== undefined && io.env.DISPATCH_URL.trim() !== '') {
    try {
      explicit = [{ url: parseServerUrl(io.env.DISPATCH_URL), origin: 'DISPATCH_URL' }];
    } catch (err) {
      throw new UsageError(`DISPATCH_URL: ${(err as Error).message}`);
    }
  } else {
    explicit = [];
  }

  let report: ReportOptions | undefined;
  if (command === 'report') {
    const o = commandOptions as { title: string; body?: string; label?: string[]; assignee?: string[]; milestone?: string };
    if (o.title.trim() === '') throw new UsageError('--title is empty: a report needs a title');
    if (o.body !== undefined && o.body.trim() === '') throw new UsageError('--body is empty: give a file, or - for stdin');
    report = { title: o.title, bodyFile: o.body, labels: o.label ?? [], assignees: o.assignee ?? [], milestone: o.milestone };
  }
  return { command, explicit, timeoutMs, verbose: opts.verbose === true, efivars: opts.efivars, mdns: opts.mdns, report };
}
