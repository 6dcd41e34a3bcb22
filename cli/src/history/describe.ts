import { basename, dirname, join, relative } from 'node:path';
import type { BuildRequest } from '../engine/build.js';
import { callerEnv, type CliIo } from '../io.js';
import { formatOciLayoutRef, isDigest } from '@kiln/runtime';
import { redactUrl } from '@kiln/dockerfile';
import { isProxyArg, redactProxy } from '../engine/url-credentials.js';
import type { ProgressSink } from '@kiln/solver';
import { recording, startRecording, type BuildDescription, type BuildRecording, type RecordOptions } from './recorder.js';

const DEFAULT_FILE = 'Dockerfile';

/**
 * buildx's build name (its history `BuildName`): `BUILDKIT_BUILD_NAME` if set; else the last
 * part of the context directory, or of a non-default Dockerfile path with its directory
 * (`proj/Dockerfile.dev`, `proj/sub` for `proj/sub/Dockerfile`); then ` (target)`.
 */
export function buildName(o: { readonly context?: string; readonly dockerfile?: string; readonly target?: string; readonly buildArgs?: ReadonlyMap<string, string> }): string {
  const given = o.buildArgs?.get('BUILDKIT_BUILD_NAME');
  if (given !== undefined && given !== '') return given;
  const localPath = o.context === undefined || o.context === '-' ? '' : o.context;
  let dockerfilePath = o.dockerfile === undefined || o.dockerfile === '-' || o.dockerfile === DEFAULT_FILE ? '' : o.dockerfile;
  const hasDefaultName = dockerfilePath === '' || dockerfilePath.endsWith(`/${DEFAULT_FILE}`);
  if (dockerfilePath.endsWith(`/${DEFAULT_FILE}`)) dockerfilePath = dockerfilePath.slice(0, -DEFAULT_FILE.length - 1);
  let name = '';
  if (localPath !== '' && dockerfilePath.startsWith(localPath) && dockerfilePath.length > localPath.length) {
    name = dockerfilePath.slice(localPath.lastIndexOf('/') + 1);
  } else {
    const path = dockerfilePath !== '' ? dockerfilePath : localPath;
    if (path !== '') {
      name = basename(path);
      if (!hasDefaultName) name = join(basename(dirname(path)), name);
    }
  }
  if (o.target !== undefined && o.target !== '') name = name === '' ? o.target : `${name} (${o.target})`;
  return name === '' ? '-' : name;
}

/**
 * What the history keeps of a `kiln build` (or a bake target, `target` named): the build's
 * inputs as given, secrets and SSH agents by id only. `contextArg` is the CONTEXT argument
 * (`-`: read from stdin, whose temporary directory is not worth keeping).
 */
export function describeBuild(req: BuildRequest, contextArg: string, target?: string): BuildDescription {
  const stdinContext = contextArg === '-';
  const context = stdinContext ? '-' : req.context;
  // -f - is read into dockerfileText; a stdin archive's Dockerfile is named inside the archive.
  // A remote context (a URL): -f is a path inside it.
  const remote = req.remoteContext === undefined ? undefined : (req.dockerfile ?? (req.dockerfileText !== undefined ? '-' : (req.remoteContext.file ?? DEFAULT_FILE)));
  const dockerfile =
    remote ??
    (req.dockerfile === undefined ? (req.dockerfileText !== undefined && !stdinContext ? '-' : stdinContext ? DEFAULT_FILE : join(req.context, DEFAULT_FILE)) : stdinContext ? relative(req.context, req.dockerfile) : req.dockerfile);
  const platforms = req.platform?.split(',').map((p) => p.trim()).filter((p) => p !== '');
  const contexts: Record<string, string> = {};
  for (const c of req.buildContexts ?? []) contexts[c.name] = c.kind === 'image' ? `docker-image://${c.ref}` : c.kind === 'oci-layout' ? layoutSource(c.path, c.ref) : c.kind === 'url' ? redactUrl(c.url) : c.path;
  const secrets = Object.keys(req.secrets ?? {}).sort();
  const ssh = Object.keys(req.ssh ?? {}).sort();
  return {
    kind: target === undefined ? 'build' : 'bake',
    name: target ?? buildName({ context, ...(req.dockerfile === undefined ? {} : { dockerfile: stdinContext ? dockerfile : req.dockerfile }), ...(req.target === undefined ? {} : { target: req.target }), ...(req.buildArgs === undefined ? {} : { buildArgs: req.buildArgs }) }),
    ...(req.frontend === undefined ? {} : { frontend: req.frontend }),
    context,
    dockerfile,
    ...(req.target === undefined ? {} : { target: req.target }),
    ...(platforms === undefined || platforms.length === 0 ? {} : { platforms }),
    // A proxy arg's user and password stay out of the record, as out of provenance.
    ...(req.buildArgs === undefined || req.buildArgs.size === 0 ? {} : { buildArgs: Object.fromEntries([...req.buildArgs].map(([k, v]) => [k, isProxyArg(k) ? redactProxy(v) : v])) }),
    ...(req.labels === undefined || req.labels.size === 0 ? {} : { labels: Object.fromEntries(req.labels) }),
    ...(Object.keys(contexts).length === 0 ? {} : { contexts }),
    ...(secrets.length === 0 ? {} : { secrets }),
    ...(ssh.length === 0 ? {} : { ssh }),
    ...(req.noCache === true ? { noCache: true } : {}),
    ...(req.call === undefined ? {} : { call: req.call }),
  };
}

/**
 * What the history keeps of a `kiln solve`: the definition file (`file`: absolute, or `-` for
 * stdin), its local sources, secrets and SSH agents by id.
 */
export function describeSolve(o: { readonly file: string; readonly localDirs: Readonly<Record<string, string>>; readonly secrets: readonly string[]; readonly ssh: readonly string[]; readonly platform?: string; readonly noCache: boolean }): BuildDescription {
  const file = o.file;
  return {
    kind: 'solve',
    name: file === '-' ? '-' : basename(file),
    dockerfile: file,
    ...(o.platform === undefined ? {} : { platforms: [o.platform] }),
    ...(Object.keys(o.localDirs).length === 0 ? {} : { contexts: { ...o.localDirs } }),
    ...(o.secrets.length === 0 ? {} : { secrets: [...o.secrets].sort() }),
    ...(o.ssh.length === 0 ? {} : { ssh: [...o.ssh].sort() }),
    ...(o.noCache ? { noCache: true } : {}),
  };
}

/**
 * The {@link RecordOptions} of a build of `req` for a command's caller: records go to `root`,
 * `KILN_HISTORY=0` in the caller's environment turns them off, a failure to record is a warning.
 */
export function recordOptions(io: CliIo, root: string, signal: AbortSignal, req?: BuildRequest): RecordOptions {
  return {
    root,
    env: callerEnv(io),
    signal,
    onWarning: (m) => void io.stderr.write(`WARNING: ${m}\n`),
    ...(req === undefined
      ? {}
      : {
          buildFile: { path: req.dockerfile ?? join(req.context, DEFAULT_FILE), ...(req.dockerfileText === undefined ? {} : { text: req.dockerfileText }) },
          ...(req.displayDests === undefined ? {} : { displayDests: req.displayDests }),
        }),
  };
}

/** What {@link bakeRecorder} needs of a bake target's build. */
export interface BakeTargetBuild {
  readonly req: BuildRequest;
  /** The target's context as the bake file gave it. */
  readonly build: { readonly context: string };
  /** A private image the target also exports as another target's context (not its own output). */
  readonly link?: { readonly ref: string };
}

/**
 * The recorder of `kiln bake`'s targets: one record per target, named by the target, with the
 * outputs the target has (not the private image a `target:NAME` context is passed through).
 */
export function bakeRecorder(io: CliIo, root: string): (name: string, target: BakeTargetBuild, sink: ProgressSink, signal: AbortSignal) => BuildRecording {
  return (name, target, sink, signal) => {
    const rec = startRecording(describeBuild(target.req, target.build.context, name), sink, recordOptions(io, root, signal, target.req));
    const hidden = target.link?.ref;
    if (hidden === undefined) return rec;
    return recording(rec.sink, rec.ref, (r) => rec.completed({ ...r, exports: r.exports.filter((x) => !x.names.includes(hidden)) }), rec.failed, rec.tee);
  };
}

/** `oci-layout://PATH[:TAG|@DIGEST]` as given (the context keeps a tag or a digest in one field). */
function layoutSource(path: string, ref: string | undefined): string {
  return formatOciLayoutRef({ path, ...(ref === undefined ? {} : isDigest(ref) ? { digest: ref } : { tag: ref }) });
}
