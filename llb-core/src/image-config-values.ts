/**
 * Values of an image config that BuildKit's Dockerfile converter checks with Go libraries
 * (EXPOSE ports: go-connections/nat; STOPSIGNAL: moby/sys/signal), shared by the Dockerfile
 * frontend and the kiln/ts DSL so both accept and refuse the same values.
 */

const PROTOS = ['tcp', 'udp', 'sctp'];

/** A port or signal an image config cannot take; the message is the Go library's. */
export class ImageConfigValueError extends Error {
  override readonly name = 'ImageConfigValueError';
  constructor(
    message: string,
    readonly hint: string,
  ) {
    super(message);
  }
}

const PORT_HINT = 'write PORT[/tcp|udp|sctp] or START-END[/proto], e.g. 80/tcp or 8000-8002';
const portError = (msg: string): ImageConfigValueError => new ImageConfigValueError(msg, PORT_HINT);

function parsePort(s: string): number {
  if (!/^\d+$/.test(s)) return NaN;
  const n = Number.parseInt(s, 10);
  return n > 0xffff ? NaN : n;
}

/** nat.ParsePortRange: `START[-END]` (more dashes: the first two parts); NaNs when it does not parse. */
function parsePortRange(s: string): [number, number] {
  const [a, b] = s.split('-', 2);
  const start = parsePort(a ?? '');
  const end = b === undefined ? start : parsePort(b);
  return end < start ? [NaN, NaN] : [start, end];
}

/**
 * go-connections v0.4.0's (BuildKit v0.11's) first step on the IP part of `IP:HOSTPORT:PORT`:
 * Go's net.SplitHostPort(ip + ":"), which takes the brackets off `[v6]` and refuses an IPv6
 * address without them (too many colons), stray brackets and a bracket not closed.
 */
function splitHostPort(ip: string): string {
  const hostport = `${ip}:`;
  const fail = (why: string): ImageConfigValueError => portError(`invalid IP address ${ip}: address ${hostport}: ${why}`);
  const last = hostport.length - 1;
  let host: string;
  let j = 0;
  let k = 0;
  if (hostport.startsWith('[')) {
    const end = hostport.indexOf(']');
    if (end < 0) throw fail("missing ']' in address");
    if (end + 1 !== last) throw fail(hostport[end + 1] === ':' ? 'too many colons in address' : 'missing port in address');
    host = hostport.slice(1, end);
    j = 1;
    k = end + 1;
  } else {
    host = hostport.slice(0, last);
    if (host.includes(':')) throw fail('too many colons in address');
  }
  if (hostport.slice(j).includes('[')) throw fail("unexpected '[' in address");
  if (hostport.slice(k).includes(']')) throw fail("unexpected ']' in address");
  return host;
}

/** Go's net.ParseIP: dotted IPv4 (no leading zeros) or IPv6 (an IPv4 tail allowed), no zone. */
function isGoIp(s: string): boolean {
  return isIPv4(s) || isIPv6(s);
}

// Parsed here, not with node:net: kiln/ts bundles llb-core into build files, and every module a
// bundle imports is one its build code may import() too (the evaluator's resolve hooks allow the
// bundle's own imports), so node:net here let build code reach unix sockets.
const IPV4_PART = /^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])$/;
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

function isIPv4(s: string): boolean {
  const parts = s.split('.');
  return parts.length === 4 && parts.every((p) => IPV4_PART.test(p));
}

/** RFC 4291 text form: eight hex groups, one `::` standing for one or more, an IPv4 tail as two. */
function isIPv6(s: string): boolean {
  let rest = s;
  let tail = 0;
  const lastColon = s.lastIndexOf(':');
  if (lastColon >= 0 && s.slice(lastColon + 1).includes('.')) {
    if (!isIPv4(s.slice(lastColon + 1))) return false;
    rest = s.slice(0, lastColon + 1) + '0';
    tail = 1; // the placeholder group counts one of the tail's two
  }
  const halves = rest.split('::');
  if (halves.length > 2) return false;
  const groups = (h: string): string[] | undefined => {
    if (h === '') return [];
    const g = h.split(':');
    return g.every((x) => HEX_GROUP.test(x)) ? g : undefined;
  };
  const left = groups(halves[0] ?? '');
  const right = halves.length === 2 ? groups(halves[1] ?? '') : [];
  if (left === undefined || right === undefined) return false;
  const n = left.length + right.length + tail;
  return halves.length === 2 ? n <= 7 : n === 8;
}

/**
 * nat.ParsePortSpecs for EXPOSE words (already expanded and split): returns the exposed port keys
 * (`80/tcp`), ranges expanded, de-duplicated and sorted as strings. Throws {@link ImageConfigValueError}.
 */
export function parsePortSpecs(specs: readonly string[]): string[] {
  const out = new Set<string>();
  for (const raw of specs) {
    const parts = raw.split(':');
    const n = parts.length;
    let containerPort = parts[n - 1] ?? '';
    const ip = n >= 3 ? parts.slice(0, n - 2).join(':') : '';
    const hostPort = n >= 2 ? (parts[n - 2] ?? '') : '';
    let proto = 'tcp';
    const pp = containerPort.split('/');
    if (containerPort === '' || (pp[0] ?? '') === '') {
      proto = '';
      containerPort = '';
    } else if (pp.length > 1 && (pp[1] ?? '') !== '') {
      proto = pp[1] ?? '';
      containerPort = pp[0] ?? '';
    } else {
      containerPort = pp[0] ?? '';
    }
    const bareIp = splitHostPort(ip);
    if (bareIp !== '' && !isGoIp(bareIp)) throw portError(`invalid IP address: ${bareIp}`);
    if (containerPort === '') throw portError(`no port specified: ${raw}<empty>`);
    const [start, end] = parsePortRange(containerPort);
    if (Number.isNaN(start) || Number.isNaN(end)) throw portError(`invalid containerPort: ${containerPort}`);
    // Only the container port is exposed, but nat checks a host port (range) all the same.
    if (hostPort !== '') {
      const [hs, he] = parsePortRange(hostPort);
      if (Number.isNaN(hs) || Number.isNaN(he)) throw portError(`invalid hostPort: ${hostPort}`);
      if (end - start !== he - hs && end !== start) throw portError(`invalid ranges specified for container and host Ports: ${containerPort} and ${hostPort}`);
    }
    if (!PROTOS.includes(proto.toLowerCase())) throw portError(`invalid proto: ${proto}`);
    for (let p = start; p <= end; p++) out.add(`${p}/${proto.toLowerCase()}`);
  }
  return [...out].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
}

const SIGNAL_HINT = 'use a name such as SIGTERM or a number';
const SIGNALS: Record<string, number> = {
  ABRT: 6, ALRM: 14, BUS: 7, CHLD: 17, CLD: 17, CONT: 18, FPE: 8, HUP: 1, ILL: 4, INT: 2, IO: 29, IOT: 6, KILL: 9,
  PIPE: 13, POLL: 29, PROF: 27, PWR: 30, QUIT: 3, SEGV: 11, STKFLT: 16, STOP: 19, SYS: 31, TERM: 15, TRAP: 5,
  TSTP: 20, TTIN: 21, TTOU: 22, URG: 23, USR1: 10, USR2: 12, VTALRM: 26, WINCH: 28, XCPU: 24, XFSZ: 25,
  RTMIN: 34, RTMAX: 64,
};
// moby's table names 49 RTMIN+15 only: RTMAX-15 is no name there.
for (let i = 1; i <= 15; i++) SIGNALS[`RTMIN+${i}`] = 34 + i;
for (let i = 1; i <= 14; i++) SIGNALS[`RTMAX-${i}`] = 64 - i;

/**
 * signal.ParseSignal (Linux table): `SIGTERM`, `term`, `15` → the signal number. Throws KLN0405
 * {@link ImageConfigValueError} `Invalid signal: X`.
 */
export function parseSignal(raw: string): number {
  if (/^[+-]?\d+$/.test(raw)) {
    const n = Number.parseInt(raw, 10);
    if (n === 0) throw new ImageConfigValueError(`Invalid signal: ${raw}`, SIGNAL_HINT);
    return n;
  }
  const up = raw.toUpperCase();
  const s = SIGNALS[up.startsWith('SIG') ? up.slice(3) : up];
  if (s === undefined) throw new ImageConfigValueError(`Invalid signal: ${raw}`, SIGNAL_HINT);
  return s;
}
