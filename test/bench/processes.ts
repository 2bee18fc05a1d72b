import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

const PACKAGE = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { bin: { dispatch: string }; scripts: { start: string } };

/** The compiled `dispatch` command (package.json's bin, which `npm start` runs too), built by `npm run bench` first. */
export const CLI = new URL(`../../${PACKAGE.bin.dispatch}`, import.meta.url).pathname;

/**
 * The node flags `npm start` runs dispatch with (package.json): the bench
 * measures what users run. Node 24 lets the young generation grow to 128 MB
 * under load; 16 MB semi-spaces, Node 20's default, hold it where Node 20 does.
 */
export const START_FLAGS: readonly string[] = [...PACKAGE.scripts.start.matchAll(/\s(--[a-z-]+=\S+)/g)].map((match) => match[1]!);

/** A port nobody listens on now (the OS picks it; a tiny race with other programs is acceptable in a bench). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * The fields of a /proc/…/stat text after the command name, from the state
 * on (state, ppid, …): the name may hold spaces, so they count from its
 * closing parenthesis.
 */
export function statFields(text: string): string[] {
  return text.slice(text.lastIndexOf(')') + 2).split(' ');
}

/** A process whose parent is `pid` (Linux: /proc), e.g. what script(1) runs: its shell execs the command. */
export function childOf(pid: number): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = (() => {
      try {
        return readFileSync(`/proc/${entry}/stat`, 'utf8');
      } catch {
        return '';
      }
    })();
    const ppid = Number(statFields(stat)[1]);
    if (ppid === pid) return Number(entry);
  }
  return undefined;
}

/** Resident memory of a process, from /proc (Linux): now (VmRSS) and its peak so far (VmHWM), in bytes. */
export async function memoryOf(pid: number): Promise<{ rss: number; hwm: number } | undefined> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => undefined);
  if (!text) return undefined;
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0) * 1024;
  return { rss: field('VmRSS'), hwm: field('VmHWM') };
}

/** CPU time a process has used so far (user + system), ms, from /proc/<pid>/stat. */
export async function cpuOf(pid: number): Promise<number> {
  const { user, system } = await cpuSplitOf(pid);
  return user + system;
}

/**
 * CPU ms a process has used so far, in user space and in the kernel on its
 * behalf; with `thread`, that thread's alone (the process's id is its main thread).
 */
export async function cpuSplitOf(pid: number, thread?: number): Promise<{ user: number; system: number }> {
  const text = await readFile(thread === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${thread}/stat`, 'utf8').catch(() => '');
  return cpuOfStat(statFields(text));
}

/** User and kernel CPU ms from /proc stat fields (statFields): utime and stime, the 12th and 13th after the command name, in 1/100 s. */
function cpuOfStat(fields: readonly string[]): { user: number; system: number } {
  return { user: (Number(fields[11]) * 1000) / 100, system: (Number(fields[12]) * 1000) / 100 };
}

export interface Spawned {
  readonly pid: number;
  /** Largest VmRSS seen by the sampler and the kernel's own high-water mark, bytes. */
  peak(): Promise<{ sampled: number; hwm: number }>;
  stop(): Promise<void>;
}

/** Sample VmRSS every `everyMs` until stopped; the kernel's VmHWM backs it up between samples. */
function sampler(pid: number, everyMs = 50) {
  let max = 0;
  let hwm = 0;
  const timer = setInterval(() => {
    void memoryOf(pid).then((m) => {
      if (!m) return;
      max = Math.max(max, m.rss);
      hwm = Math.max(hwm, m.hwm);
    });
  }, everyMs);
  return {
    async peak() {
      const m = await memoryOf(pid);
      if (m) {
        max = Math.max(max, m.rss);
        hwm = Math.max(hwm, m.hwm);
      }
      return { sampled: max, hwm };
    },
    stop: () => clearInterval(timer),
  };
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Stop a child we started: SIGTERM, then SIGKILL if it is still there after `graceMs`. */
async function terminate(child: ChildProcess, graceMs = 5_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const gone = await Promise.race([exited(child).then(() => true), delay(graceMs).then(() => false)]);
  if (!gone) {
    child.kill('SIGKILL');
    await exited(child);
  }
}

export interface DispatchOptions {
  /** Scratch directory of this instance (its log, reports and state go here). */
  readonly home: string;
  readonly port: number;
  /** Serve these workloads (--dir), or a release (the rest of the arguments). */
  readonly args: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  /** Extra node flags, e.g. --cpu-prof. */
  readonly nodeFlags?: readonly string[];
  /**
   * Run dispatch on a pseudo-terminal of this size (util-linux `script`), so
   * that it draws its TUI as on a user's terminal; what it draws goes to the log.
   */
  readonly terminal?: { readonly columns: number; readonly rows: number };
}

/** The first child process of `pid`, or NaN. */
function firstChildOf(pid: number): number {
  return Number(spawnSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).stdout.trim().split('\n')[0] || NaN);
}

/** `text` as one word for sh. */
const shellWord = (text: string) => `'${text.replaceAll("'", `'\\''`)}'`;

/**
 * The real CLI in a process of its own, bound to loopback without mDNS. Its
 * log goes to a file (a pipe the bench might not drain in time would block
 * dispatch's synchronous stdout writes and distort the figures).
 */
export async function startDispatchCli(options: DispatchOptions): Promise<Spawned & { readonly origin: string; readonly url: string; readonly log: string }> {
  await mkdir(options.home, { recursive: true });
  const log = join(options.home, 'dispatch.log');
  const out = openSync(log, 'w');
  const command = [process.execPath, ...START_FLAGS, ...(options.nodeFlags ?? []), CLI, '--bind', `127.0.0.1:${options.port}`, '--no-mdns', '--state-dir', join(options.home, 'state'), '--reports', join(options.home, 'reports'), ...options.args];
  const terminal = options.terminal;
  // On a terminal: script's shell sets the size and becomes dispatch (exec), a child of script.
  const [file, ...args] = terminal ? ['script', '-qfec', `stty cols ${terminal.columns} rows ${terminal.rows} && exec ${command.map(shellWord).join(' ')}`, '/dev/null'] : command;
  const child = spawn(file!, args, { stdio: ['ignore', out, out], env: { ...process.env, ...options.env, SHELL: '/bin/sh' }, cwd: options.home });
  closeSync(out);
  const origin = `http://127.0.0.1:${options.port}`;
  const started = Date.now();
  // Ready when the API answers: it changes no job, unlike a HEAD.
  for (;;) {
    if (child.exitCode !== null) throw new Error(`dispatch exited with ${child.exitCode}: ${await readFile(log, 'utf8')}`);
    const ok = await fetch(`${origin}/api/jobs`).then((r) => r.arrayBuffer().then(() => r.ok), () => false);
    if (ok) break;
    if (Date.now() - started > 20_000) {
      await terminate(child);
      throw new Error(`dispatch did not answer within 20 s: ${await readFile(log, 'utf8')}`);
    }
    await delay(50);
  }
  const pid = terminal ? firstChildOf(child.pid!) : child.pid!;
  if (!(pid > 0)) {
    await terminate(child);
    throw new Error(`dispatch's process under script was not found: ${await readFile(log, 'utf8')}`);
  }
  const memory = sampler(pid);
  return {
    pid,
    origin,
    url: `${origin}/dispatch`,
    log,
    peak: () => memory.peak(),
    stop: async () => {
      memory.stop();
      // Stopped as a user would, with a signal to dispatch itself; script ends with it.
      if (terminal) {
        try {
          process.kill(pid, 'SIGTERM');
        } catch {
          // Already gone.
        }
      }
      await terminate(child);
    },
  };
}

export const NGINX = '/usr/sbin/nginx';

/** Is Debian's nginx there? */
export function nginxAvailable(): boolean {
  return spawnSync(NGINX, ['-v'], { stdio: 'ignore' }).status === 0;
}

/**
 * What nginx answers at `path` for the fleet: the firmware's HEAD and GET get
 * `file` (a name under root), `beacon boot` (POST) and `beacon report` (PUT)
 * a 200 with the words dispatch sends. nginx keeps no state, so it never hands
 * out poweroff.efi: every boot is a workload's.
 */
export interface NginxFleet {
  readonly path: string;
  readonly file: string;
}

/**
 * A private nginx: our own minimal config in a scratch prefix, one worker
 * (dispatch is one process too), sendfile on, access log off, serving `root`
 * on 127.0.0.1:port in the foreground, with dispatch's listen backlog; and,
 * given `fleet`, the fleet's protocol at its path.
 */
export async function startNginx(prefix: string, root: string, port: number, fleet?: NginxFleet): Promise<Spawned & { readonly origin: string }> {
  await mkdir(join(prefix, 'tmp'), { recursive: true });
  // As root, workers would drop to `nobody`, who cannot read our 0700 scratch directory.
  const user = process.getuid?.() === 0 ? 'user root root;\n' : '';
  const conf = `${user}worker_processes 1;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 65;
  client_body_temp_path ${prefix}/tmp/body;
  proxy_temp_path ${prefix}/tmp/proxy;
  fastcgi_temp_path ${prefix}/tmp/fastcgi;
  uwsgi_temp_path ${prefix}/tmp/uwsgi;
  scgi_temp_path ${prefix}/tmp/scgi;
  types { application/vnd.efi-img img; application/efi efi; }
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:${port} backlog=4096;
    root ${root};${fleet ? fleetLocation(fleet) : ''}
  }
}
`;
  const confPath = join(prefix, 'nginx.conf');
  await writeFile(confPath, conf);
  const child = spawn(NGINX, ['-p', prefix, '-e', join(prefix, 'error.log'), '-c', confPath, '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const origin = `http://127.0.0.1:${port}`;
  const started = Date.now();
  for (;;) {
    if (child.exitCode !== null) throw new Error(`nginx exited with ${child.exitCode}: ${stderr}`);
    const ok = await fetch(`${origin}/`).then((r) => r.arrayBuffer().then(() => true), () => false);
    if (ok) break;
    if (Date.now() - started > 10_000) {
      await terminate(child);
      throw new Error(`nginx did not answer within 10 s: ${stderr}`);
    }
    await delay(50);
  }
  // The master only supervises; the worker serves. Measure the worker.
  const worker = firstChildOf(child.pid!) || child.pid!;
  const memory = sampler(worker);
  return {
    pid: worker,
    origin,
    peak: () => memory.peak(),
    stop: async () => {
      memory.stop();
      await terminate(child);
    },
  };
}

function fleetLocation({ path, file }: NginxFleet): string {
  if (!/^\/[\w./-]*$/.test(path) || !/^[\w.-]+$/.test(file)) throw new Error(`not a path and file nginx's config can take as they are: ${path} ${file}`);
  return `
    location = ${path} {
      if ($request_method = POST) { return 200 "booting\\n"; }
      if ($request_method = PUT) { return 200 "report stored\\n"; }
      rewrite ^ /${file} break;
    }`;
}

/** The fleet's floor (test/bench/floor.ts) in a process of its own, serving `workload` at http://127.0.0.1:port/dispatch. */
export async function startFloor(port: number, workload: string, poweroff: string): Promise<Spawned & { readonly url: string }> {
  const script = new URL('./floor.ts', import.meta.url).pathname;
  const child = spawn(process.execPath, ['--import', 'tsx', script, String(port), workload, poweroff], { stdio: ['ignore', 'pipe', 'pipe'] });
  let said = '';
  child.stderr!.on('data', (chunk: Buffer) => (said += chunk.toString()));
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      said += chunk.toString();
      if (said.includes('ready\n')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`the floor server exited with ${code}: ${said}`)));
  });
  const memory = sampler(child.pid!);
  return {
    pid: child.pid!,
    url: `http://127.0.0.1:${port}/dispatch`,
    peak: () => memory.peak(),
    stop: async () => {
      memory.stop();
      await terminate(child);
    },
  };
}

/** One thread of a process (Linux: /proc/PID/task): its nice value and the CPU ms it has used so far. */
export interface ThreadStat {
  readonly tid: number;
  readonly nice: number;
  readonly cpuMs: number;
}

/** Every thread of a process now; a thread that ends while it is read is left out. */
export async function threadsOf(pid: number): Promise<ThreadStat[]> {
  const threads: ThreadStat[] = [];
  for (const tid of await readdir(`/proc/${pid}/task`).catch(() => [])) {
    const text = await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8').catch(() => '');
    if (text === '') continue;
    // nice is the 19th field, the 17th after the command name.
    const fields = statFields(text);
    const { user, system } = cpuOfStat(fields);
    threads.push({ tid: Number(tid), nice: Number(fields[16]), cpuMs: user + system });
  }
  return threads;
}

/** CPU ms the process's main thread (dispatch's JavaScript thread) has used so far. */
export async function mainThreadCpuOf(pid: number): Promise<number> {
  const { user, system } = await cpuSplitOf(pid, pid);
  return user + system;
}
