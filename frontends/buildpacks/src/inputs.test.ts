import { describe, expect, test } from 'vitest';
import { unknownBuildArgWarnings } from './inputs.js';

describe('unknownBuildArgWarnings (typo tour 4)', () => {
  test('a misspelt option and an env var without env: are warned about; options, env:, BuildKit and proxy args are not', () => {
    const opts = new Map([
      ['build-arg:builer', 'kt/builder'],
      ['build-arg:BP_LOG_LEVEL', 'debug'],
      ['build-arg:builder', 'kt/builder'],
      ['build-arg:env:BP_X', '1'],
      ['build-arg:BUILDKIT_SYNTAX', 'kiln/buildpacks'],
      ['build-arg:HTTPS_PROXY', 'http://proxy:3128'],
      ['filename', 'project.toml'],
    ]);
    expect(unknownBuildArgWarnings(opts)).toEqual([
      '--build-arg builer is not a kiln/buildpacks option and is ignored (did you mean builder?)',
      '--build-arg BP_LOG_LEVEL is not a kiln/buildpacks option and is ignored: build-time env is --build-arg env:BP_LOG_LEVEL=VALUE (or [[io.buildpacks.build.env]]); options are builder, run-image, process-type, previous-image, cache-id, launcher',
    ]);
  });
});
