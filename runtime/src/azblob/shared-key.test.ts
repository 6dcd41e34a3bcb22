import { createHmac } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { isAccountKey, sharedKeyAuthorization, sharedKeyStringToSign } from './shared-key.js';

describe('Shared Key (Blob service)', () => {
  test("the string to sign of Azure's documented example (Get Container Metadata, version 2015-02-21)", () => {
    // "Authorize with Shared Key", Azure Storage REST reference: GET
    // https://myaccount.blob.core.windows.net/mycontainer?restype=container&comp=metadata&timeout=20
    const s = sharedKeyStringToSign('myaccount', {
      method: 'GET',
      path: '/mycontainer',
      query: [
        ['restype', 'container'],
        ['comp', 'metadata'],
        ['timeout', '20'],
      ],
      headers: { 'x-ms-version': '2015-02-21', 'x-ms-date': 'Fri, 26 Jun 2015 23:39:12 GMT' },
    });
    expect(s).toBe('GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:Fri, 26 Jun 2015 23:39:12 GMT\nx-ms-version:2015-02-21\n/myaccount/mycontainer\ncomp:metadata\nrestype:container\ntimeout:20');
  });

  test('standard headers in their places, Content-Length empty when 0, the path as encoded, repeated parameters joined', () => {
    const headers = { 'Content-Type': 'application/octet-stream', 'If-None-Match': '*', 'Content-MD5': 'md5==', 'X-MS-Blob-Type': 'BlockBlob', 'x-ms-date': 'D', 'x-ms-version': 'V', 'User-Agent': 'not signed' };
    const put = sharedKeyStringToSign('acct', { method: 'PUT', path: '/acct/c/blobs/sha256%3Aab', headers, contentLength: 12, query: [['B', '2'], ['b', '1']] });
    expect(put).toBe('PUT\n\n\n12\nmd5==\napplication/octet-stream\n\n\n\n*\n\n\nx-ms-blob-type:BlockBlob\nx-ms-date:D\nx-ms-version:V\n/acct/acct/c/blobs/sha256%3Aab\nb:1,2');
    expect(sharedKeyStringToSign('acct', { method: 'PUT', path: '/c', headers: {}, contentLength: 0 }).split('\n')[3]).toBe('');
    // The signature: base64 HMAC-SHA256 under the decoded key.
    const key = Buffer.from('k'.repeat(32)).toString('base64');
    const expected = createHmac('sha256', Buffer.from('k'.repeat(32))).update(put).digest('base64');
    expect(sharedKeyAuthorization('acct', key, { method: 'PUT', path: '/acct/c/blobs/sha256%3Aab', headers, contentLength: 12, query: [['B', '2'], ['b', '1']] })).toBe(`SharedKey acct:${expected}`);
  });

  test('account keys are base64', () => {
    expect(isAccountKey(Buffer.from('a key').toString('base64'))).toBe(true);
    expect(isAccountKey('not base64!')).toBe(false);
    expect(isAccountKey('abc')).toBe(false);
    expect(isAccountKey('')).toBe(false);
  });
});
