/**
 * A kiln error's fields in a `google.rpc.Status` (what a frontend's Return error carries): one
 * `google.rpc.ErrorInfo` detail, domain `kiln`, reason = the error's stable code, metadata =
 * `hint`, `file`, `line`, `column`. BuildKit shows the status message and skips details it does
 * not use, so the message stays the error's own.
 */
import type { LLBBridgeCodec, WireAny } from './messages.js';

/** The ErrorInfo domain of kiln's errors. */
export const KILN_ERROR_DOMAIN = 'kiln';
/** The Any type URL of `google.rpc.ErrorInfo`. */
export const ERROR_INFO_TYPE_URL = 'type.googleapis.com/google.rpc.ErrorInfo';

/** What an ErrorInfo detail says about a kiln error. */
export interface KilnErrorInfo {
  readonly code: string;
  readonly hint?: string;
  readonly location?: { readonly file: string; readonly line: number; readonly column: number };
}

function field(e: Error, name: string): unknown {
  return (e as unknown as Record<string, unknown>)[name];
}

/** A kiln error's `location` ({file, 1-based line and column}), when it has a well-formed one. */
export function errorLocation(error: Error): { readonly file: string; readonly line: number; readonly column: number } | undefined {
  const loc = field(error, 'location');
  if (typeof loc !== 'object' || loc === null) return undefined;
  const { file, line, column } = loc as Record<string, unknown>;
  if (typeof file !== 'string' || typeof line !== 'number' || !Number.isInteger(line) || line < 1) return undefined;
  return { file, line, column: typeof column === 'number' && Number.isInteger(column) && column >= 1 ? column : 1 };
}

/** The ErrorInfo detail of an error with a string `code` (kiln's errors), else undefined. */
export function errorInfoDetail(codec: LLBBridgeCodec, error: Error): WireAny | undefined {
  const code = field(error, 'code');
  if (typeof code !== 'string' || code === '') return undefined;
  const metadata: Record<string, string> = {};
  const hint = field(error, 'hint');
  if (typeof hint === 'string' && hint !== '') metadata['hint'] = hint;
  const loc = errorLocation(error);
  if (loc !== undefined) {
    metadata['file'] = loc.file;
    metadata['line'] = String(loc.line);
    metadata['column'] = String(loc.column);
  }
  return { type_url: ERROR_INFO_TYPE_URL, value: codec.encode('ErrorInfo', { reason: code, domain: KILN_ERROR_DOMAIN, metadata }) };
}

/** kiln's error fields from a status's details, when one is a kiln ErrorInfo. */
export function kilnErrorInfo(codec: LLBBridgeCodec, details: readonly { readonly typeUrl: string; readonly value: Uint8Array }[]): KilnErrorInfo | undefined {
  for (const d of details) {
    if (d.typeUrl !== ERROR_INFO_TYPE_URL) continue;
    let info;
    try {
      info = codec.decode('ErrorInfo', d.value);
    } catch {
      continue;
    }
    if (info.domain !== KILN_ERROR_DOMAIN || !info.reason) continue;
    const m = info.metadata ?? {};
    const line = Number(m['line']);
    const column = Number(m['column']);
    return {
      code: info.reason,
      ...(m['hint'] ? { hint: m['hint'] } : {}),
      ...(m['file'] !== undefined && Number.isInteger(line) && Number.isInteger(column) ? { location: { file: m['file'], line, column } } : {}),
    };
  }
  return undefined;
}
