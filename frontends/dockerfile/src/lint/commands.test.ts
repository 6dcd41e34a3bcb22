import { describe, expect, test } from 'vitest';
import type { Digest, ImageMetaResolver } from '@kiln/llb-core';
import { convertDockerfile } from '../convert/convert.js';
import type { ConvertOptions } from '../convert/options.js';

const DIGEST = `sha256:${'ef'.repeat(32)}` as Digest;

/** Resolves every image to one config (`config` is the image's runtime config). */
function resolver(config: Record<string, unknown> = {}): ImageMetaResolver {
  const bytes = new TextEncoder().encode(JSON.stringify({ os: 'linux', architecture: 'amd64', rootfs: { type: 'layers', diff_ids: [DIGEST] }, config }));
  return { resolveImageConfig: () => Promise.resolve({ digest: DIGEST, config: bytes }) };
}

/** `LINE RULE: message` of one rule's warnings. */
async function warnings(rule: string, dockerfile: string, opts: ConvertOptions = {}): Promise<string[]> {
  const res = await convertDockerfile(dockerfile, { metaResolver: resolver(), targetPlatform: 'linux/amd64', ...opts });
  return res.checkWarnings.filter((w) => w.rule === rule).map((w) => `${w.location.line} ${w.message}`);
}

describe('JSONArgsRecommended', () => {
  test('shell-form CMD and ENTRYPOINT are reported with the keyword as written', async () => {
    expect(await warnings('JSONArgsRecommended', 'FROM busybox\nENTRYPOINT my-app --serve\ncmd echo hi\n')).toEqual([
      '2 JSON arguments recommended for ENTRYPOINT to prevent unintended behavior related to OS signals',
      '3 JSON arguments recommended for cmd to prevent unintended behavior related to OS signals',
    ]);
  });
  test('JSON form, an explicit SHELL, or a base image with a Shell pass', async () => {
    expect(await warnings('JSONArgsRecommended', 'FROM busybox\nCMD ["echo", "hi"]\nSHELL ["/bin/bash", "-c"]\nENTRYPOINT my-app\n')).toEqual([]);
    expect(await warnings('JSONArgsRecommended', 'FROM busybox\nCMD echo hi\n', { metaResolver: resolver({ Shell: ['/bin/ash', '-c'] }) })).toEqual([]);
  });
});

describe('MultipleInstructionsDisallowed', () => {
  test('the earlier of two CMD / ENTRYPOINT / HEALTHCHECK in one stage is reported (it is the one ignored)', async () => {
    const df = 'FROM busybox\nCMD ["a"]\nHEALTHCHECK NONE\nENTRYPOINT ["b"]\nCMD ["c"]\nENTRYPOINT ["d"]\nHEALTHCHECK CMD ["true"]\n';
    expect(await warnings('MultipleInstructionsDisallowed', df)).toEqual([
      '2 Multiple CMD instructions should not be used in the same stage because only the last one will be used',
      '4 Multiple ENTRYPOINT instructions should not be used in the same stage because only the last one will be used',
      '3 Multiple HEALTHCHECK instructions should not be used in the same stage because only the last one will be used',
    ]);
  });
  test('one per stage passes, also when a stage is built FROM another', async () => {
    expect(await warnings('MultipleInstructionsDisallowed', 'FROM busybox AS base\nCMD ["a"]\nFROM base\nCMD ["b"]\n')).toEqual([]);
  });
});

describe('LegacyKeyValueFormat', () => {
  test('ENV and LABEL with a space separator are reported', async () => {
    expect(await warnings('LegacyKeyValueFormat', 'FROM busybox\nENV PORT 8080\nLABEL maintainer me\n')).toEqual([
      '2 "ENV key=value" should be used instead of legacy "ENV key value" format',
      '3 "LABEL key=value" should be used instead of legacy "LABEL key value" format',
    ]);
  });
  test('key=value passes', async () => {
    expect(await warnings('LegacyKeyValueFormat', 'FROM busybox\nENV PORT=8080 HOST="a b"\nLABEL a=b\n')).toEqual([]);
  });
});

describe('SecretsUsedInArgOrEnv', () => {
  test('ARG and ENV names that look like secrets are reported', async () => {
    expect(await warnings('SecretsUsedInArgOrEnv', 'FROM busybox\nARG GITHUB_TOKEN\nENV DB_PASSWORD=x aws_secret_key=y\n')).toEqual([
      '2 Do not use ARG or ENV instructions for sensitive data (ARG "GITHUB_TOKEN")',
      '3 Do not use ARG or ENV instructions for sensitive data (ENV "DB_PASSWORD")',
      '3 Do not use ARG or ENV instructions for sensitive data (ENV "aws_secret_key")',
    ]);
  });
  test('words that only contain a token, and public keys, pass', async () => {
    expect(await warnings('SecretsUsedInArgOrEnv', 'FROM busybox\nARG KEYBOARD_LAYOUT=us\nENV PUBLIC_KEY=x AUTHOR=me TOKENIZER=y\n')).toEqual([]);
  });
});

describe('WorkdirRelativePath', () => {
  test('a relative WORKDIR before any absolute one is reported (once)', async () => {
    expect(await warnings('WorkdirRelativePath', 'FROM busybox\nWORKDIR app\nWORKDIR src\n')).toEqual(['2 Relative workdir "app" can have unexpected results if the base image changes']);
  });
  test('after an absolute WORKDIR (in this stage or its base stage) relative ones pass', async () => {
    expect(await warnings('WorkdirRelativePath', 'FROM busybox AS base\nWORKDIR /app\nFROM base\nWORKDIR src\n')).toEqual([]);
  });
  test('the expanded path counts', async () => {
    expect(await warnings('WorkdirRelativePath', 'FROM busybox\nENV DIR=/srv\nWORKDIR $DIR\n')).toEqual([]);
  });
});

describe('ExposeProtoCasing and ExposeInvalidFormat', () => {
  test('an upper-case protocol or a host mapping is reported', async () => {
    const res = await convertDockerfile('FROM busybox\nEXPOSE 80/TCP 8080:80\n', { metaResolver: resolver(), targetPlatform: 'linux/amd64' });
    expect(res.checkWarnings.map((w) => `${w.rule}: ${w.message}`)).toEqual([
      "ExposeProtoCasing: Defined protocol '80/TCP' in EXPOSE instruction should be lowercase",
      "ExposeInvalidFormat: EXPOSE instruction should not define an IP address or host-port mapping, found '8080:80'",
    ]);
  });
  test('ports with lower-case protocols pass', async () => {
    expect(await warnings('ExposeProtoCasing', 'FROM busybox\nEXPOSE 80 53/udp 8000-8010/tcp\n')).toEqual([]);
  });
});

describe('dispatch-time checks cover built stages only', () => {
  test('a stage the target does not need is not dispatched and not checked (parse-time rules still run)', async () => {
    const res = await convertDockerfile('FROM busybox AS unused\nCMD echo x\nMAINTAINER me\nFROM busybox\nCMD ["ok"]\n', { metaResolver: resolver(), targetPlatform: 'linux/amd64' });
    expect(res.checkWarnings.map((w) => w.rule)).toEqual(['MaintainerDeprecated']);
  });
  test('ONBUILD triggers are checked where they run (at the FROM of the stage that inherits them)', async () => {
    expect(await warnings('JSONArgsRecommended', 'FROM busybox AS base\nONBUILD CMD echo hi\nFROM base\n')).toEqual(['3 JSON arguments recommended for CMD to prevent unintended behavior related to OS signals']);
  });
});
