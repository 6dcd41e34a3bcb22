import { throwIfCancelled, untilAborted } from '../errors.js';
import type { RuntimeWorkerDeps } from './deps.js';
import { hasSnapshot } from './snapshots.js';

/** The snapshot id of the layer whose chain id is `chainId`: `layer-<hex>` (image pulls and cache imports share it). */
export function layerSnapshotId(chainId: string): string {
  return `layer-${chainId.replace('sha256:', '')}`;
}

/** What {@link ensureLayer} needs: the snapshotter (whose unpacks in flight it joins) and runtime's unpackLayer. */
export type LayerChainDeps = Pick<RuntimeWorkerDeps, 'snapshotter' | 'unpackLayer'>;

/** One layer of a chain for {@link ensureLayer}. */
export interface EnsureLayerOptions {
  /** The committed snapshot to make exist: {@link layerSnapshotId} of the layer's chain id. */
  readonly id: string;
  /** The committed snapshot of the layers below it (undefined for the bottom layer). */
  readonly below: string | undefined;
  /**
   * Where the layer's bytes come from, e.g. `content <blob digest>`. Callers of the same id with
   * the same source (and expectedDiffID) share an unpack's outcome: its failure is theirs too,
   * and its diffID check counts for them. One with another source does not: when the unpack it
   * joined fails, it makes the layer from its own bytes (so a cache serving a corrupt blob does
   * not fail a FROM of the same layer), and it never reports the other's check as its own.
   */
  readonly source: string;
  /** The layer's (compressed) blob, opened only when this call unpacks it; a cache import fetches the blob here. */
  readonly open: () => Promise<AsyncIterable<Uint8Array>>;
  /** Refuse the layer (runtime's `LAYER_INVALID`) when its uncompressed digest differs. */
  readonly expectedDiffID?: string;
  /** Labels of the committed snapshot, when this call is the one that makes it. */
  readonly labels?: Readonly<Record<string, string>>;
  /** This caller's cancellation: cancels its own unpack, or stops its wait on another caller's. */
  readonly signal?: AbortSignal;
  /** Called when the layer turns out to need work: this call starts its unpack, or waits on one in flight. */
  readonly onStart?: () => void;
  /** Called when that work is done: the unpack this call ran or waited on committed the layer. */
  readonly onDone?: () => void;
}

/** What {@link ensureLayer} did. */
export interface EnsuredLayer {
  /**
   * True when the layer was unpacked from this call's source and checked against its
   * `expectedDiffID` just now: by this call, or by the unpack it joined when that one had the same
   * source and expectedDiffID. False when the layer was there already (nothing was checked), when
   * another process committed it first, or when the unpack it joined read another source.
   */
  readonly unpacked: boolean;
}

/** The outcome of one unpack: whether it ran (the layer was missing) and checked a diffID. */
interface UnpackOutcome {
  readonly ran: boolean;
  readonly verified: boolean;
}

/** One layer unpack in flight: what its owner unpacks, and the owner's signal. */
interface LayerUnpack {
  readonly p: Promise<UnpackOutcome>;
  readonly signal: AbortSignal | undefined;
  readonly source: string;
  readonly expectedDiffID: string | undefined;
}

/**
 * Layer unpacks in flight per snapshotter (every worker and cache import of a process share one
 * snapshotter): a FROM whose layer a prefetch, another build or a cache import is unpacking waits
 * for that unpack instead of starting its own, which would only fail to commit the same id.
 */
const unpacking = new WeakMap<object, Map<string, LayerUnpack>>();

function unpacksOf(s: object): Map<string, LayerUnpack> {
  let m = unpacking.get(s);
  if (m === undefined) {
    m = new Map();
    unpacking.set(s, m);
  }
  return m;
}

/**
 * Makes committed layer snapshot `opts.id` exist over `opts.below`: joins an unpack of it already
 * running in this process (a prefetch, a FROM of another build, a cache import) or starts one.
 *
 * - The caller leases `id` before calling (the lookup happens here): a prune that has not yet
 *   given the id up then keeps it; one that did has renamed it away, so the lookup misses and the
 *   layer is unpacked again.
 * - A caller waiting on another's unpack stops waiting when its own signal aborts (the unpack
 *   goes on for its owner and the other waiters).
 * - When the unpack it joined fails because its owner was cancelled, or it read another source,
 *   the first waiter to notice starts it again and the others join that one (one redo, not one
 *   per waiter); any other failure is every waiter's.
 * - When this call's unpack fails because another process committed the same id first, the
 *   layer is there, which is all it needs.
 */
export async function ensureLayer(deps: LayerChainDeps, opts: EnsureLayerOptions): Promise<EnsuredLayer> {
  const { id, signal } = opts;
  const s = deps.snapshotter;
  const inflight = unpacksOf(s);
  let joined = inflight.get(id);
  for (;;) {
    if (joined === undefined) {
      const p = (async (): Promise<UnpackOutcome> => {
        if (await hasSnapshot(s, id)) return { ran: false, verified: false };
        opts.onStart?.();
        const stream = await opts.open();
        await deps.unpackLayer(s, id, opts.below, stream, {
          ...(signal === undefined ? {} : { signal }),
          ...(opts.expectedDiffID === undefined ? {} : { expectedDiffID: opts.expectedDiffID }),
          ...(opts.labels === undefined ? {} : { labels: opts.labels }),
        });
        return { ran: true, verified: opts.expectedDiffID !== undefined };
      })();
      // Registered before any await: a caller that comes next joins this one.
      const mine: LayerUnpack = { p, signal, source: opts.source, expectedDiffID: opts.expectedDiffID };
      p.catch(() => undefined);
      inflight.set(id, mine);
      try {
        const outcome = await p;
        if (outcome.ran) opts.onDone?.();
        return { unpacked: outcome.verified };
      } catch (err) {
        // Another process committed the same layer first: it is there, which is all we need.
        if (!(await hasSnapshot(s, id))) throw err;
        return { unpacked: false };
      } finally {
        if (inflight.get(id) === mine) inflight.delete(id);
      }
    }
    opts.onStart?.();
    try {
      const outcome = await untilAborted(joined.p, signal);
      opts.onDone?.();
      return { unpacked: outcome.verified && sameWork(joined, opts) };
    } catch (err) {
      throwIfCancelled(signal);
      const next = inflight.get(id);
      if (next !== undefined && next !== joined) {
        joined = next; // another waiter redoes it already
        continue;
      }
      // Its owner was cancelled, not us; or it failed on bytes that are not ours (a corrupt cache
      // blob, a cache registry gone): redo it from our own (registered synchronously).
      if (joined.signal?.aborted === true || !sameWork(joined, opts)) {
        joined = undefined;
        continue;
      }
      if (await hasSnapshot(s, id)) return { unpacked: false };
      throw err;
    }
  }
}

/** Whether an unpack in flight reads the same bytes with the same check as `opts` would. */
function sameWork(u: LayerUnpack, opts: EnsureLayerOptions): boolean {
  return u.source === opts.source && u.expectedDiffID === opts.expectedDiffID;
}
