/**
 * The host agent's HTTP API (fastify). Request bodies are validated against JSON schemas; the
 * OpenAPI document at GET /openapi.json is generated from the routes and their schemas
 * (@fastify/swagger), so it describes what the server does. CORS by @fastify/cors. The host authorizes (token subject = the user in
 * the envelope), rate-limits and relays; it cannot read requests or responses.
 */

import {
  BkvError,
  type BundleJson,
  CHECKPOINT_SIZE_HEADER,
  decodeRequestEnvelope,
  ErrorCode,
  fromBase64Url,
  isBkvError,
  toBase64Url,
  toHex,
} from "@bkv/wire";
import fastifyCors from "@fastify/cors";
import swagger, { type FastifyDynamicSwaggerOptions } from "@fastify/swagger";
import Fastify, { type FastifyInstance, type FastifyReply } from "fastify";
import type { TokenVerifier } from "./auth.js";
import type { BundleKeeper } from "./bundle-keeper.js";
import type { HostConfig } from "./config.js";
import { allowedHostNames, hostNameGuard } from "./host-names.js";
import type { HsmLink } from "./hsm-link.js";
import { listenerOptions } from "./listener-options.js";
import { type HostMetrics, instrumentRequests, registerProbes } from "./metrics.js";
import type { FaultsFile } from "./peers.js";
import { RateLimiter } from "./rate-limit.js";

const B64URL = { type: "string", pattern: "^[A-Za-z0-9_-]+$", maxLength: 12000 } as const;

const ERROR = {
  type: "object",
  required: ["code", "message"],
  properties: { code: { type: "string" }, message: { type: "string" } },
} as const;

const VAULT_REQUEST = {
  type: "object",
  required: ["request"],
  additionalProperties: false,
  properties: { request: { ...B64URL, description: "A sealed vault request envelope (base64url)." } },
} as const;

const B64 = { type: "string", pattern: "^[A-Za-z0-9+/]*={0,2}$", maxLength: 1 << 16 } as const;

const BUNDLE = {
  type: "object",
  description:
    "The fleet's validation bundle (packages/wire/src/validation-bundle.ts): the client verifies it against its pinned log key, witness keys and namespace before it trusts the fleet's keys.",
  required: [
    "namespace",
    "epoch",
    "artifact",
    "evidenceDigest",
    "index",
    "logSignature",
    "countersignature",
    "inclusionProof",
    "checkpoint",
  ],
  properties: {
    namespace: { type: "string" },
    epoch: { type: "integer" },
    artifact: B64,
    evidenceDigest: B64,
    index: { type: "integer" },
    logSignature: B64,
    countersignature: B64,
    inclusionProof: { type: "array", items: B64 },
    checkpoint: { type: "string" },
    evidence: {
      ...B64,
      description: "The fleet's evidence (GET /v1/bundle only; its SHA-256 is evidenceDigest).",
    },
    consistency: {
      type: "object",
      required: ["from", "proof"],
      properties: { from: { type: "integer" }, proof: { type: "array", items: B64 } },
    },
    release: {
      type: "object",
      description:
        "The release entry of the fleet's measurement in the log's releases namespace, against the same checkpoint (GET /v1/bundle only, when the host is configured with transparency.releases and the log has one).",
      required: [
        "namespace",
        "epoch",
        "artifact",
        "evidenceDigest",
        "index",
        "logSignature",
        "inclusionProof",
        "checkpoint",
      ],
      properties: {
        namespace: { type: "string" },
        epoch: { type: "integer" },
        artifact: B64,
        evidenceDigest: B64,
        index: { type: "integer" },
        logSignature: B64,
        inclusionProof: { type: "array", items: B64 },
        checkpoint: { type: "string" },
      },
    },
  },
} as const;

const VAULT_RESPONSE = {
  type: "object",
  required: ["response"],
  properties: {
    response: { ...B64URL, description: "The HSM's sealed response envelope (base64url)." },
    bundle: BUNDLE,
  },
} as const;

const INFO = {
  type: "object",
  required: ["node", "fleetId", "vaultPublicKey", "guessesAllowed"],
  properties: {
    node: { type: "integer" },
    fleetId: { type: "string", description: "hex" },
    vaultPublicKey: {
      type: "string",
      description: "X25519 HPKE key (hex). Clients must get it from a trusted source, not from here.",
    },
    guessesAllowed: { type: "integer" },
  },
} as const;

const HEALTH = {
  type: "object",
  required: ["status"],
  properties: {
    status: { type: "string", enum: ["ok", "starting", "uninitialized", "recovering", "failed"] },
    node: { type: "integer" },
    role: { type: "string", description: "leader, follower, candidate, pre-candidate, recovering" },
    term: { type: "integer" },
    leader: { type: "integer", description: "0 when none is known" },
    commitIndex: { type: "integer" },
    durableIndex: { type: "integer" },
    recoverUntil: {
      type: "integer",
      description: "while recovering: the log index this HSM acknowledged before its storage was rolled back",
    },
    peerForged: { type: "integer", description: "peer messages that failed authentication" },
    peerReplayed: { type: "integer", description: "authentic peer messages refused as replays" },
    peerRefused: {
      type: "integer",
      description: "connections the peer port refused (no handshake as a fleet host)",
    },
    peerFramesRefused: {
      type: "integer",
      description: "frames from peer hosts refused: over the cap or a bad tag",
    },
    peerFramesRelayed: { type: "integer", description: "frames from peer hosts relayed to the HSM" },
    peerFramesDropped: {
      type: "integer",
      description: "frames from peer hosts dropped while the HSM's input was full (Raft retransmits)",
    },
    framesRejected: {
      type: "integer",
      description: "frames the HSM refused from its host: over the size cap or undecodable",
    },
    hostPid: { type: "integer" },
    hsmPid: { type: "integer" },
    reason: { type: "string" },
  },
} as const;

/** The document's header: what the routes' schemas do not say (GET /openapi.json). */
const OPENAPI: FastifyDynamicSwaggerOptions["openapi"] = {
  openapi: "3.1.0",
  info: {
    title: "Backup Key Vault host agent",
    version: "1",
    description: "Relays sealed vault requests to the HSM. The host cannot read them.",
  },
  tags: [
    { name: "vault", description: "Sealed vault requests and the vault's public key" },
    { name: "transparency", description: "The fleet's validation bundle from the transparency log" },
    { name: "health", description: "Liveness, readiness and HSM state" },
    { name: "meta", description: "This document" },
  ],
  components: {
    securitySchemes: { bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT (EdDSA)" } },
    // The same constants the routes use (readonly for TypeScript, plain JSON Schema for OpenAPI 3.1).
    schemas: {
      Error: ERROR,
      VaultRequest: VAULT_REQUEST,
      VaultResponse: VAULT_RESPONSE,
      Info: INFO,
      Health: HEALTH,
    } as unknown as Record<string, object>,
  },
};

/** A response schema with the response's description in the document (the schema keeps its own). */
function response<S extends object>(description: string, schema: S) {
  return { ...schema, "x-response-description": description };
}
const err = (description: string) => response(description, ERROR);

function send(reply: FastifyReply, status: number, code: string, message: string) {
  return reply.code(status).send({ code, message });
}

const STATUS_FOR_HSM_CODE: Record<string, number> = {
  [ErrorCode.Malformed]: 400,
  [ErrorCode.Authentication]: 400,
  [ErrorCode.Unavailable]: 503,
};

export interface ApiDeps {
  config: HostConfig;
  hsm: HsmLink;
  tokens: TokenVerifier;
  faults?: FaultsFile;
  /** This host's own base URL, once it listens. */
  selfUrl?: () => string | undefined;
  /** The peer port's counters (null without peers). */
  peerCounters?: () => { refused: number; framesRefused: number; relayed: number } | null;
  /** The fleet's validation bundle, when the fleet is published in a transparency log. */
  bundles?: BundleKeeper;
  /** The rate-limit tables (made from config.rateLimits when not given). */
  limiters?: { perUser: RateLimiter; perAddress: RateLimiter };
  /** Count and time requests, and serve /livez and /readyz. */
  metrics?: HostMetrics;
}

/** The checkpoint size a client says it has seen (header or query), or null. */
function seenSize(v: unknown): number | null {
  const n = typeof v === "string" && /^[0-9]{1,15}$/.test(v) ? Number(v) : Number.NaN;
  return Number.isSafeInteger(n) ? n : null;
}

/** The client API, its routes registered (not yet listening). */
export async function buildApi(deps: ApiDeps): Promise<FastifyInstance> {
  const { config, tokens } = deps;
  const app = Fastify({
    ...listenerOptions(config.tls, config.trustProxy),
    bodyLimit: 16 * 1024,
    logger: {
      level: process.env.BKV_LOG_LEVEL ?? "info",
      redact: ["req.headers.authorization"],
      stream: process.stderr,
    },
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false } },
  }) as unknown as FastifyInstance;
  app.addHook("onRequest", hostNameGuard(allowedHostNames(config.hostNames, config.listen.host)));
  const perUser = deps.limiters?.perUser ?? new RateLimiter(config.rateLimits.perUser);
  const perAddress = deps.limiters?.perAddress ?? new RateLimiter(config.rateLimits.perAddress);
  // The OpenAPI document is generated from the routes' schemas, so it cannot drift from them:
  // loaded before any route, it sees each one as it is added (onRoute).
  await app.register(swagger, { openapi: OPENAPI });
  if (deps.metrics !== undefined) instrumentRequests(app, deps.metrics);
  registerProbes(app, () => deps.hsm);

  // Web apps on the configured origins may call the client API from the browser (CORS). Peer hosts
  // connect to their own listener (peers.ts), never to this API. Any other origin (or none) gets no
  // CORS header, and its OPTIONS request no preflight answer (404).
  const cors = new Set(config.corsOrigins ?? []);
  await app.register(fastifyCors, {
    origin: (origin, cb) => cb(null, origin !== undefined && cors.has(origin)),
    methods: ["GET", "POST"],
    allowedHeaders: ["authorization", "content-type", CHECKPOINT_SIZE_HEADER],
    exposedHeaders: ["x-bkv-leader"],
    credentials: false,
    maxAge: 600,
    // An OPTIONS request from an allowed origin is answered as a preflight even without
    // Access-Control-Request-Method (as before @fastify/cors).
    strictPreflight: false,
  });

  app.setErrorHandler((err, _req, reply) => {
    const e = err as { validation?: unknown; statusCode?: number; message: string };
    if (e.validation !== undefined) return send(reply, 400, ErrorCode.Malformed, e.message);
    const status =
      e.statusCode !== undefined && e.statusCode >= 400 && e.statusCode < 500 ? e.statusCode : 500;
    if (status === 500) app.log.error({ event: "internal-error", error: e.message }, "internal error");
    return send(
      reply,
      status,
      status === 500 ? "INTERNAL" : ErrorCode.Malformed,
      status === 500 ? "internal error" : e.message,
    );
  });
  app.setNotFoundHandler((_req, reply) => send(reply, 404, "NOT_FOUND", "no such endpoint"));

  app.get(
    "/openapi.json",
    {
      schema: {
        summary: "This document",
        description: "Generated from the routes' schemas (@fastify/swagger).",
        tags: ["meta"],
        response: { 200: response("OpenAPI 3.1", { type: "object", additionalProperties: true }) },
      },
    },
    async () => app.swagger(),
  );

  const health = {
    summary: "Liveness and HSM state",
    tags: ["health"],
    response: { 200: response("Health", HEALTH), 503: response("Not serving", HEALTH) },
  };
  app.get("/v1/health", { schema: health }, async (_req, reply) => {
    const s = deps.hsm.state;
    const st = s.kind === "serving" ? await deps.hsm.status() : null;
    const recovering = st?.recovering ?? (s.kind === "serving" && s.recovering);
    const status = s.kind === "serving" ? (recovering ? "recovering" : "ok") : s.kind;
    const pc = deps.peerCounters?.() ?? null;
    const body = {
      status,
      node: config.node,
      hostPid: process.pid,
      ...(pc === null
        ? {}
        : {
            peerRefused: pc.refused,
            peerFramesRefused: pc.framesRefused,
            peerFramesRelayed: pc.relayed,
            peerFramesDropped: deps.hsm.peerDropped,
          }),
      ...(st === null ? {} : st),
      ...(deps.hsm.pid === undefined ? {} : { hsmPid: deps.hsm.pid }),
      ...(s.kind === "failed" ? { reason: `${s.code}: ${s.message}` } : {}),
    };
    return reply.code(status === "ok" ? 200 : 503).send(body);
  });

  const info = {
    summary: "Vault key and policy",
    tags: ["vault"],
    response: { 200: response("Info", INFO), 503: err("HSM unavailable") },
  };
  app.get("/v1/info", { schema: info }, async (_req, reply) => {
    const s = deps.hsm.state;
    if (s.kind !== "serving") return send(reply, 503, ErrorCode.Unavailable, "HSM is not serving");
    return {
      node: config.node,
      fleetId: toHex(s.fleetId),
      vaultPublicKey: toHex(s.vaultPublicKey),
      guessesAllowed: s.guessesAllowed,
    };
  });

  app.post<{ Body: { request: string } }>(
    "/v1/vault",
    {
      schema: {
        summary: "Send a sealed vault request for the token's user",
        description:
          "The response names the leader's host in x-bkv-leader when known, and carries the fleet's validation bundle when the fleet is published in a log (with a consistency proof from the checkpoint size in x-bkv-checkpoint-size).",
        tags: ["vault"],
        security: [{ bearer: [] }],
        body: VAULT_REQUEST,
        response: {
          200: response("Sealed response", VAULT_RESPONSE),
          400: err("Malformed request or envelope"),
          401: err("Missing or invalid token"),
          403: err("Token user differs from the envelope's user"),
          429: err("Rate limited"),
          503: err("HSM unavailable"),
        },
      },
    },
    async (req, reply) => {
      if (!perAddress.take(req.ip))
        return send(reply, 429, ErrorCode.RateLimited, "too many requests from this address");
      let user: string;
      try {
        user = await tokens.verify(req.headers.authorization);
      } catch (e) {
        return send(reply, 401, ErrorCode.Forbidden, isBkvError(e) ? e.message : "invalid token");
      }
      if (!perUser.take(user))
        return send(reply, 429, ErrorCode.RateLimited, "too many requests for this user");
      let envelope: Uint8Array;
      try {
        envelope = fromBase64Url(req.body.request);
        const env = decodeRequestEnvelope(envelope);
        if (env.user !== user) {
          return send(reply, 403, ErrorCode.Forbidden, "the token's user may act only on their own record");
        }
      } catch (e) {
        const msg = e instanceof BkvError ? e.message : "malformed request";
        return send(reply, 400, ErrorCode.Malformed, msg);
      }
      const r = await deps.hsm.request(envelope);
      // A hint for clients that know several hosts: the leader's host answers with one hop less.
      const leader = deps.hsm.lastStatus?.leader ?? 0;
      const leaderUrl =
        leader === config.node ? deps.selfUrl?.() : config.peers.find((p) => p.node === leader)?.url;
      if (leaderUrl !== undefined) reply.header("x-bkv-leader", leaderUrl);
      if (!r.ok) {
        const status = STATUS_FOR_HSM_CODE[r.code] ?? 400;
        req.log.info({ event: "vault-rejected", code: r.code }, "HSM rejected request");
        return send(reply, status, r.code, r.message);
      }
      const bundle = await deps.bundles
        ?.current(seenSize(req.headers[CHECKPOINT_SIZE_HEADER]))
        .catch(() => null);
      return bundle === null || bundle === undefined
        ? { response: toBase64Url(r.envelope) }
        : { response: toBase64Url(r.envelope), bundle };
    },
  );

  app.get<{ Querystring: { from?: string } }>(
    "/v1/bundle",
    {
      schema: {
        summary: "The fleet's validation bundle (with a consistency proof from ?from=SIZE)",
        tags: ["transparency"],
        querystring: {
          type: "object",
          properties: {
            from: {
              type: "string",
              pattern: "^[0-9]{1,15}$",
              description: "The checkpoint size the client has seen",
            },
          },
        },
        response: {
          200: response("Bundle", BUNDLE),
          400: err("Malformed query"),
          404: err("Not published in a log"),
          429: err("Rate limited"),
          503: err("No bundle yet"),
        },
      },
    },
    async (req, reply) => {
      if (!perAddress.take(req.ip))
        return send(reply, 429, ErrorCode.RateLimited, "too many requests from this address");
      if (deps.bundles === undefined)
        return send(reply, 404, ErrorCode.Invalid, "this fleet is not published in a transparency log");
      let bundle: BundleJson | null;
      try {
        bundle = await deps.bundles.current(seenSize(req.query.from), { evidence: true });
      } catch (e) {
        return send(reply, 503, ErrorCode.Unavailable, (e as Error).message);
      }
      if (bundle === null) return send(reply, 503, ErrorCode.Unavailable, "no validation bundle yet");
      return bundle;
    },
  );

  return app;
}
