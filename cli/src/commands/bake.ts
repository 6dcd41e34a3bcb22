import { Option, type Command } from 'commander';
import type { CliIo } from '../io.js';
import { bakeCommand, type BakeFlags } from '../bake/run.js';

const collect = (v: string, prev: string[]): string[] => [...prev, v];

/**
 * Registers `kiln bake [TARGET|GROUP…]`: buildx bake's targets from docker-bake.hcl / .json / Compose,
 * built at once in one engine (see docs/bake.md).
 */
export function registerBake(program: Command, io: CliIo): void {
  program
    .command('bake')
    .description('build the targets of a bake file (docker-bake.hcl/.json, compose.yaml) at once, as docker buildx bake')
    .argument('[targets...]', 'targets or groups to build (globs allowed); default: the "default" group or target. A first git or http(s) URL is a remote definition (the files are read from it; a second URL is BAKE_CMD_CONTEXT)')
    .option('-f, --file <file>', 'bake file (repeatable; - reads stdin; with a remote definition a path inside it, cwd://FILE a local file); default: compose.yaml, compose.yml, docker-compose.yml, docker-compose.yaml, docker-bake.json, docker-bake.hcl, docker-bake.override.json, docker-bake.override.hcl', collect, [])
    .option('--set <target.key=value>', 'override a target value, e.g. app.tags=app:dev, *.platform=linux/amd64, app.args.V=1; key+=value appends (repeatable)', collect, [])
    .option('--var <name=value>', 'set a variable (over its default and the environment) (repeatable)', collect, [])
    .option('--print', 'print the resolved definition as JSON and build nothing')
    .option('--list <what>', 'list the targets (and groups) or the variables: targets|variables, or type=targets|variables,format=table|json')
    .option('--metadata-file <file>', 'write each target\'s result metadata (image digests, names) as JSON, keyed by target')
    .option('--allow <entitlement>', 'grant an entitlement to every target: security.insecure, network.host (repeatable)', collect, [])
    .option('--call <request>', 'what the frontend does for every target: build, check (or lint), outline, targets or subrequests.describe (,format=json: the frontend\'s JSON)')
    .option('--check', 'run the build checks of every target (--call=check); exit 1 if any finds something')
    .option('--provenance [value]', 'provenance attestation for every target (--set *.attest=type=provenance,VALUE)')
    .option('--sbom [value]', 'SBOM attestation for every target (--set *.attest=type=sbom,VALUE)')
    .option('--execution <mode>', 'what a failed target does to the others: fail-fast (cancel them; default), defer-error (let the others finish), defer-output (export nothing until every target solved)', 'fail-fast')
    .option('--push', 'push the images (--set *.push=true)')
    .option('--load', 'not applicable: kiln has no Docker daemon (fails with a hint; tags alone keep the image in kiln\'s store)')
    .option('--no-cache', 'do not use the cache (--set *.no-cache=true)')
    .option('--pull', 'always look up base images in their registry (--set *.pull=true)')
    .addOption(new Option('--progress <mode>', 'progress output').choices(['auto', 'plain', 'tty', 'rawjson', 'quiet']).default('auto'))
    .option('--debug', 'show stack traces for errors')
    .option('--root <dir>', 'kiln state directory (default: $KILN_ROOT, /var/lib/kiln for root)')
    .action(async (targets: string[], flags: BakeFlags, cmd: Command) => {
      const debug = cmd.optsWithGlobals<{ debug?: boolean }>().debug === true;
      await bakeCommand(targets, flags, io, debug);
    });
}
