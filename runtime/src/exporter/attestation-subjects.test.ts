import { describe, expect, test } from 'vitest';
import { statementBytes, type InTotoAttestation } from './attestation.js';

// exporter/attestation makeInTotoStatement: no subjects = Self; Self = the exporter's default
// subjects (the image names with the manifest digest); raw subjects are written as given.
describe('statementBytes subjects', () => {
  const defaults = [{ name: 'pkg:docker/app@1?platform=linux%2Famd64', digest: { sha256: 'aa' } }];
  const att = (subjects?: InTotoAttestation['subjects']): InTotoAttestation => ({ predicateType: 'https://spdx.dev/Document', predicate: Buffer.from('{}'), path: 'sbom.spdx.json', ...(subjects === undefined ? {} : { subjects }) });
  test.for([
    ['absent', undefined, '[{"name":"pkg:docker/app@1?platform=linux%2Famd64","digest":{"sha256":"aa"}}]'],
    ['empty', [], '[{"name":"pkg:docker/app@1?platform=linux%2Famd64","digest":{"sha256":"aa"}}]'],
    ['raw', [{ name: '_', digest: { sha256: 'bb' } }], '[{"name":"_","digest":{"sha256":"bb"}}]'],
    ['self and raw', ['self', { name: 'x', digest: { sha512: 'cc' } }], '[{"name":"pkg:docker/app@1?platform=linux%2Famd64","digest":{"sha256":"aa"}},{"name":"x","digest":{"sha512":"cc"}}]'],
  ] as const)('%s', ([, subjects, want]) => {
    expect(statementBytes(att(subjects as InTotoAttestation['subjects']), defaults).toString()).toBe(`{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://spdx.dev/Document","subject":${want},"predicate":{}}`);
  });
});
