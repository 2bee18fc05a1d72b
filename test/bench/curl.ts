import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';

export interface Download {
  readonly status: number;
  readonly bytes: number;
  readonly error: string | null;
  /** When this download ended, ms after the first client started. */
  readonly ms: number;
}

export interface Downloads {
  readonly results: readonly Download[];
  /** From starting the first client to the end of the last download, ms. */
  readonly ms: number;
  readonly bytes: number;
}

/**
 * Each client is a `curl -s -o /dev/null` process bound to its own source
 * address: a lean C client that throws the bytes away, so the clients are not
 * the bottleneck and each one is a different server to dispatch.
 */
export async function curlAll(urls: readonly string[], addresses: readonly string[], timeoutS: number): Promise<Downloads> {
  const started = performance.now();
  const results = await Promise.all(urls.map((url, i) => curl(url, addresses[i]!, timeoutS, started)));
  return { results, ms: performance.now() - started, bytes: results.reduce((sum, r) => sum + r.bytes, 0) };
}

function curl(url: string, address: string, timeoutS: number, started: number): Promise<Download> {
  return new Promise((resolve) => {
    const child = spawn('curl', ['-s', '-o', '/dev/null', '--max-time', String(timeoutS), '--interface', address, '-w', '%{http_code} %{size_download}', url], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    child.on('error', (e) => resolve({ status: 0, bytes: 0, error: e.message, ms: performance.now() - started }));
    child.on('close', (code) => {
      const [status, bytes] = out.trim().split(' ').map(Number);
      resolve({ status: status ?? 0, bytes: bytes ?? 0, error: code === 0 ? null : `curl exit ${code}${err ? `: ${err.trim()}` : ''}`, ms: performance.now() - started });
    });
  });
}
