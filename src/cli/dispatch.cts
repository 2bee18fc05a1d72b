#!/usr/bin/env node
// The `dispatch` command and `npm start`: size libuv's thread pool for this
// machine, then run the CLI (main.ts).
//
// Downloads read their chunks, and when several run at once write them to the
// sockets, on libuv's threads; so do the state journal's and the reports'
// writes and fsyncs. libuv starts its pool once, at its first use, with
// UV_THREADPOOL_SIZE threads (4 when unset), whatever the machine has. That
// first use comes before any line of an ES module runs (the loader reads the
// module with it), so the size is set here, in a CommonJS file, which Node
// loads without the pool.
import os = require('node:os');

/** Threads for the pool: as many as there are cores, never fewer than libuv's own 4; a size the user set stands. */
function threadPoolSize(env: NodeJS.ProcessEnv, cores: number): string {
  const set = env['UV_THREADPOOL_SIZE'];
  if (set !== undefined && set !== '') return set;
  return String(Math.max(4, Math.min(cores, 1024)));
}

if (require.main === module) {
  process.env['UV_THREADPOOL_SIZE'] = threadPoolSize(process.env, os.availableParallelism());
  import('./main.ts').catch((err: unknown) => {
    process.stderr.write(`dispatch: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}

export = { threadPoolSize };
