/**
 * Which builds of React and its reconciler ran in a thread, from that
 * thread's CommonJS cache: 'production', 'development', or null. Both
 * builds are in the cache (Node reads each file a CommonJS module may
 * re-export to find its names); only the one that ran is `loaded`.
 * Plain JavaScript in a string: test/support/tui-load.ts also runs it in
 * the TUI's drawing thread (tsx's compiled functions call its helpers).
 */
export const REACT_BUILDS_SOURCE = String.raw`(cache) => {
  const ran = Object.keys(cache).filter((path) => cache[path] && cache[path].loaded === true);
  const build = (name) => {
    const builds = ran.flatMap((path) => { const match = new RegExp('/' + name + '\\.(production|development)\\.js$').exec(path); return match ? [match[1]] : []; });
    return builds.length === 1 ? builds[0] : builds.join('+') || null;
  };
  return { react: build('react'), reconciler: build('react-reconciler') };
}`;

export const reactBuilds = (0, eval)(REACT_BUILDS_SOURCE) as (cache: Record<string, { loaded?: boolean } | undefined>) => { react: string | null; reconciler: string | null };
