/**
 * kiln's launcher: a POSIX sh script at `/cnb/lifecycle/launcher`, generated at export. It is
 * the `launcher=kiln` of buildpacks.md: the process type comes from `basename $0`
 * (`/cnb/process/<type>` are symlinks to it), user arguments replace the process's `args`,
 * the launch env operations are precomputed from the layers and written as quoted literals
 * (never `eval`'d), exec.d programs of the launch layers run with fd 3 and may set simple
 * `K = "v"` lines, then it changes to the working directory and execs the command.
 */
import type { ProcessType } from './descriptors.js';
import type { EnvOp } from './env.js';
import { BuildpacksError } from './errors.js';
import { Paths, shQuote } from './wire.js';

/** What the launcher script is generated from. */
export interface LauncherSpec {
  readonly processes: readonly ProcessType[];
  /** The default process type (`launcher` without arguments runs it). */
  readonly defaultType?: string;
  /**
   * Launch env ops in order: launch layers' root dirs, `env/`, `env.launch/`, and
   * `env.launch/<type>/` (ops with a `process` apply to that type only, at their place).
   */
  readonly env: readonly EnvOp[];
  /** Launch layer directories in order, whose `exec.d/` (and `exec.d/<type>/`) programs run before the process. */
  readonly layerDirs: readonly string[];
  /** The app directory processes start in unless they name one (default `/workspace`). */
  readonly appDir?: string;
}

const NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

function opLine(o: EnvOp): string {
  const line = opCall(o);
  return o.process === undefined ? line : `[ "$_type" != ${shQuote(o.process)} ] || ${line}`;
}

function opCall(o: EnvOp): string {
  if (!NAME_RE.test(o.name)) throw new BuildpacksError('KLN0905', `environment variable name ${JSON.stringify(o.name)} is not valid for the launcher`);
  switch (o.op) {
    case 'override':
      return `_set ${o.name} ${shQuote(o.value)}`;
    case 'default':
      return `_default ${o.name} ${shQuote(o.value)}`;
    case 'append':
    case 'prepend':
      return `_${o.op} ${o.name} ${shQuote(o.value)} ${shQuote(o.delim ?? '')}`;
  }
}

const PRELUDE = `_set() { export "$1=$2"; }
# $1 is always a literal variable name checked at export ([A-Za-z_][A-Za-z0-9_]*): only names are eval'd
_get() { eval "_c=\\\${$1-}"; }
_default() { _get "$1"; [ -n "$_c" ] || export "$1=$2"; }
_append() { _get "$1"; if [ -n "$_c" ]; then export "$1=$_c$3$2"; else export "$1=$2"; fi; }
_prepend() { _get "$1"; if [ -n "$_c" ]; then export "$1=$2$3$_c"; else export "$1=$2"; fi; }
_execd() {
  [ -f "$1" ] && [ -x "$1" ] || return 0
  _t=$(mktemp) || exit 1
  if ! "$1" 3>"$_t"; then echo "launcher: exec.d program $1 failed" >&2; rm -f "$_t"; exit 1; fi
  while IFS= read -r _l || [ -n "$_l" ]; do
    case $_l in *=*) ;; *) continue ;; esac
    _k=$(printf %s "\${_l%%=*}" | tr -d ' \\t')
    _v=\${_l#*=}
    _v=\${_v#"\${_v%%[! ]*}"}
    _v=\${_v%"\${_v##*[! ]}"}
    case $_v in \\"*\\") _v=\${_v#\\"}; _v=\${_v%\\"} ;; \\'*\\') _v=\${_v#\\'}; _v=\${_v%\\'} ;; esac
    case $_k in '' | [0-9]* | *[!A-Za-z0-9_]*) continue ;; esac
    export "$_k=$_v"
  done <"$_t"
  rm -f "$_t"
}
`;

/** The launcher script text. */
export function launcherScript(spec: LauncherSpec): string {
  const lines: string[] = ['#!/bin/sh', '# kiln launcher (kiln/buildpacks): generated at export; every value below is a literal.', PRELUDE];
  lines.push('_type=${0##*/}');
  const known = spec.processes.map((p) => p.type);
  // `launcher` itself: no arguments runs the default process; a process type as first argument
  // runs it with the rest as its arguments; anything else is a command to run in the app env.
  lines.push('if [ "$_type" = launcher ]; then');
  lines.push('  case "${1-}" in');
  if (known.length > 0) lines.push(`    ${known.map(shQuote).join(' | ')}) _type=$1; shift ;;`);
  lines.push(`    '') _type=${shQuote(spec.defaultType ?? '')} ;;`);
  // lifecycle: `launcher -- CMD ARGS` runs CMD directly (kiln runs every command directly)
  lines.push('    --) shift; _type= ;;');
  lines.push('    *) _type= ;;');
  lines.push('  esac');
  lines.push('fi');
  for (const o of spec.env) lines.push(opLine(o));
  lines.push(`_dir=${shQuote(spec.appDir ?? Paths.workspace)}`);
  lines.push('case "$_type" in');
  for (const p of spec.processes) {
    lines.push(`  ${shQuote(p.type)})`);
    if (p.args.length > 0) lines.push(`    if [ $# -eq 0 ]; then set -- ${p.args.map(shQuote).join(' ')}; fi`);
    lines.push(`    set -- ${p.command.map(shQuote).join(' ')} "$@"`);
    if (p.workingDir !== undefined) lines.push(`    _dir=${shQuote(p.workingDir)}`);
    lines.push('    ;;');
  }
  lines.push(`  '') if [ $# -eq 0 ]; then echo "launcher: no default process type; pass a process type or a command" >&2; exit 1; fi ;;`);
  lines.push(`  *) echo "launcher: unknown process type $_type" >&2; exit 1 ;;`);
  lines.push('esac');
  for (const d of spec.layerDirs) {
    lines.push(`for _x in ${shQuote(d)}/exec.d/*; do _execd "$_x"; done`);
    lines.push(`[ -z "$_type" ] || for _x in ${shQuote(d)}/exec.d/"$_type"/*; do _execd "$_x"; done`);
  }
  lines.push('cd "$_dir" || exit 1');
  lines.push('exec "$@"');
  return `${lines.join('\n')}\n`;
}

/** `/cnb/process/<type>`: the symlinks that select a process by name. */
export const processLink = (type: string): string => `${Paths.processDir}/${type}`;
