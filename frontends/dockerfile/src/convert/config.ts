/**
 * Instructions that only change the image config (and maybe the state's env/user): ENV, LABEL,
 * MAINTAINER, ONBUILD, CMD, ENTRYPOINT, HEALTHCHECK, EXPOSE, USER, VOLUME, STOPSIGNAL, SHELL.
 * History texts are BuildKit's, formatted the way Go's fmt prints them.
 */
import { KilnError } from '../errors.js';
import { formatGoDuration } from '@kiln/llb-core';
import { parsePortSpecs, parseSignal } from '../instructions/validate.js';
import type {
  CmdCommand,
  EntrypointCommand,
  EnvCommand,
  ExposeCommand,
  HealthCheckCommand,
  LabelCommand,
  MaintainerCommand,
  OnbuildCommand,
  ShellCommand,
  StopSignalCommand,
  UserCommand,
  VolumeCommand,
} from '../instructions/commands.js';
import { goQuote } from '../shell/lex.js';
import { envOf, type DispatchOptions, type DispatchState } from './dispatch-state.js';
import { addImageEnv, commitToHistory, type DockerImage } from './image.js';

/** Go `fmt.Sprintf("%q", []string)`. */
export function goQuoteList(list: readonly string[]): string {
  return `[${list.map(goQuote).join(' ')}]`;
}

/** Go `fmt.Sprintf("%v", []string)`. */
function goList(list: readonly string[]): string {
  return `[${list.join(' ')}]`;
}

/** Go `%q` of an int: a quoted rune literal. */
function goQuoteRune(n: number): string {
  switch (n) {
    case 7: return "'\\a'";
    case 8: return "'\\b'";
    case 12: return "'\\f'";
    case 10: return "'\\n'";
    case 13: return "'\\r'";
    case 9: return "'\\t'";
    case 11: return "'\\v'";
    case 39: return "'\\''";
    case 92: return "'\\\\'";
    default:
  }
  if (n < 0 || n > 0x10ffff || (n >= 0xd800 && n <= 0xdfff)) return "'\\ufffd'";
  if (n < 0x20 || n === 0x7f) return `'\\x${n.toString(16).padStart(2, '0')}'`;
  const ch = String.fromCodePoint(n);
  if (/^[\p{L}\p{M}\p{N}\p{P}\p{S} ]$/u.test(ch)) return `'${ch}'`;
  if (n < 0x10000) return `'\\u${n.toString(16).padStart(4, '0')}'`;
  return `'\\U${n.toString(16).padStart(8, '0')}'`;
}

/** The default shell of an image OS (BuildKit's defaultShell). */
export function defaultShell(os: string): string[] {
  return os === 'windows' ? ['cmd', '/S', '/C'] : ['/bin/sh', '-c'];
}

/** BuildKit's withShell: the image's SHELL (or the default) plus the joined command line. */
export function withShell(img: DockerImage, args: readonly string[]): string[] {
  const shell = img.config.Shell !== undefined && img.config.Shell.length > 0 ? [...img.config.Shell] : defaultShell(img.os);
  return [...shell, args.join(' ')];
}

export function dispatchEnv(d: DispatchState, c: EnvCommand): void {
  let msg = 'ENV';
  for (const e of c.env) {
    msg += ` ${e.key}=${e.value}`;
    d.state = d.state.addEnv(e.key, e.value);
    d.image.config.Env = addImageEnv(d.image.config.Env, e.key, e.value);
  }
  commitToHistory(d.image, msg, false, false);
}

export function dispatchMaintainer(d: DispatchState, c: MaintainerCommand): void {
  d.image.author = c.maintainer;
  commitToHistory(d.image, `MAINTAINER ${c.maintainer}`, false, false);
}

export function dispatchLabel(d: DispatchState, c: LabelCommand): void {
  let msg = 'LABEL';
  const labels = { ...(d.image.config.Labels ?? {}) };
  for (const l of c.labels) {
    labels[l.key] = l.value;
    msg += ` ${l.key}=${l.value}`;
  }
  d.image.config.Labels = labels;
  commitToHistory(d.image, msg, false, false);
}

export function dispatchOnbuild(d: DispatchState, c: OnbuildCommand): void {
  d.image.config.OnBuild = [...(d.image.config.OnBuild ?? []), c.expression];
}

export function dispatchCmd(d: DispatchState, c: CmdCommand): void {
  const args = c.prependShell ? withShell(d.image, c.cmdLine) : [...c.cmdLine];
  d.image.config.Cmd = args;
  d.image.config.ArgsEscaped = true;
  d.cmdSet = true;
  commitToHistory(d.image, `CMD ${goQuoteList(args)}`, false, false);
}

export function dispatchEntrypoint(d: DispatchState, c: EntrypointCommand): void {
  const args = c.prependShell ? withShell(d.image, c.cmdLine) : [...c.cmdLine];
  d.image.config.Entrypoint = args;
  if (!d.cmdSet) delete d.image.config.Cmd;
  commitToHistory(d.image, `ENTRYPOINT ${goQuoteList(args)}`, false, false);
}

export function dispatchHealthcheck(d: DispatchState, c: HealthCheckCommand): void {
  const h = c.health;
  d.image.config.Healthcheck = {
    Test: [...h.test],
    ...(h.interval ? { Interval: h.interval } : {}),
    ...(h.timeout ? { Timeout: h.timeout } : {}),
    ...(h.startPeriod ? { StartPeriod: h.startPeriod } : {}),
    ...(h.startInterval ? { StartInterval: h.startInterval } : {}),
    ...(h.retries ? { Retries: h.retries } : {}),
  };
  // fmt's %q of BuildKit v0.11.6's *HealthConfig; StartInterval (newer) only when set.
  const durations = [h.interval, h.timeout, h.startPeriod, ...(h.startInterval ? [h.startInterval] : [])]
    .map((ns) => goQuote(formatGoDuration(ns)))
    .join(' ');
  commitToHistory(d.image, `HEALTHCHECK &{${goQuoteList(h.test)} ${durations} ${goQuoteRune(h.retries)}}`, false, false);
}

export function dispatchExpose(d: DispatchState, c: ExposeCommand, opt: DispatchOptions): void {
  const env = envOf(d.state);
  const words = c.ports.flatMap((p) => opt.shlex.processWords(p, env));
  const ports = parsePortSpecs(words);
  const exposed = { ...(d.image.config.ExposedPorts ?? {}) };
  for (const p of ports) exposed[p] = {};
  d.image.config.ExposedPorts = exposed;
  commitToHistory(d.image, `EXPOSE map[${ports.map((p) => `${p}:{}`).join(' ')}]`, false, false);
}

/** USER; `commit` is false when applied from the base image config. */
export function dispatchUser(d: DispatchState, c: Pick<UserCommand, 'user'>, commit: boolean): void {
  d.state = d.state.user(c.user);
  d.image.config.User = c.user;
  if (commit) commitToHistory(d.image, `USER ${c.user}`, false, false);
}

export function dispatchVolume(d: DispatchState, c: VolumeCommand): void {
  const volumes = { ...(d.image.config.Volumes ?? {}) };
  for (const v of c.volumes) {
    // The parser rejects a blank VOLUME word, but `VOLUME $UNSET` is blank only after
    // expansion; BuildKit's dispatchVolume checks again (dockerfile2llb/convert.go).
    if (v === '') {
      throw new KilnError('KLN0405', 'VOLUME specified can not be an empty string', { hint: 'the variable in this VOLUME expanded to nothing: give it a value (ARG NAME=default or --build-arg)' });
    }
    volumes[v] = {};
  }
  d.image.config.Volumes = volumes;
  commitToHistory(d.image, `VOLUME ${goList(c.volumes)}`, false, false);
}

export function dispatchStopSignal(d: DispatchState, c: StopSignalCommand): void {
  parseSignal(c.signal);
  d.image.config.StopSignal = c.signal;
  commitToHistory(d.image, `STOPSIGNAL ${c.signal}`, false, false);
}

export function dispatchShell(d: DispatchState, c: ShellCommand): void {
  d.image.config.Shell = [...c.shell];
  commitToHistory(d.image, `SHELL ${goList(c.shell)}`, false, false);
}
