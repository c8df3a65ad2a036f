/**
 * The error answers of the log's and the witness's HTTP APIs, in the host's shape (host/src/api.ts):
 * `{code, message}`, code an ErrorCode of @bkv/wire or, as the host's, NOT_FOUND (no such endpoint
 * or resource) or INTERNAL (a fault of the server; its message is never the fault's). One error
 * handler per server answers every failure: a request refused by its route's schema is 400
 * MALFORMED before any handler runs, as are bodies that do not parse; other refusals of the HTTP
 * layer (413 too large, 415 media type) keep their status with MALFORMED.
 * Spec-defined answers (tlog-witness, witness-server.ts) are not errors in this sense and keep
 * their own formats.
 */
import { TlogError, TlogErrorCode } from "@bkv/tlog";
import { ErrorCode } from "@bkv/wire";
import type { FastifyInstance, FastifyReply } from "fastify";
import type { EventSink } from "./events.js";

/** No such endpoint, or no such entry, tile, evidence, release or checkpoint (as the host's). */
export const NOT_FOUND = "NOT_FOUND";
/** A fault of the server itself (as the host's). */
export const INTERNAL = "INTERNAL";

export type HttpErrorCode = ErrorCode | typeof NOT_FOUND | typeof INTERNAL;

/** The body of every error answer. */
export interface ErrorBody {
  readonly code: HttpErrorCode;
  readonly message: string;
}

/** An HTTP-facing failure: status, code and message. */
export class LogHttpError extends Error {
  readonly code: HttpErrorCode;

  constructor(
    readonly status: number,
    message: string,
    code?: HttpErrorCode,
  ) {
    super(message);
    this.code =
      code ?? (status === 400 ? ErrorCode.Malformed : status === 404 ? NOT_FOUND : ErrorCode.Invalid);
  }
}

export function sendError(reply: FastifyReply, status: number, code: HttpErrorCode, message: string) {
  return reply
    .code(status)
    .type("application/json; charset=utf-8")
    .send({ code, message } satisfies ErrorBody);
}

/** Install the one error handler and the not-found handler of a server. */
export function installErrorHandlers(app: FastifyInstance, event: EventSink): void {
  app.setErrorHandler((err, _req, reply) => {
    if (err instanceof LogHttpError) return sendError(reply, err.status, err.code, err.message);
    if (err instanceof TlogError && err.code === TlogErrorCode.Range)
      return sendError(reply, 400, ErrorCode.Malformed, err.message);
    const e = err as { validation?: unknown; statusCode?: number; message?: string };
    if (e.validation !== undefined) return sendError(reply, 400, ErrorCode.Malformed, String(e.message));
    if (e.statusCode !== undefined && e.statusCode >= 400 && e.statusCode < 500)
      return sendError(reply, e.statusCode, ErrorCode.Malformed, String(e.message));
    event("internal-error", { message: String(e.message) });
    return sendError(reply, 500, INTERNAL, "internal error");
  });
  app.setNotFoundHandler((_req, reply) => sendError(reply, 404, NOT_FOUND, "no such endpoint"));
}
