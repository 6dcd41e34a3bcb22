/** Stable codes of {@link AzblobError}. */
export type AzblobErrorCode =
  | 'AZBLOB_ERROR' // the service answered with an error (its x-ms-error-code in `azureCode`)
  | 'AZBLOB_NOT_FOUND' // no such blob or container
  | 'AZBLOB_DENIED' // 401/403: key, account name, SAS permissions or expiry
  | 'AZBLOB_UNREACHABLE'; // no answer (connection refused, DNS, TLS, proxy)

/** What an {@link AzblobError} carries besides its code and message. */
export interface AzblobErrorDetail {
  /** The service's error code (`x-ms-error-code`: `AuthenticationFailed`, `ContainerNotFound`…). */
  readonly azureCode?: string;
  readonly status?: number;
  readonly hint?: string;
  readonly cause?: unknown;
}

/**
 * An error of an Azure Blob Storage request: a stable `code`, Azure's own error code and a message
 * naming the blob by its URL (never a SAS token or an account key).
 */
export class AzblobError extends Error {
  override readonly name = 'AzblobError';
  readonly code: AzblobErrorCode;
  readonly azureCode: string | undefined;
  readonly status: number | undefined;
  readonly hint: string | undefined;

  constructor(code: AzblobErrorCode, message: string, detail: AzblobErrorDetail = {}) {
    super(message, detail.cause === undefined ? undefined : { cause: detail.cause });
    this.code = code;
    this.azureCode = detail.azureCode;
    this.status = detail.status;
    this.hint = detail.hint;
  }
}
