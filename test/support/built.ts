import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Build dist/ (incremental: nothing is written when it is up to date) and give
 * the `dispatch` command as a user runs it: package.json's bin. Test files that
 * run the built CLI may run side by side (`node --test` runs files in parallel
 * on a machine with more cores), so the build holds a lock: two builds must not
 * write the same files while a test starts one of them.
 */
export async function builtCli(): Promise<string> {
  await promisify(execFile)('flock', [join(ROOT, 'node_modules', '.dispatch-build.lock'), 'npx', 'tsc', '-b', 'tsconfig.build.json'], { cwd: ROOT });
  return join(ROOT, 'dist', 'cli', 'dispatch.cjs');
}
