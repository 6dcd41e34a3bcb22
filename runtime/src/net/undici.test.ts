import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rootCertificates } from 'node:tls';
import { describe, expect, test } from 'vitest';
import { makeTestPki } from '../../test/helpers/pki.js';
import { trustedSecureContext } from './trust.js';
import { tlsConnectOptions } from './undici.js';

describe('tlsConnectOptions', () => {
  test("kiln's trust (a secureContext built once) even without settings: Node's default would be its bundled CAs only", () => {
    expect(tlsConnectOptions(undefined)).toEqual({ secureContext: trustedSecureContext(), rejectUnauthorized: true });
    expect(tlsConnectOptions({ insecure: true })).toEqual({ secureContext: trustedSecureContext(), rejectUnauthorized: false });
  });

  test("a host's ca, caOnly and keypairs are in the context of its settings object", () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-undici-'));
    try {
      const pki = makeTestPki(dir);
      const settings = { ca: [readFileSync(pki.ca, 'utf8')], keypairs: [{ cert: readFileSync(pki.clientCert, 'utf8'), key: readFileSync(pki.clientKey, 'utf8') }] };
      expect(tlsConnectOptions(settings)).toEqual({ secureContext: trustedSecureContext(settings), rejectUnauthorized: true });
      // A key that is not the certificate's: no context; each connection gets the options and fails as before.
      const mismatched = { ca: [readFileSync(pki.ca, 'utf8')], keypairs: [{ cert: readFileSync(pki.clientCert, 'utf8'), key: readFileSync(pki.serverKey, 'utf8') }] };
      const o = tlsConnectOptions(mismatched);
      expect(o.secureContext).toBeUndefined();
      expect(o.ca?.slice(0, rootCertificates.length)).toEqual(rootCertificates);
      expect(o.ca?.at(-1)).toBe(mismatched.ca[0]);
      expect(o.key).toEqual([mismatched.keypairs[0]?.key]);
      expect(tlsConnectOptions({ ...mismatched, caOnly: true }).ca).toEqual(mismatched.ca);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
