// Builds examples/linux-workload: a Linux workload as one unified kernel image (UKI).
//
//   npx tsx examples/linux-workload/build.ts [--out DIR] [--cache DIR] [--beacon FILE]
//                                            [--url URL] [--compress gzip|zstd]
//
// → DIR/linux-workload.efi (default DIR: dist/linux-workload), which dispatch serves as
// application/efi. Inside: systemd-boot's EFI stub (systemd-boot-efi) with
//   .osrel    a few os-release lines
//   .cmdline  console=ttyS0 panic=-1 [dispatch.url=URL]
//   .linux    Debian's kernel (linux-image-amd64 → its versioned package)
//   .initrd   a newc cpio: busybox (busybox-static), the virtio-net modules from the same
//             kernel package, the standalone beacon with the libraries ldd lists, and init.sh
//             as /init.
// Debian packages are fetched with `apt-get download` (no install, no root needed) into the
// cache directory (default ${XDG_CACHE_HOME:-~/.cache}/dispatch/linux-workload) and unpacked
// from there, so a second build downloads nothing. The cpio is written here, not by cpio(1):
// in a fixed order, every timestamp 0, owned by root, so the same inputs give the same image.
// Tools: apt-get, dpkg-deb, tar, objcopy (binutils), ldd (libc-bin); xz / zstd only if the
// kernel package compresses its modules that way, zstd for --compress zstd.

import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { gzip as gzipCb } from 'node:zlib';

const run = promisify(execFile);
const gzip = promisify(gzipCb);

const HERE = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(HERE, '..', '..');
export const IMAGE_NAME = 'linux-workload.efi';
const INIT_SCRIPT = join(HERE, 'init.sh');

/** Loaded by /init in this order (FACTS §A), then efivarfs for beacon's Boot#### lookup. */
export const MODULES = [
  'virtio_ring',
  'virtio',
  'virtio_pci_legacy_dev',
  'virtio_pci_modern_dev',
  'virtio_pci',
  'failover',
  'net_failover',
  'virtio_net',
  'efivarfs',
] as const;

export const BASE_CMDLINE = 'console=ttyS0 panic=-1';

export interface WorkloadOptions {
  /** Where linux-workload.efi goes. */
  readonly out: string;
  /** Where .deb files and what is unpacked from them are kept between builds. */
  readonly cache?: string;
  /** The standalone beacon (default dist/beacon-linux-x64). */
  readonly beacon?: string;
  /** Bake dispatch.url=URL into the command line; without it beacon finds dispatch through the firmware's Boot#### variables. */
  readonly url?: string;
  readonly compress?: 'gzip' | 'zstd';
  readonly log?: (message: string) => void;
}

export interface WorkloadResult {
  readonly image: string;
  readonly bytes: number;
  readonly initrdBytes: number;
  readonly kernel: string;
  readonly cmdline: string;
  /** The image was already there, built from the same inputs. */
  readonly reused: boolean;
  readonly ms: number;
}

export function defaultCacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'dispatch', 'linux-workload');
}

/** What the build needs on PATH; empty when everything is there. */
export async function missingTools(compress: 'gzip' | 'zstd' = 'gzip'): Promise<string[]> {
  const tools: Array<[string, string]> = [
    ['apt-get', 'apt'],
    ['apt-cache', 'apt'],
    ['dpkg-deb', 'dpkg'],
    ['tar', 'tar'],
    ['objcopy', 'binutils'],
    ['ldd', 'libc-bin'],
  ];
  if (compress === 'zstd') tools.push(['zstd', 'zstd']);
  const missing: string[] = [];
  for (const [tool, pkg] of tools) {
    if (!(await onPath(tool))) missing.push(`${tool} (${pkg})`);
  }
  return missing;
}

async function onPath(tool: string): Promise<boolean> {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && existsSync(join(dir, tool))) return true;
  }
  return false;
}

async function sh(cmd: string, args: readonly string[], options: { cwd?: string } = {}): Promise<string> {
  try {
    const { stdout } = await run(cmd, args, { maxBuffer: 64 * 1024 * 1024, encoding: 'utf8', ...options });
    return stdout;
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${(e.stderr ?? '').trim() || e.message}`, { cause: err });
  }
}

// ---------------------------------------------------------------- Debian packages

interface Deb {
  readonly pkg: string;
  /** The file name apt-get download saves it as: PACKAGE_VERSION_ARCH.deb, an epoch's colon as %3a. */
  readonly file: string;
  /** Unknown for the kernel, whose version comes from linux-image-amd64's Depends. */
  readonly size: number | undefined;
}

const APT_QUIET = ['-q', '-o', 'APT::Sandbox::User=root'];

function debFile(pkg: string, version: string, arch: string): string {
  return `${pkg}_${version.replace(/:/g, '%3a')}_${arch}.deb`;
}

/** One `apt-cache show` (about a second: apt's lists are parsed once) for all three packages. */
async function aptShow(): Promise<Deb[]> {
  const out = await sh('apt-cache', ['show', '--no-all-versions', 'linux-image-amd64', 'systemd-boot-efi', 'busybox-static']);
  const records = new Map<string, Record<string, string>>();
  for (const paragraph of out.split(/\n\s*\n/)) {
    const fields: Record<string, string> = {};
    for (const match of paragraph.matchAll(/^([A-Za-z-]+): (.*)$/gm)) fields[match[1]!] = match[2]!;
    if (fields.Package !== undefined && !records.has(fields.Package)) records.set(fields.Package, fields);
  }
  const record = (pkg: string) => {
    const r = records.get(pkg);
    if (!r?.Version || !r.Architecture) throw new Error(`apt-cache show ${pkg}: no Version/Architecture`);
    return r as Record<string, string> & { Version: string; Architecture: string };
  };
  // linux-image-amd64 depends on the versioned kernel, e.g. linux-image-6.1.0-56-amd64 (= 6.1.192-2).
  const meta = record('linux-image-amd64');
  const kernel = /(linux-image-[^\s,|]+) \(= ([^)\s]+)\)/.exec(meta.Depends ?? '');
  if (!kernel) throw new Error(`linux-image-amd64: no versioned linux-image-* in Depends: ${meta.Depends ?? '(none)'}`);
  const debs: Deb[] = [{ pkg: kernel[1]!, file: debFile(kernel[1]!, kernel[2]!, meta.Architecture), size: undefined }];
  for (const pkg of ['systemd-boot-efi', 'busybox-static']) {
    const r = record(pkg);
    debs.push({ pkg, file: debFile(pkg, r.Version, r.Architecture), size: r.Size === undefined ? undefined : Number(r.Size) });
  }
  return debs;
}

/** What to fetch, asking apt; `apt-get update` once (as root) when its lists do not know the packages. */
async function resolveDebs(log: (m: string) => void): Promise<Deb[]> {
  try {
    return await aptShow();
  } catch (err) {
    if (process.getuid?.() !== 0) throw err;
    log(`apt does not know the packages (${(err as Error).message.split('\n')[0]}): running apt-get update`);
    await sh('apt-get', ['update', '-qq']);
    return await aptShow();
  }
}

/** The newest cached .deb of each package, for a build where apt cannot answer. */
async function cachedDebs(cache: string): Promise<string[]> {
  const files = (await readdir(join(cache, 'debs')).catch(() => [] as string[])).filter((f) => f.endsWith('.deb')).sort();
  const newest = (prefix: RegExp) => files.filter((f) => prefix.test(f)).at(-1);
  const found = [newest(/^linux-image-\d.*-amd64_/), newest(/^systemd-boot-efi_/), newest(/^busybox-static_/)];
  if (found.some((f) => f === undefined)) throw new Error(`not all packages are in ${join(cache, 'debs')}`);
  return found.map((f) => join(cache, 'debs', f!));
}

/** The .deb in the cache, downloading it when it is not there (or not whole). */
async function fetchDeb(deb: Deb, cache: string, log: (m: string) => void): Promise<string> {
  const path = join(cache, 'debs', deb.file);
  const have = await stat(path).catch(() => undefined);
  // Downloads land here by rename, so a file that is there is whole; the size is checked when apt gave one.
  if (have !== undefined && (deb.size === undefined || have.size === deb.size)) return path;
  await mkdir(join(cache, 'debs'), { recursive: true });
  const scratch = await mkdtemp(join(cache, 'debs', '.download-'));
  try {
    log(`downloading ${deb.pkg}${deb.size === undefined ? '' : ` (${(deb.size / 1024 / 1024).toFixed(1)} MiB)`}`);
    await sh('apt-get', ['download', ...APT_QUIET, deb.pkg], { cwd: scratch });
    const [got] = (await readdir(scratch)).filter((f) => f.endsWith('.deb'));
    if (got === undefined) throw new Error(`apt-get download ${deb.pkg}: no .deb`);
    if (got !== deb.file) log(`apt-get download saved ${got}, expected ${deb.file}`);
    const size = (await stat(join(scratch, got))).size;
    if (deb.size !== undefined && size !== deb.size) throw new Error(`${got}: ${size} bytes, apt said ${deb.size}`);
    await rename(join(scratch, got), path);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
  return path;
}

/** The three packages in the cache: kernel, stub, busybox. */
async function fetchDebs(cache: string, log: (m: string) => void): Promise<string[]> {
  let debs: Deb[];
  try {
    debs = await resolveDebs(log);
  } catch (err) {
    // No apt lists (and not root to update them): what an earlier build downloaded still builds.
    try {
      const cached = await cachedDebs(cache);
      log(`apt cannot say which packages to use (${(err as Error).message.split('\n')[0]}); using the cached ${cached.map((f) => basename(f)).join(', ')}`);
      return cached;
    } catch {
      throw new Error(`${(err as Error).message}\n(run apt-get update first)`, { cause: err });
    }
  }
  const paths: string[] = [];
  try {
    for (const deb of debs) paths.push(await fetchDeb(deb, cache, log));
  } catch (err) {
    // Stale lists name versions the mirror no longer has: update them once and ask again.
    if (process.getuid?.() !== 0) throw err;
    log(`${(err as Error).message.split('\n')[0]}: running apt-get update and trying again`);
    await sh('apt-get', ['update', '-qq']);
    paths.length = 0;
    for (const deb of await aptShow()) paths.push(await fetchDeb(deb, cache, log));
  }
  return paths;
}

/** Unpack the members matching `patterns` (tar wildcards) of a .deb once; later builds reuse the folder. */
async function unpack(deb: string, cache: string, patterns: readonly string[]): Promise<string> {
  const key = createHash('sha256').update(basename(deb)).update('\0').update(patterns.join('\0')).digest('hex').slice(0, 16);
  const dir = join(cache, 'unpacked', `${basename(deb, '.deb')}-${key}`);
  if (existsSync(join(dir, '.done'))) return dir;
  await mkdir(join(cache, 'unpacked'), { recursive: true });
  const scratch = await mkdtemp(join(cache, 'unpacked', '.unpack-'));
  try {
    // dpkg-deb --fsys-tarfile | tar -x: what dpkg -x does, limited to the files we need.
    await new Promise<void>((done, fail) => {
      const dpkg = spawn('dpkg-deb', ['--fsys-tarfile', deb], { stdio: ['ignore', 'pipe', 'pipe'] });
      const tar = spawn('tar', ['-x', '-C', scratch, '--wildcards', '--wildcards-match-slash', ...patterns], { stdio: ['pipe', 'ignore', 'pipe'] });
      let errors = '';
      dpkg.stderr.on('data', (d: Buffer) => (errors += d));
      tar.stderr.on('data', (d: Buffer) => (errors += d));
      dpkg.stdout.pipe(tar.stdin);
      let left = 2;
      const exited = (name: string) => (code: number | null) => {
        if (code !== 0) fail(new Error(`${name} on ${basename(deb)} exited ${code}: ${errors.trim()}`));
        else if (--left === 0) done();
      };
      dpkg.on('error', fail).on('exit', exited('dpkg-deb --fsys-tarfile'));
      tar.on('error', fail).on('exit', exited('tar -x'));
    });
    await writeFile(join(scratch, '.done'), '');
    await rm(dir, { recursive: true, force: true });
    await rename(scratch, dir);
  } catch (err) {
    await rm(scratch, { recursive: true, force: true });
    throw err;
  }
  return dir;
}

// ---------------------------------------------------------------- newc cpio

interface Entry {
  readonly path: string; // without a leading slash
  readonly mode: number; // full st_mode
  readonly data?: Buffer;
  readonly rdev?: readonly [number, number];
}

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

/** A newc ("070701") archive, as the kernel unpacks into its rootfs. */
export function newc(entries: readonly Entry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  const add = (name: string, mode: number, data: Buffer, rdev: readonly [number, number] = [0, 0]) => {
    const fields = [ino++, mode, 0, 0, (mode & 0o170000) === S_IFDIR ? 2 : 1, 0, data.length, 0, 0, rdev[0], rdev[1], name.length + 1, 0];
    const header = Buffer.from('070701' + fields.map((f) => f.toString(16).padStart(8, '0')).join('') + name + '\0', 'latin1');
    parts.push(header, Buffer.alloc(pad4(header.length)), data, Buffer.alloc(pad4(data.length)));
  };
  for (const e of entries) add(e.path, e.mode, e.data ?? Buffer.alloc(0), e.rdev);
  add('TRAILER!!!', 0, Buffer.alloc(0));
  return Buffer.concat(parts);
}

/** Entries for a file and every folder above it that is not in `have` yet. */
function withParents(entry: Entry, have: Set<string>): Entry[] {
  const out: Entry[] = [];
  const parts = entry.path.split('/');
  for (let i = 1; i < parts.length; i++) {
    const dir = parts.slice(0, i).join('/');
    if (!have.has(dir)) {
      have.add(dir);
      out.push({ path: dir, mode: S_IFDIR | 0o755 });
    }
  }
  have.add(entry.path);
  out.push(entry);
  return out;
}

/** The shared libraries `ldd FILE` names (absolute paths; the vDSO has none). */
async function libraries(file: string): Promise<string[]> {
  const out = await sh('ldd', [file]);
  return [...out.matchAll(/(?:=>\s*)?(\/\S+)\s+\(0x/g)].map((m) => m[1]!);
}

async function decompressModule(file: string): Promise<Buffer> {
  if (file.endsWith('.ko')) return readFile(file);
  const [tool, args] = file.endsWith('.xz') ? ['xz', ['-dc', file]] : file.endsWith('.zst') ? ['zstd', ['-dcq', file]] : file.endsWith('.gz') ? ['gzip', ['-dc', file]] : ['', []];
  if (!tool) throw new Error(`${file}: unknown module compression`);
  const { stdout } = await promisify(execFile)(tool, args as string[], { encoding: 'buffer', maxBuffer: 256 * 1024 * 1024 });
  return stdout;
}

async function findFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => join((e as { parentPath?: string; path?: string }).parentPath ?? (e as { path?: string }).path ?? dir, e.name));
}

// ---------------------------------------------------------------- PE (the stub's section table)

/** Where new sections may start: the end of the stub's last section, rounded up to a page. */
export function peFreeVma(stub: Buffer): { imageBase: bigint; next: number } {
  const pe = stub.readUInt32LE(0x3c);
  if (stub.toString('latin1', pe, pe + 4) !== 'PE\0\0') throw new Error('stub: not a PE image');
  const sections = stub.readUInt16LE(pe + 6);
  const optSize = stub.readUInt16LE(pe + 20);
  const opt = pe + 24;
  if (stub.readUInt16LE(opt) !== 0x20b) throw new Error('stub: not PE32+');
  const imageBase = stub.readBigUInt64LE(opt + 24);
  let end = 0;
  for (let i = 0; i < sections; i++) {
    const s = opt + optSize + i * 40;
    const virtualSize = stub.readUInt32LE(s + 8);
    const rva = stub.readUInt32LE(s + 12);
    const rawSize = stub.readUInt32LE(s + 16);
    end = Math.max(end, rva + Math.max(virtualSize, rawSize));
  }
  return { imageBase, next: alignPage(end) };
}

/** The PE checksum (as imagehlp's CheckSumMappedFile computes it): 16-bit one's-complement-ish sum, skipping the field, plus the length. */
export function peChecksum(image: Buffer): number {
  const field = image.readUInt32LE(0x3c) + 24 + 64;
  let sum = 0;
  for (let i = 0; i < image.length; i += 2) {
    if (i === field || i === field + 2) continue;
    sum += i + 1 < image.length ? image.readUInt16LE(i) : image[i]!;
    sum = (sum & 0xffff) + (sum >>> 16);
  }
  sum = (sum & 0xffff) + (sum >>> 16);
  return (sum + image.length) >>> 0;
}

/** objcopy stamps the build time into the COFF header: put the stub's 0 back, and fix the checksum to match. */
export function zeroTimestamp(image: Buffer): void {
  const pe = image.readUInt32LE(0x3c);
  image.writeUInt32LE(0, pe + 8);
  image.writeUInt32LE(peChecksum(image), pe + 24 + 64);
}

function alignPage(n: number): number {
  return Math.ceil(n / 0x1000) * 0x1000;
}

// ---------------------------------------------------------------- the build

/** Build (or find already built) DIR/linux-workload.efi. */
export async function buildLinuxWorkload(options: WorkloadOptions): Promise<WorkloadResult> {
  const started = Date.now();
  const log = options.log ?? (() => undefined);
  const cache = options.cache ?? defaultCacheDir();
  const beacon = options.beacon ?? join(ROOT, 'dist', 'beacon-linux-x64');
  const compress = options.compress ?? 'gzip';
  const cmdline = options.url === undefined ? BASE_CMDLINE : `${BASE_CMDLINE} dispatch.url=${options.url}`;
  if (/\s/.test(options.url ?? '')) throw new Error(`--url must have no spaces: ${options.url}`);
  const missing = await missingTools(compress);
  if (missing.length > 0) throw new Error(`missing tools: ${missing.join(', ')}`);
  await stat(beacon).catch(() => {
    throw new Error(`${beacon} is not there: run npm run build:beacon`);
  });

  // 1. Packages.
  const [kernelDeb, stubDeb, busyboxDeb] = (await fetchDebs(cache, log)) as [string, string, string];
  const kernelPkg = basename(kernelDeb).split('_')[0]!;
  const initScript = await readFile(INIT_SCRIPT);
  const beaconInfo = await stat(beacon);
  const libs = await libraries(beacon);

  // Same inputs, same image: skip the rest when the last build had exactly these.
  const key = createHash('sha256')
    .update(JSON.stringify({ v: 1, debs: [kernelDeb, stubDeb, busyboxDeb].map((d) => basename(d)), beacon: [beacon, beaconInfo.size, beaconInfo.mtimeMs], libs, cmdline, compress, modules: MODULES }))
    .update(initScript)
    .update(await readFile(fileURLToPath(import.meta.url)))
    .digest('hex');
  const image = join(options.out, IMAGE_NAME);
  const stampFile = join(options.out, `${IMAGE_NAME}.json`);
  const stamp = JSON.parse(await readFile(stampFile, 'utf8').catch(() => '{}')) as { key?: string; initrdBytes?: number; kernel?: string };
  const existing = await stat(image).catch(() => undefined);
  if (stamp.key === key && existing !== undefined) {
    return { image, bytes: existing.size, initrdBytes: stamp.initrdBytes ?? 0, kernel: stamp.kernel ?? kernelPkg, cmdline, reused: true, ms: Date.now() - started };
  }

  // 2. Unpack what we need.
  const [kernelDir, stubDir, busyboxDir] = await Promise.all([
    unpack(kernelDeb, cache, ['./boot/vmlinuz-*', './lib/modules/*/modules.builtin', ...MODULES.map((m) => `./lib/modules/*/kernel/*/${m}.ko*`)]),
    unpack(stubDeb, cache, ['./usr/lib/systemd/boot/efi/linuxx64.efi.stub']),
    unpack(busyboxDeb, cache, ['./bin/busybox']),
  ]);
  const kernelFiles = await findFiles(kernelDir);
  const vmlinuz = kernelFiles.find((f) => /\/boot\/vmlinuz-/.test(f));
  if (!vmlinuz) throw new Error(`${basename(kernelDeb)}: no /boot/vmlinuz-*`);
  const release = basename(vmlinuz).slice('vmlinuz-'.length);
  const builtin = await readFile(join(kernelDir, 'lib', 'modules', release, 'modules.builtin'), 'utf8').catch(() => '');

  // 3. The initramfs.
  const have = new Set<string>();
  const entries: Entry[] = [];
  const put = (entry: Entry) => entries.push(...withParents(entry, have));
  for (const dir of ['dev', 'proc', 'sys', 'tmp', 'run', 'root', 'sbin', 'usr/bin', 'usr/sbin', 'etc']) put({ path: dir, mode: S_IFDIR | (dir === 'tmp' ? 0o1777 : 0o755) });
  // The kernel opens /dev/console for init's stdio before anything is mounted.
  put({ path: 'dev/console', mode: S_IFCHR | 0o600, rdev: [5, 1] });
  put({ path: 'init', mode: S_IFREG | 0o755, data: initScript });
  put({ path: 'bin/busybox', mode: S_IFREG | 0o755, data: await readFile(join(busyboxDir, 'bin', 'busybox')) });
  put({ path: 'bin/sh', mode: S_IFLNK | 0o777, data: Buffer.from('busybox') });
  put({ path: 'etc/os-release', mode: S_IFREG | 0o644, data: Buffer.from(osRelease(release)) });
  const loaded: string[] = [];
  for (const name of MODULES) {
    const file = kernelFiles.find((f) => new RegExp(`/${name}\\.ko(\\.(xz|zst|gz))?$`).test(f));
    if (!file) {
      if (new RegExp(`/${name}\\.ko(\\.\\w+)?$`, 'm').test(builtin)) continue; // built into this kernel
      throw new Error(`${basename(kernelDeb)}: no module ${name}`);
    }
    // busybox insmod reads plain .ko only: decompress here.
    put({ path: `lib/modules/${name}.ko`, mode: S_IFREG | 0o644, data: await decompressModule(file) });
    loaded.push(name);
  }
  put({ path: 'lib/modules/load-order', mode: S_IFREG | 0o644, data: Buffer.from(loaded.join('\n') + '\n') });
  put({ path: 'usr/bin/beacon', mode: S_IFREG | 0o755, data: await readFile(beacon) });
  for (const lib of libs) put({ path: lib.slice(1), mode: S_IFREG | 0o755, data: await readFile(lib) });
  const cpio = newc(entries);
  const initrd = compress === 'zstd' ? await zstd(cpio) : await gzip(cpio, { level: 6 });
  log(`initramfs: ${(cpio.length / 1024 / 1024).toFixed(1)} MiB, ${compress} ${(initrd.length / 1024 / 1024).toFixed(1)} MiB`);

  // 4. The UKI: new sections after the stub's own, each starting on a fresh page.
  const stub = join(stubDir, 'usr', 'lib', 'systemd', 'boot', 'efi', 'linuxx64.efi.stub');
  const { imageBase, next } = peFreeVma(await readFile(stub));
  const work = await mkdtemp(join(tmpdir(), 'linux-workload-'));
  try {
    const sections: Array<[string, Buffer]> = [
      ['.osrel', Buffer.from(osRelease(release))],
      ['.cmdline', Buffer.from(cmdline + '\0')],
      ['.linux', await readFile(vmlinuz)],
      ['.initrd', initrd],
    ];
    const args: string[] = [];
    let vma = next;
    for (const [name, data] of sections) {
      const file = join(work, name.slice(1));
      await writeFile(file, data);
      args.push('--add-section', `${name}=${file}`, '--change-section-vma', `${name}=0x${(imageBase + BigInt(vma)).toString(16)}`);
      vma = alignPage(vma + data.length);
    }
    await mkdir(options.out, { recursive: true });
    const partial = join(options.out, `.${IMAGE_NAME}.${process.pid}`);
    await sh('objcopy', [...args, stub, partial]);
    const bytes = await readFile(partial);
    zeroTimestamp(bytes);
    await writeFile(partial, bytes);
    await rename(partial, image);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  await writeFile(stampFile, JSON.stringify({ key, kernel: kernelPkg, initrdBytes: initrd.length, cmdline }, null, 2) + '\n');
  const bytes = (await stat(image)).size;
  return { image, bytes, initrdBytes: initrd.length, kernel: kernelPkg, cmdline, reused: false, ms: Date.now() - started };
}

function osRelease(release: string): string {
  return `NAME="dispatch linux-workload"\nID=dispatch-linux-workload\nPRETTY_NAME="dispatch linux-workload (Debian kernel ${release})"\n`;
}

async function zstd(data: Buffer): Promise<Buffer> {
  return new Promise((done, fail) => {
    const child = spawn('zstd', ['-q', '-c', '-T0', '-9'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    let errors = '';
    child.stdout.on('data', (d: Buffer) => chunks.push(d));
    child.stderr.on('data', (d: Buffer) => (errors += d));
    child.on('error', fail).on('exit', (code) => (code === 0 ? done(Buffer.concat(chunks)) : fail(new Error(`zstd exited ${code}: ${errors}`))));
    child.stdin.end(data);
  });
}

// ---------------------------------------------------------------- command line

async function main(argv: readonly string[]): Promise<void> {
  const args = [...argv];
  const value = (flag: string): string | undefined => {
    const i = args.indexOf(flag);
    if (i === -1) return undefined;
    const v = args[i + 1];
    if (v === undefined) throw new Error(`${flag} needs a value`);
    args.splice(i, 2);
    return v;
  };
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write('usage: tsx examples/linux-workload/build.ts [--out DIR] [--cache DIR] [--beacon FILE] [--url URL] [--compress gzip|zstd]\n');
    return;
  }
  const out = value('--out') ?? join(ROOT, 'dist', 'linux-workload');
  const cache = value('--cache');
  let beacon = value('--beacon');
  const url = value('--url');
  const compress = value('--compress');
  if (args.length > 0) throw new Error(`unknown arguments: ${args.join(' ')}`);
  if (compress !== undefined && compress !== 'gzip' && compress !== 'zstd') throw new Error('--compress is gzip or zstd');
  const log = (m: string) => process.stderr.write(`linux-workload: ${m}\n`);
  if (beacon === undefined) {
    // The repository's own beacon, rebuilt when its sources are newer.
    const { BINARY, buildBeacon, isFresh } = await import('../../beacon/build.ts');
    if (!(await isFresh())) {
      log('building dist/beacon-linux-x64');
      await buildBeacon({ log });
    }
    beacon = BINARY;
  }
  const result = await buildLinuxWorkload({ out, beacon, log, ...(cache === undefined ? {} : { cache }), ...(url === undefined ? {} : { url }), ...(compress === undefined ? {} : { compress }) });
  process.stdout.write(
    `${result.image}: ${(result.bytes / 1024 / 1024).toFixed(1)} MiB (kernel ${result.kernel}, initrd ${(result.initrdBytes / 1024 / 1024).toFixed(1)} MiB), ` +
      `cmdline "${result.cmdline}", ${result.reused ? 'unchanged' : 'built'} in ${(result.ms / 1000).toFixed(1)} s\n`,
  );
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).catch((err: Error) => {
    process.stderr.write(`linux-workload: ${err.message}\n`);
    process.exit(1);
  });
}
