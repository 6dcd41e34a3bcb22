import { describe, expect, test } from 'vitest';
import { checkListenAddress } from './daemon.js';

describe('checkListenAddress', () => {
  test.for(['unix:///run/kiln/kilnd.sock', '/tmp/k.sock', 'rel/k.sock', ''])('%j is a unix socket', (addr) => {
    expect(() => checkListenAddress(addr, '--addr')).not.toThrow();
  });

  // tcp://… was taken as the relative path "tcp:/127.0.0.1:1234": a directory tcp: and a socket in it.
  test.for(['tcp://127.0.0.1:1234', 'npipe:////./pipe/kiln', 'docker-container://kiln'])('%j is refused (KLN0709)', (addr) => {
    expect(() => checkListenAddress(addr, '--addr')).toThrow(expect.objectContaining({ code: 'KLN0709', message: expect.stringContaining('listens on a unix socket only') }));
  });

  test('KILN_HOST is named when it gave the address', () => {
    expect(() => checkListenAddress('tcp://h:1', 'KILN_HOST')).toThrow(/^KILN_HOST tcp:\/\/h:1: /);
  });
});
