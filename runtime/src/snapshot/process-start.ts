import { readFileSync, readlinkSync } from 'node:fs';

let bootId: string | undefined | null = null;

/**
 * When process `pid` started, as `<boot id>:<start time in clock ticks since boot>` from /proc,
 * or undefined when /proc cannot tell (not Linux, hidepid, the process is gone). Two processes
 * that held the same pid one after the other differ in it, so a pid recorded with it names one
 * process, not whichever holds that pid now. Assumes /proc is this pid namespace's.
 */
export function processStart(pid: number): string | undefined {
  if (bootId === null) {
    try {
      bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    } catch {
      bootId = undefined;
    }
  }
  if (bootId === undefined || !Number.isInteger(pid) || pid <= 0) return undefined;
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // Fields after the command name (which may hold spaces and parentheses): state is field 3,
  // starttime field 22.
  const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  return start === undefined || !/^\d+$/.test(start) ? undefined : `${bootId}:${start}`;
}

let own: string | undefined | null = null;

/** {@link processStart} of this process (read once). */
export function ownProcessStart(): string | undefined {
  if (own === null) own = processStart(process.pid);
  return own;
}

let ownNs: string | undefined | null = null;

/**
 * This process's pid namespace (`pid:[<inode>]`), or undefined when /proc cannot tell. A pid
 * names a process only inside its namespace: a pid recorded in another one (a kiln in another
 * container sharing the root) says nothing about liveness here.
 */
export function ownPidNamespace(): string | undefined {
  if (ownNs === null) {
    try {
      ownNs = readlinkSync('/proc/self/ns/pid');
    } catch {
      ownNs = undefined;
    }
  }
  return ownNs;
}
