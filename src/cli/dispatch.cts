#!/usr/bin/env node
// The `dispatch` command and `npm start`: run under the young-generation limit
// `npm start` gives node, size libuv's thread pool for this machine, then run
// the CLI (main.ts).
//
// Node 24 lets V8's young generation grow to 128 MB under load (Node 20 and 22
// stop at 32 MB); `--max-semi-space-size=16` holds it where they do. V8
// reads that flag only when it makes the heap, so a command run without it (the
// package's bin, `node dist/cli/dispatch.cjs`) runs itself again with it, in
// the same process (process.execve, Node 22.15 and later), before anything else
// has started.
//
// Downloads read their chunks, and when several run at once write them to the
// sockets, on libuv's threads; so do the state journal's and the reports'
// writes and fsyncs. libuv starts its pool once, at its first use, with
// UV_THREADPOOL_SIZE threads (4 when unset), whatever the machine has. That
// first use comes before any line of an ES module runs (the loader reads the
// module with it), so the size is set here, in a CommonJS file, which Node
// loads without the pool.
import os = require('node:os');

/** The flag `npm start` gives node (package.json), and the one this command runs itself again with. */
const YOUNG_GENERATION_FLAG = '--max-semi-space-size=16';

/** A young-generation flag, as node or NODE_OPTIONS take it (V8 takes `_` for `-`). */
const SEMI_SPACE_FLAG = /^--max[-_]semi[-_]space[-_]size(=|$)/;

/** A debugger's flag: the debugger attaches to this program, which a rerun would replace. */
const DEBUGGER_FLAG = /^--(inspect|debug)/;

/**
 * The arguments to run this command again with, in the same process, or
 * undefined when it runs as it is: a young-generation size given to node (on
 * its command line or in NODE_OPTIONS) stands, and a debugger keeps the
 * program it attached to.
 */
function rerunArgs(execPath: string, execArgv: readonly string[], script: string, args: readonly string[], nodeOptions: string | undefined): string[] | undefined {
  // NODE_OPTIONS takes words in double quotes too.
  const given = [...execArgv, ...(nodeOptions ?? '').split(/\s+/).map((word) => word.replace(/^"/, ''))];
  if (given.some((flag) => SEMI_SPACE_FLAG.test(flag) || DEBUGGER_FLAG.test(flag))) return undefined;
  return [execPath, YOUNG_GENERATION_FLAG, ...execArgv, script, ...args];
}

/** Threads for the pool: as many as there are cores, never fewer than libuv's own 4; a size the user set stands. */
function threadPoolSize(env: NodeJS.ProcessEnv, cores: number): string {
  const set = env['UV_THREADPOOL_SIZE'];
  if (set !== undefined && set !== '') return set;
  return String(Math.max(4, Math.min(cores, 1024)));
}

/** Node 22.15 and later (not in @types/node 20): replaces this process's program, keeping its pid and standard streams. */
type Execve = (file: string, args: string[], env: NodeJS.ProcessEnv) => never;

if (require.main === module) {
  const execve = (process as { execve?: Execve }).execve;
  const again = rerunArgs(process.execPath, process.execArgv, __filename, process.argv.slice(2), process.env['NODE_OPTIONS']);
  if (execve !== undefined && again !== undefined) {
    try {
      execve(process.execPath, again, process.env);
    } catch {
      // execve(2) failed and nothing changed: run here, with Node's own young generation.
    }
  }
  process.env['UV_THREADPOOL_SIZE'] = threadPoolSize(process.env, os.availableParallelism());
  import('./main.ts').catch((err: unknown) => {
    process.stderr.write(`dispatch: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}

export = { rerunArgs, threadPoolSize, YOUNG_GENERATION_FLAG };
