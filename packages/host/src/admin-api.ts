/**
 * The admin listener: the operator's own port, apart from the client API and the peer port. It
 * carries the genesis ceremony (`bkv fleet create --hosts`: each step relayed as one HSM API frame
 * to this host's HSM, which checks everything itself) and status. Every request needs the admin
 * key (`Authorization: Bearer KEY`; the config holds only its SHA-256), and, like the client API,
 * a Host header the config names. The admin key protects the ceremony from strangers (an
 * uninitialized HSM that joins a stranger's genesis is spent), not the vault: the operator holds
 * it, and the HSMs trust no operator.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { BkvError, ErrorCode, fromBase64Url, fromHex, isBkvError, toBase64Url, toHex } from "@bkv/wire";
import Fastify, { type FastifyInstance, type FastifyReply } from "fastify";
import type { AdminConfig, HostConfig } from "./config.js";
import { allowedHostNames, hostNameGuard } from "./host-names.js";
import type { HsmLink } from "./hsm-link.js";
import { listenerOptions } from "./listener-options.js";

const B64URL = { type: "string", pattern: "^[A-Za-z0-9_-]*$", maxLength: 200_000 } as const;
const B64URL_LIST = { type: "array", minItems: 1, maxItems: 9, items: B64URL } as const;

const CREATE = {
  type: "object",
  additionalProperties: false,
  required: [
    "members",
    "challenges",
    "guessLimit",
    "namespace",
    "epoch",
    "logKey",
    "releaseKey",
    "maxSuccessorGuessLimit",
    "witnesses",
    "witnessThreshold",
  ],
  properties: {
    members: B64URL_LIST,
    challenges: B64URL_LIST,
    guessLimit: { type: "integer", minimum: 1, maximum: 255 },
    namespace: { type: "string", minLength: 1, maxLength: 255 },
    epoch: { type: "integer", minimum: 0, maximum: 0xffffffff },
    logKey: B64URL,
    releaseKey: B64URL,
    maxSuccessorGuessLimit: { type: "integer", minimum: 1, maximum: 255 },
    witnesses: {
      type: "array",
      minItems: 1,
      maxItems: 16,
      items: {
        type: "object",
        additionalProperties: false,
        required: ["name", "key"],
        properties: { name: { type: "string", minLength: 1, maxLength: 255 }, key: B64URL },
      },
    },
    witnessThreshold: { type: "integer", minimum: 1, maximum: 16 },
  },
} as const;

const JOIN = {
  type: "object",
  additionalProperties: false,
  required: ["package", "statement"],
  properties: { package: B64URL, statement: B64URL },
} as const;

const FINISH = {
  type: "object",
  additionalProperties: false,
  required: ["signatures"],
  properties: { signatures: B64URL_LIST },
} as const;

/** SHA-256 (hex) of an admin key, what a config's admin.keySha256 holds. */
export function adminKeyDigest(key: string): string {
  return createHash("sha256").update(key, "utf8").digest("hex");
}

function send(reply: FastifyReply, status: number, code: string, message: string) {
  return reply.code(status).send({ code, message });
}

const STATUS_FOR: Record<string, number> = {
  [ErrorCode.Unavailable]: 503,
  [ErrorCode.GenesisSpent]: 409,
};

export interface AdminDeps {
  config: HostConfig & { admin: AdminConfig };
  hsm: () => HsmLink;
}

export function buildAdminApi(deps: AdminDeps): FastifyInstance {
  const { config } = deps;
  const admin = config.admin;
  const app = Fastify({
    ...listenerOptions(admin.tls ?? config.tls, undefined),
    bodyLimit: 1 << 20,
    logger: {
      level: process.env.BKV_LOG_LEVEL ?? "info",
      redact: ["req.headers.authorization"],
      stream: process.stderr,
    },
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false } },
  }) as unknown as FastifyInstance;
  app.addHook("onRequest", hostNameGuard(allowedHostNames(config.hostNames, admin.listen.host)));
  const want = Buffer.from(fromHex(admin.keySha256));
  app.addHook("onRequest", async (req, reply) => {
    const h = req.headers.authorization;
    const key = typeof h === "string" && h.startsWith("Bearer ") ? h.slice(7) : "";
    const got = createHash("sha256").update(key, "utf8").digest();
    if (key === "" || !timingSafeEqual(got, want)) {
      req.log.warn({ event: "admin-refused" }, "admin request without the admin key");
      return send(
        reply,
        401,
        ErrorCode.Forbidden,
        "the admin listener needs the admin key (Authorization: Bearer KEY)",
      );
    }
  });
  app.setErrorHandler((err, _req, reply) => {
    const e = err as { validation?: unknown; statusCode?: number; message: string };
    if (e.validation !== undefined) return send(reply, 400, ErrorCode.Malformed, e.message);
    if (isBkvError(err)) return send(reply, STATUS_FOR[err.code] ?? 400, err.code, err.message);
    if (e.statusCode !== undefined && e.statusCode < 500)
      return send(reply, e.statusCode, ErrorCode.Malformed, e.message);
    app.log.error({ event: "admin-internal-error", error: e.message }, "internal error");
    return send(reply, 500, "INTERNAL", "internal error");
  });
  app.setNotFoundHandler((_req, reply) => send(reply, 404, "NOT_FOUND", "no such endpoint"));

  app.get("/admin/v1/status", async () => {
    const hsm = deps.hsm();
    const s = hsm.state;
    const st = s.kind === "serving" ? await hsm.status() : null;
    return {
      node: config.node,
      state: s.kind,
      ...(s.kind === "serving"
        ? { fleetId: toHex(s.fleetId), recovering: st?.recovering ?? s.recovering }
        : {}),
      ...(s.kind === "failed" ? { reason: `${s.code}: ${s.message}` } : {}),
      ...(st === null ? {} : { raft: st }),
      hostPid: process.pid,
      ...(hsm.pid === undefined ? {} : { hsmPid: hsm.pid }),
    };
  });

  app.get("/admin/v1/genesis/identity", async () => {
    const s = deps.hsm().state;
    if (s.kind === "serving")
      throw new BkvError(ErrorCode.GenesisSpent, `node ${config.node}'s HSM is already a member of a fleet`);
    if (s.kind !== "uninitialized")
      throw new BkvError(
        ErrorCode.Unavailable,
        `node ${config.node}'s HSM is ${s.kind}, not waiting for a genesis`,
      );
    return { node: config.node, attestation: toBase64Url(s.identity), challenge: toBase64Url(s.challenge) };
  });

  app.post<{
    Body: {
      members: string[];
      challenges: string[];
      guessLimit: number;
      namespace: string;
      epoch: number;
      logKey: string;
      releaseKey: string;
      maxSuccessorGuessLimit: number;
      witnesses: { name: string; key: string }[];
      witnessThreshold: number;
    };
  }>("/admin/v1/genesis/create", { schema: { body: CREATE } }, async (req) => {
    const b = req.body;
    const r = await deps.hsm().genesis({
      type: "genesis-create",
      members: b.members.map((m) => fromBase64Url(m)),
      challenges: b.challenges.map((c) => fromBase64Url(c)),
      guessLimit: b.guessLimit,
      namespace: b.namespace,
      epoch: b.epoch,
      logKey: fromBase64Url(b.logKey),
      releaseKey: fromBase64Url(b.releaseKey),
      maxSuccessorGuessLimit: b.maxSuccessorGuessLimit,
      witnessPolicy: {
        witnesses: b.witnesses.map((w) => ({ name: w.name, key: fromBase64Url(w.key) })),
        threshold: b.witnessThreshold,
      },
    });
    if (r.type !== "genesis-packages") throw new Error(`unexpected ${r.type}`);
    return { statement: toBase64Url(r.statement), packages: r.packages.map(toBase64Url) };
  });

  app.post<{ Body: { package: string; statement: string } }>(
    "/admin/v1/genesis/join",
    { schema: { body: JOIN } },
    async (req) => {
      const r = await deps.hsm().genesis({
        type: "genesis-join",
        package: fromBase64Url(req.body.package),
        statement: fromBase64Url(req.body.statement),
      });
      if (r.type !== "genesis-signature") throw new Error(`unexpected ${r.type}`);
      return { signature: toBase64Url(r.signature) };
    },
  );

  app.post<{ Body: { signatures: string[] } }>(
    "/admin/v1/genesis/finish",
    { schema: { body: FINISH } },
    async (req) => {
      const r = await deps
        .hsm()
        .genesis({ type: "genesis-finish", signatures: req.body.signatures.map((x) => fromBase64Url(x)) });
      if (r.type !== "booted") throw new Error(`unexpected ${r.type}`);
      return { node: r.node, fleetId: toHex(r.fleetId) };
    },
  );
  return app;
}
