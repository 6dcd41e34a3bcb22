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
const HEAD = /^([a-z,-]+)(?:\[([^\]]+)\])?:(.*)$/s;

/**
 * Parses buildx's `--annotation` values: `KEY=VALUE`, or `TYPE[,TYPE…][PLATFORM]:KEY=VALUE` with
 * TYPE one of index, manifest, manifest-descriptor, index-descriptor (one entry per type).
 */
export function parseAnnotations(values: ReadonlyArray<string>): Annotation[] {
  const out: Annotation[] = [];
  for (const raw of values) {
    const eq = raw.indexOf('=');
    if (eq <= 0) throw badAnnotation(raw, 'expected KEY=VALUE');
    const left = raw.slice(0, eq);
    const value = raw.slice(eq + 1);
    const m = HEAD.exec(left);
    let types: string[] = [''];
    let platform: string | undefined;
    let key = left;
    if (m !== null && (m[1] as string).split(',').every((t) => TYPES.has(t))) {
      types = (m[1] as string).split(',');
      key = m[3] as string;
      if (m[2] !== undefined) {
        try {
          platform = platformString(parsePlatform(m[2]));
        } catch (e) {
          throw badAnnotation(raw, `bad platform "${m[2]}"`, e);
        }
      }
    }
    if (key === '') throw badAnnotation(raw, 'empty key');
    for (const t of types) out.push({ type: t as AnnotationType, ...(platform !== undefined ? { platform } : {}), key, value });
  }
  return out;
}

function badAnnotation(raw: string, why: string, cause?: unknown): ImagetoolsError {
  return new ImagetoolsError('KLN0860', `invalid --annotation "${raw}": ${why}`, {
    hint: 'use index:KEY=VALUE or manifest-descriptor[PLATFORM]:KEY=VALUE',
    cause,
  });
}
