// Builds tiny x86-64 UEFI applications (PE32+, subsystem 10) by hand: print one line on
// the firmware console, then ResetSystem(). No toolchain, no dependencies, and the same
// input always gives the same bytes, so the .efi files in the repo can be checked against
// a rebuild.

/** EFI_RESET_TYPE values from the UEFI spec (ResetSystem's first argument). */
export const EFI_RESET_COLD = 0;
export const EFI_RESET_WARM = 1;
export const EFI_RESET_SHUTDOWN = 2;

export type ResetType = 'cold' | 'warm' | 'shutdown';

export const RESET_TYPE_CODES: Readonly<Record<ResetType, number>> = Object.freeze({
  cold: EFI_RESET_COLD,
  warm: EFI_RESET_WARM,
  shutdown: EFI_RESET_SHUTDOWN,
});

/** What the application returns to the boot manager if ResetSystem ever comes back. */
export const EFI_DEVICE_ERROR = 0x8000000000000007n;

export interface EfiAppOptions {
  resetType: ResetType;
  /** Printed through ConOut->OutputString before the reset; include "\r\n" yourself. */
  message: string;
}

export const IMAGE_FILE_MACHINE_AMD64 = 0x8664;
export const IMAGE_SUBSYSTEM_EFI_APPLICATION = 10;
export const PE32PLUS_MAGIC = 0x20b;
export const FILE_ALIGNMENT = 0x200;
export const SECTION_ALIGNMENT = 0x1000;
export const SIZE_OF_HEADERS = 0x200;
export const TEXT_RVA = 0x1000;
export const TEXT_FILE_OFFSET = 0x200;
// Above 1 MiB, 64 KiB aligned (the PE rule for image bases). EDK2 first tries to place the
// image here and otherwise loads it anywhere; the code is position independent and has
// no relocations to apply, so either way works.
export const IMAGE_BASE = 0x140000000n;

const E_LFANEW = 0x80;
const COFF_HEADER_OFFSET = E_LFANEW + 4;
const OPTIONAL_HEADER_OFFSET = COFF_HEADER_OFFSET + 20;
const NUMBER_OF_DATA_DIRECTORIES = 16;
const SIZE_OF_OPTIONAL_HEADER = 112 + 8 * NUMBER_OF_DATA_DIRECTORIES; // 0xF0
const SECTION_TABLE_OFFSET = OPTIONAL_HEADER_OFFSET + SIZE_OF_OPTIONAL_HEADER;
/** Where the CheckSum field lives; it is left out of its own sum. */
export const CHECKSUM_OFFSET = OPTIONAL_HEADER_OFFSET + 64;

const IMAGE_FILE_EXECUTABLE_IMAGE = 0x0002;
const IMAGE_FILE_LARGE_ADDRESS_AWARE = 0x0020;
const IMAGE_DLLCHARACTERISTICS_NX_COMPAT = 0x0100;
const IMAGE_SCN_CNT_CODE = 0x00000020;
const IMAGE_SCN_MEM_EXECUTE = 0x20000000;
const IMAGE_SCN_MEM_READ = 0x40000000;

// The real-mode program every PE carries after its MZ header: prints the message via
// INT 21h/AH=09h and exits with code 1. Some tools that sniff PE files (and people with
// hexdump) expect to find it.
const DOS_STUB_CODE = [
  0x0e, //             push cs
  0x1f, //             pop ds
  0xba, 0x0e, 0x00, // mov dx, 0x000E   (the message below)
  0xb4, 0x09, //       mov ah, 9
  0xcd, 0x21, //       int 21h
  0xb8, 0x01, 0x4c, // mov ax, 0x4C01
  0xcd, 0x21, //       int 21h
];
const DOS_STUB_MESSAGE = 'This program cannot be run in DOS mode.\r\r\n$';

const alignUp = (value: number, alignment: number): number =>
  Math.ceil(value / alignment) * alignment;

/**
 * The entry point. Layout (offsets from the start of .text):
 *
 *   00 53                    push rbx
 *   01 48 83 EC 20           sub  rsp, 0x20
 *   05 48 89 D3              mov  rbx, rdx
 *   08 48 8B 4B 40           mov  rcx, [rbx+0x40]
 *   0C 48 85 C9              test rcx, rcx
 *   0F 74 0A                 jz   1B
 *   11 48 8D 15 xx xx xx xx  lea  rdx, [rip+message]
 *   18 FF 51 08              call [rcx+0x08]
 *   1B 48 8B 43 58           mov  rax, [rbx+0x58]
 *   1F B9 tt 00 00 00        mov  ecx, resetType
 *   24 31 D2                 xor  edx, edx
 *   26 45 31 C0              xor  r8d, r8d
 *   29 45 31 C9              xor  r9d, r9d
 *   2C FF 50 68              call [rax+0x68]
 *   2F 48 B8 07 .. 00 80     mov  rax, 0x8000000000000007
 *   39 48 83 C4 20           add  rsp, 0x20
 *   3D 5B                    pop  rbx
 *   3E C3                    ret
 */
function entryCode(resetCode: number, messageOffset: number): Buffer {
  const code: number[] = [];
  const emit = (...bytes: number[]): void => {
    code.push(...bytes);
  };
  const u32 = (value: number): number[] => [
    value & 0xff,
    (value >>> 8) & 0xff,
    (value >>> 16) & 0xff,
    (value >>> 24) & 0xff,
  ];

  // One push plus 0x20 brings RSP (8 mod 16 after the caller's CALL) back to 16-byte
  // alignment and leaves the 32-byte shadow space the x64 ABI owes every callee. Firmware
  // is compiled for that ABI: a compiler may spill with aligned SSE stores (movaps), which
  // fault on a misaligned stack, and OutputString/ResetSystem may use the shadow space.
  emit(0x53);
  emit(0x48, 0x83, 0xec, 0x20);
  // SystemTable goes in RBX because RDX is volatile: OutputString may clobber it.
  emit(0x48, 0x89, 0xd3);
  emit(0x48, 0x8b, 0x4b, 0x40);
  // The spec says ConOut is always there, but if a headless board's firmware leaves it
  // NULL the reset still has to happen: skip the message rather than call through NULL.
  emit(0x48, 0x85, 0xc9);
  const jzAt = code.length;
  emit(0x74, 0x00);
  const leaAt = code.length;
  emit(0x48, 0x8d, 0x15, ...u32(0));
  const leaEnd = code.length;
  emit(0xff, 0x51, 0x08);
  const afterPrint = code.length;
  code[jzAt + 1] = afterPrint - (jzAt + 2);
  emit(0x48, 0x8b, 0x43, 0x58);
  emit(0xb9, ...u32(resetCode));
  // ResetData is optional; a NULL pointer with size 0 is the form every firmware accepts.
  emit(0x31, 0xd2);
  emit(0x45, 0x31, 0xc0);
  emit(0x45, 0x31, 0xc9);
  emit(0xff, 0x50, 0x68);
  // ResetSystem is specified never to return, but a platform whose reset path fails (a
  // shutdown it cannot do, say) may come back; report an error to the boot manager so
  // it tries its next boot option instead of treating this image as a success.
  emit(0x48, 0xb8, ...u32(0x00000007), ...u32(0x80000000));
  emit(0x48, 0x83, 0xc4, 0x20);
  emit(0x5b);
  emit(0xc3);

  if (messageOffset < code.length) {
    throw new Error(`message offset ${messageOffset} overlaps the code (${code.length} bytes)`);
  }
  // RIP-relative addressing keeps the image position independent, so it needs no .reloc
  // section wherever the loader puts it (EDK2 only tries ImageBase, then takes any pages).
  code.splice(leaAt + 3, 4, ...u32(messageOffset - leaEnd));
  return Buffer.from(code);
}

/** Length of the code in front of the message (what `entryCode` emits). */
const CODE_SIZE = 0x3f;
/** The message starts on an 8-byte boundary: CHAR16 data must be at least 2-aligned. */
const MESSAGE_OFFSET = alignUp(CODE_SIZE, 8);

/** The message as NUL-terminated UCS-2LE, which is what OutputString takes. */
export function encodeUcs2(message: string): Buffer {
  const out = Buffer.alloc((message.length + 1) * 2);
  for (let i = 0; i < message.length; i++) {
    const unit = message.charCodeAt(i);
    if (unit === 0) {
      throw new Error(`message contains NUL at index ${i}; OutputString would stop there`);
    }
    if (unit >= 0xd800 && unit <= 0xdfff) {
      throw new Error(
        `message has a character outside the BMP at index ${i}; UEFI consoles take UCS-2 only`,
      );
    }
    out.writeUInt16LE(unit, i * 2);
  }
  return out;
}

/**
 * The standard PE image checksum (as computed by imagehlp's CheckSumMappedFile): a 16-bit
 * one's-complement-style sum of the file with the CheckSum field taken as zero, plus the
 * file length. UEFI loaders ignore it; it is filled in so PE tools see a consistent file.
 */
export function peChecksum(file: Uint8Array, checksumOffset: number = CHECKSUM_OFFSET): number {
  let sum = 0;
  for (let i = 0; i < file.length; i += 2) {
    if (i === checksumOffset || i === checksumOffset + 2) continue;
    const word = (file[i] ?? 0) | ((file[i + 1] ?? 0) << 8);
    sum += word;
    sum = (sum & 0xffff) + (sum >>> 16);
  }
  sum = (sum & 0xffff) + (sum >>> 16);
  return (sum + file.length) >>> 0;
}

/** A complete .efi file that prints `message` and then calls ResetSystem(`resetType`). */
export function buildEfiApp(options: EfiAppOptions): Buffer {
  const resetCode = RESET_TYPE_CODES[options.resetType];
  if (resetCode === undefined) {
    throw new Error(`unknown reset type ${JSON.stringify(options.resetType)}`);
  }
  const text = Buffer.concat([
    entryCode(resetCode, MESSAGE_OFFSET),
    Buffer.alloc(MESSAGE_OFFSET - CODE_SIZE, 0xcc), // int3 between code and data
    encodeUcs2(options.message),
  ]);
  if (text.length !== MESSAGE_OFFSET + (options.message.length + 1) * 2) {
    throw new Error('internal error: code size does not match CODE_SIZE');
  }

  const virtualSize = text.length;
  const sizeOfRawData = alignUp(virtualSize, FILE_ALIGNMENT);
  const sizeOfImage = alignUp(TEXT_RVA + virtualSize, SECTION_ALIGNMENT);
  const file = Buffer.alloc(TEXT_FILE_OFFSET + sizeOfRawData);

  // DOS header. The e_cblp/e_cp/e_cparhdr/e_sp values are the ones every Microsoft
  // linker writes for its stub; e_lfanew (0x3C) is what PE loaders actually follow.
  file.write('MZ', 0x00, 'latin1');
  file.writeUInt16LE(0x0090, 0x02); // e_cblp
  file.writeUInt16LE(0x0003, 0x04); // e_cp
  file.writeUInt16LE(0x0004, 0x08); // e_cparhdr
  file.writeUInt16LE(0xffff, 0x0c); // e_maxalloc
  file.writeUInt16LE(0x00b8, 0x10); // e_sp
  file.writeUInt16LE(0x0040, 0x18); // e_lfarlc
  file.writeUInt32LE(E_LFANEW, 0x3c);
  Buffer.from(DOS_STUB_CODE).copy(file, 0x40);
  file.write(DOS_STUB_MESSAGE, 0x40 + DOS_STUB_CODE.length, 'latin1');

  file.write('PE\0\0', E_LFANEW, 'latin1');

  // COFF file header. TimeDateStamp stays 0 so rebuilds are byte-identical. No
  // IMAGE_FILE_RELOCS_STRIPPED: EDK2 refuses to load such an image anywhere but its
  // ImageBase, whereas without the flag and with an empty relocation directory it loads
  // it at any address and has nothing to fix up.
  let p = COFF_HEADER_OFFSET;
  file.writeUInt16LE(IMAGE_FILE_MACHINE_AMD64, p + 0);
  file.writeUInt16LE(1, p + 2); // NumberOfSections
  file.writeUInt32LE(0, p + 4); // TimeDateStamp
  file.writeUInt32LE(0, p + 8); // PointerToSymbolTable
  file.writeUInt32LE(0, p + 12); // NumberOfSymbols
  file.writeUInt16LE(SIZE_OF_OPTIONAL_HEADER, p + 16);
  file.writeUInt16LE(IMAGE_FILE_EXECUTABLE_IMAGE | IMAGE_FILE_LARGE_ADDRESS_AWARE, p + 18);

  // Optional header (PE32+).
  p = OPTIONAL_HEADER_OFFSET;
  file.writeUInt16LE(PE32PLUS_MAGIC, p + 0);
  // p+2, p+3: linker version 0.0
  file.writeUInt32LE(sizeOfRawData, p + 4); // SizeOfCode
  file.writeUInt32LE(0, p + 8); // SizeOfInitializedData
  file.writeUInt32LE(0, p + 12); // SizeOfUninitializedData
  file.writeUInt32LE(TEXT_RVA, p + 16); // AddressOfEntryPoint
  file.writeUInt32LE(TEXT_RVA, p + 20); // BaseOfCode
  file.writeBigUInt64LE(IMAGE_BASE, p + 24);
  file.writeUInt32LE(SECTION_ALIGNMENT, p + 32);
  file.writeUInt32LE(FILE_ALIGNMENT, p + 36);
  // p+40..p+51: OS/image/subsystem versions, Win32VersionValue — all 0; firmware ignores them
  file.writeUInt32LE(sizeOfImage, p + 56);
  file.writeUInt32LE(SIZE_OF_HEADERS, p + 60);
  // p+64: CheckSum, filled in last
  file.writeUInt16LE(IMAGE_SUBSYSTEM_EFI_APPLICATION, p + 68);
  // NX_COMPAT is true of this image (code is read+execute, nothing writable) and newer
  // firmware with memory protection / Secure Boot policy expects it to be declared.
  file.writeUInt16LE(IMAGE_DLLCHARACTERISTICS_NX_COMPAT, p + 70);
  file.writeBigUInt64LE(0x100000n, p + 72); // SizeOfStackReserve
  file.writeBigUInt64LE(0x1000n, p + 80); // SizeOfStackCommit
  file.writeBigUInt64LE(0x100000n, p + 88); // SizeOfHeapReserve
  file.writeBigUInt64LE(0x1000n, p + 96); // SizeOfHeapCommit
  file.writeUInt32LE(0, p + 104); // LoaderFlags
  // All 16 directories present but empty: some loaders index the array without checking
  // NumberOfRvaAndSizes, so a short table is a risk for no gain.
  file.writeUInt32LE(NUMBER_OF_DATA_DIRECTORIES, p + 108);

  // Section table: the single .text section.
  p = SECTION_TABLE_OFFSET;
  file.write('.text', p, 'latin1');
  file.writeUInt32LE(virtualSize, p + 8);
  file.writeUInt32LE(TEXT_RVA, p + 12);
  file.writeUInt32LE(sizeOfRawData, p + 16);
  file.writeUInt32LE(TEXT_FILE_OFFSET, p + 20);
  file.writeUInt32LE(IMAGE_SCN_CNT_CODE | IMAGE_SCN_MEM_EXECUTE | IMAGE_SCN_MEM_READ, p + 36);

  text.copy(file, TEXT_FILE_OFFSET);
  file.writeUInt32LE(peChecksum(file), CHECKSUM_OFFSET);
  return file;
}
