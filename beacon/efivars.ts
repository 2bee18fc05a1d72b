/**
 * The firmware's boot options, as Linux shows them in efivarfs: which HTTP boot URIs
 * this machine knows. Pure: bytes in, URIs out; firmware.ts reads the directory.
 *
 * Every efivarfs file starts with the variable's 4-byte attributes, then its data.
 * `Boot####` data is an EFI_LOAD_OPTION (UEFI 2.10 §3.1.3):
 *   u32 Attributes · u16 FilePathListLength · CHAR16 Description[] (NUL-terminated)
 *   · EFI_DEVICE_PATH_PROTOCOL FilePathList[FilePathListLength bytes] · u8 OptionalData[]
 * A device path is a list of nodes, each `u8 type · u8 subtype · u16 length` (the length
 * counts the 4-byte header) and its data, ended by 0x7F/0xFF; 0x7F/0x01 separates
 * instances. Firmware data is not to be trusted: every length is checked against what is
 * there, and a bad one ends the walk instead of the program.
 */

/** EFI_GLOBAL_VARIABLE, the vendor GUID of Boot####, BootOrder and BootCurrent (efivarfs writes it in lower case). */
export const GLOBAL_VARIABLE_GUID = '8be4df61-93ca-11d2-aa0d-00e098032b8c';

const EFIVARFS_ATTRIBUTES_BYTES = 4;

/** Device path node types and sub-types this module cares about (UEFI 2.10 §10.3). */
export const NODE = {
  messaging: 0x03,
  mac: 0x0b,
  ipv4: 0x0c,
  ipv6: 0x0d,
  vlan: 0x14,
  uri: 0x18,
  dns: 0x1f,
  end: 0x7f,
  endInstance: 0x01,
  endEntire: 0xff,
} as const;

/** Nodes EDK2 may put between the MAC node and the URI node of an HTTP boot option. */
const BETWEEN_MAC_AND_URI: ReadonlySet<number> = new Set([NODE.ipv4, NODE.ipv6, NODE.vlan, NODE.dns]);

export interface DevicePathNode {
  readonly type: number;
  readonly subType: number;
  readonly data: Uint8Array;
}

export interface LoadOption {
  readonly attributes: number;
  readonly description: string;
  /** Device path instances, each a list of nodes (the end nodes left out). */
  readonly paths: readonly (readonly DevicePathNode[])[];
}

/** The firmware variables that say where this machine boots from: efivarfs file contents, attributes included. */
export interface FirmwareVariables {
  readonly bootCurrent?: Uint8Array | undefined;
  readonly bootOrder?: Uint8Array | undefined;
  /** Boot#### by option number. */
  readonly options: ReadonlyMap<number, Uint8Array>;
}

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The variable's data, without efivarfs's attribute prefix; undefined when the file is shorter than that. */
export function variableData(file: Uint8Array): Uint8Array | undefined {
  return file.byteLength < EFIVARFS_ATTRIBUTES_BYTES ? undefined : file.subarray(EFIVARFS_ATTRIBUTES_BYTES);
}

/**
 * Walk a device path. Stops at the end-entire node, at the end of the bytes, or at the
 * first node whose length is impossible (under 4, which would never advance, or past the
 * end); the nodes read until then are kept.
 */
export function parseDevicePath(bytes: Uint8Array): DevicePathNode[][] {
  const paths: DevicePathNode[][] = [];
  let current: DevicePathNode[] = [];
  const data = view(bytes);
  let offset = 0;
  while (offset + 4 <= bytes.byteLength) {
    const type = data.getUint8(offset);
    const subType = data.getUint8(offset + 1);
    const length = data.getUint16(offset + 2, true);
    if (length < 4 || offset + length > bytes.byteLength) break;
    if (type === NODE.end) {
      paths.push(current);
      current = [];
      if (subType !== NODE.endInstance) return paths;
    } else {
      current.push({ type, subType, data: bytes.subarray(offset + 4, offset + length) });
    }
    offset += length;
  }
  // No end node: keep what was read all the same.
  if (current.length > 0) paths.push(current);
  return paths;
}

/** Parse EFI_LOAD_OPTION data (efivarfs attributes already removed); undefined when it is too broken to find the device path. */
export function parseLoadOption(bytes: Uint8Array): LoadOption | undefined {
  if (bytes.byteLength < 6) return undefined;
  const data = view(bytes);
  const attributes = data.getUint32(0, true);
  const pathLength = data.getUint16(4, true);
  let description = '';
  let offset = 6;
  for (;;) {
    // No NUL before the end (odd sizes included): the device path cannot be found.
    if (offset + 2 > bytes.byteLength) return undefined;
    const unit = data.getUint16(offset, true);
    offset += 2;
    if (unit === 0) break;
    description += String.fromCharCode(unit);
  }
  // A FilePathListLength past the end of the variable: read what is there.
  const pathEnd = Math.min(offset + pathLength, bytes.byteLength);
  return { attributes, description, paths: parseDevicePath(bytes.subarray(offset, pathEnd)) };
}

/** Printable ASCII only: a URI node is US-ASCII, and anything else means garbage. */
function uriText(data: Uint8Array): string | undefined {
  let end = data.byteLength;
  // The spec says no NUL, but a terminated string is harmless.
  while (end > 0 && data[end - 1] === 0) end--;
  if (end === 0) return undefined;
  let text = '';
  for (let i = 0; i < end; i++) {
    const byte = data[i]!;
    if (byte < 0x21 || byte > 0x7e) return undefined;
    text += String.fromCharCode(byte);
  }
  return text;
}

/** http(s) URL as the firmware has it, or undefined. */
export function httpUri(text: string): string | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  return url.href;
}

/**
 * HTTP boot URIs of one device path instance: a URI node after a MAC node with only
 * IP/VLAN/DNS nodes between (EDK2: MAC/IPv4/Uri, MAC/IPv6/Uri), or a path that is a URI
 * node alone (the short form `dispatch vm` and hand-made options use). An empty URI node
 * is what EDK2 writes for "take the URI from DHCP": it names no server.
 */
export function pathUris(nodes: readonly DevicePathNode[]): string[] {
  const uris: string[] = [];
  let afterMac = false;
  nodes.forEach((node, index) => {
    const messaging = node.type === NODE.messaging;
    if (messaging && node.subType === NODE.uri) {
      if (afterMac || index === 0) {
        const text = uriText(node.data);
        const uri = text === undefined ? undefined : httpUri(text);
        if (uri !== undefined) uris.push(uri);
      }
      afterMac = false;
    } else if (messaging && node.subType === NODE.mac) {
      afterMac = true;
    } else if (!(messaging && BETWEEN_MAC_AND_URI.has(node.subType))) {
      afterMac = false;
    }
  });
  return uris;
}

/** HTTP boot URIs of one Boot#### efivarfs file. */
export function loadOptionUris(file: Uint8Array): string[] {
  const data = variableData(file);
  const option = data === undefined ? undefined : parseLoadOption(data);
  return option === undefined ? [] : option.paths.flatMap(pathUris);
}

/** A u16 list variable (BootOrder), or a single u16 (BootCurrent); an odd trailing byte is ignored. */
export function u16List(file: Uint8Array | undefined): number[] {
  const data = file === undefined ? undefined : variableData(file);
  if (data === undefined) return [];
  const values: number[] = [];
  const dv = view(data);
  for (let offset = 0; offset + 2 <= data.byteLength; offset += 2) values.push(dv.getUint16(offset, true));
  return values;
}

/**
 * Every HTTP boot URI the firmware knows, most likely first: the option this boot came
 * from (BootCurrent), then BootOrder, then the other options by number; each URI once.
 */
export function bootUris(variables: FirmwareVariables): string[] {
  const order: number[] = [];
  const current = u16List(variables.bootCurrent)[0];
  if (current !== undefined) order.push(current);
  order.push(...u16List(variables.bootOrder));
  order.push(...[...variables.options.keys()].sort((a, b) => a - b));
  const seen = new Set<string>();
  const uris: string[] = [];
  for (const number of new Set(order)) {
    const file = variables.options.get(number);
    if (file === undefined) continue;
    for (const uri of loadOptionUris(file)) {
      if (seen.has(uri)) continue;
      seen.add(uri);
      uris.push(uri);
    }
  }
  return uris;
}

/** `Boot0001-8be4…` → 1; undefined for any other file (BootOrder, Boot000G, other vendors). */
export function bootOptionNumber(fileName: string): number | undefined {
  const match = /^Boot([0-9A-Fa-f]{4})-(.+)$/.exec(fileName);
  if (!match || match[2]!.toLowerCase() !== GLOBAL_VARIABLE_GUID) return undefined;
  return Number.parseInt(match[1]!, 16);
}

export const BOOT_ORDER_FILE = `BootOrder-${GLOBAL_VARIABLE_GUID}`;
export const BOOT_CURRENT_FILE = `BootCurrent-${GLOBAL_VARIABLE_GUID}`;
