import type { ExportAnnotation, ExportAnnotationType } from '@kiln/runtime';
import { EngineError } from './errors.js';

/** `TYPE` or `TYPE[PLATFORM]` before the colon of an annotation flag (buildx's ParseAnnotations). */
const TYPE_AND_PLATFORM = /^([a-z-]+)(?:\[([A-Za-z0-9_/-]+)\])?$/;
const TYPES: ReadonlySet<string> = new Set<ExportAnnotationType>(['index', 'index-descriptor', 'manifest', 'manifest-descriptor']);

/**
 * buildx's `--annotation` values: `KEY=VALUE` (the manifests), or `TYPE[,TYPE…]:KEY=VALUE` where
 * a TYPE is `manifest`, `index`, `manifest-descriptor` or `index-descriptor`, optionally with a
 * platform in brackets (`manifest[linux/arm64]:KEY=VALUE`).
 */
export function parseAnnotationFlags(values: readonly string[]): ExportAnnotation[] {
  const out: ExportAnnotation[] = [];
  for (const flag of values) {
    if (flag === '') continue;
    const eq = flag.indexOf('=');
    const bad = (why: string): EngineError =>
      new EngineError('KLN0702', `invalid --annotation "${flag}": ${why}`, { hint: 'use KEY=VALUE or TYPE:KEY=VALUE (TYPE: manifest, index, manifest-descriptor, index-descriptor; e.g. index:org.opencontainers.image.title=app)' });
    if (eq < 0) throw bad('expected KEY=VALUE');
    const left = flag.slice(0, eq);
    const value = flag.slice(eq + 1);
    const colon = left.indexOf(':');
    const key = colon < 0 ? left : left.slice(colon + 1);
    if (key === '' || /\s/.test(key)) throw bad('the key is empty or has white space');
    if (colon < 0) {
      out.push({ type: 'manifest', key, value });
      continue;
    }
    for (const part of left.slice(0, colon).split(',')) {
      const m = TYPE_AND_PLATFORM.exec(part);
      const type = m?.[1];
      if (type === undefined || !TYPES.has(type)) throw bad(`unknown annotation type "${part}"`);
      const platform = m?.[2];
      out.push({ type: type as ExportAnnotationType, ...(platform === undefined ? {} : { platform }), key, value });
    }
  }
  return out;
}
