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
    // fields as encoding/csv reads them: a whole quoted field holds commas, "" is a quote in it; type and disabled trimmed, as buildx trims them
    [undefined, ['type=provenance,"builder-id=https://ci.example/a,b"'], { provenance: { mode: 'min', builderId: 'https://ci.example/a,b' } }],
    [undefined, ['"type=provenance","builder-id=x ""y"""'], { provenance: { mode: 'min', builderId: 'x "y"' } }],
    [undefined, [' type=provenance, disabled=true'], {}],
    // booleans as Go's strconv.ParseBool reads them (buildx's CanonicalizeAttest and disabled=, BuildKit's reproducible=)
    ['True', [], { provenance: { mode: 'min' } }],
    ['F', [], {}],
    [undefined, ['type=provenance,disabled=TRUE'], {}],
    [undefined, ['type=provenance,reproducible=t'], { provenance: { mode: 'min', reproducible: true } }],
    // an empty --provenance= asks for nothing, as in buildx
    ['', [], {}],
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
    // buildx's encoding/csv: a quote inside a field, a quote never closed, an empty field, a trailing comma; values are not trimmed
    [undefined, ['type=provenance,builder-id="a,b"'], /^invalid --attest type=provenance,builder-id="a,b": parse error on line 1, column 28: bare " in non-quoted-field$/],
    [undefined, ['type=provenance,"mode=max'], /parse error on line 1, column 18: extraneous or missing " in quoted-field/],
    [undefined, ['type=provenance,,mode=max'], /invalid value "": every field is KEY=VALUE/],
    ['mode=max,', [], /invalid value "": every field is KEY=VALUE/],
    [undefined, ['type=provenance,mode=max '], /invalid mode "max "/],
    // buildx passes " mode" on as an attribute nothing reads (the mode stays min): refused
    [undefined, ['type=provenance, mode=max'], /unknown provenance attribute " mode"/],
    // an empty boolean is none (strconv.ParseBool("") fails): disabled= did disable, reproducible= was true
    [undefined, ['type=provenance,disabled='], /disabled must be true or false, not ""/],
    [undefined, ['type=provenance,reproducible='], /reproducible must be true or false, not ""/],
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
