export { AssetCache, CacheError, cacheKey, type CacheItem, type Fetch } from './cache.ts';
export { readGrowing, type Growth } from './growing.ts';
export { groupCommit, removeDurably, writeAtomic, writeUnique } from './durable.ts';
export { identityMismatch, lastRunElsewhere, loadRun, runFolder, StateError, StateWriter, type SavedRun, type SourceIdentity } from './state.ts';
