import { parsePlatform } from '@kiln/runtime';
import { ImagetoolsError } from './errors.js';
import { platformString } from './platform-format.js';

/** Where an annotation goes (BuildKit's `exptypes.AnnotationKey` types; "" when no type was given). */
export type AnnotationType = 'index' | 'manifest' | 'manifest-descriptor' | 'index-descriptor' | '';

/** One parsed `--annotation TYPE[PLATFORM]:KEY=VALUE`. */
export interface Annotation {
  readonly type: AnnotationType;
  /** Normalised `os/arch[/variant]` from `[…]`, if given. */
  readonly platform?: string | undefined;
  readonly key: string;
  readonly value: string;
}

const TYPES: ReadonlySet<string> = new Set(['index', 'manifest', 'manifest-descriptor', 'index-descriptor']);
/** One entry of the type list: a type and an optional platform in brackets (buildx's regexp). */
const TYPE_AND_PLATFORM = /^([a-z-]+)(?:\[([A-Za-z0-9_/-]+)\])?$/;

/**
 * Parses buildx's `--annotation` values as `buildflags.ParseAnnotations` does: cut at the first
 * `=` (KEY=VALUE, untyped), then at the first `:` into `TYPE[PLATFORM][,TYPE[PLATFORM]…]` and the
 * key, each type with its own optional platform; TYPE is index, manifest, manifest-descriptor or
 * index-descriptor. Empty values are skipped.
 */
export function parseAnnotations(values: ReadonlyArray<string>): Annotation[] {
  const out: Annotation[] = [];
  for (const raw of values) {
    if (raw === '') continue;
    const eq = raw.indexOf('=');
    if (eq < 0) throw badAnnotation(raw, 'expected KEY=VALUE');
    const left = raw.slice(0, eq);
    const value = raw.slice(eq + 1);
    const colon = left.indexOf(':');
    if (colon < 0) {
      if (left === '') throw badAnnotation(raw, 'empty key');
      out.push({ type: '', key: left, value });
      continue;
    }
    const key = left.slice(colon + 1);
    if (key === '') throw badAnnotation(raw, 'empty key');
    for (const entry of left.slice(0, colon).split(',')) {
      const m = TYPE_AND_PLATFORM.exec(entry);
      if (m === null) throw badAnnotation(raw, `invalid annotation type "${entry}": expected a type and an optional platform in square brackets`);
      const type = m[1] as string;
      if (!TYPES.has(type)) throw badAnnotation(raw, `unknown annotation type "${type}"`);
      let platform: string | undefined;
      if (m[2] !== undefined) {
        try {
          platform = platformString(parsePlatform(m[2]));
        } catch (e) {
          throw badAnnotation(raw, `bad platform "${m[2]}"`, e);
        }
      }
      out.push({ type: type as AnnotationType, ...(platform !== undefined ? { platform } : {}), key, value });
    }
  }
  return out;
}

function badAnnotation(raw: string, why: string, cause?: unknown): ImagetoolsError {
  return new ImagetoolsError('KLN0860', `invalid --annotation "${raw}": ${why}`, {
    hint: 'use index:KEY=VALUE or manifest-descriptor[PLATFORM]:KEY=VALUE',
    cause,
  });
}
