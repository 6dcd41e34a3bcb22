import { describe, expect, test } from 'vitest';
import { parseAttestations } from './provenance-spec.js';

describe('parseAttestations: --sbom / --attest type=sbom (buildx CanonicalizeAttest)', () => {
  test.for([
    [undefined, [], true, { sbom: {} }],
    [undefined, [], 'true', { sbom: {} }],
    [undefined, [], '1', { sbom: {} }],
    [undefined, [], 'false', {}],
    [undefined, [], false, {}],
    [undefined, [], 'generator=127.0.0.1:5000/scan:1', { sbom: { generator: '127.0.0.1:5000/scan:1' } }],
    [undefined, ['type=sbom'], undefined, { sbom: {} }],
    [undefined, ['type=sbom,generator=scan'], undefined, { sbom: { generator: 'scan' } }],
    [undefined, ['type=sbom,disabled=true'], undefined, {}],
    [true, ['type=sbom,generator=scan'], undefined, { provenance: { mode: 'min' }, sbom: { generator: 'scan' } }],
    [undefined, ['type=sbom,generator=scan', 'type=provenance,mode=max'], undefined, { sbom: { generator: 'scan' }, provenance: { mode: 'max' } }],
  ] as const)('--provenance %s --attest %j --sbom %s', ([provenance, attest, sbom, expected]) => {
    expect(parseAttestations(provenance, attest, sbom)).toEqual(expected);
  });

  test.for([
    [['type=sbom'], true, /duplicate attestation field sbom/],
    [['type=sbom,generator='], undefined, /sbom scanner cannot be empty/],
    [['type=sbom,mode=max'], undefined, /unknown sbom attribute "mode"/],
    [[], '.', /invalid --sbom value "\."/],
    [[], 'maybe', /invalid --sbom value "maybe"/],
  ] as const)('--attest %j --sbom %s is refused', ([attest, sbom, message]) => {
    expect(() => parseAttestations(undefined, attest, sbom)).toThrow(expect.objectContaining({ code: 'KLN0702', message: expect.stringMatching(message) as unknown }));
  });

  test('a bare --sbom that took the context says to use =', () => {
    expect(() => parseAttestations(undefined, [], './app')).toThrow(expect.objectContaining({ hint: expect.stringContaining('--sbom=true|false|generator=<image>') as unknown }));
  });
});
