import type { GitHub } from '../github/index.ts';
import type { AssetCache } from '../store/index.ts';
import { contentTypeForAsset, matchesFilter } from './content-types.ts';
import { SourceError, type ByteRange, type Workload, type WorkloadSource } from './types.ts';

export interface GitHubSourceOptions {
  readonly github: GitHub;
  readonly tag: string;
  readonly filters: readonly string[];
  readonly cache: AssetCache;
  readonly log: (message: string) => void;
}

/**
 * A release's assets whose uploaded content type opts them in
 * (`application/vnd.dispatch+efi|iso|img`), in name order. HEAD needs only
 * the metadata; bytes come through the cache on the first GET.
 */
export function githubSource(options: GitHubSourceOptions): WorkloadSource {
  const { github, tag, cache } = options;
  return {
    description: `release ${tag} of ${github.describe()}`,
    async load() {
      let release;
      try {
        release = await github.release(tag);
      } catch (err) {
        const failure = (err as { failure?: string }).failure;
        const what = `release ${tag} of ${github.owner}/${github.repo}`;
        const reason =
          failure === 'not-found' ? `${what} not found (or the token cannot see the repository)`
          : failure === 'auth' ? `GitHub refused the token (401 Bad credentials): check --token, GITHUB_TOKEN, GH_TOKEN or gh auth`
          : failure === 'network' ? (err as Error).message.replace(/^[^:]+: /, `cannot load ${what}: `)
          : (err as Error).message;
        throw new SourceError(reason, { cause: err });
      }
      const kept: Workload[] = [];
      const keptAssets: Array<(typeof release.assets)[number]> = [];
      const skipped: string[] = [];
      for (const asset of [...release.assets].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
        const contentType = contentTypeForAsset(asset.contentType);
        if (!contentType || asset.state !== 'uploaded' || asset.size === 0) {
          skipped.push(`${asset.name} (${asset.state !== 'uploaded' ? asset.state : asset.size === 0 ? 'empty' : asset.contentType})`);
          continue;
        }
        if (!matchesFilter(asset.name, options.filters)) continue;
        keptAssets.push(asset);
        kept.push({
          name: asset.name,
          size: asset.size,
          contentType,
          fingerprint: `${asset.name} asset ${asset.id}, updated ${asset.updatedAt}`,
          read: (range?: ByteRange) => cache.read(asset, range?.start ?? 0, range?.end ?? asset.size - 1),
          file: () => cache.file(asset),
        });
      }
      // Assets a previous run cached are then served as plain files from the first GET on.
      await Promise.all(keptAssets.map((asset) => cache.check(asset)));
      if (skipped.length > 0) options.log(`ignoring ${skipped.length} asset(s) of ${tag} that are not dispatch workloads: ${skipped.join(', ')}`);
      if (kept.length === 0) {
        const what = options.filters.length > 0 ? ` matching ${options.filters.map((f) => JSON.stringify(f)).join(' or ')}` : '';
        throw new SourceError(
          `release ${tag} of ${github.owner}/${github.repo} has no dispatch assets${what} (upload them with content type application/vnd.dispatch+efi, +iso or +img)`,
        );
      }
      return kept;
    },
  };
}
