// The only file that starts QEMU or talks QMP. One VM: OVMF with a varstore copy that
// HTTP-boots a URL, user-mode networking, the serial console streamed, and QMP events
// to tell a power-off from a reset (FACTS §A has the command line and what was measured).

import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { accessSync, constants, createWriteStream, type WriteStream } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { withHttpBoot } from './varstore.ts';

export const INSTALL_HINT = 'install them: apt-get install qemu-system-x86 ovmf';

/** The host as seen from QEMU user networking. */
export const USER_NET_HOST = '10.0.2.2';

/** Code + vars template pairs, newest layout first (Debian's names; the 2M pair works too). */
const FIRMWARE_PAIRS: readonly { code: string; vars: string }[] = [
  { code: '/usr/share/OVMF/OVMF_CODE_4M.fd', vars: '/usr/share/OVMF/OVMF_VARS_4M.fd' },
  { code: '/usr/share/OVMF/OVMF_CODE.fd', vars: '/usr/share/OVMF/OVMF_VARS.fd' },
];

const QEMU = 'qemu-system-x86_64';

/** qemu or OVMF missing, or the varstore cannot be written: the VM never started. */
export class VmSetupError extends Error {
  override name = 'VmSetupError';
}

export interface Firmware {
  readonly qemu: string;
  readonly code: string;
  readonly vars: string;
}

export interface VmOptions {
  /** What the firmware HTTP-boots; a loopback host becomes 10.0.2.2. */
  readonly url: string;
  /** Guest RAM; ISO and IMG workloads are copied whole into a RAM disk. Default 1024. */
  readonly memoryMiB?: number;
  /** Default 10 minutes. */
  readonly timeoutMs?: number;
  /** Firmware boots allowed (the first one counts); one more reset ends the VM. Default 10. */
  readonly maxBoots?: number;
  /** The serial console also goes to this file. */
  readonly serialLog?: string;
  /** Keep the scratch directory (varstore copy, QEMU's stderr) instead of removing it. */
  readonly keep?: boolean;
  /** Serial output as it arrives. */
  readonly onSerial?: (chunk: Buffer) => void;
  /** Progress lines: boots, resets, the end. */
  readonly log?: (message: string) => void;
  /** Aborting stops the VM (exit reason "stopped"). */
  readonly signal?: AbortSignal;
  /** Where qemu and OVMF are; found on PATH and in /usr/share/OVMF otherwise. */
  readonly firmware?: Firmware;
}

export type VmEnd =
  /** The guest switched itself off (QMP SHUTDOWN guest-shutdown): the only success. */
  | 'poweroff'
  | 'max-boots'
  | 'timeout'
  | 'stopped'
  /** QEMU failed to start, died, or shut down for another reason. */
  | 'qemu-error';

export interface QmpEvent {
  readonly event: string;
  readonly data?: Record<string, unknown>;
  /** Milliseconds since QEMU was started. */
  readonly atMs: number;
}

export interface VmResult {
  readonly end: VmEnd;
  readonly ok: boolean;
  /** One line: why the VM ended. */
  readonly message: string;
  /** Firmware boots: 1 + guest resets. */
  readonly boots: number;
  readonly serial: string;
  readonly events: readonly QmpEvent[];
  /** The URL written into the boot option. */
  readonly bootUrl: string;
  readonly elapsedMs: number;
  /** The kept scratch directory, with --keep. */
  readonly dir: string | undefined;
  /** QEMU's exit code, or null when it ended by a signal. */
  readonly exitCode: number | null;
}

/** The URL as the guest must use it: loopback on the host is 10.0.2.2 behind user networking. */
export function guestUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new VmSetupError(`"${url}" is not a URL (for example http://127.0.0.1:8080/dispatch)`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new VmSetupError(`"${url}" must be an http or https URL`);
  const host = parsed.hostname.toLowerCase();
  if (host === 'localhost' || /^127\.\d+\.\d+\.\d+$/.test(host) || host === '[::1]') parsed.hostname = USER_NET_HOST;
  return parsed.toString();
}

function onPath(binary: string, env: NodeJS.ProcessEnv): string | undefined {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, binary);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // next
    }
  }
  return undefined;
}

function readable(path: string): boolean {
  try {
    accessSync(path, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

/** qemu-system-x86_64 and an OVMF pair, or a one-line reason they are missing. */
export function findFirmware(env: NodeJS.ProcessEnv = process.env): Firmware | string {
  const qemu = onPath(QEMU, env);
  const pair = FIRMWARE_PAIRS.find((p) => readable(p.code) && readable(p.vars));
  if (!qemu && !pair) return `${QEMU} and OVMF are missing; ${INSTALL_HINT}`;
  if (!qemu) return `${QEMU} is missing; ${INSTALL_HINT}`;
  if (!pair) return `OVMF firmware (${FIRMWARE_PAIRS[0]!.code}) is missing; ${INSTALL_HINT}`;
  return { qemu, ...pair };
}

export function qemuArgs(options: { code: string; vars: string; memoryMiB: number; qmpSocket: string }): string[] {
  return [
    '-accel', 'tcg',
    '-M', 'q35',
    '-nodefaults',
    '-m', String(options.memoryMiB),
    '-smp', '1',
    '-display', 'none',
    '-monitor', 'none',
    '-serial', 'stdio',
    '-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${options.code}`,
    '-drive', `if=pflash,format=raw,unit=1,file=${options.vars}`,
    '-netdev', 'user,id=n0',
    // romfile= keeps iPXE's option ROM off, so OVMF's own network stack does the HTTP boot.
    '-device', 'virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56,romfile=,addr=0x3',
    // QEMU connects to our socket, and the guest waits (-S) until we have said `cont`:
    // no event can happen before we listen.
    '-qmp', `unix:${options.qmpSocket}`,
    '-S',
  ];
}

const KILL_GRACE_MS = 3_000;
const QMP_CONNECT_MS = 15_000;

/** Boot one VM from `options.url` and wait until it ends. Never throws once QEMU has started. */
export async function runVm(options: VmOptions): Promise<VmResult> {
  const found = options.firmware ?? findFirmware();
  if (typeof found === 'string') throw new VmSetupError(found);
  const memoryMiB = options.memoryMiB ?? 1024;
  const timeoutMs = options.timeoutMs ?? 10 * 60_000;
  const maxBoots = options.maxBoots ?? 10;
  const log = options.log ?? (() => undefined);
  const bootUrl = guestUrl(options.url);
  if (options.signal?.aborted) throw new VmSetupError('stopped before the VM started');

  let template: Buffer;
  try {
    template = await readFile(found.vars);
  } catch (err) {
    throw new VmSetupError(`cannot read ${found.vars}: ${(err as Error).message}`, { cause: err });
  }
  let vars: Buffer;
  try {
    vars = withHttpBoot(template, bootUrl);
  } catch (err) {
    throw new VmSetupError(`${found.vars}: ${(err as Error).message}`, { cause: err });
  }

  const dir = await mkdtemp(join(tmpdir(), 'dispatch-vm-'));
  const varsPath = join(dir, 'vars.fd');
  const qmpSocket = join(dir, 'qmp.sock');
  await writeFile(varsPath, vars);

  let serialFile: WriteStream | undefined;
  if (options.serialLog !== undefined) {
    serialFile = createWriteStream(options.serialLog);
    try {
      await once(serialFile, 'open');
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw new VmSetupError(`cannot write the serial log ${options.serialLog}: ${(err as Error).message}`, { cause: err });
    }
  }

  const qmp = createServer();
  qmp.listen(qmpSocket);
  await once(qmp, 'listening');

  const started = Date.now();
  const events: QmpEvent[] = [];
  const serial: Buffer[] = [];
  let stderr = '';
  let boots = 1;
  let ending: { end: VmEnd; message: string } | undefined;
  let shutdownReason: string | undefined;

  const child: ChildProcess = spawn(found.qemu, qemuArgs({ code: found.code, vars: varsPath, memoryMiB, qmpSocket }), {
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group: Ctrl-C reaches us, and we switch the VM off (one reason, one exit code).
    detached: true,
  });
  // If this process dies some other way, the VM must not outlive it.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>((resolve) => {
    child.once('error', (error) => resolve({ code: null, signal: null, error }));
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  child.stdout!.on('data', (chunk: Buffer) => {
    serial.push(chunk);
    serialFile?.write(chunk);
    options.onSerial?.(chunk);
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    // Only the tail matters for the reason line.
    stderr = (stderr + chunk.toString('utf8')).slice(-8_192);
  });
  log(`QEMU started (pid ${child.pid ?? '?'}), firmware HTTP-boots ${bootUrl}`);

  let killTimer: NodeJS.Timeout | undefined;
  const stop = (end: VmEnd, message: string) => {
    if (ending) return;
    ending = { end, message };
    child.kill('SIGTERM');
    killTimer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
  };

  const timeout = setTimeout(() => stop('timeout', `the VM did not power off within ${Math.round(timeoutMs / 1000)} s (--timeout)`), timeoutMs);
  const connectTimer = setTimeout(() => stop('qemu-error', `QEMU did not connect to QMP within ${QMP_CONNECT_MS / 1000} s`), QMP_CONNECT_MS);
  const onAbort = () => stop('stopped', 'stopped by a signal; the VM was switched off');
  options.signal?.addEventListener('abort', onAbort, { once: true });

  let connection: Socket | undefined;
  qmp.once('connection', (socket) => {
    clearTimeout(connectTimer);
    connection = socket;
    // No more clients: only QEMU talks to us.
    qmp.close();
    let buffered = '';
    let greeted = false;
    socket.setEncoding('utf8');
    socket.on('error', () => undefined);
    socket.on('data', (text: string) => {
      buffered += text;
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        if (!line) continue;
        let message: { QMP?: unknown; event?: string; data?: Record<string, unknown>; return?: unknown; error?: { desc?: string } };
        try {
          message = JSON.parse(line) as typeof message;
        } catch {
          continue;
        }
        if (message.QMP !== undefined && !greeted) {
          greeted = true;
          socket.write('{"execute":"qmp_capabilities"}\n{"execute":"cont"}\n');
        } else if (message.error) {
          stop('qemu-error', `QMP: ${message.error.desc ?? JSON.stringify(message.error)}`);
        } else if (message.event) {
          const event: QmpEvent = { event: message.event, ...(message.data ? { data: message.data } : {}), atMs: Date.now() - started };
          events.push(event);
          if (message.event === 'RESET') {
            boots++;
            log(`the guest reset (${String(message.data?.reason ?? 'no reason given')}); boot ${boots}`);
            if (boots > maxBoots) stop('max-boots', `the VM reset ${boots - 1} times without powering off (--max-boots ${maxBoots})`);
          } else if (message.event === 'SHUTDOWN') {
            shutdownReason = String(message.data?.reason ?? 'unknown');
          }
        }
      }
    });
  });

  const exit = await exited;
  clearTimeout(timeout);
  clearTimeout(connectTimer);
  clearTimeout(killTimer);
  options.signal?.removeEventListener('abort', onAbort);
  process.off('exit', killOnExit);
  connection?.destroy();
  qmp.close();
  if (serialFile) {
    serialFile.end();
    await once(serialFile, 'close').catch(() => undefined);
  }

  if (!ending) {
    if (exit.error) {
      ending = { end: 'qemu-error', message: `cannot start ${found.qemu}: ${exit.error.message}` };
    } else if (shutdownReason === 'guest-shutdown') {
      ending = { end: 'poweroff', message: `the guest powered off after ${boots} boot(s)` };
    } else {
      const lastLine = stderr.trim().split('\n').filter(Boolean).pop();
      const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
      const why = shutdownReason ? ` (shutdown reason ${shutdownReason})` : '';
      ending = { end: 'qemu-error', message: `QEMU ${how}${why}${lastLine ? `: ${lastLine}` : ''}` };
    }
  }
  const end = ending.end;
  if (options.keep) {
    await writeFile(join(dir, 'qemu-stderr.log'), stderr).catch(() => undefined);
    await rm(qmpSocket, { force: true });
  } else {
    await rm(dir, { recursive: true, force: true });
  }
  return {
    end,
    ok: end === 'poweroff',
    message: ending.message,
    boots,
    serial: Buffer.concat(serial).toString('utf8'),
    events,
    bootUrl,
    elapsedMs: Date.now() - started,
    dir: options.keep ? dir : undefined,
    exitCode: exit.code,
  };
}

