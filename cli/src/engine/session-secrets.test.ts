import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { MAX_SECRET_SIZE, parseSecrets } from './session.js';

// buildx's --secret forms, resolved as BuildKit's secretsprovider store resolves them.
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kiln-secrets-'));
  await writeFile(join(dir, 'tok'), 'from-file');
  await writeFile(join(dir, 'big'), Buffer.alloc(MAX_SECRET_SIZE + 1, 'x'));
  await writeFile(join(dir, 'limit'), Buffer.alloc(MAX_SECRET_SIZE, 'x'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const text = (m: Record<string, Uint8Array>, id: string): string => Buffer.from(m[id] ?? []).toString();

describe('--secret', () => {
  test('id alone: the variable ID when it is set, else the file ID (BuildKit NewStore order)', async () => {
    expect(text(await parseSecrets(['id=tok'], { tok: 'from-env' }, dir), 'tok')).toBe('from-env');
    expect(text(await parseSecrets(['id=tok'], {}, dir), 'tok')).toBe('from-file');
  });

  test('id alone with neither a variable nor a file names both', async () => {
    await expect(parseSecrets(['id=nosuch'], {}, dir)).rejects.toMatchObject({
      code: 'KLN0702',
      message: '--secret nosuch: no environment variable nosuch is set and there is no file nosuch',
      hint: expect.stringContaining('id=nosuch,src=FILE'),
    });
  });

  test('env= wins over src= (GetSecret reads the variable first); type=env takes src= as the variable', async () => {
    expect(text(await parseSecrets(['id=a,src=tok,env=V'], { V: 'from-env' }, dir), 'a')).toBe('from-env');
    expect(text(await parseSecrets(['type=env,id=a,src=V'], { V: 'v' }, dir), 'a')).toBe('v');
    expect(text(await parseSecrets(['type=file,id=a,src=tok'], { tok: 'env' }, dir), 'a')).toBe('from-file');
  });

  // buildx's NewStore stats src= even when env= is read, and parseSecret leaves type=env without
  // src= to the id-alone rule: kiln accepted the first and refused the second, buildx the other way.
  test('env= with src=: the file must still exist and fit; type=env with neither falls back to the file ID', async () => {
    await expect(parseSecrets(['id=a,src=missing,env=V'], { V: 'v' }, dir)).rejects.toMatchObject({ code: 'KLN0702', message: '--secret a: cannot read missing' });
    await expect(parseSecrets(['id=a,src=big,env=V'], { V: 'v' }, dir)).rejects.toMatchObject({ code: 'KLN0702', message: expect.stringContaining('at most 500 KB') });
    expect(text(await parseSecrets(['type=env,id=tok'], {}, dir), 'tok')).toBe('from-file');
    expect(text(await parseSecrets(['type=env,id=tok'], { tok: 'from-env' }, dir), 'tok')).toBe('from-env');
  });

  test('a file above 500 KB is refused before the build, as buildx refuses it; 500 KB is fine', async () => {
    await expect(parseSecrets(['id=b,src=big'], {}, dir)).rejects.toMatchObject({ code: 'KLN0702', message: expect.stringContaining('at most 500 KB') });
    expect((await parseSecrets(['id=l,src=limit'], {}, dir))['l']?.length).toBe(MAX_SECRET_SIZE);
  });

  test('a missing src= file, an unset env= variable, a typo in a key are refused by name', async () => {
    await expect(parseSecrets(['id=a,src=missing'], {}, dir)).rejects.toMatchObject({ message: '--secret a: cannot read missing' });
    await expect(parseSecrets(['id=a,env=UNSET'], {}, dir)).rejects.toMatchObject({ message: '--secret a: environment variable UNSET is not set' });
    await expect(parseSecrets(['id=a,scr=tok'], {}, dir)).rejects.toMatchObject({ message: expect.stringContaining('unknown field "scr"') });
  });
});
