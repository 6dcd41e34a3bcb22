/**
 * Conformance against BuildKit v0.11.6's dockerfile2llb (../shared/conformance/dockerfile2llb):
 * the set of op digests equals digests.txt and the image config deep-equals image-config.json;
 * error.txt cases are rejected, except the labs-only errors (kiln always speaks the labs syntax).
 */
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { convertDockerfile, KilnError } from '@kiln/dockerfile';
import { decodeOp, definitionToJsonLines } from '@kiln/llb-core';
import { layoutResolver } from './helpers/oci-layout-resolver.js';

const root = fileURLToPath(new URL('../../../../shared/conformance/', import.meta.url));
const casesDir = join(root, 'dockerfile2llb');
const cases = readdirSync(casesDir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name).sort();

/** Errors BuildKit v0.11.6 raised only because the feature was labs-only; kiln accepts these. */
const LABS_ONLY_ERRORS = [/requires the labs channel/];

interface Args {
  buildArgs?: Record<string, string>;
  target?: string;
  platform?: string;
  channel?: string;
}

function args(dir: string): Args {
  const p = join(dir, 'args.json');
  return existsSync(p) ? (JSON.parse(readFileSync(p, 'utf8')) as Args) : {};
}

async function convert(dir: string, sourceMap = true) {
  const a = args(dir);
  return convertDockerfile(readFileSync(join(dir, 'Dockerfile')), {
    buildArgs: a.buildArgs ?? {},
    ...(a.target === undefined ? {} : { target: a.target }),
    ...(a.platform === undefined ? {} : { targetPlatform: a.platform }),
    buildPlatforms: ['linux/amd64'],
    sessionId: 'kiln-conformance',
    metaResolver: layoutResolver(join(root, 'images')),
    sourceMap,
  });
}

const digest = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

describe('dockerfile2llb conformance (BuildKit v0.11.6)', () => {
  test('every case listed in the README has a folder', () => {
    const listed = [...readFileSync(join(casesDir, 'README.md'), 'utf8').matchAll(/^\| `([a-z0-9-]+)` \|/gm)].map((m) => m[1]);
    expect(listed.length).toBeGreaterThan(40);
    expect(cases).toEqual([...listed].sort());
  });

  test.for(cases)('%s', async (name) => {
    const dir = join(casesDir, name);
    const errPath = join(dir, 'error.txt');
    if (existsSync(errPath)) {
      const message = readFileSync(errPath, 'utf8').trim();
      if (LABS_ONLY_ERRORS.some((re) => re.test(message))) {
        // Accepted by kiln: it must convert, and the feature must be in the LLB.
        const res = await convert(dir);
        expect(res.definition.def.length).toBeGreaterThan(0);
        return;
      }
      if (/--security=insecure/.test(readFileSync(join(dir, 'Dockerfile'), 'utf8'))) {
        // v0.11.6 mainline rejects RUN --security; kiln is labs-by-default: the exec is privileged.
        const res = await convert(dir);
        const execs = res.definition.def.map((b) => decodeOp(b)).filter((op) => op.kind === 'exec');
        expect(execs.some((op) => op.kind === 'exec' && op.exec.security === 1)).toBe(true);
        return;
      }
      await expect(convert(dir)).rejects.toBeInstanceOf(KilnError);
      return;
    }
    const res = await convert(dir);
    const expected = readFileSync(join(dir, 'digests.txt'), 'utf8').split('\n').filter((l) => l !== '');
    const got = res.definition.def.map(digest);
    expect(new Set(got)).toEqual(new Set(expected));
    expect(got.length).toBe(expected.length);
    const config = JSON.parse(readFileSync(join(dir, 'image-config.json'), 'utf8')) as unknown;
    expect(res.imageConfig).toEqual(config);
  });

  // Metadata (progress names, caps, progress groups) is informative in the README, but kiln
  // matches it too: checked per op digest against llb.json.
  test.for(cases.filter((c) => existsSync(join(casesDir, c, 'llb.json'))))('%s: op metadata', async (name) => {
    const dir = join(casesDir, name);
    const res = await convert(dir, false);
    const mine = new Map<string, unknown>();
    for (const l of definitionToJsonLines(res.definition).split('\n').filter((x) => x !== '')) {
      const o = JSON.parse(l) as { Digest: string; OpMetadata: unknown };
      mine.set(o.Digest, o.OpMetadata);
    }
    for (const l of readFileSync(join(dir, 'llb.json'), 'utf8').split('\n').filter((x) => x !== '')) {
      const o = JSON.parse(l) as { Digest: string; OpMetadata: unknown };
      expect({ digest: o.Digest, meta: mine.get(o.Digest) }).toEqual({ digest: o.Digest, meta: o.OpMetadata });
    }
  });

  // The JSON view prints ops this process marshaled from the Op objects marshal recorded (no
  // decode); it must print exactly what decoding the bytes prints. Copies of the byte arrays are
  // not in that record, so they take the decode path.
  test.for(cases.filter((c) => !existsSync(join(casesDir, c, 'error.txt'))))('%s: JSON view from marshal equals JSON view from bytes', async (name) => {
    const res = await convert(join(casesDir, name));
    const copied = { ...res.definition, def: res.definition.def.map((b) => b.slice()) };
    expect(definitionToJsonLines(res.definition)).toBe(definitionToJsonLines(copied));
  });
});
