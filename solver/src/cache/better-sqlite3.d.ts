// The subset of better-sqlite3's API the cache store uses (the package ships no types and
// @types/better-sqlite3 is not installed; this keeps the dependency surface explicit).
declare module 'better-sqlite3' {
  namespace BetterSqlite3 {
    interface RunResult {
      changes: number;
      lastInsertRowid: number | bigint;
    }
    interface Statement {
      run(...params: unknown[]): RunResult;
      get(...params: unknown[]): unknown;
      all(...params: unknown[]): unknown[];
      /** Rows one at a time; leaving the loop early ends the statement. */
      iterate(...params: unknown[]): IterableIterator<unknown>;
    }
    interface Database {
      prepare(sql: string): Statement;
      exec(sql: string): Database;
      pragma(sql: string, opts?: { simple?: boolean }): unknown;
      transaction<A extends unknown[], R>(fn: (...args: A) => R): (...args: A) => R;
      close(): void;
      readonly open: boolean;
    }
  }
  const Database: new (filename: string, options?: { readonly?: boolean; timeout?: number }) => BetterSqlite3.Database;
  export = Database;
}
