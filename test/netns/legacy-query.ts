/**
 * Run inside a namespace: one legacy unicast query (RFC 6762 §6.7) from an ephemeral port to
 * 224.0.0.251:5353, out of the interface with address argv[2]. Prints every reply heard
 * within 0.7 s as one JSON array (TXT strings decoded).
 */
import dnsPacket from 'dns-packet';
import { createSocket } from 'node:dgram';

const [, , iface = '0.0.0.0', name = '_dispatch._tcp.local', type = 'PTR'] = process.argv;
const socket = createSocket('udp4');
const replies: unknown[] = [];
const text = (_key: string, value: unknown) => {
  const buffer = value as { type?: string; data?: number[] } | null;
  return buffer && typeof buffer === 'object' && buffer.type === 'Buffer' && Array.isArray(buffer.data) ? Buffer.from(buffer.data).toString() : value;
};
socket.on('message', (message, rinfo) => {
  replies.push({ from: `${rinfo.address}:${rinfo.port}`, reply: JSON.parse(JSON.stringify(dnsPacket.decode(message), text)) as unknown });
});
socket.bind(0, () => {
  socket.setMulticastInterface(iface);
  socket.send(dnsPacket.encode({ type: 'query', id: 4321, questions: [{ name, type: type as 'PTR' }] }), 5353, '224.0.0.251');
  setTimeout(() => {
    process.stdout.write(`${JSON.stringify(replies)}\n`);
    socket.close();
  }, 700);
});
