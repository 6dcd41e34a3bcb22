import { createHmac, randomBytes } from 'node:crypto';
import { createServer, type AddressInfo } from 'node:net';
import { describe, expect, test, vi } from 'vitest';
import { useAzurite, type TestAzurite } from '../../test/helpers/azurite.js';
import { AzblobClient, blockId, blockSizeFor, type AzureCredential } from './client.js';

// The client against Azurite, the Azure Storage emulator, which checks each request's Shared Key
// signature, SAS token, Content-MD5 and conditions as the service does.

let az: TestAzurite;
useAzurite((a) => (az = a));

const client = (container: string, credential?: AzureCredential, blockSize?: number): AzblobClient =>
  new AzblobClient({
    accountUrl: az.accountUrl,
    accountName: az.accountName,
    container,
    credential: () => credential ?? { kind: 'shared-key', key: az.accountKey },
    ...(blockSize === undefined ? {} : { blockSize }),
  });

async function read(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const c of it) chunks.push(c);
  return Buffer.concat(chunks);
}

/** A body read in uneven pieces (as the content store streams a blob). */
const bodyOf = (bytes: Buffer) => ({
  size: bytes.length,
  open: async function* (): AsyncGenerator<Uint8Array> {
    for (let i = 0; i < bytes.length; i += 700) yield bytes.subarray(i, i + 700);
  },
});

/** An account SAS (version 2020-10-02: account, permissions, services, resource types, start, expiry, IP, protocol, version). */
function accountSas(permissions: string): string {
  const expiry = new Date(Date.now() + 3_600_000).toISOString().replace(/\.\d+Z$/, 'Z');
  const sign = [az.accountName, permissions, 'b', 'sco', '', expiry, '', '', '2020-10-02', ''].join('\n');
  const sig = createHmac('sha256', Buffer.from(az.accountKey, 'base64')).update(sign).digest('base64');
  return new URLSearchParams({ sv: '2020-10-02', ss: 'b', srt: 'sco', sp: permissions, se: expiry, sig }).toString();
}

const logged = async (pred: (r: TestAzurite['requests'][number]) => boolean): Promise<TestAzurite['requests']> => {
  // The access log line comes after the answer.
  await vi.waitFor(() => expect(az.requests.some(pred)).toBe(true));
  return az.requests.filter(pred);
};

describe('AzblobClient (Azurite)', () => {
  test('creates a missing container; writes, finds and reads blobs; a large one as blocks, each write only once', async () => {
    const c = client('cache-one', undefined, 1024);
    await c.ensureContainer(true);
    await c.ensureContainer(true);
    expect(await c.exists('manifests/app')).toBe(false);
    expect(await c.getSmall('manifests/app', 1000)).toBeUndefined();
    await c.put('manifests/app', Buffer.from('{"layers":[]}'));
    await c.put('manifests/app', Buffer.from('{"layers":[1]}'));
    expect((await c.getSmall('manifests/app', 1000))?.toString()).toBe('{"layers":[1]}');
    await expect(c.getSmall('manifests/app', 5)).rejects.toMatchObject({ code: 'AZBLOB_ERROR', message: expect.stringContaining('larger than 5 bytes') });

    // 5,000 bytes in blocks of 1 KiB: five Put Block, one Put Block List; names with characters to encode.
    const big = randomBytes(5000);
    const name = 'pre fix/blobs/sha256:0+1%2';
    expect(await c.putIfAbsent(name, bodyOf(big))).toBe(true);
    expect((await read(await c.open(name))).equals(big)).toBe(true);
    const path = `/${az.accountName}/cache-one/${name}`;
    expect((await logged((r) => r.path.startsWith(`${path}?comp=block&`))).map((r) => r.status)).toEqual([201, 201, 201, 201, 201]);
    expect(await logged((r) => r.path === `${path}?comp=blocklist`)).toHaveLength(1);
    // Written once: a second upload finds it (If-None-Match: *) and changes nothing.
    expect(await c.putIfAbsent(name, bodyOf(randomBytes(5000)))).toBe(false);
    expect((await read(await c.open(name))).equals(big)).toBe(true);

    // A blob of one block or less goes in one Put Blob.
    expect(await c.putIfAbsent('blobs/small', bodyOf(Buffer.from('small')))).toBe(true);
    expect(await c.putIfAbsent('blobs/small', bodyOf(Buffer.from('other')))).toBe(false);
    expect((await c.getSmall('blobs/small', 100))?.toString()).toBe('small');
    expect(await c.putIfAbsent('blobs/empty', bodyOf(Buffer.alloc(0)))).toBe(true);
    expect(await c.getSmall('blobs/empty', 100)).toEqual(Buffer.alloc(0));
    expect(await c.exists('blobs/small')).toBe(true);
  });

  test('a wrong key or account, a missing container: errors with the service code and a hint, no secret in them', async () => {
    const wrong = randomBytes(64).toString('base64');
    const bad = client('cache-one', { kind: 'shared-key', key: wrong });
    const e = await bad.exists('x').catch((err: unknown) => err);
    // (Azure says AuthenticationFailed, Azurite AuthorizationFailure)
    expect(e).toMatchObject({ code: 'AZBLOB_DENIED', azureCode: expect.stringMatching(/^Auth/), hint: expect.stringContaining('secret_access_key') });
    expect(String((e as Error).message)).not.toContain(wrong);
    expect((e as Error).message).toContain(`HEAD ${az.accountUrl}/cache-one/x: access denied (403 Auth`);
    // The account name of an IP address host (BuildKit takes the host's first label): the hint names account_name=.
    const byHost = new AzblobClient({ accountUrl: az.accountUrl, accountName: '127', container: 'cache-one', credential: () => ({ kind: 'shared-key', key: az.accountKey }) });
    await expect(byHost.exists('x')).rejects.toMatchObject({ code: 'AZBLOB_DENIED', hint: expect.stringContaining('account_name=') });

    const missing = client('no-such-container');
    await expect(missing.ensureContainer(false)).rejects.toMatchObject({ code: 'AZBLOB_NOT_FOUND', azureCode: 'ContainerNotFound', hint: expect.stringContaining('--cache-to') });
    await expect(missing.getSmall('manifests/x', 10)).rejects.toMatchObject({ azureCode: 'ContainerNotFound' });
    await expect(missing.exists('x')).rejects.toMatchObject({ azureCode: 'ContainerNotFound' });
  });

  test('a SAS token instead of the key: read with a read-only token, a write refused with a hint', async () => {
    await client('cache-sas').ensureContainer(true);
    await client('cache-sas').put('manifests/m', Buffer.from('config'));
    const reader = client('cache-sas', { kind: 'sas', token: accountSas('rl') });
    await reader.ensureContainer(false);
    expect((await reader.getSmall('manifests/m', 100))?.toString()).toBe('config');
    const e = await reader.put('manifests/m', Buffer.from('mine')).catch((err: unknown) => err);
    expect(e).toMatchObject({ code: 'AZBLOB_DENIED', hint: expect.stringContaining('SAS token') });
    expect((e as Error).message).not.toContain('sig=');
    const writer = client('cache-sas', { kind: 'sas', token: accountSas('rwc') });
    expect(await writer.putIfAbsent('blobs/b', bodyOf(Buffer.from('b')))).toBe(true);
    expect((await reader.getSmall('blobs/b', 10))?.toString()).toBe('b');
  });

  test('an unreachable endpoint is AZBLOB_UNREACHABLE after three attempts', async () => {
    // A port nothing listens on.
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as AddressInfo).port;
    await new Promise<void>((r) => srv.close(() => r()));
    const c = new AzblobClient({ accountUrl: `http://127.0.0.1:${port}/acct`, accountName: 'acct', container: 'cache', credential: () => ({ kind: 'shared-key', key: az.accountKey }) });
    const e = await c.exists('x').catch((err: unknown) => err);
    expect(e).toMatchObject({ code: 'AZBLOB_UNREACHABLE', hint: 'check account_url or the network' });
    expect((e as Error).message).toBe(`HEAD http://127.0.0.1:${port}/acct/cache/x: 127.0.0.1:${port} did not answer (ECONNREFUSED)`);
  });
});

describe('blocks', () => {
  test('block IDs have one length; the block size grows past 50,000 blocks', () => {
    expect(new Set([blockId(0), blockId(49_999)].map((id) => id.length)).size).toBe(1);
    expect(blockSizeFor(100 << 20, 16 << 20)).toBe(16 << 20);
    expect(blockSizeFor(1000 * 2 ** 30, 16 << 20)).toBe(21 << 20);
  });
});
