/** Run inside a namespace: print every mDNS response record heard on port 5353 as one JSON line. */
import makeMdns from 'multicast-dns';

// Bound to the group: unicast to port 5353 stays with whoever else listens here (avahi).
const mdns = makeMdns({ reuseAddr: true, bind: '224.0.0.251' });
mdns.on('warning', (err: Error) => process.stderr.write(`${err.message}\n`));
mdns.on('ready', () => process.stdout.write('listening\n'));
mdns.on('response', (packet, rinfo) => {
  const at = Date.now();
  for (const section of ['answers', 'additionals'] as const) {
    for (const r of packet[section] ?? []) {
      const data = r.type === 'TXT' ? ([] as Array<string | Buffer>).concat(r.data).map(String) : 'data' in r ? r.data : undefined;
      process.stdout.write(`${JSON.stringify({ at, from: `${rinfo.address}:${rinfo.port}`, section, name: r.name, type: r.type, ttl: 'ttl' in r ? r.ttl : undefined, data })}\n`);
    }
  }
});
process.on('SIGTERM', () => mdns.destroy(() => process.exit(0)));
