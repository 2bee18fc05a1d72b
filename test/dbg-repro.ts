import { spawn } from 'node:child_process';
import { mkdtemp, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeCase, seeded } from './support/fuzz-cases.ts';
import { raw } from './support/raw.ts';
const rand = seeded(0x7_2026);
const cases = Array.from({ length: 3000 }, () => makeCase(rand));
const c = cases[2673]!;
const dir = await mkdtemp(join(tmpdir(), 'dbg-'));
await mkdir(join(dir, 'w'));
await writeFile(join(dir, 'w', 'a.efi'), Buffer.alloc(4096));
const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', '--dir', join(dir, 'w'), '--reports', join(dir, 'r'), '--state-dir', join(dir, 's'), '--bind', '127.0.0.1:0', '--no-mdns'], { stdio: ['ignore', 'pipe', 'inherit'] });
let out = '';
const port = await new Promise<number>((resolve) => child.stdout!.on('data', (d) => { out += d; const m = /listening on http:\/\/127.0.0.1:(\d+)/.exec(out); if (m) resolve(Number(m[1])); }));
const counts = new Map<string, number>();
for (let round = 0; round < Number(process.argv[2] ?? 10); round++) {
  const results = await Promise.all(Array.from({ length: 8 }, (_, i) => raw({ port, localAddress: `127.0.9.${round * 8 + i + 1}`, chunks: [c.bytes], limitMs: 10_000 })));
  for (const r of results) { const k = `${r.status} ${r.end} unsent=${r.unsent > 0}`; counts.set(k, (counts.get(k) ?? 0) + 1); }
}
console.log([...counts]);
console.log(out.split('\n').filter((l) => /refused/.test(l)).slice(0, 3).join('\n'));
child.kill();
