/**
 * The host agent over real HTTP with a real HSM process: authorization, schema validation, rate
 * limits, and bad input for every endpoint (random and mutated bodies get a 4xx, the server stays
 * up, and nothing changes in the vault).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { httpTransport, sealRequest, VaultClient } from "@bkv/client";
import type { HostConfig, RunningHost } from "@bkv/host";
import { fromHex, toBase64Url } from "@bkv/wire";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startOneNodeVault, testHsmCommand } from "./one-node.js";

const LIGHT = { "argon2id-custom": { iterations: 1, memory: 8, parallelism: 1 } } as const;
const KEY = new Uint8Array(32).fill(9);

let dir: string;
let host: RunningHost;
let sign: (sub: string, opts?: { aud?: string; exp?: string }) => Promise<string>;
let vaultKey: Uint8Array;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "bkv-host-"));
  const { privateKey, publicKey } = await generateKeyPair("EdDSA", { crv: "Ed25519" });
  sign = (sub, opts = {}) =>
    new SignJWT({})
      .setProtectedHeader({ alg: "EdDSA" })
      .setSubject(sub)
      .setIssuer("test-issuer")
      .setAudience(opts.aud ?? "test-vault")
      .setExpirationTime(opts.exp ?? "1h")
      .sign(privateKey);
  const config: HostConfig = {
    node: 1,
    listen: { host: "127.0.0.1", port: 0 },
    storagePath: join(dir, "host.sqlite"),
    hsmCommand: testHsmCommand(dir),
    corsOrigins: ["http://app.example"],
    peers: [],
    auth: { issuer: "test-issuer", audience: "test-vault", publicKeyJwk: await exportJWK(publicKey) },
    rateLimits: {
      perUser: { capacity: 10_000, refillPerSecond: 10_000 },
      perAddress: { capacity: 10_000, refillPerSecond: 10_000 },
    },
  };
  process.env.BKV_LOG_LEVEL = process.env.BKV_LOG_LEVEL ?? "silent";
  host = await startOneNodeVault(config);
  const info = (await (await fetch(`${host.url}/v1/info`)).json()) as { vaultPublicKey: string };
  vaultKey = fromHex(info.vaultPublicKey);
});

afterAll(async () => {
  await host?.close();
  rmSync(dir, { recursive: true, force: true });
});

interface OpenApiOperation {
  summary?: string;
  tags?: string[];
  security?: unknown;
  parameters?: { in: string; name: string }[];
  requestBody?: { content: Record<string, { schema: { required?: string[] } }> };
  responses: Record<string, { description: string }>;
}
interface OpenApi {
  openapi: string;
  components: { securitySchemes: Record<string, unknown> };
  paths: Record<string, Record<string, OpenApiOperation>>;
}

const client = async (user: string, token?: string) =>
  new VaultClient({
    user,
    vaultPublicKey: vaultKey,
    transport: httpTransport({ url: host.url, token: token ?? (await sign(user)) }),
    keyStretching: LIGHT,
  });

async function post(body: unknown, token?: string, raw = false) {
  const res = await fetch(`${host.url}/v1/vault`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
    },
    body: raw ? (body as string) : JSON.stringify(body),
  });
  return {
    status: res.status,
    body: (await res.json()) as { code?: string; message?: string; response?: string },
  };
}

describe("host agent", () => {
  it("serves health, info and an OpenAPI document", async () => {
    const health = (await (await fetch(`${host.url}/v1/health`)).json()) as { status: string };
    expect(health.status).toBe("ok");
    const doc = (await (await fetch(`${host.url}/openapi.json`)).json()) as {
      openapi: string;
      paths: Record<string, unknown>;
    };
    expect(doc.openapi).toBe("3.1.0");
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(["/v1/vault", "/v1/health", "/v1/info"]));
    expect((await fetch(`${host.url}/nope`)).status).toBe(404);
  });

  it("documents every route the server serves (the OpenAPI document is generated from them)", async () => {
    const doc = (await (await fetch(`${host.url}/openapi.json`)).json()) as OpenApi;
    // Every route fastify serves, from its own routing table: "├── /v1/info (GET, HEAD)".
    const served = host.app
      .printRoutes({ commonPrefix: false })
      .split("\n")
      .map((line) => /^[│├└─\s]*(\S+) \(([A-Z, ]+)\)$/.exec(line))
      .filter((m) => m !== null)
      .flatMap((m) => m[2]!.split(", ").map((method) => ({ path: m[1]!, method })));
    expect(served.length).toBeGreaterThanOrEqual(8);
    const documented = new Set(
      Object.entries(doc.paths).flatMap(([path, ops]) =>
        Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`),
      ),
    );
    const undocumented = served
      // fastify answers HEAD for every GET route (documented as its GET); OPTIONS * is the CORS
      // preflight (@fastify/cors), hidden from the document.
      .filter((r) => !(r.method === "HEAD" && documented.has(`GET ${r.path}`)))
      .filter((r) => !(r.method === "OPTIONS" && r.path === "*"))
      .map((r) => `${r.method} ${r.path}`)
      .filter((r) => !documented.has(r));
    expect(undocumented).toEqual([]);
    // And nothing documented that is not served.
    const servedSet = new Set(served.map((r) => `${r.method} ${r.path}`));
    expect([...documented].filter((d) => !servedSet.has(d))).toEqual([]);

    // Each operation says what it is and what it answers; the vault takes a bearer token.
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        expect(op.summary, `${method} ${path}`).toMatch(/\w/);
        expect(op.tags?.length, `${method} ${path}`).toBe(1);
        for (const [code, r] of Object.entries(op.responses)) {
          expect(r.description, `${method} ${path} ${code}`).not.toBe("Default Response");
        }
      }
    }
    expect(doc.components.securitySchemes.bearer).toEqual({
      type: "http",
      scheme: "bearer",
      bearerFormat: "JWT (EdDSA)",
    });
    const vault = doc.paths["/v1/vault"]!.post!;
    expect(vault.security).toEqual([{ bearer: [] }]);
    expect(Object.keys(vault.responses).sort()).toEqual(["200", "400", "401", "403", "429", "503"]);
    expect(vault.requestBody?.content["application/json"]?.schema.required).toEqual(["request"]);
    expect(doc.paths["/v1/bundle"]!.get!.parameters?.map((p) => `${p.in} ${p.name}`)).toEqual(["query from"]);
  });

  it("registers and recovers over HTTP", async () => {
    await (await client("alice")).register("2468", KEY);
    expect((await (await client("alice")).recover("2468")).backupKey).toEqual(KEY);
  });

  it("refuses missing, forged, expired and wrong-audience tokens", async () => {
    const s = await sealRequest(vaultKey, "alice", {
      op: "register-start",
      registrationRequest: new Uint8Array(32).fill(1),
    });
    const body = { request: toBase64Url(s.envelope) };
    expect((await post(body)).status).toBe(401);
    expect((await post(body, "not.a.jwt")).status).toBe(401);
    const good = await sign("alice");
    const forged = `${good.slice(0, -4)}AAAA`;
    expect((await post(body, forged)).status).toBe(401);
    expect((await post(body, await sign("alice", { exp: "-1m" }))).status).toBe(401);
    expect((await post(body, await sign("alice", { aud: "other" }))).status).toBe(401);
    expect((await post(body, good)).status).toBe(200);
  });

  it("a user may act only on their own record", async () => {
    const s = await sealRequest(vaultKey, "alice", {
      op: "register-start",
      registrationRequest: new Uint8Array(32).fill(1),
    });
    const r = await post({ request: toBase64Url(s.envelope) }, await sign("mallory"));
    expect(r.status).toBe(403);
    expect(r.body.code).toBe("FORBIDDEN");
  });

  it("random and mutated bodies get a 4xx, the server stays up, and nothing changes", async () => {
    await (await client("bob")).register("1357", KEY);
    const token = await sign("bob");
    const s = await sealRequest(vaultKey, "bob", { op: "recover-start", ke1: new Uint8Array(96).fill(3) });
    const good = s.envelope;
    let seed = 12345;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    const bodies: unknown[] = [
      "",
      "{",
      "null",
      "[]",
      '{"request": 5}',
      '{"request": ""}',
      '{"request": "!!!"}',
      '{"request": "AAAA", "extra": 1}',
      `{"request": "${"A".repeat(20000)}"}`,
    ];
    for (let i = 0; i < 60; i++) {
      const m = good.slice();
      const n = 1 + (rand() % 4);
      for (let j = 0; j < n; j++) m[rand() % m.length]! ^= 1 << (rand() % 8);
      bodies.push(
        JSON.stringify({ request: toBase64Url(i % 3 === 0 ? m.subarray(0, rand() % m.length) : m) }),
      );
    }
    for (let i = 0; i < 20; i++) {
      const junk = new Uint8Array(1 + (rand() % 300)).map(() => rand() & 255);
      bodies.push(JSON.stringify({ request: toBase64Url(junk) }));
    }
    for (const b of bodies) {
      const r = await post(b, token, true);
      expect(r.status, String(b).slice(0, 80)).toBeGreaterThanOrEqual(400);
      expect(r.status).toBeLessThan(500);
      expect(typeof r.body.code).toBe("string");
    }
    expect((await fetch(`${host.url}/v1/health`)).status).toBe(200);
    // No guess was used by any of it: the first wrong PIN still leaves 9.
    await expect((await client("bob")).recover("0000")).rejects.toMatchObject({
      code: "WRONG_PIN",
      guessesRemaining: 9,
    });
    expect((await (await client("bob")).recover("1357")).backupKey).toEqual(KEY);
  });

  it("other endpoints reject bad methods and bodies with 4xx", async () => {
    expect((await fetch(`${host.url}/v1/health`, { method: "POST", body: "x" })).status).toBe(404);
    expect((await fetch(`${host.url}/v1/vault`, { method: "GET" })).status).toBe(404);
    const r = await fetch(`${host.url}/v1/vault`, {
      method: "POST",
      headers: { "content-type": "text/plain" },
      body: "hi",
    });
    expect(r.status).toBeGreaterThanOrEqual(400);
    expect(r.status).toBeLessThan(500);
  });
});

describe("browsers (CORS) and bundles", () => {
  const ACCESS = /^access-control-/;
  const corsHeaders = (res: Response) => {
    const out: Record<string, string> = {};
    res.headers.forEach((v, k) => {
      if (ACCESS.test(k)) out[k] = v;
    });
    return out;
  };

  it("answers a configured origin's preflight with exactly the configured policy", async () => {
    const pre = await fetch(`${host.url}/v1/vault`, {
      method: "OPTIONS",
      headers: {
        origin: "http://app.example",
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type, x-forbidden",
      },
    });
    expect(pre.status).toBe(204);
    expect(await pre.text()).toBe("");
    // No credentials header: the API takes bearer tokens, never cookies.
    expect(corsHeaders(pre)).toEqual({
      "access-control-allow-headers": "authorization, content-type, x-bkv-checkpoint-size",
      "access-control-allow-methods": "GET, POST",
      "access-control-allow-origin": "http://app.example",
      "access-control-expose-headers": "x-bkv-leader",
      "access-control-max-age": "600",
    });
    expect(pre.headers.get("vary")?.toLowerCase()).toContain("origin");
    // An actual request from it: the origin allowed, x-bkv-leader readable by the page.
    const info = await fetch(`${host.url}/v1/info`, { headers: { origin: "http://app.example" } });
    expect(info.status).toBe(200);
    expect(corsHeaders(info)).toEqual({
      "access-control-allow-origin": "http://app.example",
      "access-control-expose-headers": "x-bkv-leader",
    });
    expect(info.headers.get("vary")?.toLowerCase()).toContain("origin");
  });

  it("gives any other origin, or none, no CORS header and no preflight answer", async () => {
    for (const origin of ["http://evil.example", "http://app.example.evil", "https://app.example", "null"]) {
      const pre = await fetch(`${host.url}/v1/vault`, {
        method: "OPTIONS",
        headers: { origin, "access-control-request-method": "POST" },
      });
      expect(pre.status, origin).toBe(404);
      expect(((await pre.json()) as { code: string }).code).toBe("NOT_FOUND");
      expect(corsHeaders(pre), origin).toEqual({});
      const info = await fetch(`${host.url}/v1/info`, { headers: { origin } });
      expect(info.status, origin).toBe(200);
      expect(corsHeaders(info), origin).toEqual({});
      // A cache must not serve this answer to an allowed origin, or the reverse.
      expect(info.headers.get("vary")?.toLowerCase()).toContain("origin");
    }
    const none = await fetch(`${host.url}/v1/info`);
    expect(corsHeaders(none)).toEqual({});
    const noPre = await fetch(`${host.url}/v1/vault`, {
      method: "OPTIONS",
      headers: { "access-control-request-method": "POST" },
    });
    expect(noPre.status).toBe(404);
    expect(corsHeaders(noPre)).toEqual({});
  });

  it("lets a configured web origin call the client API, and no other origin", async () => {
    const pre = await fetch(`${host.url}/v1/vault`, {
      method: "OPTIONS",
      headers: { origin: "http://app.example", "access-control-request-method": "POST" },
    });
    expect(pre.status).toBe(204);
    expect(pre.headers.get("access-control-allow-origin")).toBe("http://app.example");
    expect(pre.headers.get("access-control-allow-headers")).toContain("authorization");
    const info = await fetch(`${host.url}/v1/info`, { headers: { origin: "http://app.example" } });
    expect(info.headers.get("access-control-allow-origin")).toBe("http://app.example");
    const other = await fetch(`${host.url}/v1/info`, { headers: { origin: "http://evil.example" } });
    expect(other.headers.get("access-control-allow-origin")).toBeNull();
    // Peer hosts have their own listener (peer-port.test.ts): the client API has no peer endpoint.
    const peer = await fetch(`${host.url}/v1/peer`, {
      method: "POST",
      headers: { origin: "http://app.example" },
    });
    expect(peer.status).toBe(404);
  });

  it("a fleet not published in a log has no bundle (404), and says so", async () => {
    const r = await fetch(`${host.url}/v1/bundle`);
    expect(r.status).toBe(404);
    expect(((await r.json()) as { message: string }).message).toMatch(/not published/);
  });
});
