// Checks the checked-in .efi files from their raw bytes. The PE parser and every expected
// value here are written out independently of efi/pe.ts on purpose: reusing its constants
// would only prove that pe.ts agrees with itself.

import { test } from 'node:test';
import { strict as assert } from 'node:assert';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildEfiApp } from '../efi/pe.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const workloadsDir = resolve(repoRoot, 'examples', 'workloads');

interface Expected {
  /** Relative to the repo root. */
  file: string;
  resetType: 'shutdown' | 'warm' | 'cold';
  /** EFI_RESET_TYPE as it must appear in `mov ecx, imm32`. */
  resetCode: number;
  message: string;
}

const EXPECTED: Expected[] = [
  {
    file: 'efi/poweroff.efi',
    resetType: 'shutdown',
    resetCode: 2,
    message: 'dispatch: nothing left to run, powering off\r\n',
  },
  {
    file: 'efi/reboot.efi',
    resetType: 'warm',
    resetCode: 1,
    message: 'dispatch: reboot.efi, warm reset\r\n',
  },
  {
    file: 'examples/workloads/01-hello.efi',
    resetType: 'warm',
    resetCode: 1,
    message: 'example workload 01-hello: hello from dispatch; rebooting without reporting\r\n',
  },
  {
    file: 'examples/workloads/02-memtest-stub.efi',
    resetType: 'warm',
    resetCode: 1,
    message:
      'example workload 02-memtest-stub: pretends to test memory; rebooting without reporting\r\n',
  },
  {
    file: 'examples/workloads/03-goodbye.efi',
    resetType: 'warm',
    resetCode: 1,
    message: 'example workload 03-goodbye: last example; rebooting without reporting\r\n',
  },
];

// ---------------------------------------------------------------------------------------
// A minimal PE32+ parser (offsets from the Microsoft PE/COFF specification).

interface Section {
  name: string;
  virtualSize: number;
  virtualAddress: number;
  sizeOfRawData: number;
  pointerToRawData: number;
  numberOfRelocations: number;
  characteristics: number;
}

interface Pe {
  eLfanew: number;
  machine: number;
  numberOfSections: number;
  timeDateStamp: number;
  sizeOfOptionalHeader: number;
  fileCharacteristics: number;
  optionalHeaderOffset: number;
  magic: number;
  sizeOfCode: number;
  addressOfEntryPoint: number;
  baseOfCode: number;
  imageBase: bigint;
  sectionAlignment: number;
  fileAlignment: number;
  sizeOfImage: number;
  sizeOfHeaders: number;
  checkSum: number;
  subsystem: number;
  dllCharacteristics: number;
  numberOfRvaAndSizes: number;
  dataDirectories: { rva: number; size: number }[];
  sectionTableEnd: number;
  sections: Section[];
}

function parsePe(buf: Buffer): Pe {
  assert.ok(buf.length >= 0x40, 'file too short for a DOS header');
  assert.equal(buf.toString('latin1', 0, 2), 'MZ', 'DOS header must start with "MZ"');
  const eLfanew = buf.readUInt32LE(0x3c);
  assert.ok(eLfanew >= 0x40 && eLfanew + 24 <= buf.length, `e_lfanew 0x${eLfanew.toString(16)} out of range`);
  assert.equal(eLfanew % 8, 0, 'e_lfanew should be 8-byte aligned');
  assert.deepEqual([...buf.subarray(eLfanew, eLfanew + 4)], [0x50, 0x45, 0, 0], 'e_lfanew must point at "PE\\0\\0"');

  const coff = eLfanew + 4;
  const machine = buf.readUInt16LE(coff);
  const numberOfSections = buf.readUInt16LE(coff + 2);
  const timeDateStamp = buf.readUInt32LE(coff + 4);
  const sizeOfOptionalHeader = buf.readUInt16LE(coff + 16);
  const fileCharacteristics = buf.readUInt16LE(coff + 18);

  const opt = coff + 20;
  const magic = buf.readUInt16LE(opt);
  assert.equal(magic, 0x20b, 'optional header magic must be PE32+ (0x20B)');
  const numberOfRvaAndSizes = buf.readUInt32LE(opt + 108);
  const dataDirectories: { rva: number; size: number }[] = [];
  for (let i = 0; i < numberOfRvaAndSizes; i++) {
    dataDirectories.push({
      rva: buf.readUInt32LE(opt + 112 + i * 8),
      size: buf.readUInt32LE(opt + 116 + i * 8),
    });
  }
  assert.equal(sizeOfOptionalHeader, 112 + 8 * numberOfRvaAndSizes, 'SizeOfOptionalHeader vs NumberOfRvaAndSizes');

  const sectionTable = opt + sizeOfOptionalHeader;
  const sections: Section[] = [];
  for (let i = 0; i < numberOfSections; i++) {
    const s = sectionTable + i * 40;
    sections.push({
      name: buf.toString('latin1', s, s + 8),
      virtualSize: buf.readUInt32LE(s + 8),
      virtualAddress: buf.readUInt32LE(s + 12),
      sizeOfRawData: buf.readUInt32LE(s + 16),
      pointerToRawData: buf.readUInt32LE(s + 20),
      numberOfRelocations: buf.readUInt16LE(s + 32),
      characteristics: buf.readUInt32LE(s + 36),
    });
  }

  return {
    eLfanew,
    machine,
    numberOfSections,
    timeDateStamp,
    sizeOfOptionalHeader,
    fileCharacteristics,
    optionalHeaderOffset: opt,
    magic,
    sizeOfCode: buf.readUInt32LE(opt + 4),
    addressOfEntryPoint: buf.readUInt32LE(opt + 16),
    baseOfCode: buf.readUInt32LE(opt + 20),
    imageBase: buf.readBigUInt64LE(opt + 24),
    sectionAlignment: buf.readUInt32LE(opt + 32),
    fileAlignment: buf.readUInt32LE(opt + 36),
    sizeOfImage: buf.readUInt32LE(opt + 56),
    sizeOfHeaders: buf.readUInt32LE(opt + 60),
    checkSum: buf.readUInt32LE(opt + 64),
    subsystem: buf.readUInt16LE(opt + 68),
    dllCharacteristics: buf.readUInt16LE(opt + 70),
    numberOfRvaAndSizes,
    dataDirectories,
    sectionTableEnd: sectionTable + numberOfSections * 40,
    sections,
  };
}

/** imagehlp-style PE checksum, folded once at the end (pe.ts folds per word). */
function referenceChecksum(buf: Buffer, checkSumOffset: number): number {
  let sum = 0;
  for (let i = 0; i + 1 < buf.length; i += 2) {
    if (i >= checkSumOffset && i < checkSumOffset + 4) continue;
    sum += buf.readUInt16LE(i);
  }
  if (buf.length % 2 === 1) sum += buf[buf.length - 1] ?? 0;
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum + buf.length;
}

const hex = (bytes: Iterable<number>): string =>
  [...bytes].map((b) => b.toString(16).padStart(2, '0').toUpperCase()).join(' ');

function textSection(pe: Pe): Section {
  const text = pe.sections.find((s) => s.name === '.text\0\0\0');
  assert.ok(text, 'no .text section');
  return text;
}

/** Structural checks that every image must pass; returns the parsed headers. */
function checkStructure(buf: Buffer, label: string): Pe {
  const pe = parsePe(buf);

  // DOS stub: the classic real-mode program, with DX pointing at its '$'-terminated text.
  assert.deepEqual(
    hex(buf.subarray(0x40, 0x4e)),
    '0E 1F BA 0E 00 B4 09 CD 21 B8 01 4C CD 21',
    `${label}: DOS stub code`,
  );
  assert.equal(
    buf.toString('latin1', 0x4e, 0x4e + 43),
    'This program cannot be run in DOS mode.\r\r\n$',
    `${label}: DOS stub message`,
  );
  assert.ok(pe.eLfanew >= 0x4e + 43, `${label}: PE header overlaps the DOS stub`);

  assert.equal(pe.machine, 0x8664, `${label}: Machine must be AMD64`);
  assert.equal(pe.numberOfSections, 1, `${label}: NumberOfSections`);
  assert.equal(pe.timeDateStamp, 0, `${label}: TimeDateStamp must be 0 for reproducible builds`);
  assert.equal(pe.fileCharacteristics & 0x0002, 0x0002, `${label}: IMAGE_FILE_EXECUTABLE_IMAGE missing`);
  assert.equal(pe.fileCharacteristics & 0x0001, 0, `${label}: IMAGE_FILE_RELOCS_STRIPPED must not be set`);
  assert.equal(pe.fileCharacteristics & 0x2000, 0, `${label}: must not be a DLL`);
  assert.equal(pe.magic, 0x20b, `${label}: Magic`);
  assert.equal(pe.subsystem, 10, `${label}: Subsystem must be EFI_APPLICATION (10)`);
  assert.equal(pe.sectionAlignment, 0x1000, `${label}: SectionAlignment`);
  assert.equal(pe.fileAlignment, 0x200, `${label}: FileAlignment`);
  assert.equal(pe.sizeOfHeaders, 0x200, `${label}: SizeOfHeaders`);
  assert.ok(pe.sectionTableEnd <= pe.sizeOfHeaders, `${label}: section table runs past SizeOfHeaders`);
  assert.equal(pe.imageBase % 0x10000n, 0n, `${label}: ImageBase must be 64 KiB aligned`);
  assert.ok(pe.imageBase >= 0x100000n, `${label}: ImageBase below 1 MiB (reserved for CSM in EDK2)`);

  assert.equal(pe.numberOfRvaAndSizes, 16, `${label}: NumberOfRvaAndSizes`);
  pe.dataDirectories.forEach((d, i) => {
    assert.deepEqual(d, { rva: 0, size: 0 }, `${label}: data directory ${i} must be empty (no imports, no relocs)`);
  });

  let imageEnd = pe.sizeOfHeaders;
  let fileEnd = pe.sizeOfHeaders;
  let codeRaw = 0;
  for (const s of pe.sections) {
    assert.equal(s.virtualAddress % pe.sectionAlignment, 0, `${label}: ${s.name} RVA not section-aligned`);
    assert.equal(s.pointerToRawData % pe.fileAlignment, 0, `${label}: ${s.name} raw offset not file-aligned`);
    assert.equal(s.sizeOfRawData % pe.fileAlignment, 0, `${label}: ${s.name} raw size not file-aligned`);
    assert.ok(s.virtualAddress >= imageEnd, `${label}: ${s.name} overlaps headers or previous section`);
    assert.ok(s.pointerToRawData >= fileEnd, `${label}: ${s.name} raw data overlaps`);
    assert.ok(s.sizeOfRawData >= s.virtualSize, `${label}: ${s.name} raw data shorter than its virtual size`);
    assert.ok(s.pointerToRawData + s.sizeOfRawData <= buf.length, `${label}: ${s.name} raw data past end of file`);
    assert.equal(s.numberOfRelocations, 0, `${label}: ${s.name} has COFF relocations`);
    imageEnd = s.virtualAddress + Math.ceil(s.virtualSize / pe.sectionAlignment) * pe.sectionAlignment;
    fileEnd = s.pointerToRawData + s.sizeOfRawData;
    if (s.characteristics & 0x20) codeRaw += s.sizeOfRawData;
  }
  assert.equal(buf.length, fileEnd, `${label}: file length should end at the last section's raw data`);
  assert.equal(pe.sizeOfImage % pe.sectionAlignment, 0, `${label}: SizeOfImage not a multiple of SectionAlignment`);
  assert.ok(pe.sizeOfImage >= imageEnd, `${label}: SizeOfImage 0x${pe.sizeOfImage.toString(16)} does not cover the sections`);
  assert.equal(pe.sizeOfImage, imageEnd, `${label}: SizeOfImage larger than needed`);

  const text = textSection(pe);
  assert.equal(text.virtualAddress, 0x1000, `${label}: .text RVA`);
  assert.equal(text.pointerToRawData, 0x200, `${label}: .text file offset`);
  const CODE = 0x20, EXECUTE = 0x20000000, READ = 0x40000000, WRITE = 0x80000000;
  assert.equal(text.characteristics & (CODE | EXECUTE | READ), CODE | EXECUTE | READ, `${label}: .text must be CODE|EXECUTE|READ`);
  assert.equal(text.characteristics & WRITE, 0, `${label}: .text must not be writable`);
  assert.equal(pe.sizeOfCode, codeRaw, `${label}: SizeOfCode`);
  assert.equal(pe.baseOfCode, text.virtualAddress, `${label}: BaseOfCode`);

  const entry = pe.addressOfEntryPoint;
  assert.ok(
    entry >= text.virtualAddress && entry < text.virtualAddress + text.virtualSize,
    `${label}: entry point 0x${entry.toString(16)} outside .text's virtual range`,
  );
  assert.ok(entry - text.virtualAddress < text.sizeOfRawData, `${label}: entry point outside .text's raw data`);

  const checkSumOffset = pe.optionalHeaderOffset + 64;
  assert.equal(pe.checkSum, referenceChecksum(buf, checkSumOffset), `${label}: PE CheckSum`);
  return pe;
}

// The entry point's instructions, byte for byte. `null` bytes are the lea displacement,
// resolved separately. `stack` is the change in bytes pushed, used to check alignment.
interface Insn {
  asm: string;
  bytes: (number | null)[];
  stack?: number;
}

function expectedCode(resetCode: number): Insn[] {
  return [
    { asm: 'push rbx', bytes: [0x53], stack: 8 },
    { asm: 'sub rsp, 0x20', bytes: [0x48, 0x83, 0xec, 0x20], stack: 0x20 },
    { asm: 'mov rbx, rdx  (SystemTable)', bytes: [0x48, 0x89, 0xd3] },
    { asm: 'mov rcx, [rbx+0x40]  (ConOut)', bytes: [0x48, 0x8b, 0x4b, 0x40] },
    { asm: 'test rcx, rcx', bytes: [0x48, 0x85, 0xc9] },
    { asm: 'jz +0x0A  (skip the print)', bytes: [0x74, 0x0a] },
    { asm: 'lea rdx, [rip+disp32]  (message)', bytes: [0x48, 0x8d, 0x15, null, null, null, null] },
    { asm: 'call [rcx+0x08]  (OutputString)', bytes: [0xff, 0x51, 0x08] },
    { asm: 'mov rax, [rbx+0x58]  (RuntimeServices)', bytes: [0x48, 0x8b, 0x43, 0x58] },
    { asm: `mov ecx, ${resetCode}  (ResetType)`, bytes: [0xb9, resetCode, 0x00, 0x00, 0x00] },
    { asm: 'xor edx, edx  (ResetStatus)', bytes: [0x31, 0xd2] },
    { asm: 'xor r8d, r8d  (DataSize)', bytes: [0x45, 0x31, 0xc0] },
    { asm: 'xor r9d, r9d  (ResetData)', bytes: [0x45, 0x31, 0xc9] },
    { asm: 'call [rax+0x68]  (ResetSystem)', bytes: [0xff, 0x50, 0x68] },
    {
      asm: 'mov rax, 0x8000000000000007  (EFI_DEVICE_ERROR)',
      bytes: [0x48, 0xb8, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80],
    },
    { asm: 'add rsp, 0x20', bytes: [0x48, 0x83, 0xc4, 0x20], stack: -0x20 },
    { asm: 'pop rbx', bytes: [0x5b], stack: -8 },
    { asm: 'ret', bytes: [0xc3] },
  ];
}

/** Walks the entry code; returns the UCS-2 message that `lea rdx` points at. */
function checkEntryCode(buf: Buffer, pe: Pe, resetCode: number, label: string): string {
  const text = textSection(pe);
  const rvaToFile = (rva: number): number => rva - text.virtualAddress + text.pointerToRawData;
  const entryRva = pe.addressOfEntryPoint;

  let rva = entryRva;
  let depth = 0; // bytes pushed since entry; the caller's CALL left RSP at 8 mod 16
  let leaEndRva = -1;
  let leaDisp = 0;
  let jzEndRva = -1;
  let jzRel = 0;
  let resetLoadRva = -1;
  let codeEndRva = -1;
  for (const insn of expectedCode(resetCode)) {
    const at = rvaToFile(rva);
    const actual = buf.subarray(at, at + insn.bytes.length);
    const matches =
      actual.length === insn.bytes.length && insn.bytes.every((b, i) => b === null || actual[i] === b);
    assert.ok(
      matches,
      `${label}: at RVA 0x${rva.toString(16)} expected ${insn.asm} = ` +
        `${insn.bytes.map((b) => (b === null ? '??' : hex([b]))).join(' ')}, found ${hex(actual)}`,
    );
    if (insn.bytes[0] === 0xff) {
      assert.equal((8 + depth) % 16, 0, `${label}: RSP not 16-byte aligned at ${insn.asm}`);
      assert.ok(depth >= 8 + 0x20, `${label}: no shadow space at ${insn.asm}`);
    }
    rva += insn.bytes.length;
    if (insn.bytes[0] === 0x74) {
      jzEndRva = rva;
      jzRel = actual.readInt8(1);
    }
    if (insn.bytes[1] === 0x8d) {
      leaEndRva = rva;
      leaDisp = actual.readInt32LE(3);
    }
    if (insn.asm.startsWith('mov rax, [rbx+0x58]')) resetLoadRva = rva - insn.bytes.length;
    depth += insn.stack ?? 0;
    assert.ok(depth >= 0, `${label}: stack popped below entry depth`);
  }
  codeEndRva = rva;
  assert.equal(depth, 0, `${label}: stack not restored before ret`);
  assert.equal(jzEndRva + jzRel, resetLoadRva, `${label}: jz must land on the RuntimeServices load`);

  const messageRva = leaEndRva + leaDisp;
  assert.ok(messageRva >= codeEndRva, `${label}: message pointer 0x${messageRva.toString(16)} points into the code`);
  assert.equal(messageRva % 2, 0, `${label}: CHAR16 string must be 2-byte aligned`);
  const textEnd = text.virtualAddress + Math.min(text.virtualSize, text.sizeOfRawData);
  assert.ok(messageRva < textEnd, `${label}: message pointer outside .text`);
  let message = '';
  for (let p = messageRva; ; p += 2) {
    assert.ok(p + 2 <= textEnd, `${label}: message not NUL-terminated inside .text`);
    const unit = buf.readUInt16LE(rvaToFile(p));
    if (unit === 0) break;
    message += String.fromCharCode(unit);
  }
  return message;
}

// ---------------------------------------------------------------------------------------

for (const exp of EXPECTED) {
  test(`${exp.file}: valid PE32+ EFI application`, () => {
    const buf = readFileSync(resolve(repoRoot, exp.file)); // throws (fails) if missing
    const pe = checkStructure(buf, exp.file);
    assert.equal(pe.sizeOfImage, 0x2000, `${exp.file}: SizeOfImage`);
    assert.equal(buf.length, 1024, `${exp.file}: file size`);
  });

  test(`${exp.file}: prints its message, then ResetSystem(${exp.resetType})`, () => {
    const buf = readFileSync(resolve(repoRoot, exp.file));
    const pe = parsePe(buf);
    const message = checkEntryCode(buf, pe, exp.resetCode, exp.file);
    assert.equal(message, exp.message);
  });

  test(`${exp.file}: identical to a fresh build from efi/pe.ts`, () => {
    const committed = readFileSync(resolve(repoRoot, exp.file));
    const rebuilt = buildEfiApp({ resetType: exp.resetType, message: exp.message });
    const again = buildEfiApp({ resetType: exp.resetType, message: exp.message });
    assert.ok(rebuilt.equals(again), 'two builds with the same input differ');
    assert.ok(
      committed.equals(rebuilt),
      `${exp.file} differs from what efi/pe.ts builds now; run \`npm run build:efi\``,
    );
  });
}

test('examples/workloads: the example .efi files exist and sort into run order', () => {
  const names = readdirSync(workloadsDir).filter((n) => n.toLowerCase().endsWith('.efi')).sort();
  const expected = EXPECTED.filter((e) => e.file.startsWith('examples/workloads/')).map(
    (e) => e.file.slice('examples/workloads/'.length),
  );
  assert.deepEqual(
    names.filter((n) => expected.includes(n)),
    expected,
    'expected example workloads missing or out of order',
  );
});

test('examples/workloads: every .efi there is a valid app that warm-resets', () => {
  const names = readdirSync(workloadsDir).filter((n) => n.toLowerCase().endsWith('.efi'));
  assert.ok(names.length >= 3, `only ${names.length} example workloads`);
  for (const name of names) {
    const label = `examples/workloads/${name}`;
    const buf = readFileSync(resolve(workloadsDir, name));
    const pe = checkStructure(buf, label);
    const message = checkEntryCode(buf, pe, 1, label);
    assert.match(message, /^example workload .+\r\n$/, `${label}: message`);
  }
});

test('pe.ts: a cold-reset image decodes with ECX = 0', () => {
  const buf = buildEfiApp({ resetType: 'cold', message: 'cold\r\n' });
  const pe = checkStructure(buf, 'cold');
  assert.equal(checkEntryCode(buf, pe, 0, 'cold'), 'cold\r\n');
});

test('pe.ts: a message longer than one page grows the section and SizeOfImage', () => {
  const message = 'x'.repeat(3000) + '\r\n';
  const buf = buildEfiApp({ resetType: 'warm', message });
  const pe = checkStructure(buf, 'long');
  assert.equal(pe.sizeOfImage, 0x3000);
  assert.equal(checkEntryCode(buf, pe, 1, 'long'), message);
});

test('pe.ts: different messages give different bytes, same message the same bytes', () => {
  const a = buildEfiApp({ resetType: 'warm', message: 'a\r\n' });
  const b = buildEfiApp({ resetType: 'warm', message: 'b\r\n' });
  const a2 = buildEfiApp({ resetType: 'warm', message: 'a\r\n' });
  assert.ok(!a.equals(b));
  assert.ok(a.equals(a2));
});

test('pe.ts: rejects messages UCS-2 cannot carry', () => {
  assert.throws(() => buildEfiApp({ resetType: 'warm', message: 'a\0b' }), /NUL/);
  assert.throws(() => buildEfiApp({ resetType: 'warm', message: 'smile \u{1F600}' }), /BMP/);
  assert.throws(
    () => buildEfiApp({ resetType: 'bogus' as 'warm', message: 'x' }),
    /unknown reset type/,
  );
});

test('parser self-check: a corrupted image is rejected', () => {
  const good = buildEfiApp({ resetType: 'shutdown', message: 'x' });
  const corrupt = (mutate: (b: Buffer) => void): Buffer => {
    const b = Buffer.from(good);
    mutate(b);
    return b;
  };
  const pe = parsePe(good);
  const opt = pe.optionalHeaderOffset;
  // Each corruption must trip a different check, proving the checks can fail.
  assert.throws(() => checkStructure(corrupt((b) => b.write('ZM', 0, 'latin1')), 'c'), /MZ/);
  assert.throws(() => checkStructure(corrupt((b) => b.writeUInt16LE(0x14c, pe.eLfanew + 4)), 'c'), /Machine/);
  assert.throws(() => checkStructure(corrupt((b) => b.writeUInt16LE(3, opt + 68)), 'c'), /Subsystem/);
  assert.throws(() => checkStructure(corrupt((b) => b.writeUInt32LE(0x1000, opt + 56)), 'c'), /SizeOfImage/);
  assert.throws(() => checkStructure(corrupt((b) => b.writeUInt32LE(0x3000, opt + 16)), 'c'), /entry point/);
  assert.throws(() => checkStructure(corrupt((b) => (b[0x200] = 0x90)), 'c'), /CheckSum/);
  assert.throws(() => checkEntryCode(corrupt((b) => (b[0x220] = 0x01)), pe, 2, 'c'), /mov ecx, 2/);
  assert.throws(() => checkEntryCode(corrupt((b) => (b[0x22e] = 0x60)), pe, 2, 'c'), /ResetSystem/);
});
