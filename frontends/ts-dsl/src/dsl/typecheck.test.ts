/**
 * The design's example build files type-check against the DSL's declarations under strict
 * settings (as an editor or `tsc --noEmit` sees them with `kiln` mapped to the DSL), and a
 * misuse is a type error: the API's types are part of its contract.
 */
import { join } from 'node:path';
import ts from 'typescript';
import { describe, expect, test } from 'vitest';

const dsl = join(import.meta.dirname, 'index.ts');

const examples: Record<string, string> = {
  '1-hello.ts': `import { image, sh } from "kiln";
export default () => image("kt/busybox").run(sh\`echo hi >/hi\`).image({ cmd: ["cat", "/hi"] });`,
  '2-multistage.ts': `import { cache, image, sh, type Ctx } from "kiln";
export default ({ local }: Ctx) => {
  const b = image("kt/busybox").dir("/src").copy(local("context"), ".", ".")
    .run(sh\`sh build.sh\`, { mounts: { "/cache": cache("site") } });
  return image("kt/busybox").copy(b, "/src/dist", "/www")
    .image({ cmd: ["httpd", "-f", "-p", "8080", "-h", "/www"], exposedPorts: ["8080/tcp"] });
};`,
  '3-secret.ts': `import { image, scratch, secret, sh, tmpfs } from "kiln";
const URL = "http://127.0.0.1/d.tgz";
const dl = image("kt/busybox").run(sh\`wget -qO /out/d.tgz --header "X-T: $(cat /run/secrets/t)" \${URL}\`,
  { mounts: { "/out": scratch(), "/tmp": tmpfs(), "/run/secrets/t": secret("t") } }).output("/out");
export default () => dl;`,
  '4-platforms.ts': `import { diff, image, merge, sh, type Ctx } from "kiln";
export default (ctx: Ctx) => ctx.platforms(p => {
  const base = image("kt/busybox", { platform: p });
  const tool = (n: string) => diff(base, base.run(sh\`make-\${n}\`));
  return merge([base, tool("a"), tool("b")]).image({ entrypoint: ["/bin/sh"] });
});`,
  '5-fanout.ts': `import { image, merge, scratch, sh, type Ctx, type State } from "kiln";
const svc = async (src: State, n: string): Promise<State> =>
  image("kt/busybox").run(sh\`build \${n}\`, { mounts: { "/out": scratch(), "/src": src } }).output("/out");
export default async ({ local, solve }: Ctx) => {
  const src = local("context");
  const names = (await solve(src).readFile("/services.txt")).trim().split("\\n");
  const outs = await Promise.all(names.map(n => svc(src, n)));
  return merge([image("kt/busybox"), ...outs]).image({ cmd: ["sh", "/start.sh"] });
};`,
  'bad.ts': `import { cache, image } from "kiln";
export default () => image("x").run(["true"], { mounts: { "/c": cache("c", { sharing: "sometimes" }) } });`,
};

/** One program for every example (a program per file would load the libraries each time). */
function check(): Map<string, string[]> {
  const host = ts.createCompilerHost({});
  const files = new Map(Object.entries(examples).map(([k, v]) => [`/examples/${k}`, v]));
  const read = host.readFile.bind(host);
  host.readFile = (f) => files.get(f) ?? read(f);
  const exists = host.fileExists.bind(host);
  host.fileExists = (f) => files.has(f) || exists(f);
  const getSource = host.getSourceFile.bind(host);
  host.getSourceFile = (f, lang) => (files.has(f) ? ts.createSourceFile(f, files.get(f) as string, lang) : getSource(f, lang));
  const program = ts.createProgram({
    rootNames: [...files.keys()],
    options: {
      strict: true,
      noEmit: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.ESNext,
      moduleResolution: ts.ModuleResolutionKind.Bundler,
      exactOptionalPropertyTypes: true,
      noUncheckedIndexedAccess: true,
      allowImportingTsExtensions: true,
      skipLibCheck: true,
      types: ['node'],
      paths: { kiln: [dsl] },
    },
    host,
  });
  const out = new Map<string, string[]>(Object.keys(examples).map((k) => [k, []]));
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const name = d.file?.fileName.startsWith('/examples/') === true ? d.file.fileName.slice('/examples/'.length) : 'bad.ts';
    // a diagnostic outside the examples (the DSL itself) fails every case
    for (const k of d.file?.fileName.startsWith('/examples/') === true ? [name] : [...out.keys()]) out.get(k)?.push(`${d.file?.fileName ?? ''}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`);
  }
  return out;
}

let checked: Map<string, string[]> | undefined;
const diagnostics = (name: string): string[] => (checked ??= check()).get(name) ?? [];

describe('the design examples type-check', () => {
  test.for(Object.keys(examples).filter((k) => k !== 'bad.ts'))('%s', (name) => {
    expect(diagnostics(name)).toEqual([]);
  });

  test('a wrong option is a type error', () => {
    const d = diagnostics('bad.ts');
    expect(d).toHaveLength(1);
    expect(d[0]).toContain('"sometimes"');
  });
});
