/**
 * The JSON schemas of the log's and the witness's requests (fastify validates them before a
 * handler runs; a refusal is 400 MALFORMED, http-errors.ts). Types are not coerced and nothing
 * unknown is dropped: a query or body field a route does not know is a refusal, as is a query
 * parameter given twice. The handlers still decode what a schema cannot say (base64 to bytes,
 * decimals to safe integers) and refuse it the same way.
 */
import { MAX_ENTRY_SIZE } from "@bkv/tlog";

/** As the host's: no coercion (a query value stays a string), no silent removal of unknown fields. */
export const AJV_OPTIONS = { customOptions: { removeAdditional: false, coerceTypes: false } } as const;

/** The largest evidence the log takes with an /add (decoded bytes). */
export const MAX_EVIDENCE_SIZE = 1 << 20;

/** Length of the standard base64 of n bytes (padded). */
export function base64Length(n: number): number {
  return 4 * Math.ceil(n / 3);
}

const B64 = "[A-Za-z0-9+/]";
/** The last group of canonical padded base64: unused bits zero (A Q g w; every fourth value). */
const B64_TAIL = `(?:${B64}[AQgw]==|${B64}{2}[AEIMQUYcgkosw048]=)`;

/** Canonical padded standard base64 of at most maxBytes bytes. */
function base64(maxBytes: number) {
  return {
    type: "string",
    pattern: `^(?:${B64}{4})*${B64_TAIL}?$`,
    maxLength: base64Length(maxBytes),
  } as const;
}

/** Canonical padded standard base64 of exactly 64 bytes (21 groups, then one byte). */
const BASE64_64_BYTES = { type: "string", pattern: `^${B64}{85}[AQgw]==$` } as const;

/** A namespace: 1..255 printable ASCII characters (isValidNamespace of @bkv/tlog). */
export const NAMESPACE = { type: "string", pattern: "^[\\x21-\\x7e]{1,255}$" } as const;
/** A decimal without leading zeros, at most 16 digits (parseDecimal of @bkv/tlog). */
export const DECIMAL = { type: "string", pattern: "^(?:0|[1-9][0-9]{0,15})$" } as const;
/** An epoch in a query: a decimal without leading zeros, at most 10 digits. */
export const EPOCH = { type: "string", pattern: "^(?:0|[1-9][0-9]{0,9})$" } as const;
/** 32 bytes (a SHA-256, a measurement) as 64 lowercase hex digits. */
export const HEX32 = { type: "string", pattern: "^[0-9a-f]{64}$" } as const;

type Schema = Record<string, unknown>;

/** A query string of these parameters only, each at most once. */
export function query(properties: Record<string, Schema>, required: string[] = []): Schema {
  return { type: "object", additionalProperties: false, required, properties };
}

/** Path parameters, all required. */
export function params(properties: Record<string, Schema>): Schema {
  return { type: "object", additionalProperties: false, required: Object.keys(properties), properties };
}

/** A route that takes no query parameters. */
export const NO_QUERY = query({});

/** POST /add: the submission; the submitter's signature is checked (or found missing) later, 403. */
export const ADD_BODY = {
  type: "object",
  additionalProperties: false,
  required: ["namespace", "epoch", "artifact", "evidence"],
  properties: {
    namespace: NAMESPACE,
    epoch: { type: "integer", minimum: 0, maximum: 0xffffffff },
    artifact: base64(MAX_ENTRY_SIZE),
    evidence: base64(MAX_EVIDENCE_SIZE),
    submitterSignature: BASE64_64_BYTES,
  },
} as const;

/** POST /add's body limit: the largest fields in JSON, with room for the rest. */
export const ADD_BODY_LIMIT = base64Length(MAX_ENTRY_SIZE) + base64Length(MAX_EVIDENCE_SIZE) + 4096;
/** Every other route of the log takes no body worth the name. */
export const OTHER_BODY_LIMIT = 4096;

/**
 * /tile/* after "tile/": a level 0..63 or "entries", the index in groups of three digits
 * (x-prefixed but the last), an optional ".p/<width>". parseTilePath checks the rest
 * (canonical index, width 1..255) and its refusals are 400 too.
 */
export const TILE_PARAMS = params({
  "*": {
    type: "string",
    maxLength: 64,
    pattern: "^(?:entries|[0-9]|[1-5][0-9]|6[0-3])/(?:x[0-9]{3}/){0,5}[0-9]{3}(?:\\.p/[1-9][0-9]{0,2})?$",
  },
});
