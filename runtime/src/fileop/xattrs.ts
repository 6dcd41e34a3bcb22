import { execFile, spawn } from 'node:child_process';
import { FileOpError } from './errors.js';
import { spawnViaHelper } from '../executor/process-helper.js';
import { pathsWithXattrs } from '../snapshot/mount-helper.js';

/** One file's extended attributes, values hex-encoded as getfattr prints them (`0x…`). */
interface XattrBlock {
  readonly path: string;
  readonly lines: string[];
}

/** getfattr's escaping of a file name: `\` and non-printable bytes become `\ooo`. */
function escapeName(p: string): string {
  let out = '';
  for (const byte of Buffer.from(p, 'utf8')) {
    out += byte === 0x5c || byte < 0x21 || byte > 0x7e ? `\\${byte.toString(8).padStart(3, '0')}` : String.fromCharCode(byte);
  }
  // Spaces are printed verbatim by getfattr; only the characters above must be escaped.
  return out.replace(/\\040/g, ' ');
}

/** getfattr's `\ooo` escapes back to the name's bytes (its output is read as latin1). */
export function unescapeName(s: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\' && /^[0-7]{3}$/.test(s.slice(i + 1, i + 4))) {
      bytes.push(parseInt(s.slice(i + 1, i + 4), 8));
      i += 3;
    } else {
      bytes.push(s.charCodeAt(i)); // the output is read as latin1: one char per byte
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** Runs a tool; resolves with stdout, or `undefined` when the tool is not installed. */
function runTool(cmd: string, args: string[], input?: string): Promise<string | undefined> {
  // Without input, through the process helper: no fork of this (large) Node process per copy.
  const hp = input === undefined ? spawnViaHelper(cmd, args) : undefined;
  if (hp !== undefined) {
    hp.stderr.resume();
    const chunks: Buffer[] = [];
    hp.stdout.on('data', (d: Buffer) => chunks.push(d));
    const ended = new Promise<void>((resolve) => hp.stdout.once('end', resolve).once('close', resolve));
    return Promise.all([hp.exit, ended]).then(
      () => Buffer.concat(chunks).toString('latin1'),
      (err: { code?: unknown }) => {
        if (err.code === 'ENOENT') return undefined;
        if (err.code === 'EHELPER') return runSpawned(cmd, args, input);
        throw err;
      },
    );
  }
  return runSpawned(cmd, args, input);
}

function runSpawned(cmd: string, args: string[], input: string | undefined): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'ignore'] });
    const chunks: Buffer[] = [];
    p.stdout.on('data', (d: Buffer) => chunks.push(d));
    p.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? resolve(undefined) : reject(err)));
    p.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    p.stdin.on('error', () => undefined);
    p.stdin.end(input ?? '');
  });
}

/** overlayfs's private attributes (`trusted.overlay.*`, or `user.overlay.*` with userxattr). */
export const OVERLAY_PRIVATE = /^(?:trusted|user)\.overlay\./;

/** `setfattr` arguments setting one attribute of `path` to `value`'s bytes, not through a symlink. */
export function setfattrArgs(name: string, value: Buffer, path: string): string[] {
  return ['-h', '-n', name, ...(value.length > 0 ? ['-v', `0x${value.toString('hex')}`] : []), '--', path];
}

/** Why setfattr could not set an attribute, from its message (run with `LC_ALL=C`). */
export type XattrRefusal = 'unsupported' | 'not-permitted';

/**
 * ENOTSUP (the filesystem or the namespace of the name is not supported) or EPERM (not allowed:
 * `user.*` on a symlink or device, `trusted.*` without CAP_SYS_ADMIN, `security.capability`
 * without CAP_SETFCAP, an immutable file) from setfattr's message; `undefined` for anything else.
 */
export function xattrRefusal(stderr: string): XattrRefusal | undefined {
  if (/Operation not supported/.test(stderr)) return 'unsupported';
  if (/Operation not permitted/.test(stderr)) return 'not-permitted';
  return undefined;
}

/** setfattr's environment: this process's, with messages in English, which {@link xattrRefusal} reads. */
export function setfattrEnv(): NodeJS.ProcessEnv {
  return { ...process.env, LC_ALL: 'C' };
}

/** Paths per getfattr run when they are listed (far below the kernel's argument limit). */
const LISTED_CHUNK = 1000;
/** Up to this many copied paths are listed to getfattr; more, and it walks the whole tree. */
const MAX_LISTED = 4000;

/**
 * Extended attributes of every file below (and including) `top` that has any, symlinks not
 * followed; with `paths`, of those files only (no walk of the rest of the tree).
 */
async function readXattrs(top: string, paths?: readonly string[]): Promise<XattrBlock[] | undefined> {
  let out: string | undefined;
  if (paths === undefined) {
    out = await runTool('getfattr', ['-R', '-P', '-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', top]);
  } else {
    out = '';
    for (let i = 0; i < paths.length; i += LISTED_CHUNK) {
      // `--` ends the options: a path never reads as one.
      const part = await runTool('getfattr', ['-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', '--', ...paths.slice(i, i + LISTED_CHUNK)]);
      if (part === undefined) return undefined;
      out += part;
    }
  }
  if (out === undefined) return undefined;
  const blocks: XattrBlock[] = [];
  let cur: XattrBlock | undefined;
  for (const line of out.split('\n')) {
    if (line.startsWith('# file: ')) {
      cur = { path: unescapeName(line.slice('# file: '.length)), lines: [] };
      blocks.push(cur);
    } else if (line !== '' && cur !== undefined) cur.lines.push(line);
  }
  return blocks;
}

/**
 * Copies the extended attributes (user.*, security.* such as file capabilities, trusted.*,
 * ACLs) of the copied entries from the source tree at `srcTop` to `targetTop`, using one
 * `getfattr` and one `setfattr` process per copy (Node has no xattr API). `copied` holds the
 * relative paths that were copied (`''` is the top). Like BuildKit's FileOp, which logs and
 * ignores xattr errors, a missing tool or an attribute the target filesystem refuses is not an
 * error; the return value says whether attributes were applied.
 */
export async function copyXattrs(srcTop: string, targetTop: string, copied: ReadonlySet<string>): Promise<boolean> {
  if (copied.size === 0) return true;
  // Few copied entries in a big tree (files hard-linked keep their own xattrs): list them.
  let listed = copied.size <= MAX_LISTED ? [...copied].map((rel) => (rel === '' ? srcTop : `${srcTop}/${rel}`)) : undefined;
  if (listed !== undefined) {
    // Most files have none: ask the kernel which do (no process), and run getfattr only for those.
    const which = await pathsWithXattrs(listed);
    if (which !== undefined) {
      const from = listed;
      listed = which.map((i) => from[i]).filter((p): p is string => p !== undefined);
      if (listed.length === 0) return true;
    }
  }
  const blocks = await readXattrs(srcTop, listed);
  if (blocks === undefined) return false;
  let restore = '';
  for (const b of blocks) {
    let rel: string | undefined;
    if (b.path === srcTop) rel = '';
    else if (b.path.startsWith(srcTop + '/')) rel = b.path.slice(srcTop.length + 1);
    if (rel === undefined || !copied.has(rel)) continue;
    // overlayfs's own bookkeeping (origin, redirect, metacopy …) shows on a file read from a
    // layer directory rather than through a mount, and means nothing on the copy.
    const lines = b.lines.filter((l) => !OVERLAY_PRIVATE.test(l));
    if (lines.length === 0) continue;
    const target = rel === '' ? targetTop : `${targetTop}/${rel}`;
    restore += `# file: ${escapeName(target)}\n${lines.join('\n')}\n\n`;
  }
  if (restore === '') return true;
  return (await runTool('setfattr', ['-h', '--restore=-'], restore)) !== undefined;
}

/**
 * Sets an extracted archive entry's extended attributes (PAX `SCHILY.xattr.*`) on `path`, not
 * following a symlink: one `setfattr` per attribute (Node has no setxattr(2); archives with
 * xattrs are rare). BuildKit's ADD extracts with moby's archive.Untar and `BestEffortXattrs`,
 * whose createTarFile skips ENOTSUP and EPERM for every name: so does this (layers follow
 * containerd's stricter rule, see layer/apply.ts). Any other failure fails the extraction.
 */
export async function setEntryXattrs(path: string, xattrs: ReadonlyMap<string, Buffer>, srcName: string, entry: string): Promise<void> {
  for (const [name, value] of xattrs) {
    const args = setfattrArgs(name, value, path);
    const failure = await new Promise<{ code: unknown; stderr: string } | undefined>((resolve) => {
      execFile('setfattr', args, { encoding: 'utf8', env: setfattrEnv() }, (err, _out, stderr) => resolve(err === null ? undefined : { code: (err as NodeJS.ErrnoException).code, stderr }));
    });
    if (failure === undefined) continue;
    if (failure.code === 'ENOENT') {
      throw new FileOpError('FILEOP_UNSUPPORTED', srcName, `archive "${srcName}": "${entry}" has extended attributes, and setting them needs setfattr`, { hint: 'apt-get install attr' });
    }
    if (xattrRefusal(failure.stderr) !== undefined) continue;
    throw new FileOpError('FILEOP_IO', srcName, `archive "${srcName}": cannot set extended attribute ${name} of "${entry}": ${failure.stderr.trim()}`);
  }
}
