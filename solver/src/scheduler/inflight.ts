/**
 * The vertices that run now (or are about to), by the merge id of the output they produce
 * (BuildKit's edgeIndex in solver/index.go): a vertex whose cache key turns out to equal one of
 * these takes that run's result instead of running itself. An owner is in the index from the
 * moment it decides to run until its run settles ({@link InflightIndex.delete}), so the index
 * holds only what is in flight.
 */
export class InflightIndex<T extends object> {
  readonly #owners = new Map<string, T>();
  /** The ids each owner holds (a vertex with several outputs may hold several). */
  readonly #ids = new Map<T, string[]>();

  /** The owner of `id`, if a run of it is in flight. */
  get(id: string): T | undefined {
    return this.#owners.get(id);
  }

  /** Makes `owner` the run of `id` unless another one already is (the first run keeps it). */
  add(id: string, owner: T): void {
    if (this.#owners.has(id)) return;
    this.#owners.set(id, owner);
    const ids = this.#ids.get(owner);
    if (ids === undefined) this.#ids.set(owner, [id]);
    else ids.push(id);
  }

  /** Removes every id `owner` holds (its run settled, or nobody needs it any more). */
  delete(owner: T): void {
    const ids = this.#ids.get(owner);
    if (ids === undefined) return;
    this.#ids.delete(owner);
    for (const id of ids) if (this.#owners.get(id) === owner) this.#owners.delete(id);
  }

  /** Number of ids in flight. */
  get size(): number {
    return this.#owners.size;
  }
}
