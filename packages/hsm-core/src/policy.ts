/** Fixed parameters of the vault. The guess limit is chosen at genesis and frozen in the log. */

export const DEFAULT_GUESS_LIMIT = 10;
export const MAX_GUESS_LIMIT = 100;
/** A request's issued-at time must be strictly within this many ms of the HSM clock. */
export const REQUEST_WINDOW_MS = 10 * 60 * 1000;
/**
 * A request id (and its answer) is kept until the log's clock is this far past the entry that
 * answered it: twice the window plus a margin, so by the time it is forgotten every copy of that
 * request is refused as expired.
 */
export const REQUEST_MEMORY_MS = 2 * REQUEST_WINDOW_MS + 60 * 1000;
/** A login that started (guess used) must finish within this time. */
export const LOGIN_TTL_MS = 2 * 60 * 1000;
/** At most this many logins in progress per record. */
export const MAX_PENDING_LOGINS = 16;
/** Emit a snapshot once this many entries have been added since the last one. */
export const SNAPSHOT_EVERY = 2000;
