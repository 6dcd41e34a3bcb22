import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ContentStore, RegistryClient, importOciLayout, openOciLayout, pushImage, type Descriptor, type RegistryHostOptions } from '@kiln/runtime';
import { makeTestPki, type TestPki } from '../helpers/pki.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';

const IMAGES = join(__dirname, '../../../../shared/conformance/images');

let dir: string;
let pki: TestPki;
let store: ContentStore;
let image: Descriptor;
let tls: TestRegistry;
let mtls: TestRegistry;
let plain: TestRegistry;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kiln-reg-tls-'));
  pki = makeTestPki(dir);
  store = await ContentStore.open(join(dir, 'store'));
  image = await importOciLayout(await openOciLayout(join(IMAGES, 'busybox'), store), store, { ref: 'latest' });
  [tls, mtls, plain] = await Promise.all([
    startRegistry({ tls: { certificate: pki.serverCert, key: pki.serverKey } }),
    startRegistry({ tls: { certificate: pki.serverCert, key: pki.serverKey, clientCas: [pki.ca] } }),
    startRegistry(),
  ]);
});
afterAll(async () => {
  await Promise.all([tls?.stop(), mtls?.stop(), plain?.stop()]);
  await rm(dir, { recursive: true, force: true });
});

/** A client whose only host setting is `opts` for `host`, without retries (a failure is final here). */
const client = (host: string, opts: RegistryHostOptions): RegistryClient => new RegistryClient({ retries: 0, hosts: { [host]: opts } });

describe('registry TLS settings (BuildKit [registry."HOST"] ca, insecure, keypair, http)', () => {
  test('a private CA: refused without it, naming the certificate problem and the config key; trusted with ca', async () => {
    const ca = await readFile(pki.ca, 'utf8');
    // 127.0.0.1 is plain http by default: http = false makes it https.
    await pushImage(client(tls.host, { plainHttp: false, ca: [ca] }), store, image, [`${tls.host}/app:1`]);
    const e = await client(tls.host, { plainHttp: false })
      .resolve(`${tls.host}/app:1`)
      .catch((x: unknown) => x);
    expect(e).toMatchObject({
      code: 'REGISTRY_UNREACHABLE',
      message: expect.stringMatching(/TLS certificate is not trusted \(UNABLE_TO_VERIFY_LEAF_SIGNATURE/),
      hint: expect.stringContaining(`[registry."${tls.host}"] ca = [`),
    });
    const got = await client(tls.host, { plainHttp: false, ca: [ca] }).pull(`${tls.host}/app:1`, await ContentStore.open(join(dir, 'pulled-ca')));
    expect(got.descriptor.digest).toBe(image.digest);
  });

  test('insecure = true: https without verification', async () => {
    await pushImage(client(tls.host, { plainHttp: false, ca: [await readFile(pki.ca, 'utf8')] }), store, image, [`${tls.host}/app:2`]);
    const got = await client(tls.host, { plainHttp: false, insecure: true }).pull(`${tls.host}/app:2`, await ContentStore.open(join(dir, 'pulled-insecure')));
    expect(got.descriptor.digest).toBe(image.digest);
  });

  test('a registry that requires a client certificate: refused without keypair, served with it', async () => {
    const ca = await readFile(pki.ca, 'utf8');
    const keypairs = [{ cert: await readFile(pki.clientCert, 'utf8'), key: await readFile(pki.clientKey, 'utf8') }];
    await pushImage(client(mtls.host, { plainHttp: false, ca: [ca], keypairs }), store, image, [`${mtls.host}/app:1`]);
    const e = await client(mtls.host, { plainHttp: false, ca: [ca] })
      .resolve(`${mtls.host}/app:1`)
      .catch((x: unknown) => x);
    // A TLS 1.3 server closes the connection after the handshake: fetch sees "other side closed".
    expect(e).toMatchObject({ code: 'REGISTRY_UNREACHABLE', hint: expect.stringContaining(`requires a client certificate, give one in the kiln config: [[registry."${mtls.host}".keypair]]`) });
    const got = await client(mtls.host, { plainHttp: false, ca: [ca], keypairs }).pull(`${mtls.host}/app:1`, await ContentStore.open(join(dir, 'pulled-mtls')));
    expect(got.descriptor.digest).toBe(image.digest);
  });

  test('a plain-http registry under a non-localhost address: https by default (hint: http = true), served with http', async () => {
    // ::ffff:127.0.0.1 reaches the 127.0.0.1 listener, but is not a localhost name.
    const host = `[::ffff:127.0.0.1]:${plain.port}`;
    const e = await client(host, {})
      .resolve(`${host}/app:1`)
      .catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'REGISTRY_UNREACHABLE', message: expect.stringContaining('does not speak TLS'), hint: expect.stringContaining(`[registry."${host}"] http = true`) });
    await pushImage(client(host, { plainHttp: true }), store, image, [`${host}/app:1`]);
    const got = await client(host, { plainHttp: true }).pull(`${host}/app:1`, await ContentStore.open(join(dir, 'pulled-http')));
    expect(got.descriptor.digest).toBe(image.digest);
    // insecure + http (a push's registry.insecure=true): https first, then plain http.
    expect((await client(host, { plainHttp: true, insecure: true }).resolve(`${host}/app:1`)).descriptor.digest).toBe(image.digest);
  });
});
