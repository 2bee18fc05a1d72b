/**
 * Network namespaces for mDNS tests: a few namespaces joined by veth pairs, made and removed by
 * the test, and processes started inside them. Needs root (or CAP_NET_ADMIN + CAP_SYS_ADMIN)
 * and iproute2; `unavailable()` says why not when it cannot work, so the test can skip.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Why namespaces cannot be used here, or undefined when they can. */
export async function unavailable(): Promise<string | undefined> {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (!(await which('ip'))) return '`ip` (iproute2) is not installed';
  const probe = `dnsprobe${process.pid}`;
  try {
    await run('ip', ['netns', 'add', probe]);
  } catch (err) {
    return `cannot create a network namespace (needs root or CAP_SYS_ADMIN): ${firstLine(err)}`;
  }
  try {
    await run('ip', ['-n', probe, 'link', 'set', 'lo', 'up']);
  } catch (err) {
    return `cannot configure a network namespace: ${firstLine(err)}`;
  } finally {
    await run('ip', ['netns', 'del', probe]).catch(() => undefined);
  }
  return undefined;
}

export async function which(command: string): Promise<boolean> {
  try {
    await run('sh', ['-c', `command -v ${command}`]);
    return true;
  } catch {
    return false;
  }
}

export interface Output {
  text: string;
  /** Resolve with the first match of `pattern` in the output so far or to come. */
  wait(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
}

export interface Started {
  readonly child: ChildProcess;
  readonly stdout: Output;
  readonly stderr: Output;
  /** The exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>;
  /** Send a signal and wait for the exit code (SIGKILL after `graceMs`). */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<number | null>;
}

export class Lab {
  readonly #namespaces: string[] = [];
  readonly #children = new Set<ChildProcess>();
  readonly #tag = `${process.pid % 100_000}`;

  /** A namespace with loopback up. */
  async namespace(letter: string): Promise<string> {
    const name = `dispatch-mdns-${letter}-${this.#tag}`;
    await ip('netns', 'add', name);
    this.#namespaces.push(name);
    await ip('-n', name, 'link', 'set', 'lo', 'up');
    return name;
  }

  /**
   * Join two namespaces with a veth pair and give each end an address in `subnet` (`10.77.5`:
   * .1 and .2, /24). Multicast goes out that link: without a route for 224.0.0.0/4 a process
   * that does not pick an interface itself (dig) gets "network unreachable".
   */
  async link(left: string, right: string, subnet: string, index: number): Promise<{ left: string; right: string }> {
    const l = `dv${index}a${this.#tag}`.slice(0, 15);
    const r = `dv${index}b${this.#tag}`.slice(0, 15);
    await ip('link', 'add', l, 'netns', left, 'type', 'veth', 'peer', 'name', r, 'netns', right);
    await ip('-n', left, 'addr', 'add', `${subnet}.1/24`, 'dev', l);
    await ip('-n', right, 'addr', 'add', `${subnet}.2/24`, 'dev', r);
    await ip('-n', left, 'link', 'set', l, 'up');
    await ip('-n', right, 'link', 'set', r, 'up');
    for (const [ns, dev] of [[left, l], [right, r]] as const) {
      await ip('-n', ns, 'route', 'add', '224.0.0.0/4', 'dev', dev).catch(() => undefined);
    }
    return { left: l, right: r };
  }

  /** Run to the end inside `ns`. */
  async exec(ns: string, command: string, args: readonly string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}) {
    const started = this.spawn(ns, command, args, options.env);
    const timer = setTimeout(() => started.child.kill('SIGKILL'), options.timeoutMs ?? 20_000);
    const code = await started.exited;
    clearTimeout(timer);
    return { code, stdout: started.stdout.text, stderr: started.stderr.text };
  }

  /** Start `command` inside `ns` (ip netns exec execs it: the child's pid is the command's). */
  spawn(ns: string, command: string, args: readonly string[], env?: NodeJS.ProcessEnv): Started {
    const child = spawn('ip', ['netns', 'exec', ns, command, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
    this.#children.add(child);
    const exited = once(child, 'exit').then(([code]) => {
      this.#children.delete(child);
      return code as number | null;
    });
    return {
      child,
      stdout: collect(child.stdout!),
      stderr: collect(child.stderr!),
      exited,
      stop: async (signal = 'SIGTERM', graceMs = 5_000) => {
        if (child.exitCode === null && child.signalCode === null) child.kill(signal);
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        const code = await exited;
        clearTimeout(timer);
        return code;
      },
    };
  }

  /** Kill what was started here and delete the namespaces (their veths go with them). */
  async destroy(): Promise<void> {
    await Promise.all(
      [...this.#children].map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        child.kill('SIGKILL');
        await once(child, 'exit');
      }),
    );
    for (const ns of this.#namespaces.splice(0)) await ip('netns', 'del', ns).catch(() => undefined);
  }
}

async function ip(...args: string[]): Promise<void> {
  try {
    await run('ip', args);
  } catch (err) {
    throw new Error(`ip ${args.join(' ')}: ${firstLine(err)}`, { cause: err });
  }
}

function collect(stream: NodeJS.ReadableStream): Output {
  const output: Output = {
    text: '',
    wait: (pattern, timeoutMs = 15_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const match = pattern.exec(output.text);
          if (!match) return false;
          clearTimeout(timer);
          stream.off('data', check);
          stream.off('end', ended);
          resolve(match);
          return true;
        };
        const ended = () => {
          if (!check()) reject(new Error(`output ended without ${pattern}:\n${output.text}`));
        };
        const timer = setTimeout(() => {
          stream.off('data', check);
          stream.off('end', ended);
          reject(new Error(`no ${pattern} within ${timeoutMs} ms in:\n${output.text}`));
        }, timeoutMs);
        if (check()) return;
        stream.on('data', check);
        stream.on('end', ended);
      }),
  };
  stream.on('data', (d: Buffer) => (output.text += d.toString()));
  return output;
}

function firstLine(err: unknown): string {
  const e = err as { stderr?: string; message?: string };
  return (e.stderr?.trim() || e.message || String(err)).split('\n')[0]!;
}
