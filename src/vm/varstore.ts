// OVMF's variable store, read and written offline: enough to add a Boot#### that
// HTTP-boots a URL, so a VM boots dispatch with nobody at the keyboard. Pure: bytes in,
// bytes out. Layout from EDK2 (MdeModulePkg/Include/Guid/VariableFormat.h,
// PiFirmwareVolume.h) and checked against stores OVMF filled itself (FACTS §A).

/** EFI_GLOBAL_VARIABLE: Boot####, BootOrder, BootNext live under it. */
export const EFI_GLOBAL_VARIABLE = '8be4df61-93ca-11d2-aa0d-00e098032b8c';
/** gEfiSystemNvDataFvGuid: the firmware volume that holds the variables. */
const NV_DATA_FV_GUID = 'fff12b8d-7696-4c8b-a985-2747075b4f50';
/** gEfiAuthenticatedVariableGuid: variable store with 60-byte headers (what OVMF uses). */
const AUTH_STORE_GUID = 'aaf32c78-947b-439a-a180-2e144ec37792';
/** gEfiVariableGuid: the older store with 32-byte headers; not written here. */
const PLAIN_STORE_GUID = 'ddcf3616-3275-4164-98b6-fe85707ffe7d';

/** NON_VOLATILE | BOOTSERVICE_ACCESS | RUNTIME_ACCESS. */
export const NV_BS_RT = 0x07;
/** LOAD_OPTION_ACTIVE. */
export const LOAD_OPTION_ACTIVE = 0x01;

const FV_SIGNATURE = '_FVH';
const STORE_FORMATTED = 0x5a;
const STORE_HEALTHY = 0xfe;
const START_ID = 0x55aa;
const HEADER_BYTES = 60;
const STORE_HEADER_BYTES = 28;

// Variable states are written by clearing bits (flash can only go 1 → 0), so a state is
// the AND of every step it went through.
export const VAR_ADDED = 0x3f;
const VAR_DELETED = 0xfd;
const VAR_IN_DELETED_TRANSITION = 0xfe;

/** The store is not one we understand, or has no room: nothing was written. */
export class VarstoreError extends Error {
  override name = 'VarstoreError';
}

export interface Variable {
  readonly name: string;
  /** Lower-case, dashed. */
  readonly guid: string;
  readonly attributes: number;
  readonly state: number;
  readonly data: Buffer;
  /** Where its header starts in the image. */
  readonly offset: number;
}

export interface NewVariable {
  readonly name: string;
  readonly guid: string;
  readonly attributes: number;
  readonly data: Uint8Array;
}

interface Layout {
  /** First variable header. */
  readonly start: number;
  /** End of the variable store (exclusive). */
  readonly end: number;
  /** Every header found, deleted ones included, in order. */
  readonly all: readonly Variable[];
  /** Where the next variable goes. */
  readonly free: number;
}

const align4 = (n: number) => (n + 3) & ~3;

/** GUID bytes (first three fields little-endian) as text. */
export function guidText(bytes: Uint8Array): string {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, 16);
  const hex = (from: number, to: number) => b.subarray(from, to).toString('hex');
  return [
    b.readUInt32LE(0).toString(16).padStart(8, '0'),
    b.readUInt16LE(4).toString(16).padStart(4, '0'),
    b.readUInt16LE(6).toString(16).padStart(4, '0'),
    hex(8, 10),
    hex(10, 16),
  ].join('-');
}

export function guidBytes(text: string): Buffer {
  const match = /^([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})$/i.exec(text);
  if (!match) throw new VarstoreError(`"${text}" is not a GUID`);
  const out = Buffer.alloc(16);
  out.writeUInt32LE(parseInt(match[1]!, 16), 0);
  out.writeUInt16LE(parseInt(match[2]!, 16), 4);
  out.writeUInt16LE(parseInt(match[3]!, 16), 6);
  Buffer.from(match[4]! + match[5]!, 'hex').copy(out, 8);
  return out;
}

function ucs2z(text: string): Buffer {
  for (const ch of text) {
    const code = ch.codePointAt(0)!;
    if (code === 0 || code > 0xffff) throw new VarstoreError(`"${text}" cannot be written as UCS-2`);
  }
  return Buffer.from(`${text}\0`, 'utf16le');
}

function locate(image: Buffer): { start: number; end: number } {
  const notUnderstood = (why: string) => new VarstoreError(`not an OVMF variable store we understand: ${why}`);
  if (image.length < 0x48 + STORE_HEADER_BYTES) throw notUnderstood(`only ${image.length} bytes`);
  if (image.toString('latin1', 0x28, 0x2c) !== FV_SIGNATURE) throw notUnderstood('no _FVH firmware volume signature at 0x28');
  const fvGuid = guidText(image.subarray(0x10, 0x20));
  if (fvGuid !== NV_DATA_FV_GUID) throw notUnderstood(`firmware volume ${fvGuid} is not the NV data volume`);
  const fvLength = Number(image.readBigUInt64LE(0x20));
  if (fvLength > image.length) throw notUnderstood(`firmware volume of ${fvLength} bytes in a ${image.length}-byte file`);
  const headerLength = image.readUInt16LE(0x30);
  if (headerLength < 0x48 || headerLength + STORE_HEADER_BYTES > fvLength) throw notUnderstood(`firmware volume header length ${headerLength}`);
  const storeGuid = guidText(image.subarray(headerLength, headerLength + 16));
  if (storeGuid === PLAIN_STORE_GUID) throw notUnderstood('non-authenticated variable store (32-byte headers); use an OVMF built with the authenticated format');
  if (storeGuid !== AUTH_STORE_GUID) throw notUnderstood(`variable store GUID ${storeGuid}`);
  const size = image.readUInt32LE(headerLength + 16);
  const format = image[headerLength + 20];
  const state = image[headerLength + 21];
  if (format !== STORE_FORMATTED || state !== STORE_HEALTHY) {
    throw notUnderstood(`variable store format 0x${format?.toString(16)} state 0x${state?.toString(16)} (want 0x5a, 0xfe)`);
  }
  if (size < STORE_HEADER_BYTES || headerLength + size > fvLength) throw notUnderstood(`variable store size ${size} does not fit its volume`);
  return { start: align4(headerLength + STORE_HEADER_BYTES), end: headerLength + size };
}

function layout(image: Buffer): Layout {
  const { start, end } = locate(image);
  const all: Variable[] = [];
  let at = start;
  while (at + HEADER_BYTES <= end && image.readUInt16LE(at) === START_ID) {
    const nameSize = image.readUInt32LE(at + 36);
    const dataSize = image.readUInt32LE(at + 40);
    const nameAt = at + HEADER_BYTES;
    const dataAt = nameAt + nameSize;
    if (nameSize % 2 !== 0 || dataAt + dataSize > end) {
      throw new VarstoreError(`not an OVMF variable store we understand: variable at 0x${at.toString(16)} runs past the store (name ${nameSize}, data ${dataSize} bytes)`);
    }
    const name = image.toString('utf16le', nameAt, nameAt + nameSize).replace(/\0+$/, '');
    all.push({
      name,
      guid: guidText(image.subarray(at + 44, at + 60)),
      attributes: image.readUInt32LE(at + 4),
      state: image[at + 2]!,
      data: Buffer.from(image.subarray(dataAt, dataAt + dataSize)),
      offset: at,
    });
    at = align4(dataAt + dataSize);
  }
  // What follows the last header must be erased flash: anything else is a layout we do not know.
  const tail = image.subarray(Math.min(at, end), end);
  const stray = tail.findIndex((b) => b !== 0xff);
  if (stray >= 0) {
    throw new VarstoreError(`not an OVMF variable store we understand: unexpected bytes at 0x${(at + stray).toString(16)} after the last variable`);
  }
  return { start, end, all, free: at };
}

const key = (v: { name: string; guid: string }) => `${v.guid.toLowerCase()}/${v.name}`;

/**
 * The variables a firmware would see: State VAR_ADDED, or in deleted-transition when no
 * added copy exists (EDK2 keeps those: the update that was replacing them never finished).
 * Deleted ones and headers whose data was never completed are skipped.
 */
export function listVariables(image: Buffer): Variable[] {
  const { all } = layout(image);
  const added = new Set(all.filter((v) => v.state === VAR_ADDED).map(key));
  return all.filter((v) => v.state === VAR_ADDED || (v.state === (VAR_ADDED & VAR_IN_DELETED_TRANSITION) && !added.has(key(v))));
}

/** One variable, or undefined. */
export function getVariable(image: Buffer, name: string, guid = EFI_GLOBAL_VARIABLE): Variable | undefined {
  return listVariables(image).find((v) => v.name === name && v.guid === guid.toLowerCase());
}

/** A copy of the image with these variables set: older copies marked deleted, new ones appended. */
export function setVariables(image: Buffer, variables: readonly NewVariable[]): Buffer {
  const out = Buffer.from(image);
  const { end, all, free: firstFree } = layout(out);
  let free = firstFree;
  const replaced = new Set(variables.map(key));
  const records = variables.map((v) => {
    const name = ucs2z(v.name);
    const header = Buffer.alloc(HEADER_BYTES);
    header.writeUInt16LE(START_ID, 0);
    header[2] = VAR_ADDED;
    header[3] = 0;
    header.writeUInt32LE(v.attributes >>> 0, 4);
    // MonotonicCount, TimeStamp and PubKeyIndex stay zero: these are not authenticated writes.
    header.writeUInt32LE(name.length, 36);
    header.writeUInt32LE(v.data.byteLength, 40);
    guidBytes(v.guid).copy(header, 44);
    return Buffer.concat([header, name, v.data]);
  });
  const needed = records.reduce((sum, r) => sum + align4(r.length), 0);
  if (free + needed > end) {
    throw new VarstoreError(`the variable store is full: ${needed} bytes needed, ${Math.max(0, end - free)} free`);
  }
  for (const old of all) {
    if (replaced.has(key(old)) && (old.state === VAR_ADDED || old.state === (VAR_ADDED & VAR_IN_DELETED_TRANSITION))) {
      out[old.offset + 2] = old.state & VAR_DELETED;
    }
  }
  for (const record of records) {
    record.copy(out, free);
    free = align4(free + record.length);
  }
  return out;
}

/** A device path that is one URI node (short form: the firmware picks the NIC), then the end node. */
export function uriDevicePath(uri: string): Buffer {
  if (!/^[\x21-\x7e]+$/.test(uri)) throw new VarstoreError(`"${uri}" is not a printable ASCII URI`);
  const length = 4 + uri.length;
  if (length > 0xffff) throw new VarstoreError('the URI is too long for a device path node');
  const node = Buffer.alloc(length);
  node[0] = 0x03; // MESSAGING_DEVICE_PATH
  node[1] = 0x18; // MSG_URI_DP
  node.writeUInt16LE(length, 2);
  node.write(uri, 4, 'latin1');
  return Buffer.concat([node, Buffer.from([0x7f, 0xff, 0x04, 0x00])]);
}

/** EFI_LOAD_OPTION: attributes, device path length, UCS-2 description with NUL, device path. */
export function loadOption(description: string, devicePath: Uint8Array, attributes = LOAD_OPTION_ACTIVE): Buffer {
  if (devicePath.byteLength > 0xffff) throw new VarstoreError('device path too long');
  const head = Buffer.alloc(6);
  head.writeUInt32LE(attributes >>> 0, 0);
  head.writeUInt16LE(devicePath.byteLength, 4);
  return Buffer.concat([head, ucs2z(description), devicePath]);
}

export interface HttpBootOptions {
  /** The #### of Boot####; default 0x0100, above what OVMF numbers its own options. */
  readonly number?: number;
  readonly description?: string;
  /** Set BootNext (one boot) instead of BootOrder. */
  readonly once?: boolean;
}

export const bootVariableName = (number: number) => `Boot${number.toString(16).toUpperCase().padStart(4, '0')}`;

/** The variables that make OVMF HTTP-boot `uri` first: Boot#### and BootOrder (or BootNext). */
export function httpBootVariables(uri: string, options: HttpBootOptions = {}): NewVariable[] {
  const number = options.number ?? 0x0100;
  if (!Number.isInteger(number) || number < 0 || number > 0xffff) throw new VarstoreError(`boot option number ${number} is out of range`);
  const order = Buffer.alloc(2);
  order.writeUInt16LE(number, 0);
  return [
    { name: bootVariableName(number), guid: EFI_GLOBAL_VARIABLE, attributes: NV_BS_RT, data: loadOption(options.description ?? `dispatch ${uri}`, uriDevicePath(uri)) },
    // OVMF keeps an existing BootOrder's first entry first and appends its own options after it.
    { name: options.once ? 'BootNext' : 'BootOrder', guid: EFI_GLOBAL_VARIABLE, attributes: NV_BS_RT, data: order },
  ];
}

/** A copy of the varstore image that HTTP-boots `uri`. */
export function withHttpBoot(image: Buffer, uri: string, options: HttpBootOptions = {}): Buffer {
  return setVariables(image, httpBootVariables(uri, options));
}
