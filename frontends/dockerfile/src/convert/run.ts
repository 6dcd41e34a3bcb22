/**
 * RUN (BuildKit dispatchRun): shell or exec form, heredocs (a lone heredoc is the script; a
 * `#!` heredoc becomes a file mounted at /dev/pipes/), mounts, network and security modes,
 * proxy build args, the progress name and the `RUN |n K=V … # buildkit` history entry.
 */
import { Caps, mkfile, scratch } from '@kiln/llb-core';
import type { MountSpec as LlbMount, NetworkMode, RunOptions } from '@kiln/llb-core';
import { KilnError } from '../errors.js';
import { chompHeredocContent, parseHeredoc } from '../parser/parser.js';
import type { RunCommand } from '../instructions/commands.js';
import { envOf, prefixCommand, processCmdEnv, runNameLex, uppercaseCmd, type ArgValue, type DispatchOptions, type DispatchState } from './dispatch-state.js';
import { commitToHistory } from './image.js';
import { withShell } from './config.js';
import { dispatchRunMounts } from './run-mounts.js';
import { DOCKERFILE_COMMAND, InternalName } from './names.js';


function summarizeHeredoc(doc: string): string {
  const lines = doc.trim().replace(/\r\n/g, '\n').split('\n');
  return (lines[0] ?? '') + (lines.length > 1 ? '...' : '');
}

/** BuildKit's runCommandString: `|n K=V …` for the stage's ARGs, then the command. */
function runCommandString(args: readonly string[], buildArgs: readonly ArgValue[], env: Map<string, string>): string {
  const tmp = buildArgs.map((a) => `${a.key}=${env.get(a.key) ?? a.value ?? ''}`);
  const prefix = tmp.length > 0 ? [`|${tmp.length}`, ...tmp] : [];
  return [...prefix, ...args].join(' ');
}

const networkModes: Readonly<Record<RunCommand['network'], NetworkMode | undefined>> = { default: undefined, none: 'none', host: 'host' };

export function dispatchRun(d: DispatchState, c: RunCommand, sources: readonly (DispatchState | undefined)[], opt: DispatchOptions): void {
  let customname = c.code;
  let args: string[] = [...c.cmdLine];
  const extraMounts: LlbMount[] = [];
  if (c.files.length > 0) {
    if (args.length !== 1 || !c.prependShell) {
      throw new KilnError('KLN0106', `parsing produced an invalid run command: [${args.join(' ')}]`);
    }
    const first = c.files[0] as RunCommand['files'][number];
    if (parseHeredoc(args[0] as string) !== undefined) {
      const data = first.chomp ? chompHeredocContent(first.data) : first.data;
      if (d.image.os !== 'windows' && first.data.startsWith('#!')) {
        const st = scratch()
          .dir('/')
          .file(mkfile(first.name, 0o755, data), { customName: InternalName.inlineDocument });
        extraMounts.push({ target: '/dev/pipes/', source: st, sourcePath: '/', readonly: true });
        args = [`/dev/pipes/${first.name}`];
      } else {
        args = [data];
      }
      customname += ` (${summarizeHeredoc(first.data)})`;
    } else {
      let full = args[0] as string;
      for (const f of c.files) full += `\n${f.data}${f.name}`;
      args = [full];
    }
  }
  if (c.prependShell) args = withShell(d.image, args);
  const env = envOf(d.state);
  const runMounts = dispatchRunMounts(d, c, sources, opt);
  const name = prefixCommand(d, uppercaseCmd(processCmdEnv(runNameLex(opt.shlex), customname, env)), opt.multiPlatform, d.state.getPlatform(), env);
  const network = networkModes[c.network];
  const shm: LlbMount[] = opt.shmSize > 0 && opt.caps.has(Caps.execMountTmpfsSize) ? [{ target: '/dev/shm', source: scratch(), tmpfs: { size: opt.shmSize } }] : [];
  const runOpts: RunOptions = {
    args,
    description: { [DOCKERFILE_COMMAND]: c.code },
    customName: name,
    ...(d.ignoreCache ? { ignoreCache: true } : {}),
    mounts: [...extraMounts, ...runMounts.mounts, ...shm],
    ...(opt.extraHosts.length > 0 ? { extraHosts: opt.extraHosts } : {}),
    ...(opt.ulimits.length > 0 && opt.caps.has(Caps.execMetaUlimit) ? { ulimits: opt.ulimits } : {}),
    ...(opt.cgroupParent !== '' && opt.caps.has(Caps.execMetaCgroupParent) ? { cgroupParent: opt.cgroupParent } : {}),
    ...(runMounts.secrets.length > 0 ? { secrets: runMounts.secrets } : {}),
    ...(runMounts.ssh.length > 0 ? { ssh: runMounts.ssh } : {}),
    ...(opt.proxyEnv === undefined ? {} : { proxy: opt.proxyEnv }),
    ...(network === undefined ? {} : { network }),
    ...(c.security === 'insecure' ? { security: 'insecure' as const } : {}),
  };
  d.state = d.state.run(runOpts).root();
  opt.location(name, [c.location]);
  commitToHistory(d.image, `RUN ${runCommandString(args, d.buildArgs, env)}`, true, true);
}
