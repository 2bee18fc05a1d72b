import { Command, CommanderError, Option } from 'commander';
import { parseBind, parseBytes, parseDuration, parsePath } from './units.ts';
import { addVmCommand, type VmConfig } from './vm.ts';
import { InfoExit, reportingOnce, UsageError, using } from './usage.ts';

/** Where workloads and reports live on GitHub. */
export interface GitHubConfig {
  readonly owner: string;
  readonly repo: string;
  /** The release whose assets are the workloads; absent when --dir serves them. */
  readonly tag: string | undefined;
  readonly apiUrl: string;
  /** --token; the environment and gh are asked later, at start. */
  readonly token: string | undefined;
}

/** Everything a run needs, decided once from the command line and the environment. */
export interface Config {
  /** Local workloads; undefined when a release is the source. */
  readonly dir: string | undefined;
  /** Report files, used when no repository is given. */
  readonly reports: string;
  readonly github: GitHubConfig | undefined;
  /** The outbox, the asset cache and the saved runs. */
  readonly stateDir: string;
  readonly host: string;
  readonly port: number;
  readonly path: string;
  readonly mdns: boolean;
  readonly maxReportBytes: number;
  readonly downloadTimeoutMs: number;
  readonly filters: readonly string[];
  /** Rule 4: a job Booting this long fails (--run-timeout; default 60 min). */
  readonly runTimeoutMs?: number;
  /** Continue the saved run of the same source (--resume) instead of starting afresh. */
  readonly resume?: boolean;
}

/** How a run shows itself and when it ends; not needed to serve, so kept apart from Config. */
export interface UiConfig {
  /** `auto`: the TUI when stdout is a terminal, plain lines otherwise. */
  readonly log: LogMode;
  /** DESIGN §5 rule 8: exit once everything is final, filed and powered off. */
  readonly exitWhenDone: boolean;
  /** How long rule 8 waits for servers that ran a job to fetch poweroff.efi. */
  readonly lingerMs: number;
}

export const LOG_MODES = ['auto', 'tui', 'plain', 'json'] as const;
export type LogMode = (typeof LOG_MODES)[number];

function parseLogMode(text: string): LogMode {
  const mode = text.trim().toLowerCase();
  if (!(LOG_MODES as readonly string[]).includes(mode)) throw new RangeError(`"${text}" is not one of ${LOG_MODES.join(', ')}`);
  return mode as LogMode;
}

export { InfoExit, UsageError };

export interface ParseIo {
  /** Where --help and --version go. */
  readonly out: (text: string) => void;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly home: string;
}

/** $XDG_STATE_HOME/dispatch, else ~/.local/state/dispatch. */
export function defaultStateDir(env: ParseIo['env'], home: string): string {
  const base = env.XDG_STATE_HOME && env.XDG_STATE_HOME.startsWith('/') ? env.XDG_STATE_HOME : `${home}/.local/state`;
  return `${base}/dispatch`;
}

function parseApiUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    throw new RangeError(`"${text}" is not a URL (for example https://api.github.com or https://HOST/api/v3)`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new RangeError(`"${text}" must be an http or https URL`);
  if (url.username || url.password) throw new RangeError('the API URL must not carry credentials: use --token');
  return url.toString().replace(/\/+$/, '');
}

export function buildProgram(version: string, io: ParseIo, onVm: (config: VmConfig) => void = () => undefined): Command {
  const program = reportingOnce(new Command('dispatch'), io.out)
    .description('Serve workloads to servers that UEFI-HTTP-boot, and keep every result they report.')
    .version(version, '-V, --version')
    .argument('[filter...]', 'keep only workloads whose name contains one of these')
    .addOption(new Option('-o, --owner <owner>', 'GitHub owner of the repository'))
    .addOption(new Option('-r, --repo <repo>', 'GitHub repository: its release is served and reports become its issues'))
    .addOption(new Option('-t, --tag <tag>', 'the release whose application/vnd.dispatch+efi|iso|img assets are the workloads'))
    .addOption(new Option('--token <token>', 'GitHub token (else GITHUB_TOKEN, GH_TOKEN, then `gh auth token`)'))
    .addOption(new Option('--api-url <url>', 'GitHub API URL (env GITHUB_API_URL); GitHub Enterprise: https://HOST/api/v3').default('https://api.github.com').argParser(using(parseApiUrl)))
    .addOption(new Option('--dir <dir>', 'serve the *.efi, *.iso and *.img files in this directory'))
    .addOption(new Option('--reports <dir>', 'write each report as a Markdown file here (when no repository is given)').default('./reports'))
    .addOption(new Option('--state-dir <dir>', 'outbox of unfiled reports, cache of release assets, saved runs (--resume)').default(defaultStateDir(io.env, io.home), '$XDG_STATE_HOME/dispatch'))
    .addOption(new Option('-b, --bind <host:port>', 'address and port to listen on').default('0.0.0.0:8080').argParser(using(parseBind)))
    .addOption(new Option('-p, --path <path>', 'URL path servers boot from').default('/dispatch').argParser(using(parsePath)))
    .addOption(new Option('--no-mdns', 'do not advertise this dispatch on mDNS (_dispatch._tcp)'))
    .addOption(new Option('--max-report-bytes <size>', 'largest report accepted (bytes, KiB, MiB)').default('10MiB').argParser(using(parseBytes)))
    .addOption(new Option('--download-timeout <duration>', 'give a job back to the pool after this long without download progress').default('5m').argParser(using(parseDuration)))
    .addOption(new Option('--log <mode>', 'auto (the TUI on a terminal, else plain lines), tui, plain, or json (NDJSON)').default('auto').argParser(using(parseLogMode)))
    .addOption(new Option('--exit-when-done', 'exit once every job is final, every report filed and every server that ran a job got poweroff.efi; exit code 1 if a job failed'))
    .addOption(new Option('--linger <duration>', 'with --exit-when-done: how long to wait for servers to fetch poweroff.efi').default('5m').argParser(using(parseDuration)))
    .addOption(new Option('--run-timeout <duration>', 'fail a job whose workload has not reported this long after `beacon boot`').default('60m').argParser(using(parseDuration)))
    .addOption(new Option('--resume', 'continue the run saved in --state-dir for the same release or directory (else start afresh)'))

    // Without an action of its own, a program with subcommands treats filters as unknown commands.
    .action(() => undefined);
  addVmCommand(program, using, onVm);
  return program;
}

function parseOrUsage<T>(parse: (text: string) => T, text: string, flag: string): T {
  try {
    return parse(text);
  } catch (err) {
    throw new UsageError(`${flag}: ${(err as Error).message}`);
  }
}

export type ParsedCommand = { readonly command: 'serve'; readonly config: Config; readonly ui: UiConfig } | { readonly command: 'vm'; readonly config: VmConfig };

/** Parse argv (without node and script) into a Config, or throw UsageError / InfoExit. */
export function parseArgs(argv: readonly string[], version: string, io: ParseIo): Config {
  const parsed = parseCommandLine(argv, version, io);
  if (parsed.command !== 'serve') throw new UsageError(`"${parsed.command}" is a subcommand`);
  return parsed.config;
}

/** Parse argv: serve workloads (the root command), or `vm`. Throws UsageError / InfoExit. */
export function parseCommandLine(argv: readonly string[], version: string, io: ParseIo): ParsedCommand {
  let vm: VmConfig | undefined;
  const program = buildProgram(version, io, (config) => (vm = config));
  try {
    program.parse([...argv], { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.exitCode === 0) throw new InfoExit(err.code);
      throw new UsageError(err.message.replace(/^error: /, '').split('\n')[0]!);
    }
    throw err;
  }
  if (vm) return { command: 'vm', config: vm };
  const opts = program.opts<{
    owner?: string;
    repo?: string;
    tag?: string;
    token?: string;
    apiUrl: string;
    stateDir: string;
    dir?: string;
    reports: string;
    bind: { host: string; port: number } | string;
    path: string;
    mdns: boolean;
    maxReportBytes: number | string;
    downloadTimeout: number | string;
    log: LogMode;
    exitWhenDone?: boolean;
    linger: number | string;
    runTimeout: number | string;
    resume?: boolean;
  }>();
  // Defaults are given as text so --help shows them as typed; parse them here.
  const bind = typeof opts.bind === 'string' ? parseBind(opts.bind) : opts.bind;
  for (const [flag, value] of [['--owner', opts.owner], ['--repo', opts.repo], ['--tag', opts.tag], ['--dir', opts.dir], ['--token', opts.token], ['--reports', opts.reports], ['--state-dir', opts.stateDir]] as const) {
    if (value !== undefined && value.trim() === '') throw new UsageError(`${flag} is empty`);
  }
  if ((opts.owner === undefined) !== (opts.repo === undefined)) throw new UsageError('--owner and --repo go together');
  if (opts.tag !== undefined && opts.owner === undefined) throw new UsageError('--tag needs --owner and --repo');
  if (opts.tag !== undefined && opts.dir !== undefined) throw new UsageError('serve either a release (--tag) or a directory (--dir), not both');
  if (opts.tag === undefined && opts.dir === undefined) {
    throw new UsageError('no workloads to serve: pass --owner O --repo R --tag T for a GitHub release, or --dir DIR for a directory of *.efi, *.iso, *.img files');
  }
  // Flags, then the environment, then defaults.
  const apiUrl =
    program.getOptionValueSource('apiUrl') === 'cli' || !io.env.GITHUB_API_URL?.trim()
      ? parseOrUsage(parseApiUrl, opts.apiUrl, '--api-url')
      : parseOrUsage(parseApiUrl, io.env.GITHUB_API_URL, 'GITHUB_API_URL');
  const config: Config = {
    dir: opts.dir,
    reports: opts.reports,
    github:
      opts.owner !== undefined && opts.repo !== undefined
        ? { owner: opts.owner.trim(), repo: opts.repo.trim(), tag: opts.tag, apiUrl, token: opts.token }
        : undefined,
    stateDir: opts.stateDir,
    host: bind.host,
    port: bind.port,
    path: opts.path,
    mdns: opts.mdns,
    maxReportBytes: typeof opts.maxReportBytes === 'string' ? parseBytes(opts.maxReportBytes) : opts.maxReportBytes,
    downloadTimeoutMs: typeof opts.downloadTimeout === 'string' ? parseDuration(opts.downloadTimeout) : opts.downloadTimeout,
    filters: program.processedArgs[0] as string[],
    runTimeoutMs: typeof opts.runTimeout === 'string' ? parseDuration(opts.runTimeout) : opts.runTimeout,
    resume: opts.resume === true,
  };
  const ui: UiConfig = {
    log: opts.log,
    exitWhenDone: opts.exitWhenDone === true,
    lingerMs: typeof opts.linger === 'string' ? parseDuration(opts.linger) : opts.linger,
  };
  if (!ui.exitWhenDone && program.getOptionValueSource('linger') === 'cli') throw new UsageError('--linger only makes sense with --exit-when-done');
  return { command: 'serve', config, ui };
}
