import type { Definition, ResolveImageConfigOptions, ResolvedImageConfig } from '@kiln/llb-core';
import type { BackendSolveOptions } from '@kiln/gateway';
import { SolverBackend } from './backend.js';
import type { ResolvedImage } from './provenance.js';
import type { SnapshotRef } from './snapshot-ref.js';

/**
 * The build's {@link SolverBackend} that also remembers, for provenance, every Definition a
 * frontend solved (by the ref it became) and every image it resolved, as BuildKit's
 * provenanceBridge records the requests of a build. Used only when an attestation is asked for.
 */
export class RecordingBackend extends SolverBackend {
  readonly #definitions = new Map<SnapshotRef, Definition>();
  readonly #resolved: ResolvedImage[] = [];

  override async solve(definition: Definition, options: BackendSolveOptions = {}): Promise<SnapshotRef> {
    const ref = await super.solve(definition, options);
    // As solved: a source the policy converted is recorded as what was used.
    this.#definitions.set(ref, this.converted(definition));
    return ref;
  }

  override async resolveImageConfig(ref: string, options: ResolveImageConfigOptions): Promise<ResolvedImageConfig> {
    const r = await super.resolveImageConfig(ref, options);
    this.#resolved.push({ ref: r.ref ?? ref, ...(options.platform === undefined ? {} : { platform: options.platform }), digest: r.digest });
    return r;
  }

  /** The Definition a ref was solved from (BuildKit's ResultProxy.Definition). */
  definitionOf(ref: SnapshotRef): Definition | undefined {
    return this.#definitions.get(ref);
  }

  /**
   * The Definitions behind one result: all solves but the other results of the build (another
   * platform's), as BuildKit merges into a result's capture every ref the frontend solved that is
   * not itself a result.
   */
  definitionsFor(result: SnapshotRef, results: readonly SnapshotRef[]): readonly Definition[] {
    const others = new Set(results.filter((r) => r !== result));
    return [...this.#definitions].filter(([ref]) => !others.has(ref)).map(([, d]) => d);
  }

  get resolvedImages(): readonly ResolvedImage[] {
    return this.#resolved;
  }
}
