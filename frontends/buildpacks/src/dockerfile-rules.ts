/**
 * The rules lifecycle sets for the Dockerfiles an image extension generates
 * (buildpack/dockerfile.go ValidateBuildDockerfile / ValidateRunDockerfile), checked on a light
 * scan of the file: instructions with their lines, parser directives (`escape`), line
 * continuations, comments and heredocs. The Dockerfile itself is compiled later by the
 * Dockerfile frontend through the client (this package never imports it), which reports its
 * own syntax errors.
 */
import { BuildpacksError } from './errors.js';

/** One instruction: its keyword (upper case), its arguments as written and its 1-based line. */
export interface ScannedInstruction {
  readonly name: string;
  readonly args: string;
  readonly line: number;
}

/** What a run.Dockerfile does (lifecycle's DockerfileInfo WithBase / Extend). */
export interface RunDockerfileInfo {
  /** The image its FROM names when that is not `${base_image}`: the run image is switched to it. */
  readonly withBase?: string;
  /** It has instructions after FROM: the run image is extended. */
  readonly extend: boolean;
}

/** A warning about an instruction lifecycle does not recommend (it applies it anyway). */
export interface DockerfileWarning {
  readonly message: string;
  readonly line: number;
}

/** The `ARG base_image` / `FROM ${base_image}` build arg lifecycle passes (the image being extended). */
export const BASE_IMAGE_ARG = 'base_image';
const BASE_IMAGE_REF = '${base_image}';

/** Instructions lifecycle recommends in extension Dockerfiles; others are applied with a warning. */
export const RECOMMENDED_INSTRUCTIONS: ReadonlySet<string> = new Set(['FROM', 'ADD', 'ARG', 'COPY', 'ENV', 'LABEL', 'RUN', 'SHELL', 'USER', 'WORKDIR']);

const DIRECTIVE_RE = /^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$/;
const HEREDOC_RE = /<<(-?)\s*(["']?)([A-Za-z_][A-Za-z0-9_]*)\2/g;

/** The instructions of a Dockerfile, in order (comments, blank lines and heredoc bodies skipped). */
export function scanDockerfile(text: string): ScannedInstruction[] {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  let escape = '\\';
  let i = 0;
  // parser directives: leading `# key=value` lines
  for (; i < lines.length; i++) {
    const m = DIRECTIVE_RE.exec(lines[i] ?? '');
    if (m === null) break;
    if (m[1]?.toLowerCase() === 'escape' && (m[2] === '`' || m[2] === '\\')) escape = m[2];
  }
  const out: ScannedInstruction[] = [];
  while (i < lines.length) {
    const first = (lines[i] ?? '').trim();
    const start = i + 1;
    i++;
    if (first === '' || first.startsWith('#')) continue;
    let logical = first;
    // continuation lines (comment lines and empty lines inside a continuation are dropped, as
    // the parser does: the instruction goes on after them)
    while (logical.endsWith(escape) && i < lines.length) {
      logical = logical.slice(0, -1);
      const next = (lines[i] ?? '').trim();
      i++;
      if (next.startsWith('#') || next === '') {
        logical += escape;
        continue;
      }
      logical += ` ${next}`;
    }
    const m = /^(\S+)\s*(.*)$/.exec(logical);
    if (m === null) continue;
    const name = (m[1] ?? '').toUpperCase();
    const args = m[2] ?? '';
    out.push({ name, args, line: start });
    if (name === 'RUN' || name === 'COPY' || name === 'ADD') {
      for (const h of args.matchAll(HEREDOC_RE)) {
        const word = h[3] ?? '';
        const strip = h[1] === '-';
        while (i < lines.length) {
          const l = lines[i] ?? '';
          i++;
          if ((strip ? l.replace(/^\t+/, '') : l) === word) break;
        }
      }
    }
  }
  return out;
}

/** The image name of a FROM instruction's arguments (flags such as `--platform` skipped, `AS name` ignored). */
export function fromImage(args: string): string {
  const words = args.split(/\s+/).filter((w) => w !== '');
  return words.find((w) => !w.startsWith('--')) ?? '';
}

interface Shape {
  readonly metaArgs: readonly ScannedInstruction[];
  readonly stages: readonly { readonly from: ScannedInstruction; readonly commands: readonly ScannedInstruction[] }[];
}

function shape(text: string): Shape {
  const metaArgs: ScannedInstruction[] = [];
  const stages: { from: ScannedInstruction; commands: ScannedInstruction[] }[] = [];
  for (const ins of scanDockerfile(text)) {
    if (ins.name === 'FROM') stages.push({ from: ins, commands: [] });
    else if (stages.length > 0) stages[stages.length - 1]?.commands.push(ins);
    else if (ins.name === 'ARG') metaArgs.push(ins);
  }
  return { metaArgs, stages };
}

function warnings(file: string, s: Shape): DockerfileWarning[] {
  return s.stages.flatMap((st) =>
    st.commands.filter((c) => !RECOMMENDED_INSTRUCTIONS.has(c.name)).map((c) => ({ message: `${file} command ${c.name} on line ${c.line} is not recommended`, line: c.line })),
  );
}

/** Where an extension's Dockerfile is, for error locations: `<extension id>: build.Dockerfile`. */
export const generatedFile = (extensionId: string, name: string): string => `${extensionId}: ${name}`;

function refuse(extensionId: string, name: string, line: number, message: string, hint: string): never {
  throw new BuildpacksError('KLN0908', message, { location: { file: generatedFile(extensionId, name), line, column: 1 }, hint });
}

/**
 * Checks a build.Dockerfile as lifecycle does: one stage, exactly one ARG before it naming
 * `base_image` first, and `FROM ${base_image}`. Returns warnings for instructions lifecycle
 * does not recommend; a broken rule is KLN0908 at the extension's file and line.
 */
export function checkBuildDockerfile(text: string, extensionId: string): DockerfileWarning[] {
  const name = 'build.Dockerfile';
  const s = shape(text);
  const preamble = `a build.Dockerfile starts with "ARG ${BASE_IMAGE_ARG}" and "FROM ${BASE_IMAGE_REF}"`;
  const second = s.stages[1];
  if (second !== undefined) refuse(extensionId, name, second.from.line, `${name} is not permitted to use multistage build`, `${preamble}, and has no other FROM`);
  const firstArg = s.metaArgs[0];
  const argName = (firstArg?.args.split(/\s+/)[0] ?? '').split('=')[0];
  if (s.metaArgs.length !== 1 || argName !== BASE_IMAGE_ARG) refuse(extensionId, name, s.metaArgs[1]?.line ?? firstArg?.line ?? 1, `${name} did not start with required ARG command`, preamble);
  const stage = s.stages[0];
  if (stage === undefined) refuse(extensionId, name, 1, `${name} should have at least one stage`, preamble);
  if (fromImage(stage.from.args) !== BASE_IMAGE_REF) refuse(extensionId, name, stage.from.line, `${name} did not contain required FROM ${BASE_IMAGE_REF} command`, preamble);
  return warnings(name, s);
}

/**
 * Checks a run.Dockerfile as lifecycle does (one stage) and says what it does: a FROM other than
 * `${base_image}` switches the run image, instructions after FROM extend it.
 */
export function checkRunDockerfile(text: string, extensionId: string): { readonly info: RunDockerfileInfo; readonly warnings: DockerfileWarning[] } {
  const name = 'run.Dockerfile';
  const s = shape(text);
  const second = s.stages[1];
  if (second !== undefined) refuse(extensionId, name, second.from.line, `${name} is not permitted to use multistage build`, 'a run.Dockerfile has one FROM: the run image to switch to, or ${base_image} to extend it');
  const stage = s.stages[0];
  if (stage === undefined) refuse(extensionId, name, 1, `${name} should have at least one stage`, 'a run.Dockerfile has one FROM: the run image to switch to, or ${base_image} to extend it');
  const base = fromImage(stage.from.args);
  return { info: { ...(base === BASE_IMAGE_REF ? {} : { withBase: base }), extend: stage.commands.length > 0 }, warnings: warnings(name, s) };
}
