import { rootCertificates } from 'node:tls';
import { describe, expect, test } from 'vitest';
import { tlsConnectOptions } from './undici.js';

const PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';

describe('tlsConnectOptions', () => {
  test('no CA: Node picks its default store (rootCertificates and NODE_EXTRA_CA_CERTS)', () => {
    expect(tlsConnectOptions(undefined)).toEqual({ rejectUnauthorized: true });
    expect(tlsConnectOptions({ insecure: true })).toEqual({ rejectUnauthorized: false });
  });

  test('a ca is added to the system CAs (BuildKit appends to the system pool); with caOnly it replaces them (AWS_CA_BUNDLE)', () => {
    const added = tlsConnectOptions({ ca: [PEM] }).ca ?? [];
    expect(added.slice(0, rootCertificates.length)).toEqual(rootCertificates);
    expect(added.at(-1)).toBe(PEM);
    expect(tlsConnectOptions({ ca: [PEM], caOnly: true }).ca).toEqual([PEM]);
  });
});
