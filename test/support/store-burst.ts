import { writeSync } from 'node:fs';
import { join } from 'node:path';
import { writeAtomic, writeUnique } from '../../src/store/index.ts';

// Stores `count` files under one stem (writeUnique) and `count` under names
// of their own (writeAtomic) in `dir`, all at once, and says `stored <path>`
// on stdout as each one resolves. Run under strace by test/durable.test.ts.
const [dir, count] = [process.argv[2]!, Number(process.argv[3])];
const said = (path: string) => writeSync(1, `stored ${path}\n`);
await Promise.all(
  Array.from({ length: count }, async (_, i) => {
    said(await writeUnique(dir, 'same-second-same-job', '.md', `report ${i}\n`));
  }).concat(
    Array.from({ length: count }, async (_, i) => {
      const path = join(dir, `entry-${i}.json`);
      await writeAtomic(path, `{"entry":${i}}`);
      said(path);
    }),
  ),
);
