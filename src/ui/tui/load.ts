/**
 * Load the TUI (ink and React) in the environment they decide on when first
 * loaded, then put the environment back for everything else:
 * - ink draws only the last frame when CI or CONTINUOUS_INTEGRATION is set:
 *   nobody watches. The TUI runs only on a terminal (or when asked for),
 *   which is somebody watching, so both are unset while it loads.
 * - React and its reconciler load their development builds unless
 *   NODE_ENV is "production": checks on every render, and timing marks
 *   kept for a profiler. With them, dispatch used 7.0-7.8 s of CPU for a
 *   1,000-server fleet with the TUI on, against 6.4-6.6 s without. So
 *   NODE_ENV is "production" while it loads, unless the user set it.
 */
export async function loadTui(): Promise<typeof import('./app.tsx')> {
  const saved = { CI: process.env.CI, CONTINUOUS_INTEGRATION: process.env.CONTINUOUS_INTEGRATION, NODE_ENV: process.env.NODE_ENV };
  delete process.env.CI;
  delete process.env.CONTINUOUS_INTEGRATION;
  process.env.NODE_ENV ??= 'production';
  try {
    return await import('./app.tsx');
  } finally {
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  }
}
