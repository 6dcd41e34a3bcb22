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

describe('executeTemplate: a struct input (buildx tplInput) has no missing fields', () => {
  // Go: "can't evaluate field Manfest in type imagetools.tplInput"; a misspelt top-level field
  // printed `null` or `<no value>` and exited 0.
  test('a field the input lacks refuses the template, naming the fields and the near one', () => {
    expect(() => executeTemplate('{{json .Manfest}}', data, { struct: true })).toThrow(
      expect.objectContaining({ code: 'KLN0860', message: expect.stringContaining("1:1: can't evaluate field Manfest (the fields are Name, Manifest, Image): did you mean .Manifest?") }),
    );
    expect(() => executeTemplate('x\n{{if .Name}}{{$.Imag}}{{end}}', data, { struct: true })).toThrow(expect.objectContaining({ message: expect.stringContaining("2:13: can't evaluate field Imag") }));
    expect(() => executeTemplate('{{range .Image}}{{.Nope}}{{end}}{{.Bogus}}', data, { struct: true })).toThrow(/1:33: can't evaluate field Bogus \(the fields are Name, Manifest, Image\)$/);
  });

  test('maps below it keep Go map semantics; without the option the input is a map too', () => {
    expect(executeTemplate('{{.Manifest.Nope}}|{{index .Image "linux/s390x"}}|{{.Name}}', data, { struct: true })).toBe('<no value>|<no value>|app:1');
    expect(executeTemplate('{{json .Manfest}}', data)).toBe('null');
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

describe('executeTemplate: if, with, range (Go text/template control actions)', () => {
  const idx = {
    Name: 'app:1',
    Manifest: {
      digest: 'sha256:ix',
      manifests: [
        { digest: 'sha256:a1', platform: { os: 'linux', architecture: 'amd64' } },
        { digest: 'sha256:b2', platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
        { digest: 'sha256:c3', platform: { os: 'unknown', architecture: 'unknown' }, annotations: { 'vnd.docker.reference.type': 'attestation-manifest' } },
      ],
    },
    Image: { 'linux/arm64': { architecture: 'arm64' }, 'linux/amd64': { architecture: 'amd64' } },
    Empty: [],
  };
  test.for([
    ['{{range .Manifest.Manifests}}{{.Digest}} {{end}}', 'sha256:a1 sha256:b2 sha256:c3 '],
    ['{{range .Manifest.Manifests}}{{println .Platform.Architecture}}{{end}}', 'amd64\narm64\nunknown\n'],
    // a map: its values in sorted key order, as Go ranges over maps
    ['{{range .Image}}{{.Architecture}},{{end}}', 'amd64,arm64,'],
    ['{{range .Empty}}x{{else}}none{{end}}', 'none'],
    ['{{range .Nope}}x{{else}}none{{end}}', 'none'],
    ['{{range .Manifest.Manifests}}{{if .Annotations}}att{{else}}{{.Platform.Architecture}}{{end}};{{end}}', 'amd64;arm64;att;'],
    ['{{range .Manifest.Manifests}}{{if .Platform.Variant}}{{.Platform.Variant}}{{else if .Annotations}}A{{else}}-{{end}}{{end}}', '-v8A'],
    ['{{if .Empty}}yes{{else}}no{{end}}', 'no'],
    ['{{if .Name}}{{.Name}}{{end}}', 'app:1'],
    ['{{with .Manifest}}{{.Digest}}{{end}}', 'sha256:ix'],
    ['{{with .Nope}}x{{else}}none{{end}}', 'none'],
    // $ is the top level inside range and with
    ['{{range .Manifest.Manifests}}{{$.Name}}@{{.Digest}} {{end}}', 'app:1@sha256:a1 app:1@sha256:b2 app:1@sha256:c3 '],
    ['{{range .Manifest.Manifests -}}\n  {{ .Digest }}\n{{- end}}', 'sha256:a1sha256:b2sha256:c3'],
    ['{{json (index .Manifest.Manifests 1).Platform}}', '{\n  "os": "linux",\n  "architecture": "arm64",\n  "variant": "v8"\n}'],
  ] as const)('%s', ([tpl, want]) => {
    expect(executeTemplate(tpl, idx)).toBe(want);
  });

  test.for([
    '{{range .Manifest.Manifests}}{{.Digest}}',
    '{{end}}',
    '{{if .Name}}a{{else}}b{{else}}c{{end}}',
    '{{else}}',
    '{{range $i, $m := .Manifest.Manifests}}{{end}}',
    '{{range .Name}}{{end}}',
    '{{if}}{{end}}',
    '{{end x}}',
    '{{print if}}',
  ])('%s is refused with KLN0860', (tpl) => {
    expect(() => executeTemplate(tpl, idx)).toThrow(expect.objectContaining({ code: 'KLN0860' }));
  });

  test('a template that starts with a control action is executed, not the summary', () => {
    expect(printsSummary('{{range .Manifest.Manifests}}{{.Digest}}{{end}}')).toBe(false);
    expect(printsSummary('{{$.Manifest.Digest}}')).toBe(false);
  });
});

describe('executeTemplate: Go text/template lexing and printing', () => {
  const d = { Name: 'app:1', Size: 10, Digest: 'sha256:ab', List: ['a', 'b'] };
  test.for([
    // fmt.Sprint: a space between two operands when neither is a string
    ['{{print .Size .Size}}', '10 10'],
    ['{{print .Name .Name}}', 'app:1app:1'],
    ['{{print .Name .Size "x"}}', 'app:110x'],
    ['{{print .Size .Name .Size}}', '10app:110'],
    ['{{println .Size .Name}}', '10 app:1\n'],
    // trim markers: "-" with any of Go's four space characters beside it
    ['a \n{{-\t.Name\t-}}\n b', 'aapp:1b'],
    ['a\n{{-\n.Name\r\n-}}\n\tb', 'aapp:1b'],
    // only Go's space characters are trimmed (no-break space stays)
    ['a\u00a0{{- .Name}}', 'a\u00a0app:1'],
    // comments, with and without trim markers
    ['a {{/* note {{ }} */}} b', 'a  b'],
    ['a {{- /* multi\nline */ -}} b', 'ab'],
    ['{{range .List}}{{/* each */}}{{.}}{{end}}', 'ab'],
    // "}}" inside a string or raw string does not end the action
    ['{{print "}}"}}', '}}'],
    ['{{print `a}}b` "-}}"}}', 'a}}b-}}'],
    ['{{print "{{"}}', '{{'],
    // true and false
    ['{{if true}}y{{else}}n{{end}}{{if false}}y{{else}}n{{end}}', 'yn'],
    ['{{print true}}', 'true'],
    // {{else with}} continues a {{with}} (Go 1.23)
    ['{{with .Nope}}a{{else with .Name}}{{.}}{{else}}c{{end}}', 'app:1'],
    ['{{with .Nope}}a{{else with .Nada}}b{{else}}c{{end}}', 'c'],
  ] as const)('%j', ([tpl, want]) => {
    expect(executeTemplate(tpl, d)).toBe(want);
  });

  test.for([
    // a comment must start and end at the delimiters
    '{{ /* c */ }}',
    '{{/* c */ .Name}}',
    '{{/* unclosed }}',
    // {{else if}} continues only an {{if}}, {{else with}} only a {{with}} (Go: unexpected in input)
    '{{range .List}}a{{else if .Name}}b{{end}}',
    '{{with .Name}}a{{else if .Name}}b{{end}}',
    '{{if .Name}}a{{else with .Name}}b{{end}}',
    '{{print "a}}',
  ])('%j is refused with KLN0860', (tpl) => {
    expect(() => executeTemplate(tpl, d)).toThrow(expect.objectContaining({ code: 'KLN0860' }));
  });

  test('a refusal names the line and column of the action, as Go locates template errors', () => {
    expect(() => executeTemplate('{{.Name}}\n  {{foo .Name}}', d)).toThrow(expect.objectContaining({ code: 'KLN0860', message: expect.stringContaining('2:3: unknown function or value "foo"') }));
    expect(() => executeTemplate('ab{{if .Name}}', d)).toThrow(expect.objectContaining({ message: expect.stringContaining('1:3: missing {{end}} for {{if}}') }));
    expect(() => executeTemplate('x\n{{range .Name}}{{end}}', d)).toThrow(expect.objectContaining({ message: expect.stringContaining("2:1: range can't iterate over a string") }));
    expect(() => executeTemplate('{{.Name}}{{.Name', d)).toThrow(expect.objectContaining({ message: expect.stringContaining('1:10: unclosed action') }));
  });
});
