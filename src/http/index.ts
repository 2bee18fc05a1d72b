export { createApp } from './app.ts';
export type { AppDeps, Env } from './deps.ts';
export { bind, type BindOptions, type Bound } from './serve.ts';
export { normaliseAddress } from './peer.ts';
export { parseRange, resolveRange, type RangeSpec } from './range.ts';
