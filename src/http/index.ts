export { createApp } from './app.ts';
export type { AppDeps, Env } from './deps.ts';
export { bind, DEFAULT_LIMITS, type BindOptions, type Bound, type HttpLimits } from './serve.ts';
export { Rejection } from './rejection.ts';
export { normaliseAddress } from './peer.ts';
export { parseRange, resolveRange, type RangeSpec } from './range.ts';
