import { describe, expect, test } from 'vitest';
import { executeTemplate, printsSummary } from './template.js';

const data = {
  Name: 'app:1',
  Manifest: { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', digest: 'sha256:ab', size: 10, annotations: { note: '<a&b>' } },
  Image: {
    'linux/amd64': { architecture: 'amd64', rootfs: { type: 'layers', diff_ids: ['sha256:1'] }, config: { Env: ['A=1'] } },
    'linux/arm64': { architecture: 'arm64', rootfs: { type: 'layers', diff_ids: ['sha256:2'] } },
  },
};

describe('executeTemplate (the --format subset of Go text/template)', () => {
  test.for([
    ['{{.Manifest.Digest}}', 'sha256:ab'],
    ['{{println .Manifest.Digest}}', 'sha256:ab\n'],
    ['digest={{.Manifest.Digest}} size={{.Manifest.Size}}\n', 'digest=sha256:ab size=10\n'],
    ['{{.Manifest.MediaType}}', 'application/vnd.oci.image.index.v1+json'],
    ['{{.Name | println}}', 'app:1\n'],
    ['  {{- .Name -}}  \n', 'app:1'],
    ['{{json (index .Image "linux/arm64").RootFS.DiffIDs}}', '[\n  "sha256:2"\n]'],
    ['{{index .Image "linux/amd64" "architecture"}}', 'amd64'],
    ['{{(index .Image "linux/amd64").Config.Env}}', '["A=1"]'],
    ['{{.Manifest.Nope}}', '<no value>'],
    ['{{json .Manifest.Annotations}}', '{\n  "note": "\\u003ca\\u0026b\\u003e"\n}'],
  ] as const)('%s', ([tpl, want]) => {
    expect(executeTemplate(tpl, data)).toBe(want);
  });

  test('{{json .Manifest}} is MarshalIndent with two spaces, keys in the value’s order', () => {
    expect(executeTemplate('{{json .Manifest}}', { Manifest: { schemaVersion: 2, digest: 'sha256:ab', manifests: [] } })).toBe('{\n  "schemaVersion": 2,\n  "digest": "sha256:ab",\n  "manifests": []\n}');
  });

  test.for(['{{json .Manifest', '{{foo .Manifest}}', '{{json (index .Image "x"}}', '{{}}', '{{.A .B}}'])('%s is refused with KLN0860', (tpl) => {
    expect(() => executeTemplate(tpl, data)).toThrow(expect.objectContaining({ code: 'KLN0860' }));
  });
});

describe('executeTemplate: only the data’s own fields', () => {
  // Inherited properties (constructor, toString, __proto__) are not fields of the Go value: they
  // printed a function (TypeError, a stack trace) or Object.prototype.
  test.for(['{{.Manifest.constructor}}', '{{.Manifest.toString}}', '{{json .Manifest.constructor}}', '{{index .Manifest "constructor"}}', '{{index .Manifest "__proto__"}}', '{{.Manifest.__proto__}}'])('%s has no value', (tpl) => {
    expect(executeTemplate(tpl, data)).toBe(tpl.startsWith('{{json') ? 'null' : '<no value>');
  });
});

describe('printsSummary: buildx prints the summary when the parsed template starts with {{.Manifest', () => {
  // buildx tests tpl.Root.String(), the template as its parser writes it back: spaces and trim
  // markers inside the braces are gone, text before the action is not.
  test.for([
    ['{{.Manifest}}', true],
    ['{{ .Manifest }}', true],
    ['{{- .Manifest.Digest -}}', true],
    ['{{.Manifest.Digest | println}}', true],
    ['{{.Manifests}}', true],
    ['{{json .Manifest}}', false],
    ['x{{.Manifest}}', false],
    ['{{.Image}}', false],
    ['', true],
  ] as const)('%s → %s', ([tpl, want]) => {
    expect(printsSummary(tpl)).toBe(want);
  });
});

test('deeply nested parentheses are refused (KLN0860), not a stack overflow', () => {
  const tpl = `{{${'('.repeat(20000)}.Name${')'.repeat(20000)}}}`;
  expect(() => executeTemplate(tpl, data)).toThrow(expect.objectContaining({ code: 'KLN0860' }));
  expect(executeTemplate(`{{${'('.repeat(10)}.Name${')'.repeat(10)}}}`, data)).toBe('app:1');
});
