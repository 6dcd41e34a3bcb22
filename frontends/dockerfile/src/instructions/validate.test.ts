import { describe, expect, it } from 'vitest';
import { KilnError } from '../errors.js';
import { parsePortSpecs, parseSignal } from './validate.js';

describe('parsePortSpecs', () => {
  it('expands ranges, defaults to tcp, sorts as strings', () => {
    expect(parsePortSpecs(['80', '443/tcp', '53/UDP', '8000-8002', '80/tcp'])).toEqual(['443/tcp', '53/udp', '80/tcp', '8000/tcp', '8001/tcp', '8002/tcp']);
    expect(parsePortSpecs(['127.0.0.1:8080:80/sctp'])).toEqual(['80/sctp']);
  });
  it.for(['', 'abc', '80/ftp', '9-3', '70000'])('rejects %j', (p) => {
    expect(() => parsePortSpecs([p])).toThrow(KilnError);
  });
});

describe('parseSignal', () => {
  it('accepts names with or without SIG and numbers', () => {
    expect([parseSignal('SIGTERM'), parseSignal('kill'), parseSignal('9'), parseSignal('SIGRTMIN+3')]).toEqual([15, 9, 9, 37]);
  });
  it('rejects unknown names and 0', () => {
    expect(() => parseSignal('SIGFOO')).toThrow('Invalid signal: SIGFOO');
    expect(() => parseSignal('0')).toThrow('Invalid signal: 0');
  });
});
