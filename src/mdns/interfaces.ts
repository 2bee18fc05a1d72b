/** The IPv4 interfaces mDNS works on, picked from `os.networkInterfaces()` output. Pure. */

/** What `os.networkInterfaces()` returns, narrowed to the fields used here. */
export type InterfaceTable = Readonly<Record<string, ReadonlyArray<{ readonly address: string; readonly netmask: string; readonly family: string | number; readonly internal: boolean }> | undefined>>;

export interface Ipv4Address {
  readonly address: string;
  readonly netmask: string;
}

/** One network interface and its IPv4 addresses: one mDNS socket each. */
export interface LinkInfo {
  readonly name: string;
  readonly addresses: readonly Ipv4Address[];
}

/**
 * Every non-loopback interface with an IPv4 address. When `bindHost` is a specific address,
 * only the interface carrying it: the others cannot reach the HTTP server.
 */
export function pickLinks(table: InterfaceTable, bindHost?: string): LinkInfo[] {
  const wildcard = bindHost === undefined || bindHost === '0.0.0.0' || bindHost === '::' || bindHost === '';
  const links: LinkInfo[] = [];
  for (const [name, entries] of Object.entries(table)) {
    const addresses: Ipv4Address[] = [];
    for (const entry of entries ?? []) {
      // Node 18.0–18.3 reported the family as a number.
      const v4 = entry.family === 'IPv4' || entry.family === 4;
      if (!v4 || entry.internal || isLoopback(entry.address)) continue;
      if (!wildcard && entry.address !== bindHost) continue;
      addresses.push({ address: entry.address, netmask: entry.netmask });
    }
    if (addresses.length > 0) links.push({ name, addresses });
  }
  return links;
}

/** Same links, same addresses: used to notice an interface that came, went or changed. */
export function linkKey(link: LinkInfo): string {
  return `${link.name}=${link.addresses.map((a) => `${a.address}/${a.netmask}`).sort().join(',')}`;
}

/** Whether `address` lies in the subnet of one of the link's addresses. */
export function onLink(link: LinkInfo, address: string): boolean {
  const peer = ipv4ToInt(address);
  if (peer === undefined) return false;
  return link.addresses.some((a) => {
    const own = ipv4ToInt(a.address);
    const mask = ipv4ToInt(a.netmask);
    return own !== undefined && mask !== undefined && ((own & mask) >>> 0) === ((peer & mask) >>> 0);
  });
}

export function isLoopback(address: string): boolean {
  return address.startsWith('127.');
}

export function isLinkLocal(address: string): boolean {
  return address.startsWith('169.254.');
}

/** An address a workload can be sent to: IPv4, not loopback, not link-local, not unspecified. */
export function usableAddress(address: string): boolean {
  const value = ipv4ToInt(address);
  return value !== undefined && value !== 0 && !isLoopback(address) && !isLinkLocal(address);
}

export function ipv4ToInt(address: string): number | undefined {
  const parts = address.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part)) return undefined;
    const octet = Number(part);
    if (octet > 255) return undefined;
    value = value * 256 + octet;
  }
  return value >>> 0;
}
