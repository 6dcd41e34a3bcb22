import { join } from 'node:path';
import { expect } from 'vitest';
import { runKiln, writeTree, type KilnSandbox } from './build-helpers.js';

/**
 * The SBOM generator image of the SBOM tests (BuildKit's protocol, docs/attestations/sbom-protocol.md),
 * built by kiln from busybox into a sandbox's image store: a shell script writing one in-toto
 * statement per scanned filesystem (the files it holds, the protocol's env, whether the source
 * was read-only), keys out of order on purpose (the exporter sorts them).
 */
export const SCANNER = 'kiln.local/test/sbom-scanner:1';

const SCAN_SH = `set -eu
scan() {
  src="$1"
  name="$(basename "$src")"
  ro=true
  if touch "$src/.kiln-write-probe" 2>/dev/null; then ro=false; fi
  {
    printf '{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://spdx.dev/Document","subject":[],"predicate":{"source":"%s","name":"%s","readonly":%s,"files":[' "$src" "$name" "$ro"
    (cd "$src" && find . -type f | sed 's|^\\.||' | sort | awk 'NR>1{printf ","} {printf "{\\"fileName\\":\\"%s\\"}", $0}')
    printf '],"extras":"%s","env":"%s","dest":"%s"}}' "\${BUILDKIT_SCAN_SOURCE_EXTRAS:-}" "$SCANNER_NAME" "$BUILDKIT_SCAN_DESTINATION"
  } > "$BUILDKIT_SCAN_DESTINATION/$name.spdx.json"
}
scan "$BUILDKIT_SCAN_SOURCE"
if [ -n "\${BUILDKIT_SCAN_SOURCE_EXTRAS:-}" ] && [ -d "$BUILDKIT_SCAN_SOURCE_EXTRAS" ]; then
  for extra in "$BUILDKIT_SCAN_SOURCE_EXTRAS"/*; do scan "$extra"; done
fi
`;

/** Builds {@link SCANNER} with kiln into the sandbox's root. */
export async function buildScanner(sb: KilnSandbox): Promise<void> {
  const ctx = join(sb.dir, 'scanner');
  await writeTree(ctx, {
    Dockerfile: ['FROM busybox', 'COPY scan.sh /scan.sh', 'ENV SCANNER_NAME=kiln-test-scanner', 'ENTRYPOINT ["/bin/sh", "/scan.sh"]', ''].join('\n'),
    'scan.sh': SCAN_SH,
  });
  const r = await runKiln(sb, ['build', '--root', sb.root, '--progress', 'plain', ctx, '-t', SCANNER]);
  expect(r.code, r.stderr.slice(-2000)).toBe(0);
}

/** The files of a busybox image plus those listed, as the scanner lists them (sorted). */
function filesJson(extra: readonly string[]): string {
  return ['/bin/busybox', '/etc/group', '/etc/passwd', ...extra]
    .sort()
    .map((f) => `{"fileName":"${f}"}`)
    .join(',');
}

/** The predicate the scanner writes for the core scan of a busybox result with `extra` files, as Go re-marshals it (keys sorted). */
export function expectedPredicate(extra: readonly string[] = ['/created-by-run.txt'], extras = ''): string {
  return `{"dest":"/run/out/","env":"kiln-test-scanner","extras":"${extras}","files":[${filesJson(extra)}],"name":"sbom","readonly":true,"source":"/run/src/core/sbom"}`;
}

/** The statement file the scanner writes for that core scan, byte for byte (its own key order). */
export function expectedCoreStatement(extra: readonly string[], extras = ''): string {
  return `{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://spdx.dev/Document","subject":[],"predicate":{"source":"/run/src/core/sbom","name":"sbom","readonly":true,"files":[${filesJson(extra)}],"extras":"${extras}","env":"kiln-test-scanner","dest":"/run/out/"}}`;
}
