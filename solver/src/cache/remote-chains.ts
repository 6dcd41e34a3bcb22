import { EMPTY_GZ_LAYER, goTime, type CacheConfig, type CacheConfigInput, type CacheConfigLayer, type CacheConfigRecord, type CacheLayerDescriptor } from './remote-config.js';

/** A result to export: its layer chain (bottom first) and when it was made (ms since the epoch). */
export interface ChainResult {
  readonly layers: ReadonlyArray<CacheLayerDescriptor>;
  readonly createdAt: number;
  /** `createdAt` as an imported cache wrote it (nanoseconds kept), written instead when given. */
  readonly createdAtText?: string | undefined;
}

/** One record added to {@link CacheChains}: a key digest (rootKey), its input links, a result. */
export class ChainRecord {
  readonly digest: string;
  readonly inputs: Array<Array<{ readonly src: ChainRecord; readonly selector: string }>>;
  result: ChainResult | undefined;
  /** Creation order (keeps normalisation deterministic). */
  readonly seq: number;

  constructor(digest: string, seq: number) {
    this.digest = digest;
    this.inputs = [];
    this.seq = seq;
  }

  /** BuildKit's LinkFrom(src, index, selector). */
  linkFrom(src: ChainRecord, index: number, selector: string): void {
    while (this.inputs.length <= index) this.inputs.push([]);
    const ins = this.inputs[index] as Array<{ src: ChainRecord; selector: string }>;
    if (!ins.some((l) => l.src === src && l.selector === selector)) ins.push({ src, selector });
  }

  /** Keeps the newest result (BuildKit v0.11 items hold one result). */
  addResult(r: ChainResult): void {
    if (this.result === undefined || r.createdAt > this.result.createdAt) this.result = r;
  }
}

/** What {@link CacheChains.marshal} returns: the config and the descriptor of every blob it names. */
export interface MarshaledCache {
  readonly config: CacheConfig;
  /** Layer descriptors by blob digest, in `config.layers` order. */
  readonly layers: ReadonlyArray<CacheLayerDescriptor>;
}

/**
 * BuildKit's v1 CacheChains (cache/remotecache/v1/chains.go), the exporter target: records are
 * added with their links and results, then normalised (records with the same digest reachable
 * through the same links merge, v1/utils.go normalizeItem) and marshaled into a sorted
 * {@link CacheConfig} (sortConfig), so the same cache always gives the same bytes.
 */
export class CacheChains {
  readonly #records: ChainRecord[] = [];

  /** Adds a record; keys with a `random:` digest never match anywhere and are not exported (undefined). */
  add(digest: string): ChainRecord | undefined {
    if (digest.startsWith('random:')) return undefined;
    const r = new ChainRecord(digest, this.#records.length);
    this.#records.push(r);
    return r;
  }

  get size(): number {
    return this.#records.length;
  }

  /** Normalises and marshals the chains. */
  marshal(): MarshaledCache {
    const norm = normalize(this.#records);
    const layers: CacheConfigLayer[] = [];
    const descs: CacheLayerDescriptor[] = [];
    const chainIndex = new Map<string, number>();
    const records: CacheConfigRecord[] = [];
    const recordIndex = new Map<ChainRecord, number>();

    // v1/utils.go marshalRemote: one layer entry per (blob, parent chain); the empty gzip layer is skipped.
    const marshalRemote = (chain: ReadonlyArray<CacheLayerDescriptor>): string => {
      let parentId = '';
      for (const d of chain) {
        if (d.digest === EMPTY_GZ_LAYER) continue;
        const id = `${d.digest}${parentId}`;
        if (!chainIndex.has(id)) {
          chainIndex.set(id, layers.length);
          layers.push({ blob: d.digest, parent: parentId === '' ? -1 : (chainIndex.get(parentId) as number) });
          descs.push(d);
        }
        parentId = id;
      }
      return parentId;
    };
    const marshalItem = (it: ChainRecord): number => {
      const done = recordIndex.get(it);
      if (done !== undefined) return done;
      const inputs: CacheConfigInput[][] = it.inputs.map((ins) => ins.map((l) => ({ selector: l.selector, link: marshalItem(l.src) })));
      const results = [];
      if (it.result !== undefined) {
        const id = marshalRemote(it.result.layers);
        if (id !== '') results.push({ layer: chainIndex.get(id) as number, createdAt: it.result.createdAtText ?? goTime(it.result.createdAt) });
      }
      const idx = records.length;
      records.push({ digest: it.digest, inputs, results });
      recordIndex.set(it, idx);
      return idx;
    };
    for (const it of norm) marshalItem(it);
    return sortConfig({ layers, records }, descs);
  }
}

/** v1/utils.go normalizeItem over every record: merges equivalent records, returns the canonical ones. */
function normalize(records: ReadonlyArray<ChainRecord>): ChainRecord[] {
  const added = new Map<ChainRecord, ChainRecord>();
  const byRoot = new Map<string, ChainRecord>();
  // canonical src → "digest\0input\0selector" → canonical targets
  const children = new Map<ChainRecord, Map<string, Set<ChainRecord>>>();
  const out: ChainRecord[] = [];
  let seq = 0;
  // chains.go validate(): a record one of whose inputs has no link (left) could never be matched;
  // it goes, and so do the links from it (which may leave another record's input empty).
  const invalid = new Set<ChainRecord>();
  for (let changed = true; changed; ) {
    changed = false;
    for (const r of records) {
      if (invalid.has(r) || r.inputs.length === 0) continue;
      if (r.inputs.some((ins) => ins.every((l) => invalid.has(l.src)))) {
        invalid.add(r);
        changed = true;
      }
    }
  }
  const visit = (it: ChainRecord): ChainRecord => {
    const done = added.get(it);
    if (done !== undefined) return done;
    if (it.inputs.length === 0 || it.inputs.every((ins) => ins.length === 0)) {
      let c = byRoot.get(it.digest);
      if (c === undefined) {
        c = new ChainRecord(it.digest, seq++);
        byRoot.set(it.digest, c);
        out.push(c);
      }
      if (it.result !== undefined) c.addResult(it.result);
      added.set(it, c);
      return c;
    }
    const srcs = it.inputs.map((ins) => ins.filter((l) => !invalid.has(l.src)).map((l) => ({ src: visit(l.src), selector: l.selector })));
    let matches: Set<ChainRecord> | undefined;
    srcs.forEach((ins, i) => {
      const found = new Set<ChainRecord>();
      for (const l of ins) for (const t of children.get(l.src)?.get(`${it.digest}\0${i}\0${l.selector}`) ?? []) found.add(t);
      matches = matches === undefined ? found : new Set([...matches].filter((m) => found.has(m)));
    });
    let c = [...(matches ?? [])].sort((a, b) => a.seq - b.seq)[0];
    if (c === undefined) {
      c = new ChainRecord(it.digest, seq++);
      out.push(c);
    }
    const target = c;
    srcs.forEach((ins, i) => {
      for (const l of ins) {
        target.linkFrom(l.src, i, l.selector);
        let m = children.get(l.src);
        if (m === undefined) children.set(l.src, (m = new Map()));
        const k = `${it.digest}\0${i}\0${l.selector}`;
        let s = m.get(k);
        if (s === undefined) m.set(k, (s = new Set()));
        s.add(target);
      }
    });
    if (it.result !== undefined) target.addResult(it.result);
    added.set(it, target);
    return target;
  };
  for (const r of records) if (!invalid.has(r)) visit(r);
  return out;
}

/**
 * v1/utils.go sortConfig: layers by blob (then parent), records by digest, input count, and per
 * input link its selector and the linked record's digest; indexes rewritten, each input's links
 * sorted by index.
 */
export function sortConfig(cc: CacheConfig, descs: ReadonlyArray<CacheLayerDescriptor> = []): MarshaledCache {
  // Chain strings make ties between equal blobs deterministic (BuildKit compares old parent indexes).
  const chainOf = (i: number): string => {
    let s = '';
    for (let j = i; j !== -1; j = cc.layers[j]?.parent ?? -1) s += `${cc.layers[j]?.blob ?? ''}/`;
    return s;
  };
  const layerOrder = cc.layers.map((l, i) => ({ i, l, chain: chainOf(i) }));
  layerOrder.sort((a, b) => (a.l.blob !== b.l.blob ? (a.l.blob < b.l.blob ? -1 : 1) : a.chain < b.chain ? -1 : a.chain > b.chain ? 1 : 0));
  const newLayer = new Map<number, number>();
  layerOrder.forEach((x, n) => newLayer.set(x.i, n));
  const layers = layerOrder.map((x) => ({ ...x.l, parent: x.l.parent === -1 ? -1 : (newLayer.get(x.l.parent) as number) }));
  const layerDescs = layerOrder.map((x) => descs[x.i]).filter((d): d is CacheLayerDescriptor => d !== undefined);

  const digestOf = (i: number): string => cc.records[i]?.digest ?? '';
  const recOrder = cc.records.map((r, i) => ({ i, r }));
  recOrder.sort((x, y) => {
    const a = x.r;
    const b = y.r;
    if (a.digest !== b.digest) return a.digest < b.digest ? -1 : 1;
    if (a.inputs.length !== b.inputs.length) return a.inputs.length - b.inputs.length;
    for (let i = 0; i < a.inputs.length; i++) {
      const ai = a.inputs[i] ?? [];
      const bi = b.inputs[i] ?? [];
      if (ai.length !== bi.length) return ai.length - bi.length;
      for (let j = 0; j < ai.length; j++) {
        const al = ai[j] as CacheConfigInput;
        const bl = bi[j] as CacheConfigInput;
        if (al.selector !== bl.selector) return al.selector < bl.selector ? -1 : 1;
        const ad = digestOf(al.link);
        const bd = digestOf(bl.link);
        if (ad !== bd) return ad < bd ? -1 : 1;
      }
    }
    return 0;
  });
  const newRec = new Map<number, number>();
  recOrder.forEach((x, n) => newRec.set(x.i, n));
  const records = recOrder.map(({ r }) => ({
    digest: r.digest,
    results: r.results.map((res) => ({ ...res, layer: newLayer.get(res.layer) as number })),
    inputs: r.inputs.map((ins) => ins.map((l) => ({ ...l, link: newRec.get(l.link) as number })).sort((a, b) => a.link - b.link)),
  }));
  return { config: { layers, records }, layers: layerDescs };
}
