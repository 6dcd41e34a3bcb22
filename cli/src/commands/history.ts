import { Option, type Command } from 'commander';
import { createRenderer } from '@kiln/solver';
import type { CliIo } from '../io.js';
import { kilnRoot } from '../engine/cli-support.js';
import { HistoryError } from '../history/errors.js';
import { formatInspect, formatTable, jsonView, lsOrder, matches, parseFilters, type OwnerCheck } from '../history/format.js';
import { ownerAlive, shownStatus } from '../history/record.js';
import { eventsOfRawJson, logBytes, logLines } from '../history/replay.js';
import { HistoryStore, type StoredRecord } from '../history/store.js';

const collect = (v: string, prev: string[]): string[] => [...prev, v];

/** What the history commands are given (tests inject the clock and the liveness check). */
export interface HistoryDeps {
  readonly now?: () => number;
  readonly alive?: OwnerCheck;
}

/**
 * `kiln history ls|inspect|logs|rm`: the builds recorded under the kiln root, as buildx history
 * shows BuildKit's. These only read and remove files under `<root>/history/`, never the engine,
 * so they run beside a `kiln daemon` that serves the root (whose builds record there too).
 */
export function registerHistory(program: Command, io: CliIo, deps: HistoryDeps = {}): void {
  const now = deps.now ?? Date.now;
  const alive = deps.alive ?? ownerAlive;
  const store = (root: string | undefined): HistoryStore => new HistoryStore(kilnRoot(root, io).path);
  const history = program.command('history').description('list, inspect, replay and remove the records of past builds (kept: the last 50, and every build of the last 48 h)');
  history
    .command('ls')
    .description('list build records, newest first')
    .addOption(new Option('--format <format>', 'table or json (one object per line)').default('table'))
    .option('--no-trunc', 'do not shorten long names')
    .option('--filter <filter>', 'status=running|completed|error|canceled, status!=…, name=NAME (repeatable)', collect, [])
    .option('--root <dir>', 'kiln state directory')
    .action(async (flags: { format: string; trunc: boolean; filter: string[]; root?: string }) => {
      const format = checkFormat(flags.format, ['table', 'json']);
      const filters = parseFilters(flags.filter);
      const recs = lsOrder((await store(flags.root).list()).map((s) => s.record).filter((r) => matches(r, filters, alive)), alive);
      if (format === 'json') for (const r of recs) io.stdout.write(`${JSON.stringify(jsonView(r, alive))}\n`);
      else io.stdout.write(formatTable(recs, { now: now(), noTrunc: !flags.trunc, alive }));
    });
  history
    .command('inspect')
    .description('show one build: its inputs, status, times, steps, exports and error')
    .argument('[ref]', 'BUILD ID (or a unique prefix), or ^N: the Nth build before the latest (default: the latest)')
    .addOption(new Option('--format <format>', 'pretty or json').default('pretty'))
    .option('--root <dir>', 'kiln state directory')
    // buildx's `history inspect attachment REF [DIGEST] --type …` is answered below, not with
    // commander's "too many arguments" / "unknown option '--type'"
    .allowExcessArguments(true)
    .allowUnknownOption(true)
    .action(async (ref: string | undefined, flags: { format: string; root?: string }, cmd: Command) => {
      if (ref === 'attachment') {
        throw new HistoryError('KLN0931', 'kiln history has no attachments: provenance and SBOM attestations are not kept in the record', {
          hint: 'they travel with the image: kiln imagetools inspect REF shows an exported image\'s attestation manifests',
        });
      }
      const option = cmd.args.find((a) => a.startsWith('-'));
      if (option !== undefined) throw new HistoryError('KLN0931', `unknown option "${option}" of kiln history inspect`, { hint: 'kiln history inspect [REF] [--format pretty|json] [--root DIR]' });
      const extra = cmd.args[1];
      if (extra !== undefined) throw new HistoryError('KLN0931', `kiln history inspect takes one BUILD ID (got also "${extra}")`, { hint: 'kiln history inspect [REF] [--format pretty|json] [--root DIR]' });
      const format = checkFormat(flags.format, ['pretty', 'json']);
      const { record } = await store(flags.root).find(ref);
      io.stdout.write(format === 'json' ? `${JSON.stringify(jsonView(record, alive), null, 2)}\n` : formatInspect(record, { now: now(), alive }));
    });
  history
    .command('logs')
    // `kiln history --help` says "replay": `kiln history replay` was an unknown command
    .alias('replay')
    .description("replay a build's progress log as the build printed it")
    .argument('[ref]', 'BUILD ID (or a unique prefix), or ^N (default: the latest)')
    .addOption(new Option('--progress <mode>', 'plain or rawjson').default('plain'))
    .option('--root <dir>', 'kiln state directory')
    .action(async (ref: string | undefined, flags: { progress: string; root?: string }) => {
      const mode = checkFormat(flags.progress, ['plain', 'rawjson'], '--progress');
      const s = store(flags.root);
      const found = await s.find(ref);
      await replay(s, found, mode, io, alive);
    });
  // buildx's other history commands: a refusal that says what kiln has instead of "unknown command"
  const buildxOnly: Readonly<Record<string, string>> = {
    export: 'a Docker Desktop build bundle',
    import: 'importing Docker Desktop build bundles',
    open: 'opening a build in Docker Desktop',
    trace: 'OpenTelemetry traces of a build',
  };
  for (const [name, what] of Object.entries(buildxOnly)) {
    history
      .command(name, { hidden: true })
      .allowExcessArguments(true)
      .allowUnknownOption(true)
      .action(() => {
        throw new HistoryError('KLN0931', `kiln history ${name} is not supported (${what}, as buildx has it)`, {
          hint: 'kiln history inspect REF --format json and kiln history logs REF give a build\'s record and its progress log',
        });
      });
  }
  history
    .command('rm')
    .description('remove build records')
    .argument('[refs...]', 'BUILD IDs (or unique prefixes), or ^N')
    .option('--all', 'remove every record (except builds still running)')
    .option('--root <dir>', 'kiln state directory')
    .action(async (refs: string[], flags: { all?: boolean; root?: string }) => {
      const s = store(flags.root);
      if (flags.all === true && refs.length > 0) throw new HistoryError('KLN0931', 'pass build IDs or --all, not both');
      if (flags.all !== true && refs.length === 0) throw new HistoryError('KLN0931', 'kiln history rm needs a BUILD ID', { hint: 'pass one or more BUILD IDs or ^N (see kiln history ls), or --all' });
      // Every REF is resolved first: one unknown REF removes nothing (^N means the same for each).
      const targets = flags.all === true ? await s.list() : await Promise.all(refs.map((r) => s.find(r)));
      // --all: files that hold no readable record (torn, foreign) go too; no build writes them.
      if (flags.all === true) for (const f of await s.unreadable()) await s.remove(f);
      for (const t of targets) {
        if (shownStatus(t.record, alive) !== 'running') continue;
        if (flags.all === true) io.stderr.write(`kept ${t.record.ref}: the build is still running\n`);
        else throw new HistoryError('KLN0932', `build ${t.record.ref} is still running`, { hint: 'remove its record once it has ended (or Ctrl-C it)' });
      }
      const gone = new Set<string>();
      for (const t of targets) {
        if (shownStatus(t.record, alive) === 'running' || gone.has(t.record.ref)) continue;
        await s.remove(t.files);
        gone.add(t.record.ref);
        io.stdout.write(`${t.record.ref}\n`);
      }
    });
}

function checkFormat<T extends string>(value: string, allowed: readonly T[], flag = '--format'): T {
  if (!(allowed as readonly string[]).includes(value)) throw new HistoryError('KLN0931', `invalid ${flag} "${value}"`, { hint: `use ${allowed.join(' or ')}` });
  return value as T;
}

/** Writes the stored log to stdout: as stored (rawjson), or through the plain renderer. */
async function replay(s: HistoryStore, found: StoredRecord, mode: 'plain' | 'rawjson', io: CliIo, alive: OwnerCheck): Promise<void> {
  const { record, files } = found;
  const status = shownStatus(record, alive);
  if (status === 'running') throw new HistoryError('KLN0932', `build ${record.ref} is still running: its log is stored when it ends`, { hint: 'watch it in the build\'s own progress output, or run kiln history logs again once it has ended' });
  if (record.log === undefined) {
    const why =
      status === 'interrupted'
        ? `kiln (pid ${record.owner?.pid ?? '?'}) ended before the build did`
        : record.steps.total === 0
          ? 'the build printed no progress'
          : 'it could not be written when the build ended (a full disk: the build warned)';
    throw new HistoryError('KLN0933', `build ${record.ref} has no stored log: ${why}`, { hint: 'kiln history inspect shows what was recorded' });
  }
  const path = s.logPath(files);
  // A long log is written as stdout takes it (a pipe to less), not buffered whole.
  const out = io.stdout as { write(c: string | Uint8Array): unknown; once?(event: 'drain', listener: () => void): unknown };
  let full = false;
  const write = (c: string | Uint8Array): void => void (full = out.write(c) === false || full);
  const drained = async (): Promise<void> => {
    if (full && out.once !== undefined) await new Promise<void>((resolve) => out.once?.('drain', resolve));
    full = false;
  };
  try {
    if (mode === 'rawjson') {
      for await (const chunk of logBytes(path)) {
        write(chunk);
        await drained();
      }
    } else {
      const renderer = createRenderer('plain', { write });
      for await (const line of logLines(path)) {
        for (const ev of eventsOfRawJson(line)) renderer.handle(ev);
        await drained();
      }
      renderer.finish();
    }
  } catch (cause) {
    if ((cause as { code?: unknown }).code === 'KLN_CLI_STDOUT') throw cause;
    throw new HistoryError('KLN0933', `cannot read the log of build ${record.ref}: ${(cause as NodeJS.ErrnoException).code === 'ENOENT' ? 'the file is gone' : cause instanceof Error ? cause.message : String(cause)}`, {
      hint: 'kiln history inspect still shows the record; kiln history rm removes it',
      cause,
    });
  }
  if (record.log.truncated) io.stderr.write(`WARNING: the log of build ${record.ref} was cut at ${record.log.limit} bytes (compressed): later step output was not kept\n`);
}
