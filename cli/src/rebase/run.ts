/**
 * `kiln rebase` from names to a written result. The app image is a manifest (one platform) or an
 * index, whose image manifests are each rebased onto the run image manifest of their platform.
 * Every platform is read, checked and planned before anything is written, so a refusal (of any
 * platform) leaves the store and the registry as they were.
 */
import { formatPlatform, formatReference, isIndexMediaType, parseReference, storeFetcher, type ContentStore, type Descriptor, type ImageStore, type Platform, type RegistryClient } from '@kiln/runtime';
import { RebaseError } from './errors.js';
import { appIndexChildren, childPlatform, rebasedIndex, type RebasedIndex } from './index-plan.js';
import {
  asRunImage,
  imageAt,
  readIndex,
  readRegistryImage,
  readRegistryRoot,
  readStoreImage,
  readStoreRoot,
  rebasedBlobs,
  runImageFor,
  pushRebased,
  storeRebased,
  targetNames,
  type ImageRoot,
  type PushCounts,
  type RebasedBlobs,
  type SourcedImage,
} from './images.js';
import { appRunImage, defaultRunImageName, isImageId, planRebase, topLayerAmbiguous, type NewRunImage, type RebasePlan } from './plan.js';

/** The stores a rebase reads and writes. */
export interface RebaseStores {
  readonly content: ContentStore;
  readonly images: ImageStore;
  readonly registry: RegistryClient;
}

/** What `kiln rebase` was asked. */
export interface RebaseRequest {
  readonly image: string;
  readonly runImage?: string | undefined;
  readonly previousImage?: string | undefined;
  readonly tags: ReadonlyArray<string>;
  readonly force: boolean;
  readonly publish: boolean;
  readonly pull: boolean;
}

/** One platform's rebase. */
export interface PlatformRebase {
  /** `os/arch[/variant]`. */
  readonly platform: string;
  readonly app: SourcedImage;
  /** The new run image manifest this platform is on now (`reference`: by digest). */
  readonly run: SourcedImage & NewRunImage;
  readonly plan: RebasePlan;
  readonly blobs: RebasedBlobs;
}

/** What a rebase wrote. */
export interface RebaseResult {
  /** The names written (normalised). */
  readonly names: ReadonlyArray<string>;
  readonly appName: string;
  /** What the names point at now: the rebased manifest, or the new index. */
  readonly root: Descriptor;
  /** Set when the app image was an index. */
  readonly index: RebasedIndex | undefined;
  readonly platforms: ReadonlyArray<PlatformRebase>;
  readonly warnings: ReadonlyArray<string>;
  /** Publishing: what happened to the layers. */
  readonly pushed: PushCounts | undefined;
}

/** Reads, checks, plans and then writes a rebase. */
export async function rebaseImage(stores: RebaseStores, req: RebaseRequest): Promise<RebaseResult> {
  // checked first: a bad name to write refuses before anything is read or pulled
  const names = targetNames(req.image, req.tags);
  const source = req.previousImage ?? req.image;
  const appRoot = req.publish ? await readRegistryRoot(stores.registry, source) : await readStoreRoot(stores.content, stores.images, source);
  if (appRoot === undefined) {
    throw new RebaseError('KLN0925', `no image ${source} in the kiln store`, { hint: 'kiln images lists them; --publish rebases an image in a registry' });
  }
  const multi = isIndexMediaType(appRoot.root.mediaType);
  const index = multi ? await readIndex(appRoot) : undefined;
  const children = index === undefined ? { images: [appRoot.root], dropped: [] } : appIndexChildren(appRoot.name, index.index);
  const apps = await Promise.all(
    children.images.map(async (desc) => {
      try {
        const app = await imageAt(appRoot, desc);
        return { desc, app, platform: childPlatform(desc, app.config) };
      } catch (e) {
        // an index child the store or registry does not have (an index pulled for one platform)
        if (multi && e instanceof RebaseError && desc.platform !== undefined) throw new RebaseError(e.code, `${formatPlatform(desc.platform)}: ${e.message}`, { hint: e.hint ?? 'every platform of the index is rebased: pull or build the image with all its platforms', cause: e });
        throw e;
      }
    }),
  );

  // publishing: a mirror in the target registry first (mountable layers)
  const registry = req.publish ? parseReference(names[0] ?? req.image).domain : undefined;
  const { read: runImage, pulled } = runImageReader(stores, req, apps.length === 1 ? apps[0]?.platform : undefined);
  const warnings: string[] = [];
  const platforms: PlatformRebase[] = [];
  for (const { app, platform } of apps) {
    const label = formatPlatform(platform);
    try {
      const p = await planPlatform(stores, req, app, platform, registry, runImage);
      platforms.push(p);
      warnings.push(...p.plan.warnings.map((w) => (multi ? `${label}: ${w}` : w)));
    } catch (e) {
      // an index: the refusal names the platform; nothing has been written
      if (multi && e instanceof RebaseError) throw new RebaseError(e.code, `${label}: ${e.message}`, { hint: e.hint, cause: e });
      throw e;
    }
  }
  if (children.dropped.length > 0) {
    warnings.push(`${children.dropped.length} attestation or other non-image manifest(s) of ${appRoot.name} are left out of the new index: they describe the images the rebase replaces`);
  }

  const rebased = platforms.map((p) => p.blobs);
  const newIndex =
    index === undefined
      ? undefined
      : rebasedIndex(
          index.raw,
          appRoot.root.mediaType,
          apps.map((a, i) => ({ old: a.desc, manifest: rebased[i]?.manifest ?? a.desc, config: platforms[i]?.plan.config ?? a.app.config })),
          children.dropped,
        );
  const root = newIndex?.desc ?? rebased[0]?.manifest;
  if (root === undefined) throw new RebaseError('KLN0920', `${appRoot.name}: nothing to rebase`);
  let pushed: PushCounts | undefined;
  if (req.publish) {
    const images = platforms.map((p) => ({
      blobs: p.blobs,
      layers: [...p.run.manifest.layers.map((desc) => ({ desc, from: p.run.repository })), ...p.plan.appLayers.map((desc) => ({ desc, from: p.app.repository }))],
    }));
    pushed = await pushRebased(stores.registry, stores.content, images, newIndex, names);
  } else {
    await storeRebased(stores.content, stores.images, rebased, newIndex, names);
    // the run images pulled to plan it are named now, as a pull names them (not on a refusal)
    for (const [name, desc] of pulled) await stores.images.put(name, desc);
  }
  return { names, appName: appRoot.name, root, index: newIndex, platforms, warnings, pushed };
}

type RunImageReader = (name: string, platform: Platform) => Promise<SourcedImage>;

async function planPlatform(stores: RebaseStores, req: RebaseRequest, app: SourcedImage, platform: Platform, registry: string | undefined, runImage: RunImageReader): Promise<PlatformRebase> {
  const recorded = appRunImage(app);
  const runName = req.runImage ?? defaultRunImageName(recorded, registry);
  if (runName === undefined) throw new RebaseError('KLN0920', `${app.name} records no run image name`, { hint: 'pass --run-image REF' });
  const run = asRunImage(await runImage(runName, platform));
  const oldRun = topLayerAmbiguous(app) ? await readOldRunImage(stores, recorded.reference, platform, req.publish) : undefined;
  const plan = planRebase({ app, runImage: run, force: req.force, ...(oldRun === undefined ? {} : { oldRunImage: { diffIds: oldRun.config.rootfs.diff_ids } }) });
  return { platform: formatPlatform(platform), app, run, plan, blobs: rebasedBlobs(plan.manifest, plan.config) };
}

/**
 * Reads the new run image manifest for a platform. Publishing: in its registry (manifest and
 * config; its layers are mounted). Otherwise from the kiln store, pulled into its content store
 * first when it is not there, lacks the platform's blobs, or `pull` (once per name: every
 * platform, or only `only`'s for a single-platform app). A pulled run image is not named in the
 * image store here: `pulled` holds its name and root, for the caller to name once the rebase is
 * written (a refusal leaves the image store as it was).
 */
function runImageReader(stores: RebaseStores, req: RebaseRequest, only: Platform | undefined): { read: RunImageReader; pulled: ReadonlyMap<string, Descriptor> } {
  const roots = new Map<string, Promise<ImageRoot>>();
  const pulls = new Map<string, Promise<ImageRoot>>();
  const pulledRoots = new Map<string, Descriptor>();
  const pullRoot = (name: string): Promise<ImageRoot> => {
    let p = pulls.get(name);
    if (p === undefined) {
      p = (async () => {
        try {
          const { ref, descriptor } = await stores.registry.pull(name, stores.content, only === undefined ? {} : { platform: only });
          const root: ImageRoot = { name: formatReference(ref), root: descriptor, fetcher: storeFetcher(stores.content) };
          pulledRoots.set(root.name, descriptor);
          return root;
        } catch (cause) {
          const why = cause instanceof Error ? `: ${cause.message.split('\n')[0] ?? ''}` : '';
          throw new RebaseError('KLN0925', `the run image ${name} is not in the kiln store and cannot be pulled${why}`, { cause });
        }
      })();
      pulls.set(name, p);
    }
    return p;
  };
  const read: RunImageReader = async (name, platform) => {
    if (req.publish) {
      let root = roots.get(name);
      if (root === undefined) roots.set(name, (root = readRegistryRoot(stores.registry, name)));
      return runImageFor(await root, platform);
    }
    // once pulled (for another platform), the pulled root serves: the store's name is the old one
    if (!req.pull && !pulls.has(name)) {
      const stored = await readStoreRoot(stores.content, stores.images, name);
      if (stored !== undefined) {
        try {
          return await runImageFor(stored, platform);
        } catch (e) {
          // blobs missing (pulled for another platform before): pull it; anything else stands
          if (!(e instanceof RebaseError && e.code === 'KLN0925')) throw e;
        }
      }
    }
    return runImageFor(await pullRoot(name), platform);
  };
  return { read, pulled: pulledRoots };
}

/**
 * The old run image (runImage.reference, `repo@digest`), only read when its top layer occurs more
 * than once in the app image: from the kiln store by digest, else its registry (manifest and
 * config only). Undefined when neither has it.
 */
async function readOldRunImage(stores: RebaseStores, reference: string, platform: Platform, publish: boolean): Promise<SourcedImage | undefined> {
  // an image ID (lifecycle exporting to a daemon: the config digest) names nothing to read
  if (reference === '' || isImageId(reference)) return undefined;
  if (!publish) {
    const stored = await readStoreImage(stores.content, stores.images, reference, platform).catch(() => undefined);
    if (stored !== undefined) return stored;
  }
  return readRegistryImage(stores.registry, reference, platform).catch(() => undefined);
}
