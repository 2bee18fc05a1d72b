import type { BootContentType } from './types.ts';

const byExtension: Readonly<Record<string, BootContentType>> = {
  '.efi': 'application/efi',
  '.iso': 'application/vnd.efi-iso',
  '.img': 'application/vnd.efi-img',
};

const byAssetType: Readonly<Record<string, BootContentType>> = {
  'application/vnd.dispatch+efi': 'application/efi',
  'application/vnd.dispatch+iso': 'application/vnd.efi-iso',
  'application/vnd.dispatch+img': 'application/vnd.efi-img',
};

/** Boot content type for a file name, by extension (any case); undefined when it is not a workload. */
export function contentTypeForFile(name: string): BootContentType | undefined {
  const dot = name.lastIndexOf('.');
  return dot > 0 ? byExtension[name.slice(dot).toLowerCase()] : undefined;
}

/** Boot content type for a release asset's uploaded content type; undefined when it is not a job. */
export function contentTypeForAsset(assetType: string): BootContentType | undefined {
  return byAssetType[assetType.trim().toLowerCase()];
}

/** Filter rule shared by every source: no filter keeps all, else any substring match keeps it. */
export function matchesFilter(name: string, filters: readonly string[]): boolean {
  return filters.length === 0 || filters.some((f) => name.includes(f));
}
