// `dispatch vm`: boot a QEMU + OVMF VM from a URL, for workload authors with no hardware.
import { Command, Option } from 'commander';
import { runVm, VmSetupError, type VmResult } from '../vm/index.ts';
import { parseDuration } from './units.ts';

export interface VmConfig {
  readonly url: string;
  readonly serialLog: string | undefined;
  readonly memoryMiB: number;
  readonly timeoutMs: number;
  readonly maxBoots: number;
  readonly keep: boolean;
}

const DEFAULT_TIMEOUT = '10m';

function positiveInteger(what: string, max: number) {
  return (text: string): number => {
    const value = Number(text.trim());
    if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(value) || value < 1 || value > max) {
      throw new RangeError(`"${text}" is not a ${what} (a whole number from 1 to ${max})`);
    }
    return value;
  };
}

const parseMemory = positiveInteger('memory size in MiB', 1024 * 1024);
const parseMaxBoots = positiveInteger('boot count', 100_000);

function parseUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    throw new RangeError(`"${text}" is not a URL (for example http://127.0.0.1:8080/dispatch)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new RangeError(`"${text}" must be an http or https URL`);
  return url.toString();
}

/**
 * The `vm` subcommand, added to the root program. Parsers wrap their RangeErrors with
 * `using` (options.ts) so commander reports one line.
 */
export function addVmCommand(program: Command, using: <T>(parse: (text: string) => T) => (text: string) => T, chosen: (config: VmConfig) => void): void {
  program
    .command('vm')
    .description('boot a QEMU + OVMF virtual machine that HTTP-boots URL (needs qemu-system-x86 and ovmf)')
    .addOption(new Option('--url <url>', 'what the firmware boots, e.g. http://127.0.0.1:8080/dispatch (a loopback host becomes 10.0.2.2)').makeOptionMandatory().argParser(using(parseUrl)))
    .addOption(new Option('--serial-log <file>', 'also write the serial console to this file'))
    .addOption(new Option('--memory <MiB>', 'guest RAM; ISO and IMG workloads are held whole in a RAM disk').default(1024).argParser(using(parseMemory)))
    .addOption(new Option('--timeout <duration>', 'give up when the VM has not powered off by then').default(DEFAULT_TIMEOUT).argParser(using(parseDuration)))
    .addOption(new Option('--max-boots <n>', 'give up when the firmware would boot more often than this').default(10).argParser(using(parseMaxBoots)))
    .addOption(new Option('--keep', 'keep the scratch directory (varstore copy, QEMU stderr) and print where'))
    .action((opts: { url: string; serialLog?: string; memory: number; timeout: number | string; maxBoots: number; keep?: boolean }) => {
      chosen({
        url: opts.url,
        serialLog: opts.serialLog,
        memoryMiB: opts.memory,
        timeoutMs: typeof opts.timeout === 'string' ? parseDuration(opts.timeout) : opts.timeout,
        maxBoots: opts.maxBoots,
        keep: opts.keep === true,
      });
    });
}

export interface VmIo {
  readonly stdout: (chunk: string | Buffer) => void;
  readonly stderr: (line: string) => void;
}

/** Run the VM to its end; the exit code is 0 only for a power-off. SIGINT/SIGTERM switch the VM off. */
export async function vmMain(config: VmConfig, io: VmIo): Promise<number> {
  const controller = new AbortController();
  const onSignal = () => controller.abort();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let result: VmResult;
  try {
    result = await runVm({
      url: config.url,
      memoryMiB: config.memoryMiB,
      timeoutMs: config.timeoutMs,
      maxBoots: config.maxBoots,
      keep: config.keep,
      signal: controller.signal,
      onSerial: (chunk) => io.stdout(chunk),
      log: (message) => io.stderr(`dispatch vm: ${message}`),
      ...(config.serialLog === undefined ? {} : { serialLog: config.serialLog }),
    });
  } catch (err) {
    if (err instanceof VmSetupError) {
      io.stderr(`dispatch: ${err.message}`);
      return 2;
    }
    throw err;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  if (result.dir !== undefined) io.stderr(`dispatch vm: kept ${result.dir}`);
  if (result.ok) {
    io.stderr(`dispatch vm: ${result.message}`);
    return 0;
  }
  io.stderr(`dispatch: ${result.message}`);
  return result.end === 'stopped' ? 130 : 1;
}
