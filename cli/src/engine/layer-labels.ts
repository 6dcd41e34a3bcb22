import { ResultMetadataKey, type LayerLabelsRequest } from '@kiln/llb-core';
import type { ImageConfigDraft } from '@kiln/runtime';
import { EngineError } from './errors.js';

/**
 * Result metadata key (kiln's own; other frontends and stock BuildKit don't set or read it) whose
 * JSON value is a {@link LayerLabelsRequest} (llb-core documents the format): label values of the
 * image config the exporter fills with layer diffIDs.
 */
export const LAYER_LABELS_KEY = ResultMetadataKey.layerLabels;

/** A parsed {@link LayerLabelsRequest}, validated, with maps for lookup. */
export interface LayerLabels {
  /** label name -> JSON pointer -> layer index from the top. */
  readonly labels: ReadonlyMap<string, ReadonlyMap<string, number>>;
  readonly check?: LayerLabelsRequest['check'];
}

const isIndex = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
/** An RFC 6901 array index token. */
const ARRAY_INDEX = /^(0|[1-9]\d*)$/;

/** Parses a {@link LAYER_LABELS_KEY} value; a malformed one is `KLN0704` (a frontend bug). */
export function parseLayerLabels(bytes: Uint8Array): LayerLabels {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder().decode(bytes));
  } catch (cause) {
    throw new EngineError('KLN0704', `the frontend returned a ${LAYER_LABELS_KEY} that is not JSON`, { cause });
  }
  const bad = (what: string): EngineError => new EngineError('KLN0704', `the frontend returned an invalid ${LAYER_LABELS_KEY}: ${what}`);
  if (!isObject(raw) || !isObject(raw['labels'])) throw bad('no "labels" object');
  const labels = new Map<string, Map<string, number>>();
  for (const [name, pointers] of Object.entries(raw['labels'])) {
    if (!isObject(pointers)) throw bad(`labels.${name} is not an object`);
    const m = new Map<string, number>();
    for (const [ptr, layer] of Object.entries(pointers)) {
      if (!ptr.startsWith('/')) throw bad(`${ptr} is not a JSON pointer`);
      if (!isIndex(layer)) throw bad(`labels.${name}["${ptr}"] is not a layer index`);
      m.set(ptr, layer);
    }
    labels.set(name, m);
  }
  const check = raw['check'];
  if (check === undefined) return { labels };
  if (!isObject(check) || !isIndex(check['layer']) || typeof check['diffID'] !== 'string') throw bad('check needs a layer index and a diffID');
  return { labels, check: { layer: check['layer'], diffID: check['diffID'] } };
}

/**
 * `config` with the diffIDs `spec` asks for written into its labels. `diffIDs` are the exported
 * image's layers, root first. Returns `config` unchanged when the check fails or a layer index is
 * past the image (the layers are not the ones the frontend counted); a pointer that names no
 * string, or a label that is absent or not JSON, is skipped.
 */
export function fillLayerLabels(config: ImageConfigDraft, spec: LayerLabels, diffIDs: readonly string[]): ImageConfigDraft {
  const fromTop = (i: number): string | undefined => diffIDs[diffIDs.length - 1 - i];
  if (spec.check !== undefined && fromTop(spec.check.layer) !== spec.check.diffID) return config;
  for (const pointers of spec.labels.values()) for (const layer of pointers.values()) if (fromTop(layer) === undefined) return config;
  const inner = config['config'];
  if (!isObject(inner) || !isObject(inner['Labels'])) return config;
  const labels: Record<string, unknown> = { ...inner['Labels'] };
  for (const [name, pointers] of spec.labels) {
    const value = labels[name];
    if (typeof value !== 'string') continue;
    let doc: unknown;
    try {
      doc = JSON.parse(value);
    } catch {
      continue;
    }
    for (const [ptr, layer] of pointers) setString(doc, ptr, fromTop(layer) ?? '');
    labels[name] = JSON.stringify(doc);
  }
  return { ...config, config: { ...inner, Labels: labels } };
}

/** Sets the string at RFC 6901 pointer `ptr` in `doc` (in place); anything else there is left alone. */
function setString(doc: unknown, ptr: string, value: string): void {
  const tokens = ptr.slice(1).split('/').map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
  const last = tokens.pop();
  if (last === undefined) return;
  let cur: unknown = doc;
  for (const t of tokens) {
    if (Array.isArray(cur)) cur = ARRAY_INDEX.test(t) ? (cur as unknown[])[Number(t)] : undefined;
    else if (isObject(cur)) cur = Object.hasOwn(cur, t) ? cur[t] : undefined;
    else return;
  }
  if (Array.isArray(cur)) {
    const arr = cur as unknown[];
    if (ARRAY_INDEX.test(last) && typeof arr[Number(last)] === 'string') arr[Number(last)] = value;
  } else if (isObject(cur) && Object.hasOwn(cur, last) && typeof cur[last] === 'string') {
    cur[last] = value;
  }
}
