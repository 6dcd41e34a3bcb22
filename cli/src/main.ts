import { Command } from 'commander';

/** Runs the kiln command line and resolves to the process exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const program = new Command('kiln').description('Build container images from LLB, Dockerfiles and TypeScript.');
  await program.parseAsync([...argv]);
  return 0;
}
