// The varstore writer, on Debian's OVMF template and on stores built here byte by byte.
// The expected layouts are written out from EDK2's VariableFormat.h, not from varstore.ts;
// the load option is read back with beacon's parser, which the firmware side relies on.
import { strict as assert } from 'node:assert';
import { existsSync, readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { parseLoadOption, pathUris } from '../beacon/efivars.ts';
import {
  EFI_GLOBAL_VARIABLE,
  getVariable,
  httpBootVariables,
  listVariables,
  setVariables,
  uriDevicePath,
  VarstoreError,
  withHttpBoot,
} from '../src/vm/index.ts';

const TEMPLATES = ['/usr/share/OVMF/OVMF_VARS_4M.fd', '/usr/share/OVMF/OVMF_VARS.fd'];
const URL = 'http://10.0.2.2:8080/dispatch';
const GLOBAL_GUID_BYTES = Buffer.from('61dfe48bca93d211aa0d00e098032b8c', 'hex');
const OTHER_GUID = '12345678-9abc-def0-1122-334455667788';

/** An empty authenticated store: FV header (0x48 bytes), store header, erased flash. */
function emptyStore(storeSize = 0x1000): Buffer {
  const fvLength = 0x48 + storeSize;
  const image = Buffer.alloc(fvLength, 0xff);
  image.fill(0, 0, 0x48 + 28);
  Buffer.from('8d2bf1ff96768b4ca9852747075b4f50', 'hex').copy(image, 0x10); // FileSystemGuid
  image.writeBigUInt64LE(BigInt(fvLength), 0x20);
  image.write('_FVH', 0x28, 'latin1');
  image.writeUInt16LE(0x48, 0x30);
  Buffer.from('782cf3aa7b949a43a1802e144ec37792', 'hex').copy(image, 0x48); // gEfiAuthenticatedVariableGuid
  image.writeUInt32LE(storeSize, 0x58);
  image[0x5c] = 0x5a; // formatted
  image[0x5d] = 0xfe; // healthy
  return image;
}

/** Append one variable the way EDK2 lays it out; returns the offset after it (4-byte aligned). */
function appendVariable(image: Buffer, at: number, v: { name: string; data: Buffer; state?: number; guid?: Buffer; attributes?: number }): number {
  const name = Buffer.from(`${v.name}\0`, 'utf16le');
  image.writeUInt16LE(0x55aa, at);
  image[at + 2] = v.state ?? 0x3f;
  image[at + 3] = 0;
  image.writeUInt32LE(v.attributes ?? 7, at + 4);
  image.fill(0, at + 8, at + 36); // MonotonicCount, TimeStamp, PubKeyIndex
  image.writeUInt32LE(name.length, at + 36);
  image.writeUInt32LE(v.data.length, at + 40);
  (v.guid ?? GLOBAL_GUID_BYTES).copy(image, at + 44);
  name.copy(image, at + 60);
  v.data.copy(image, at + 60 + name.length);
  return (at + 60 + name.length + v.data.length + 3) & ~3;
}

/** The load option as the firmware will read it. */
function readBack(image: Buffer) {
  const boot = getVariable(image, 'Boot0100');
  assert.ok(boot, 'Boot0100 is there');
  const option = parseLoadOption(boot.data);
  assert.ok(option, 'Boot0100 parses as EFI_LOAD_OPTION');
  return { boot, option, uris: option.paths.flatMap((p) => pathUris(p)) };
}

describe('the varstore writer on Debian’s OVMF template', () => {
  for (const path of TEMPLATES) {
    test(`${path}: Boot0100 and BootOrder written, read back, rest untouched`, (t) => {
      if (!existsSync(path)) {
        t.skip(`${path} not installed (apt-get install ovmf)`);
        return;
      }
      const template = readFileSync(path);
      const before = listVariables(template);
      const image = withHttpBoot(template, URL);
      assert.equal(image.length, template.length);
      assert.ok(readFileSync(path).equals(template), 'the template itself is not modified');
      const { boot, option, uris } = readBack(image);
      assert.equal(boot.attributes, 0x07);
      assert.equal(boot.guid, EFI_GLOBAL_VARIABLE);
      assert.equal(option.attributes, 1);
      assert.deepEqual(uris, [URL]);
      assert.deepEqual([...getVariable(image, 'BootOrder')!.data], [0x00, 0x01]);
      assert.equal(listVariables(image).length, before.length + 2);
      // Only the variable area changed: the FV header, the FTW areas and the rest are the template's.
      const firstHeader = 0x64;
      assert.ok(image.subarray(0, firstHeader).equals(template.subarray(0, firstHeader)), 'headers unchanged');
      assert.ok(image.subarray(0x1000).equals(template.subarray(0x1000)), 'nothing written past the new variables');
      // Exactly what EDK2 expects at the first header.
      assert.equal(image.readUInt16LE(firstHeader), 0x55aa);
      assert.equal(image[firstHeader + 2], 0x3f);
      assert.equal(image.readUInt32LE(firstHeader + 36), 'Boot0100\0'.length * 2);
      assert.ok(image.subarray(firstHeader + 44, firstHeader + 60).equals(GLOBAL_GUID_BYTES));
      assert.equal(image.toString('utf16le', firstHeader + 60, firstHeader + 76), 'Boot0100');
    });
  }
});

describe('the varstore writer on synthetic stores', () => {
  test('the URI device path is one URI node and the end node', () => {
    const path = uriDevicePath('http://h/x');
    assert.deepEqual([...path.subarray(0, 4)], [0x03, 0x18, 14, 0]);
    assert.equal(path.toString('latin1', 4, 14), 'http://h/x');
    assert.deepEqual([...path.subarray(14)], [0x7f, 0xff, 0x04, 0x00]);
    assert.throws(() => uriDevicePath('http://h/ü'), VarstoreError);
  });

  test('Boot0100 is EFI_LOAD_OPTION: active, path length, UCS-2 description, device path', () => {
    const [boot] = httpBootVariables(URL, { description: 'lab' });
    const data = Buffer.from(boot!.data);
    assert.equal(data.readUInt32LE(0), 1);
    const path = uriDevicePath(URL);
    assert.equal(data.readUInt16LE(4), path.length);
    assert.equal(data.toString('utf16le', 6, 6 + 8), 'lab\0');
    assert.ok(data.subarray(14).equals(path));
  });

  test('write then read back: the same Boot0100 bytes and device path', () => {
    const image = withHttpBoot(emptyStore(), URL);
    const [written] = httpBootVariables(URL);
    const { boot, uris } = readBack(image);
    assert.ok(boot.data.equals(Buffer.from(written!.data)));
    assert.deepEqual(uris, [URL]);
    assert.deepEqual(
      listVariables(image).map((v) => v.name),
      ['Boot0100', 'BootOrder'],
    );
  });

  test('BootNext instead of BootOrder for a single boot', () => {
    const image = withHttpBoot(emptyStore(), URL, { once: true });
    assert.deepEqual([...getVariable(image, 'BootNext')!.data], [0x00, 0x01]);
    assert.equal(getVariable(image, 'BootOrder'), undefined);
  });

  test('deleted and in-deletion variables are skipped when reading', () => {
    const image = emptyStore();
    let at = 0x64;
    at = appendVariable(image, at, { name: 'Gone', data: Buffer.from('a'), state: 0x3d });
    at = appendVariable(image, at, { name: 'AlsoGone', data: Buffer.from('bb'), state: 0x3c });
    at = appendVariable(image, at, { name: 'Replaced', data: Buffer.from('old'), state: 0x3e });
    at = appendVariable(image, at, { name: 'Replaced', data: Buffer.from('new') });
    at = appendVariable(image, at, { name: 'Interrupted', data: Buffer.from('half'), state: 0x7f });
    at = appendVariable(image, at, { name: 'Kept', data: Buffer.from('k'), guid: Buffer.alloc(16, 1) });
    appendVariable(image, at, { name: 'Orphan', data: Buffer.from('o'), state: 0x3e });
    const live = listVariables(image);
    assert.deepEqual(
      live.map((v) => [v.name, v.data.toString()]),
      [['Replaced', 'new'], ['Kept', 'k'], ['Orphan', 'o']],
    );
    assert.equal(live[1]!.guid, '01010101-0101-0101-0101-010101010101');
  });

  test('replacing a variable marks the old header deleted (0x3F → 0x3D) and appends the new one', () => {
    const image = emptyStore();
    const oldAt = 0x64;
    const next = appendVariable(image, oldAt, { name: 'BootOrder', data: Buffer.from([0, 0, 1, 0]) });
    const otherAt = next;
    appendVariable(image, otherAt, { name: 'BootOrder', data: Buffer.from([9, 9]), guid: Buffer.from(OTHER_GUID.replace(/-/g, ''), 'hex') });
    const written = withHttpBoot(image, URL);
    assert.equal(written[oldAt + 2], 0x3d, 'old BootOrder deleted');
    assert.equal(written[otherAt + 2], 0x3f, 'same name under another GUID untouched');
    assert.deepEqual([...getVariable(written, 'BootOrder')!.data], [0x00, 0x01]);
    assert.equal(listVariables(written).filter((v) => v.name === 'BootOrder').length, 2);
    // Writing again stacks up one more deleted copy; the store still reads the same.
    const again = withHttpBoot(written, URL);
    assert.deepEqual(readBack(again).uris, [URL]);
    assert.equal(listVariables(again).length, 3);
  });

  test('other variables survive a write with their bytes', () => {
    const image = emptyStore();
    appendVariable(image, 0x64, { name: 'Lang', data: Buffer.from('eng'), attributes: 7 });
    const written = setVariables(image, [{ name: 'Timeout', guid: EFI_GLOBAL_VARIABLE, attributes: 7, data: Buffer.from([5, 0]) }]);
    assert.deepEqual(
      listVariables(written).map((v) => [v.name, v.data.toString('hex')]),
      [['Lang', Buffer.from('eng').toString('hex')], ['Timeout', '0500']],
    );
  });

  test('a full store is refused, and the input is left as it was', () => {
    const image = emptyStore(0x100);
    appendVariable(image, 0x64, { name: 'Big', data: Buffer.alloc(0x80, 0x11) });
    const copy = Buffer.from(image);
    assert.throws(() => withHttpBoot(image, URL), (err: Error) => err instanceof VarstoreError && /variable store is full: \d+ bytes needed, \d+ free/.test(err.message));
    assert.ok(image.equals(copy));
  });

  test('layouts it does not understand are refused with the reason', () => {
    const notFv = emptyStore();
    notFv.write('XXXX', 0x28, 'latin1');
    assert.throws(() => listVariables(notFv), /not an OVMF variable store we understand: no _FVH/);

    const plain = emptyStore();
    Buffer.from('1636cfdd75326441' + '98b6fe85707ffe7d', 'hex').copy(plain, 0x48);
    assert.throws(() => withHttpBoot(plain, URL), /non-authenticated variable store/);

    const unformatted = emptyStore();
    unformatted[0x5c] = 0xff;
    assert.throws(() => listVariables(unformatted), /format 0xff/);

    const tooBig = emptyStore();
    tooBig.writeUInt32LE(0x10000, 0x58);
    assert.throws(() => listVariables(tooBig), /does not fit its volume/);

    const runaway = emptyStore();
    appendVariable(runaway, 0x64, { name: 'X', data: Buffer.from('x') });
    runaway.writeUInt32LE(0xffff, 0x64 + 40);
    assert.throws(() => listVariables(runaway), /runs past the store/);

    const garbage = emptyStore();
    garbage[0x200] = 0x00;
    assert.throws(() => listVariables(garbage), /unexpected bytes at 0x200/);

    assert.throws(() => listVariables(Buffer.alloc(16)), /only 16 bytes/);
  });
});
