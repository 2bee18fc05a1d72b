export type { BootContentType, ByteRange, Workload, WorkloadSource } from './types.ts';
export { SourceError } from './types.ts';
export { contentTypeForAsset, contentTypeForFile, matchesFilter } from './content-types.ts';
export { directorySource } from './directory.ts';
export { builtinEfi, memoryWorkload } from './builtin.ts';
export { githubSource, type GitHubSourceOptions } from './github.ts';
