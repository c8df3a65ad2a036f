/**
 * The operator's side of a host's admin listener (`bkv fleet create --hosts`): JSON over HTTP(S)
 * with the admin key, trusting the certificates in --ca (or the system's). Each host is one member
 * of the ceremony (host/src/ceremony.ts `GenesisMember`); its HSM never leaves its host.
 */
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import type { GenesisMember } from "@bkv/host";
import { BkvError, ErrorCode, fromBase64Url, toBase64Url } from "@bkv/wire";

export interface AdminTarget {
  url: string;
  adminKey: string;
  /** PEM certificates to trust (the hosts' own or their CA); undefined: the system's. */
  ca?: string;
}

export async function adminCall(
  t: AdminTarget,
  method: string,
  path: string,
  body?: unknown,
): Promise<unknown> {
  const u = new URL(path, t.url);
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  const request = u.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(
      u,
      {
        method,
        headers: {
          authorization: `Bearer ${t.adminKey}`,
          ...(payload === undefined
            ? {}
            : { "content-type": "application/json", "content-length": payload.length }),
        },
        ...(u.protocol === "https:" && t.ca !== undefined ? { ca: t.ca } : {}),
        timeout: 90_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          let json: unknown;
          try {
            json = JSON.parse(Buffer.concat(chunks).toString("utf8"));
          } catch {
            reject(
              new BkvError(
                ErrorCode.HostError,
                `the admin listener at ${t.url} answered ${res.statusCode} without JSON`,
              ),
            );
            return;
          }
          if (res.statusCode === 200) resolve(json);
          else {
            const e = json as { code?: string; message?: string };
            reject(
              new BkvError(
                (e.code ?? ErrorCode.HostError) as ErrorCode,
                `the admin listener at ${t.url} said ${res.statusCode} ${e.code ?? ""}: ${e.message ?? ""}`,
              ),
            );
          }
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", (e) =>
      reject(
        new BkvError(ErrorCode.Unavailable, `cannot reach the admin listener at ${t.url}: ${e.message}`),
      ),
    );
    req.end(payload);
  });
}

/** A host's admin listener as a member of the ceremony. */
export function remoteMember(t: AdminTarget, node: number): GenesisMember {
  const post = (path: string, body: unknown) =>
    adminCall(t, "POST", path, body) as Promise<Record<string, unknown>>;
  return {
    node,
    async identity() {
      const r = (await adminCall(t, "GET", "/admin/v1/genesis/identity")) as {
        node: number;
        attestation: string;
        challenge: string;
      };
      if (r.node !== node)
        throw new BkvError(
          ErrorCode.Invalid,
          `${t.url} is node ${r.node}, listed as node ${node} in --hosts`,
        );
      return { attestation: fromBase64Url(r.attestation), challenge: fromBase64Url(r.challenge) };
    },
    async create(c) {
      const r = (await post("/admin/v1/genesis/create", {
        members: c.members.map((m) => toBase64Url(m)),
        challenges: c.challenges.map((x) => toBase64Url(x)),
        guessLimit: c.guessLimit,
        namespace: c.namespace,
        epoch: c.epoch,
        logKey: toBase64Url(c.logKey),
        releaseKey: toBase64Url(c.releaseKey),
        maxSuccessorGuessLimit: c.maxSuccessorGuessLimit,
        witnesses: c.witnessPolicy.witnesses.map((w) => ({ name: w.name, key: toBase64Url(w.key) })),
        witnessThreshold: c.witnessPolicy.threshold,
      })) as { statement: string; packages: string[] };
      return { statement: fromBase64Url(r.statement), packages: r.packages.map((p) => fromBase64Url(p)) };
    },
    async join(pkg, statement) {
      const r = (await post("/admin/v1/genesis/join", {
        package: toBase64Url(pkg),
        statement: toBase64Url(statement),
      })) as { signature: string };
      return fromBase64Url(r.signature);
    },
    async finish(signatures) {
      const r = (await post("/admin/v1/genesis/finish", {
        signatures: signatures.map((s) => toBase64Url(s)),
      })) as { node: number };
      return r.node;
    },
  };
}
