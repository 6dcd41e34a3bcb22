import { createHash } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { EMPTY_SHA256, canonicalQuery, signV4, uriEncode } from './sigv4.js';

// AWS's published examples: the Signature Version 4 test suite (aws-sig-v4-test-suite: service
// "service", credentials AKIDEXAMPLE, 2015-08-30T12:36:00Z) and the worked examples of S3's
// "Signature Calculations for the Authorization Header" page (examplebucket, 2013-05-24).
const suite = { region: 'us-east-1', service: 'service', date: new Date('2015-08-30T12:36:00Z'), host: 'example.amazonaws.com' };
const suiteCreds = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' };
const s3 = { region: 'us-east-1', service: 's3', date: new Date('2013-05-24T00:00:00Z'), host: 'examplebucket.s3.amazonaws.com' };
const s3Creds = { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' };

describe('SigV4 against AWS test vectors', () => {
  test('get-vanilla: canonical request, string to sign, Authorization header', () => {
    const r = signV4({ ...suite, method: 'GET', path: '/', payloadHash: EMPTY_SHA256 }, suiteCreds);
    expect(r.canonicalRequest).toBe(`GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n${EMPTY_SHA256}`);
    expect(r.stringToSign).toBe('AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63');
    expect(r.headers['authorization']).toBe(
      'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31',
    );
    expect(r.headers['x-amz-date']).toBe('20150830T123600Z');
  });

  test('get-vanilla-query-order-key-case and post-vanilla', () => {
    const q = signV4({ ...suite, method: 'GET', path: '/', query: [['Param2', 'value2'], ['Param1', 'value1']], payloadHash: EMPTY_SHA256 }, suiteCreds);
    expect(q.signature).toBe('b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500');
    const p = signV4({ ...suite, method: 'POST', path: '/', payloadHash: EMPTY_SHA256 }, suiteCreds);
    expect(p.signature).toBe('5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b');
  });

  test('S3 GET object with a Range header', () => {
    const r = signV4({ ...s3, method: 'GET', path: '/test.txt', headers: { Range: 'bytes=0-9', 'x-amz-content-sha256': EMPTY_SHA256 }, payloadHash: EMPTY_SHA256 }, s3Creds);
    expect(r.canonicalRequest).toBe(
      `GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\nx-amz-content-sha256:${EMPTY_SHA256}\nx-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n${EMPTY_SHA256}`,
    );
    expect(r.stringToSign.split('\n')[3]).toBe('7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972');
    expect(r.signature).toBe('f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41');
  });

  test('S3 PUT object: the key is percent-encoded in the path, the body hash is signed', () => {
    const hash = createHash('sha256').update('Welcome to Amazon S3.').digest('hex');
    expect(hash).toBe('44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072');
    const r = signV4(
      { ...s3, method: 'PUT', path: `/${uriEncode('test$file.text', true)}`, headers: { Date: 'Fri, 24 May 2013 00:00:00 GMT', 'x-amz-storage-class': 'REDUCED_REDUNDANCY', 'x-amz-content-sha256': hash }, payloadHash: hash },
      s3Creds,
    );
    expect(r.canonicalRequest.split('\n').slice(0, 2)).toEqual(['PUT', '/test%24file.text']);
    expect(r.stringToSign.split('\n')[3]).toBe('9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d');
    expect(r.signature).toBe('98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd');
  });

  test('S3 GET bucket (list objects): query parameters encoded and sorted', () => {
    const r = signV4({ ...s3, method: 'GET', path: '/', query: [['max-keys', '2'], ['prefix', 'J']], headers: { 'x-amz-content-sha256': EMPTY_SHA256 }, payloadHash: EMPTY_SHA256 }, s3Creds);
    expect(r.signature).toBe('34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7');
  });

  test('a session token is sent and signed; another secret gives another signature', () => {
    const base = { ...suite, method: 'GET', path: '/', payloadHash: EMPTY_SHA256 };
    const t = signV4(base, { ...suiteCreds, sessionToken: 'TOKEN' });
    expect(t.headers['x-amz-security-token']).toBe('TOKEN');
    expect(t.headers['authorization']).toContain('SignedHeaders=host;x-amz-date;x-amz-security-token,');
    expect(t.signature).not.toBe('5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31');
    expect(signV4(base, { ...suiteCreds, secretAccessKey: 'other' }).signature).not.toBe('5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31');
    // The secret appears in nothing the signer returns.
    expect(JSON.stringify(t)).not.toContain(suiteCreds.secretAccessKey);
  });

  test('URI encoding: unreserved characters kept, everything else %XX, / only in keys', () => {
    expect(uriEncode("a b+c!'()*~_.-")).toBe('a%20b%2Bc%21%27%28%29%2A~_.-');
    expect(uriEncode('blobs/sha256:ab', true)).toBe('blobs/sha256%3Aab');
    expect(uriEncode('a/b')).toBe('a%2Fb');
    expect(uriEncode('ключ')).toBe('%D0%BA%D0%BB%D1%8E%D1%87');
    expect(canonicalQuery([['uploadId', 'a+b'], ['partNumber', '2'], ['a', '']])).toBe('a=&partNumber=2&uploadId=a%2Bb');
  });
});
