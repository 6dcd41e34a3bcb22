import { describe, expect, test } from 'vitest';
import { parseAttestations } from './provenance-spec.js';

describe('parseAttestations (buildx --provenance / --attest)', () => {
  test.for([
    [undefined, [], {}],
    [true, [], { provenance: { mode: 'min' } }],
    ['true', [], { provenance: { mode: 'min' } }],
    ['false', [], {}],
    [false, [], {}],
    ['mode=max', [], { provenance: { mode: 'max' } }],
    ['mode=full', [], { provenance: { mode: 'max' } }],
    ['mode=min,builder-id=https://ci.example/1,reproducible=true', [], { provenance: { mode: 'min', builderId: 'https://ci.example/1', reproducible: true } }],
    [undefined, ['type=provenance,mode=max'], { provenance: { mode: 'max' } }],
    [undefined, ['type=provenance,disabled=true'], {}],
    [undefined, ['type=sbom,disabled=true', 'type=provenance'], { provenance: { mode: 'min' } }],
  ] as const)('--provenance %s --attest %j', ([provenance, attest, expected]) => {
    expect(parseAttestations(provenance, attest)).toEqual(expected);
  });

  test.for([
    [undefined, ['type=sbom,scanner=x'], /unknown sbom attribute "scanner"/],
    [undefined, ['mode=max'], /missing attestation type/],
    [undefined, ['type=foo'], /unknown attestation type "foo"/],
    ['mode=medium', [], /invalid mode "medium"/],
    ['mode=max,colour=red', [], /unknown provenance attribute "colour"/],
    ['mode=max', ['type=provenance,mode=min'], /duplicate attestation field provenance/],
    ['false', ['type=provenance,mode=max'], /duplicate attestation field provenance/],
    ['maybe', [], /invalid --provenance value "maybe"/],
    // typo tour 4: a field without = (was read as the type "provenance,true", or glued to mode)
    ['true,mode=max', [], /^invalid --provenance=true,mode=max: invalid value "true": every field is KEY=VALUE$/],
    [undefined, ['type=provenance,max'], /invalid value "max"/],
    [undefined, ['type=sbom,generator=img,x'], /invalid value "x"/],
  ] as const)('--provenance %s --attest %j is refused', ([provenance, attest, message]) => {
    let err: unknown;
    try {
      parseAttestations(provenance, attest);
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'KLN0702', message: expect.stringMatching(message) });
  });
});
