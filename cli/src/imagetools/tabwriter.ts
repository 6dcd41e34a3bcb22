/**
 * The output of Go's `text/tabwriter` as buildx configures it (`NewWriter(w, 0, 0, 1, ' ', 0)`)
 * for rows of one tab-terminated cell and a trailing text: each block of rows pads its cells with
 * spaces to the widest cell plus one. An empty cell is padded too (buildx's blank separator rows
 * are spaces), and nothing is trimmed.
 */
export function tabBlock(rows: ReadonlyArray<readonly [cell: string, rest: string]>): string {
  const width = Math.max(0, ...rows.map(([c]) => c.length)) + 1;
  return rows.map(([c, rest]) => `${c.padEnd(width)}${rest}\n`).join('');
}
