/**
 * The web server's errors: an HTTP status, a stable code and a message for people. Every refusal
 * is answered as JSON `{code, message}` (like the host agent's API); the page shows the message.
 */

export const WebErrorCode = {
  /** A bad user or file name, a token request that is not JSON {user}, a malformed URL. */
  Malformed: "MALFORMED",
  /** No valid development bearer token. */
  Unauthenticated: "UNAUTHENTICATED",
  /** A valid token for another user. */
  Forbidden: "FORBIDDEN",
  /** No such page, file or endpoint. */
  NotFound: "NOT_FOUND",
  /** The path exists but not for this method (the answer's Allow header lists those it takes). */
  MethodNotAllowed: "METHOD_NOT_ALLOWED",
  /** A body over the limit: 4 KiB for a token request, 2 GiB for a stored file. */
  TooLarge: "TOO_LARGE",
  /** A Content-Type header that does not parse. */
  UnsupportedMediaType: "UNSUPPORTED_MEDIA_TYPE",
  /** The SDK's browser build is not built. */
  NotBuilt: "NOT_BUILT",
  /** Anything unexpected (the details go to stderr, never to the client). */
  Internal: "INTERNAL",
} as const;
export type WebErrorCode = (typeof WebErrorCode)[keyof typeof WebErrorCode];

export class WebError extends Error {
  constructor(
    readonly status: number,
    readonly code: WebErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "WebError";
  }
}

/** The code for a status that did not come with one (fastify's own 4xx errors). */
export function codeForStatus(status: number): WebErrorCode {
  switch (status) {
    case 401:
      return WebErrorCode.Unauthenticated;
    case 403:
      return WebErrorCode.Forbidden;
    case 404:
      return WebErrorCode.NotFound;
    case 405:
      return WebErrorCode.MethodNotAllowed;
    case 413:
      return WebErrorCode.TooLarge;
    case 415:
      return WebErrorCode.UnsupportedMediaType;
    default:
      return status >= 500 ? WebErrorCode.Internal : WebErrorCode.Malformed;
  }
}
