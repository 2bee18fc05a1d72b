import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { parseBind, parseBytes, parseDuration, parsePath } from './units.ts';

/** Everything a run needs, decided once from the command line. */
export interface Config {
  readonly dir: string;
  readonly reports: string;
  readonly host: string;
  readonly port: number;
  readonly path: string;
  readonly mdns: boolean;
  readonly maxReportBytes: number;
  readonly downloadTimeoutMs: number;
  readonly filters: readonly string[];
}

/** A bad command line: one line on stderr, exit 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Asked for help or the version: print it, exit 0. */
export class InfoExit extends Error {
  override name = 'InfoExit';
}

export interface ParseIo {
  /** Where --help and --version go. */
  readonly out: (text: string) => void;
}

/** Turn commander's parser errors into a one-line reason. */
function using<T>(parse: (text: string) => T) {
  return (text: string): T => {
    try {
      return parse(text);
    } catch (err) {
      throw new InvalidArgumentError((err as Error).message);
    }
  };
}

export function buildProgram(version: string, io: ParseIo): Command {
  return new Command('dispatch')
    .description('Serve workloads to servers that UEFI-HTTP-boot, and keep every result they report.')
    .version(version, '-V, --version')
    .argument('[filter...]', 'keep only workloads whose name contains one of these')
    .addOption(new Option('--dir <dir>', 'serve the *.efi, *.iso and *.img files in this directory'))
    .addOption(new Option('--reports <dir>', 'write each report as a Markdown file here').default('./reports'))
    .addOption(new Option('-b, --bind <host:port>', 'address and port to listen on').default('0.0.0.0:8080').argParser(using(parseBind)))
    .addOption(new Option('-p, --path <path>', 'URL path servers boot from').default('/dispatch').argParser(using(parsePath)))
    .addOption(new Option('--no-mdns', 'do not advertise on mDNS (advertising arrives in a later version)'))
    .addOption(new Option('--max-report-bytes <size>', 'largest report accepted (bytes, KiB, MiB)').default('10MiB').argParser(using(parseBytes)))
    .addOption(new Option('--download-timeout <duration>', 'give a job back to the pool after this long without download progress').default('5m').argParser(using(parseDuration)))
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({
      writeOut: io.out,
      // Errors are reported once, by the caller, as one line.
      writeErr: () => undefined,
      outputError: () => undefined,
    });
}

/** Parse argv (without node and script) into a Config, or throw UsageError / InfoExit. */
export function parseArgs(argv: readonly string[], version: string, io: ParseIo): Config {
  const program = buildProgram(version, io);
  try {
    program.parse([...argv], { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.exitCode === 0) throw new InfoExit(err.code);
      throw new UsageError(err.message.replace(/^error: /, '').split('\n')[0]!);
    }
    throw err;
  }
  const opts = program.opts<{
    dir?: string;
    reports: string;
    bind: { host: string; port: number } | string;
    path: string;
    mdns: boolean;
    maxReportBytes: number | string;
    downloadTimeout: number | string;
  }>();
  // Defaults are given as text so --help shows them as typed; parse them here.
  const bind = typeof opts.bind === 'string' ? parseBind(opts.bind) : opts.bind;
  if (opts.dir === undefined) throw new UsageError('no workloads to serve: pass --dir DIR (a directory of *.efi, *.iso, *.img files)');
  if (opts.dir.trim() === '') throw new UsageError('--dir is empty');
  if (opts.reports.trim() === '') throw new UsageError('--reports is empty');
  return {
    dir: opts.dir,
    reports: opts.reports,
    host: bind.host,
    port: bind.port,
    path: opts.path,
    mdns: opts.mdns,
    maxReportBytes: typeof opts.maxReportBytes === 'string' ? parseBytes(opts.maxReportBytes) : opts.maxReportBytes,
    downloadTimeoutMs: typeof opts.downloadTimeout === 'string' ? parseDuration(opts.downloadTimeout) : opts.downloadTimeout,
    filters: program.processedArgs[0] as string[],
  };
}
