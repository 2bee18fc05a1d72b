import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  BOOT_CURRENT_FILE,
  BOOT_ORDER_FILE,
  bootOptionNumber,
  bootUris,
  GLOBAL_VARIABLE_GUID,
  loadOptionUris,
  parseDevicePath,
  parseLoadOption,
  u16List,
  variableData,
} from '../beacon/efivars.ts';
import { firmwareBootUris, readFirmwareVariables } from '../beacon/firmware.ts';

// A little builder for the bytes firmware writes (UEFI 2.10 §3.1.3, §10.3), so every
// layout below is the real one, not a description of it.

const u16 = (value: number) => {
  const bytes = Buffer.alloc(2);
  bytes.writeUInt16LE(value);
  return bytes;
};
const u32 = (value: number) => {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32LE(value);
  return bytes;
};

/** One device path node; `length` overrides the header's length field (for broken ones). */
function node(type: number, subType: number, data: Buffer = Buffer.alloc(0), length = 4 + data.byteLength): Buffer {
  return Buffer.concat([Buffer.from([type, subType]), u16(length), data]);
}
/** ACPI PciRoot(0x0): HID PNP0A03, UID 0. */
const pciRoot = () => node(0x02, 0x01, Buffer.concat([u32(0x0a0341d0), u32(0)]));
const pci = (device: number, fn: number) => node(0x01, 0x01, Buffer.from([fn, device]));
/** MAC(525400123456,0x1): 32-byte address field, then the interface type. */
function mac(address = '525400123456'): Buffer {
  const field = Buffer.alloc(32);
  Buffer.from(address, 'hex').copy(field);
  return node(0x03, 0x0b, Buffer.concat([field, Buffer.from([0x01])]));
}
/** IPv4(0.0.0.0,TCP,DHCP,…): 23 data bytes, as EDK2 writes for HTTP boot. */
const ipv4 = () => node(0x03, 0x0c, Buffer.concat([Buffer.alloc(8), u16(0), u16(0), u16(6), Buffer.from([0]), Buffer.alloc(8)]));
/** IPv6(::,TCP,…): 56 data bytes. */
const ipv6 = () => node(0x03, 0x0d, Buffer.concat([Buffer.alloc(32), u16(0), u16(0), u16(6), Buffer.from([0]), Buffer.from([0x40]), Buffer.alloc(16)]));
const uri = (text: string) => node(0x03, 0x18, Buffer.from(text, 'latin1'));
const end = () => node(0x7f, 0xff);
const endInstance = () => node(0x7f, 0x01);
/** A hard disk partition node, for options that are not network boots. */
const hardDrive = () => node(0x04, 0x01, Buffer.alloc(38));
const filePath = (path: string) => node(0x04, 0x04, Buffer.from(`${path}\0`, 'utf16le'));

interface OptionSpec {
  readonly attributes?: number;
  readonly description?: string;
  readonly path: readonly Buffer[];
  /** Override FilePathListLength. */
  readonly pathLength?: number;
  readonly optional?: Buffer;
}

/** EFI_LOAD_OPTION: attributes, FilePathListLength, UCS-2 description + NUL, the path, optional data. */
function loadOption(spec: OptionSpec): Buffer {
  const path = Buffer.concat([...spec.path]);
  return Buffer.concat([
    u32(spec.attributes ?? 1),
    u16(spec.pathLength ?? path.byteLength),
    Buffer.from(`${spec.description ?? 'UEFI HTTPv4 (MAC:525400123456)'}\0`, 'utf16le'),
    path,
    spec.optional ?? Buffer.alloc(0),
  ]);
}

/** An efivarfs file: the attributes (NV|BS|RT), then the data. */
const efivar = (data: Buffer, attributes = 7) => Buffer.concat([u32(attributes), data]);
const u16Var = (...values: number[]) => efivar(Buffer.concat(values.map(u16)));

const A = 'http://10.0.0.1:8080/dispatch';
const B = 'http://10.0.0.2:8080/dispatch';
const C = 'https://dispatch.lab.example:8443/dispatch';

/** EDK2's own HTTP boot option: PciRoot(0)/Pci(3,0)/MAC(…)/IPv4(…)/Uri(…). */
const edk2Http4 = (url: string) => efivar(loadOption({ path: [pciRoot(), pci(3, 0), mac(), ipv4(), uri(url), end()] }));

/** A deterministic byte source for the garbage tests. */
function random(seed: number): (n: number) => Buffer {
  let state = seed >>> 0;
  return (n) => {
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i++) {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      out[i] = state >>> 24;
    }
    return out;
  };
}

describe('firmware boot options: HTTP boot URIs', () => {
  test('MAC + IPv4 + URI (what EDK2 writes for HTTPv4 boot) gives its URI', () => {
    assert.deepEqual(loadOptionUris(edk2Http4(A)), [A]);
  });

  test('MAC + IPv6 + URI gives its URI', () => {
    const url = 'http://[fd00::1]:8080/dispatch';
    const file = efivar(loadOption({ description: 'UEFI HTTPv6 (MAC:525400123456)', path: [pciRoot(), pci(3, 0), mac(), ipv6(), uri(url), end()] }));
    assert.deepEqual(loadOptionUris(file), [url]);
  });

  test('MAC + URI with nothing between, and https, are taken', () => {
    assert.deepEqual(loadOptionUris(efivar(loadOption({ path: [mac(), uri(C), end()] }))), [C]);
  });

  test('the short form, a device path that is only a URI node (dispatch vm, FACTS §A), gives its URI', () => {
    const file = efivar(loadOption({ description: 'dispatch', path: [uri(A), end()] }));
    assert.deepEqual(loadOptionUris(file), [A]);
    assert.deepEqual(parseLoadOption(variableData(file)!), { attributes: 1, description: 'dispatch', paths: [[{ type: 0x03, subType: 0x18, data: Buffer.from(A) }]] });
  });

  test('a PXE option (MAC + IPv4, no URI) and a disk option give nothing', () => {
    assert.deepEqual(loadOptionUris(efivar(loadOption({ description: 'UEFI PXEv4', path: [pciRoot(), pci(3, 0), mac(), ipv4(), end()] }))), []);
    assert.deepEqual(loadOptionUris(efivar(loadOption({ description: 'debian', path: [pciRoot(), pci(4, 0), hardDrive(), filePath('\\EFI\\debian\\shimx64.efi'), end()] }))), []);
  });

  test('an empty URI node (EDK2: "take the URI from DHCP") names no server', () => {
    assert.deepEqual(loadOptionUris(efivar(loadOption({ path: [pciRoot(), pci(3, 0), mac(), ipv4(), uri(''), end()] }))), []);
  });

  test('URIs that are not http or https are left out', () => {
    for (const other of ['tftp://10.0.0.1/pxelinux.0', 'ftp://10.0.0.1/boot.efi', 'file:///boot.efi', 'not a url', 'dispatch']) {
      assert.deepEqual(loadOptionUris(edk2Http4(other)), [], other);
    }
  });

  test('a URI node that follows neither a MAC node nor the start of the path is not a boot URI', () => {
    assert.deepEqual(loadOptionUris(efivar(loadOption({ path: [pciRoot(), pci(3, 0), uri(A), end()] }))), []);
    // A disk node between the MAC and the URI breaks the chain.
    assert.deepEqual(loadOptionUris(efivar(loadOption({ path: [mac(), hardDrive(), uri(A), end()] }))), []);
  });

  test('a URI with bytes that are not printable ASCII is garbage, not a URI', () => {
    assert.deepEqual(loadOptionUris(efivar(loadOption({ path: [mac(), ipv4(), node(0x03, 0x18, Buffer.from('http://10.0.0.1/\u00e9\u0001', 'latin1')), end()] }))), []);
  });

  test('a NUL-terminated URI node (against the spec, but seen) is read without the NUL', () => {
    assert.deepEqual(loadOptionUris(efivar(loadOption({ path: [mac(), ipv4(), node(0x03, 0x18, Buffer.from(`${A}\0`)), end()] }))), [A]);
  });

  test('every instance of a multi-instance device path is read', () => {
    const file = efivar(loadOption({ path: [mac(), ipv4(), uri(A), endInstance(), uri(B), end()] }));
    assert.deepEqual(loadOptionUris(file), [A, B]);
  });

  test('optional data after the device path is not read as nodes', () => {
    const file = efivar(loadOption({ path: [mac(), ipv4(), uri(A), end()], optional: Buffer.concat([uri(B), end()]) }));
    assert.deepEqual(loadOptionUris(file), [A]);
  });

  test('the description is decoded from UCS-2 and the attributes kept', () => {
    const option = parseLoadOption(loadOption({ attributes: 0x109, description: 'UEFI HTTPv4 — lab', path: [uri(A), end()] }));
    assert.equal(option?.description, 'UEFI HTTPv4 — lab');
    assert.equal(option?.attributes, 0x109);
  });
});

/**
 * The URIs of each efivarfs file, parsed in a child process that is killed after
 * `limitMs`: an endless loop is synchronous, so no timer in this process could stop it
 * (and it would hang the whole run), but a kill can.
 */
async function urisInChild(files: readonly Buffer[], limitMs = 10_000): Promise<string[][]> {
  const module = pathToFileURL(fileURLToPath(new URL('../beacon/efivars.ts', import.meta.url))).href;
  const script = `import { loadOptionUris, parseDevicePath } from ${JSON.stringify(module)};
let input = '';
for await (const chunk of process.stdin) input += chunk;
const found = JSON.parse(input).map((hex) => {
  const bytes = Buffer.from(hex, 'hex');
  parseDevicePath(bytes);
  return loadOptionUris(bytes);
});
process.stdout.write(JSON.stringify(found));`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d));
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  child.stdin.end(JSON.stringify(files.map((f) => f.toString('hex'))));
  const timer = setTimeout(() => child.kill('SIGKILL'), limitMs);
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
  clearTimeout(timer);
  assert.equal(signal, null, `the parser was killed after ${limitMs} ms: it loops`);
  assert.equal(code, 0, `the parser crashed: ${stderr}`);
  return JSON.parse(stdout) as string[][];
}

describe('firmware boot options: broken bytes never crash and never loop', () => {
  // Each of these must finish at once; the timeout turns an endless (asynchronous) wait into a failure.
  const quick = { timeout: 5_000 };


  test('a node length past the end of the path stops the walk; nodes before it count', quick, () => {
    assert.deepEqual(loadOptionUris(efivar(loadOption({ path: [mac(), ipv4(), node(0x03, 0x18, Buffer.from(A), 4 + A.length + 50), end()] }))), []);
    assert.deepEqual(loadOptionUris(efivar(loadOption({ path: [uri(A), node(0x03, 0x0b, Buffer.alloc(2), 400)] }))), [A]);
  });

  test('a zero-length node (or any length under 4) stops the walk instead of looping', async () => {
    const files = [0, 1, 2, 3].flatMap((length) => [
      efivar(loadOption({ path: [node(0x03, 0x0b, Buffer.alloc(0), length), mac(), uri(A), end()] })),
      efivar(loadOption({ path: [uri(A), node(0x03, 0x0b, Buffer.alloc(0), length), uri(B), end()] })),
      efivar(loadOption({ path: [mac(), ipv4(), node(0x03, 0x18, Buffer.alloc(0), length), end()] })),
      efivar(loadOption({ path: [node(0x7f, 0x01, Buffer.alloc(0), length), uri(B), end()] })),
    ]);
    // Nodes before the bad one count; nothing after it is read.
    assert.deepEqual(await urisInChild(files), [0, 1, 2, 3].flatMap(() => [[], [A], [], []]));
  });

  test('a FilePathListLength past the end of the variable reads what is there', quick, () => {
    assert.deepEqual(loadOptionUris(efivar(loadOption({ path: [mac(), ipv4(), uri(A), end()], pathLength: 0xffff }))), [A]);
  });

  test('a FilePathListLength shorter than the path cuts it there', quick, () => {
    const path = [mac(), ipv4(), uri(A), end()];
    const upToUri = mac().byteLength + ipv4().byteLength;
    assert.deepEqual(loadOptionUris(efivar(loadOption({ path, pathLength: upToUri }))), []);
    assert.deepEqual(loadOptionUris(efivar(loadOption({ path, pathLength: 0 }))), []);
  });

  test('a path with no end node still gives the URIs it holds', quick, () => {
    assert.deepEqual(loadOptionUris(efivar(loadOption({ path: [mac(), ipv4(), uri(A)] }))), [A]);
  });

  test('a description with no NUL, an odd size, or too few bytes gives nothing', quick, () => {
    const noNul = Buffer.concat([u32(1), u16(8), Buffer.from('HTTP', 'utf16le')]);
    assert.equal(parseLoadOption(noNul), undefined);
    assert.equal(parseLoadOption(Buffer.concat([noNul, Buffer.from([0])])), undefined);
    for (let n = 0; n < 6; n++) assert.equal(parseLoadOption(Buffer.alloc(n)), undefined, `${n} bytes`);
    assert.deepEqual(loadOptionUris(Buffer.alloc(0)), []);
    assert.deepEqual(loadOptionUris(Buffer.from([7, 0, 0])), []);
    assert.deepEqual(loadOptionUris(u32(7)), []);
  });

  test('every truncation of a good option is handled: the URI or nothing', quick, () => {
    const file = edk2Http4(A);
    for (let length = 0; length <= file.byteLength; length++) {
      const uris = loadOptionUris(file.subarray(0, length));
      assert.ok(uris.length === 0 || (uris.length === 1 && uris[0] === A), `${length} bytes gave ${JSON.stringify(uris)}`);
    }
    assert.deepEqual(loadOptionUris(file), [A]);
  });

  test('random garbage, and garbage after a valid header, never throw, never loop, and only ever give http(s) URIs', async () => {
    const bytes = random(0x5eed);
    const files: Buffer[] = [];
    for (let i = 0; i < 5_000; i++) {
      const size = bytes(1)[0]! + (i % 3);
      files.push(i % 2 === 0 ? bytes(size) : Buffer.concat([u32(7), u32(1), u16(size), Buffer.from('x\0', 'utf16le'), bytes(size)]));
    }
    // Garbage with the header right and a URI inside: still found, whatever follows it.
    files.push(Buffer.concat([u32(7), u32(1), u16(600), Buffer.from('x\0', 'utf16le'), mac(), uri(A), bytes(300)]));
    const found = await urisInChild(files);
    assert.equal(found.length, files.length);
    for (const uris of found) for (const uri of uris) assert.match(uri, /^https?:\/\//);
    assert.deepEqual(found.at(-1), [A]);
  });

  test('BootOrder and BootCurrent of odd or short sizes are read as far as they go', () => {
    assert.deepEqual(u16List(Buffer.concat([u32(7), u16(3), u16(1), Buffer.from([9])])), [3, 1]);
    assert.deepEqual(u16List(u32(7)), []);
    assert.deepEqual(u16List(Buffer.from([7])), []);
    assert.deepEqual(u16List(undefined), []);
  });
});

describe('firmware boot options: order', () => {
  const options = new Map([
    [0x0001, efivar(loadOption({ description: 'UEFI PXEv4', path: [mac(), ipv4(), end()] }))],
    [0x0002, edk2Http4(A)],
    [0x0003, edk2Http4(B)],
    [0x0004, efivar(loadOption({ description: 'dispatch', path: [uri(C), end()] }))],
    // The same server as Boot0002, once more: tried once.
    [0x0010, efivar(loadOption({ description: 'dispatch again', path: [uri(A), end()] }))],
  ]);

  test('without BootCurrent or BootOrder, options are taken by number, each URI once', () => {
    assert.deepEqual(bootUris({ options }), [A, B, C]);
  });

  test('BootOrder comes before the options it leaves out', () => {
    assert.deepEqual(bootUris({ options, bootOrder: u16Var(0x0004, 0x0001, 0x0003) }), [C, B, A]);
  });

  test('BootCurrent, the option this boot came from, comes first of all', () => {
    assert.deepEqual(bootUris({ options, bootOrder: u16Var(0x0004, 0x0001, 0x0003), bootCurrent: u16Var(0x0003) }), [B, C, A]);
  });

  test('BootOrder entries with no variable behind them are skipped', () => {
    assert.deepEqual(bootUris({ options, bootOrder: u16Var(0x0099, 0x0003), bootCurrent: u16Var(0x0077) }), [B, A, C]);
  });

  test('variable names: Boot#### of the global GUID only', () => {
    assert.equal(bootOptionNumber(`Boot0001-${GLOBAL_VARIABLE_GUID}`), 1);
    assert.equal(bootOptionNumber(`Boot00A0-${GLOBAL_VARIABLE_GUID}`), 0xa0);
    assert.equal(bootOptionNumber(`Boot00a0-${GLOBAL_VARIABLE_GUID.toUpperCase()}`), 0xa0);
    for (const other of [BOOT_ORDER_FILE, BOOT_CURRENT_FILE, `BootNext-${GLOBAL_VARIABLE_GUID}`, `Boot001-${GLOBAL_VARIABLE_GUID}`, `Boot00G1-${GLOBAL_VARIABLE_GUID}`, 'Boot0001-3cc24e96-22c7-41d8-8863-8e39dcdcc2cf', `Boot00010-${GLOBAL_VARIABLE_GUID}`]) {
      assert.equal(bootOptionNumber(other), undefined, other);
    }
  });
});

describe('firmware boot options: an efivarfs directory', () => {
  test('reads Boot####, BootOrder and BootCurrent from a directory laid out like efivarfs', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'beacon-efivars-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const name = (variable: string) => join(dir, `${variable}-${GLOBAL_VARIABLE_GUID}`);
    await writeFile(name('Boot0000'), efivar(loadOption({ description: 'UiApp', path: [node(0x04, 0x07, Buffer.alloc(16)), end()] })));
    await writeFile(name('Boot0001'), efivar(loadOption({ description: 'UEFI PXEv4', path: [pciRoot(), pci(3, 0), mac(), ipv4(), end()] })));
    await writeFile(name('Boot0002'), edk2Http4(A));
    await writeFile(name('Boot0003'), efivar(loadOption({ description: 'dispatch', path: [uri(B), end()] })));
    await writeFile(name('Boot0004'), Buffer.from([7, 0, 0, 0, 1, 0, 0xff]));
    await writeFile(name('BootOrder'), u16Var(0x0003, 0x0001, 0x0002, 0x0000));
    await writeFile(name('BootCurrent'), u16Var(0x0002));
    await writeFile(name('Timeout'), u16Var(0));
    // Another vendor's variable named like a boot option, and a folder: both ignored.
    await writeFile(join(dir, 'Boot0005-3cc24e96-22c7-41d8-8863-8e39dcdcc2cf'), edk2Http4(C));
    await mkdir(name('Boot0006'));

    const log: string[] = [];
    assert.deepEqual(await firmwareBootUris(dir, (m) => log.push(m)), [A, B]);
    const variables = await readFirmwareVariables(dir);
    assert.deepEqual([...variables.options.keys()].sort(), [0, 1, 2, 3, 4]);
    assert.ok(log.some((line) => line.includes('Boot0006')), `the folder is mentioned: ${log.join(' | ')}`);
  });

  test('a missing efivars directory (not booted through UEFI) has no URIs, and says why', async () => {
    const log: string[] = [];
    assert.deepEqual(await firmwareBootUris(join(tmpdir(), 'beacon-no-such-efivars-dir'), (m) => log.push(m)), []);
    assert.match(log.join('\n'), /not there/);
  });
});
