/**
 * The path of a request target exactly as the client spelled it: no
 * percent-decoding, no dot segments resolved, the query (and a stray
 * fragment) left off. Undefined when the target names no path (`*`,
 * `host:port`). An absolute-form target (`http://host/path`, what a proxy is
 * sent) is read for its path, as RFC 9112 asks of servers.
 */
export function spelledPath(target: string): string | undefined {
  let rest = target;
  const origin = /^https?:\/\/[^/?#]*/i.exec(rest);
  if (origin) rest = rest.slice(origin[0].length) || '/';
  if (!rest.startsWith('/')) return undefined;
  const end = rest.search(/[?#]/);
  return end === -1 ? rest : rest.slice(0, end);
}

/** A request target made safe for one log line: printable ASCII, bounded. */
export function loggableTarget(target: string): string {
  const printable = target.replace(/[^\x21-\x7e]/g, (ch) => `\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return printable.length > 120 ? `${printable.slice(0, 120)}…` : printable;
}
