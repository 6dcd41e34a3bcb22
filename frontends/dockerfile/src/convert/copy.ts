/**
 * COPY and ADD (BuildKit dispatchCopy): one file op of chained copies from the build context,
 * a stage, an image, HTTP URLs (ADD), git repositories (ADD) and heredocs; `--link` copies onto
 * scratch and merges; `--chown`, `--chmod`, `--exclude`, `--parents`, `--checksum`.
 */
import { Caps, copy, git, http, merge, mkfile, scratch } from '@kiln/llb-core';
import type { CopyOptions, FileAction, State } from '@kiln/llb-core';
import { KilnError } from '../errors.js';
import { cleanPath } from '../instructions/mount.js';
import type { AddCommand, CopyCommand } from '../instructions/commands.js';
import { envOf, prefixCommand, processCmdEnv, uppercaseCmd, type DispatchOptions, type DispatchState } from './dispatch-state.js';
import { commitToHistory } from './image.js';
import { parseGitRef } from './git-ref.js';
import { rootJoin } from './run-mounts.js';
import { redactUrlsIn } from '../remote-context.js';
import { DOCKERFILE_COMMAND, InternalName } from './names.js';

/** What dispatchCopy needs from a COPY or ADD. */
interface CopyConfig {
  readonly cmd: CopyCommand | AddCommand;
  readonly source: State;
  readonly isAdd: boolean;
  readonly keepGitDir: boolean;
  readonly checksum: string;
  readonly parents: boolean;
}

const isHTTPSource = (src: string): boolean => src.startsWith('http://') || src.startsWith('https://');

/** BuildKit's destination: relative to the working directory, a trailing `/` kept. */
function destPath(d: DispatchState, p: string): string {
  const dir = d.state.getDir();
  let dest = cleanPath(`/${p.startsWith('/') ? p : `${dir}/${p}`}`);
  if (p === '.' || p === '' || p.endsWith('/')) dest += '/';
  return dest;
}

function parseChmod(chmod: string): number | undefined {
  if (chmod === '') return undefined;
  if (!/^[0-7]+$/.test(chmod) || Number.parseInt(chmod, 8) > 0xffffffff) {
    throw new KilnError('KLN0507', `invalid chmod parameter: ${JSON.stringify(chmod)}`, { hint: 'use octal permission bits such as 0755' });
  }
  return Number.parseInt(chmod, 8);
}

function httpFilename(src: string): string {
  try {
    const segs = new URL(src).pathname.split('/').filter((s) => s !== '');
    const base = segs[segs.length - 1];
    return base === undefined || base === '.' ? '__unnamed__' : decodeURIComponent(base);
  } catch {
    return '__unnamed__';
  }
}

function validateChecksum(cfg: CopyConfig, sources: readonly string[]): void {
  if (cfg.checksum === '') return;
  if (!cfg.isAdd) throw new KilnError('KLN0506', "checksum can't be specified for COPY");
  if (sources.length !== 1) throw new KilnError('KLN0506', "checksum can't be specified for multiple sources");
  if (!isHTTPSource(sources[0] as string)) throw new KilnError('KLN0506', "checksum can't be specified for non-HTTP sources");
  if (!/^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/.test(cfg.checksum)) {
    throw new KilnError('KLN0507', `invalid checksum digest format: ${cfg.checksum}`, { hint: 'write --checksum=sha256:<64 hex digits>' });
  }
}

export function dispatchCopy(d: DispatchState, cfg: CopyConfig, opt: DispatchOptions): void {
  const c = cfg.cmd;
  const dest = destPath(d, c.destPath);
  const mode = parseChmod(c.chmod);
  const common: CopyOptions = {
    ...(mode === undefined ? {} : { mode }),
    ...(c.chown !== '' ? { chown: c.chown } : {}),
    ...(c.excludePatterns.length > 0 ? { excludePatterns: c.excludePatterns } : {}),
  };
  validateChecksum(cfg, c.sourcePaths);
  let msg = cfg.isAdd ? 'ADD' : 'COPY';
  const platform = d.platform ?? opt.targetPlatform;
  const env = envOf(d.state);
  // A URL's credentials (`ADD https://user:${TOKEN}@host/f`) stay out of the step name and the image history.
  const name = redactUrlsIn(uppercaseCmd(processCmdEnv(opt.shlex, c.code, env)));
  const pgName = prefixCommand(d, name, opt.multiPlatform, platform, env);

  let a: FileAction | undefined;
  const add = (from: State, src: string, o: CopyOptions): void => {
    a = a === undefined ? copy(from, src, dest, o) : a.copy(from, src, dest, o);
  };
  for (const src of c.sourcePaths) {
    msg += ` ${redactUrlsIn(src)}`;
    const gitRef = cfg.isAdd || !isHTTPSource(src) ? parseGitRef(src) : undefined;
    if (gitRef !== undefined) {
      if (!cfg.isAdd) throw new KilnError('KLN0506', "source can't be a git ref for COPY", { hint: 'use ADD for git repositories' });
      const commit = gitRef.commit + (gitRef.subDir !== '' ? `:${gitRef.subDir}` : '');
      const st = git(gitRef.remote, commit, { customName: pgName, ...(cfg.keepGitDir ? { keepGitDir: true } : {}) });
      add(st, '/', { ...common, createDestPath: true });
    } else if (isHTTPSource(src)) {
      if (!cfg.isAdd) throw new KilnError('KLN0506', "source can't be a URL for COPY", { hint: 'use ADD to download a URL' });
      const f = httpFilename(src);
      // The source vertex is named by its identifier in progress and history records (BuildKit's
      // llbOpName): with credentials in the URL it is named by the URL without them.
      const shown = redactUrlsIn(src);
      const st = http(src, {
        filename: f,
        ...(cfg.checksum !== '' ? { checksum: cfg.checksum } : {}),
        ...(shown === src ? {} : { customName: shown }),
        description: { [DOCKERFILE_COMMAND]: '' },
      });
      add(st, f, { ...common, createDestPath: true });
    } else {
      let from = src;
      let includePatterns: string[] | undefined;
      if (cfg.parents) {
        const pivot = src.indexOf('/./');
        const pattern = pivot < 0 ? src : src.slice(pivot + 3);
        from = pivot < 0 ? '/' : src.slice(0, pivot);
        includePatterns = [rootJoin(pattern).replace(/^\//, '')];
      }
      add(cfg.source, rootJoin(from), {
        ...common,
        followSymlinks: true,
        copyDirContentsOnly: true,
        ...(includePatterns === undefined ? {} : { includePatterns }),
        attemptUnpack: cfg.isAdd,
        createDestPath: true,
        allowWildcard: true,
        allowEmptyWildcard: true,
      });
    }
  }
  for (const src of c.sourceContents) {
    msg += ` <<${src.path}`;
    const st = scratch().dir('/').file(mkfile(src.path, 0o664, src.data), { customName: InternalName.inlineDocument });
    add(st, src.path, { ...common, createDestPath: true });
  }
  msg += ` ${c.destPath}`;
  if (a === undefined) throw new KilnError('KLN0404', `${cfg.isAdd ? 'ADD' : 'COPY'} requires at least one source`);

  if (opt.caps.has(Caps.mergeOp) && c.link && c.chmod === '') {
    const pgID = opt.nextProgressGroup();
    d.cmdIndex--; // prefixCommand counted this command already
    const groupName = prefixCommand(d, name, opt.multiPlatform, platform, env);
    // BuildKit v0.11.6 copies its file-op options into a nil slice (a no-op), so the link
    // file op carries only the progress group: no name, no explicit platform.
    const linked = scratch().file(a, { progressGroup: { id: pgID, name: groupName, weak: true } });
    d.cmdIndex--;
    const linkName = prefixCommand(d, `LINK ${name}`, opt.multiPlatform, platform, env);
    d.state = d.state.withOutput(
      merge([d.state, linked], { progressGroup: { id: pgID, name: groupName }, customName: linkName, ...(d.ignoreCache ? { ignoreCache: true } : {}) }).output,
    );
    opt.location(linkName, [c.location]);
  } else {
    d.state = d.state.file(a, { customName: pgName, ...(d.ignoreCache ? { ignoreCache: true } : {}) });
    opt.location(pgName, [c.location]);
  }
  commitToHistory(d.image, msg, true, true);
}

/** COPY: from the build context, or the stage/image named by `--from`. */
export function dispatchCopyCommand(d: DispatchState, c: CopyCommand, sources: readonly (DispatchState | undefined)[], opt: DispatchOptions): void {
  let source = opt.buildContext;
  const src = sources[0];
  if (src !== undefined) {
    if (!src.dispatched) {
      throw new KilnError('KLN0501', `cannot copy from stage ${JSON.stringify(c.from)}, it needs to be defined before current stage ${JSON.stringify(d.stageName)}`);
    }
    source = src.state;
  }
  dispatchCopy(d, { cmd: c, source, isAdd: false, keepGitDir: false, checksum: '', parents: c.parents }, opt);
  const paths = src === undefined ? d.ctxPaths : undefined;
  if (paths !== undefined) for (const p of c.sourcePaths) paths.add(rootJoin(p));
}

/** ADD: like COPY from the build context, plus URLs, git and archive unpacking. */
export function dispatchAdd(d: DispatchState, c: AddCommand, opt: DispatchOptions): void {
  dispatchCopy(d, { cmd: c, source: opt.buildContext, isAdd: true, keepGitDir: c.keepGitDir === true, checksum: c.checksum, parents: false }, opt);
  for (const p of c.sourcePaths) if (!isHTTPSource(p) && parseGitRef(p) === undefined) d.ctxPaths.add(rootJoin(p));
}
