/**
 * Analysis (lifecycle analyzer/restorer, metadata part): the previous image's
 * `io.buildpacks.lifecycle.metadata` label names its launch layers (with their metadata) and
 * each buildpack's store. Before a buildpack builds, kiln writes those layers' tomls
 * (metadata only, no `[types]`) and its store.toml into `/layers/<bp>/`; a buildpack that
 * claims such a layer again without recreating its directory gets the previous image's layer
 * in the export, byte for byte.
 */
import { image, mkdir, type FileAction, type FrontendClient, type State } from '@kiln/llb-core';
import { BuildpacksError } from './errors.js';
import { normalizeRef, resolveConfig } from './client-io.js';
import { isTable, toToml, type Table } from './toml.js';
import { Label, Paths, escapeId } from './wire.js';

/** What kiln reuses of a previous image. */
export interface PreviousImage {
  readonly ref: string;
  /** The previous image's filesystem (export copies reused layers from it). */
  readonly state: State;
  /** Launch layers by buildpack id, then layer name: their metadata. */
  readonly layers: ReadonlyMap<string, ReadonlyMap<string, Table>>;
  /** store.toml metadata by buildpack id. */
  readonly stores: ReadonlyMap<string, Table>;
}

/** Reads the previous image's lifecycle metadata label; an image without it gives nothing to reuse. */
export async function loadPreviousImage(client: FrontendClient, ref: string): Promise<PreviousImage> {
  const config = await resolveConfig(client, ref, 'previous');
  const text = config.config?.Labels?.[Label.lifecycleMetadata];
  const layers = new Map<string, Map<string, Table>>();
  const stores = new Map<string, Table>();
  if (text !== undefined) {
    let md: unknown;
    try {
      md = JSON.parse(text);
    } catch (cause) {
      throw new BuildpacksError('KLN0907', `previous image ${ref}: label ${Label.lifecycleMetadata} is not JSON`, { cause });
    }
    const bps = isTable(md) && Array.isArray(md['buildpacks']) ? md['buildpacks'] : [];
    for (const bp of bps) {
      if (!isTable(bp) || typeof bp['key'] !== 'string') continue;
      const byName = new Map<string, Table>();
      const ls = bp['layers'];
      if (isTable(ls)) for (const [name, l] of Object.entries(ls)) if (isTable(l) && l['launch'] === true) byName.set(name, isTable(l['data']) ? l['data'] : {});
      layers.set(bp['key'], byName);
      const store = bp['store'];
      if (isTable(store) && isTable(store['metadata'])) stores.set(bp['key'], store['metadata']);
    }
  }
  return { ref, state: image(normalizeRef(ref)), layers, stores };
}

/** The file actions that restore one buildpack's layer tomls and store.toml, or undefined when there is nothing. */
export function restoreActions(prev: PreviousImage | undefined, id: string, owner: { readonly uid: number; readonly gid: number }): FileAction | undefined {
  if (prev === undefined) return undefined;
  const layers = prev.layers.get(id);
  const store = prev.stores.get(id);
  if ((layers === undefined || layers.size === 0) && store === undefined) return undefined;
  const chown = { user: owner.uid, group: owner.gid };
  const dir = `${Paths.layers}/${escapeId(id)}`;
  let a = mkdir(dir, 0o755, { parents: true, chown });
  for (const [name, data] of layers ?? []) a = a.mkfile(`${dir}/${name}.toml`, 0o644, toToml({ metadata: data }), { chown });
  if (store !== undefined) a = a.mkfile(`${dir}/store.toml`, 0o644, toToml({ metadata: store }), { chown });
  return a;
}
