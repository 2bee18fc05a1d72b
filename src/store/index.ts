export { AssetCache, CacheError, cacheKey, type CacheItem, type Fetch } from './cache.ts';
export { readGrowing, type Growth } from './growing.ts';
export { groupCommit, removeDurably, writeAtomic, writeUnique, type WriteOptions } from './durable.ts';
export { identityMismatch, journalEntries, lastRunElsewhere, loadRun, runFolder, StateError, StateWriter, type LoadedRun, type SavedRun, type SourceIdentity, type StateSource } from './state.ts';
