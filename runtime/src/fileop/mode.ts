import { FileOpError } from './errors.js';

/** A parsed chmod-style mode: applies to an existing mode (with the file's directory-ness for `X`). */
export type ModeSet = (mode: number, isDir: boolean) => number;

const WHO_BITS: Readonly<Record<string, number>> = { u: 0o4700, g: 0o2070, o: 0o1007 };

/**
 * Parses a chmod-style mode string as `COPY --chmod` takes it: octal (`755`, `0644`) or symbolic
 * clauses separated by commas, `[ugoa]*([-+=]([rwxXst]*|[ugo]))+` (`u+x`, `go-w`, `a=rX,u+w`).
 * Without a who-letter the clause applies to all (the umask is not consulted).
 */
export function parseModeStr(modeStr: string): ModeSet {
  const s = modeStr.trim();
  if (/^[0-7]{1,4}$/.test(s)) {
    const n = parseInt(s, 8);
    return (mode) => (mode & ~0o7777) | n;
  }
  const bad = (): FileOpError =>
    new FileOpError('FILEOP_INVALID_MODE', modeStr, `invalid mode "${modeStr}": expected octal digits or clauses like u+x,go-w`);
  const clauses = s.split(',');
  const ops: Array<(mode: number, isDir: boolean) => number> = [];
  for (const clause of clauses) {
    const m = /^([ugoa]*)((?:[-+=](?:[ugo]|[rwxXst]*))+)$/.exec(clause);
    if (m === null) throw bad();
    const whoStr = m[1] === '' || m[1] === undefined ? 'a' : m[1];
    let who = 0;
    for (const w of whoStr) who |= w === 'a' ? 0o7777 : (WHO_BITS[w] ?? 0);
    const actions = (m[2] ?? '').match(/[-+=](?:[ugo]|[rwxXst]*)/g) ?? [];
    for (const act of actions) {
      const op = act[0];
      const perm = act.slice(1);
      ops.push((mode, isDir) => {
        let bits = 0;
        if (perm === 'u' || perm === 'g' || perm === 'o') {
          // Copy the permissions of one class to the selected classes.
          const shift = perm === 'u' ? 6 : perm === 'g' ? 3 : 0;
          const v = (mode >> shift) & 7;
          bits = (v << 6) | (v << 3) | v;
        } else {
          for (const p of perm) {
            if (p === 'r') bits |= 0o444;
            else if (p === 'w') bits |= 0o222;
            else if (p === 'x') bits |= 0o111;
            else if (p === 'X') {
              if (isDir || (mode & 0o111) !== 0) bits |= 0o111;
            } else if (p === 's') bits |= 0o6000;
            else if (p === 't') bits |= 0o1000;
          }
        }
        bits &= who;
        if (op === '+') return mode | bits;
        if (op === '-') return mode & ~bits;
        // '=': clear the selected classes' rwx (and their special bits), then set.
        const clear = who & 0o7777;
        return (mode & ~clear) | bits;
      });
    }
  }
  return (mode, isDir) => ops.reduce((m, f) => f(m, isDir), mode);
}
