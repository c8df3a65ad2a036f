import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { generateSignerKey, parseVerifierKey, SIG_COSIGNATURE_V1 } from "@bkv/tlog";
import { exportJWK, generateKeyPair, importJWK, jwtVerify } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  FileStorage,
  parseWebConfig,
  startWebServer,
  TooLarge,
  type WebConfig,
  type WebServer,
} from "../src/index.js";

/** Complete pins with real keys (parseTrustPins checks every key and field). */
const PINS = {
  logKey: generateSignerKey("log.example").vkey,
  witnessKeys: [
    generateSignerKey("w1", SIG_COSIGNATURE_V1).vkey,
    generateSignerKey("w2", SIG_COSIGNATURE_V1).vkey,
  ],
  witnessThreshold: 2,
  namespace: "bkv-test",
  vendorRoots: [
    {
      name: "test vendor",
      key: parseVerifierKey(generateSignerKey("vendor.example").vkey).publicKey.reduce(
        (h, b) => h + b.toString(16).padStart(2, "0"),
        "",
      ),
      test: true,
    },
  ],
  allowTestRoots: true,
  measurements: ["05".repeat(32)],
  maxGuessLimit: 10,
};

let dir: string;
let config: WebConfig;
let web: WebServer;
let sdkFile: string;

async function token(user: string): Promise<string> {
  const res = await fetch(`${web.url}/dev/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ user }),
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { token: string }).token;
}

const auth = (t: string) => ({ authorization: `Bearer ${t}` });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "bkv-web-"));
  const { privateKey } = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
  writeFileSync(join(dir, "key.jwk"), JSON.stringify(await exportJWK(privateKey)));
  sdkFile = join(dir, "bkv-client.js");
  config = parseWebConfig({
    hosts: ["http://127.0.0.1:8480", "http://127.0.0.1:8481/"],
    pins: PINS,
    tokenKey: join(dir, "key.jwk"),
    issuer: "bkv-dev",
    audience: "bkv-vault",
    rpName: "Backup Key Vault (test)",
  });
  web = await startWebServer({ dir, config, sdkFile });
});

afterAll(async () => {
  await web?.close();
});

describe("config", () => {
  it("is validated on load", () => {
    const good = {
      hosts: ["http://127.0.0.1:1"],
      pins: PINS,
      tokenKey: "k",
      issuer: "i",
      audience: "a",
      rpName: "r",
    };
    expect(parseWebConfig(good).hosts).toEqual(["http://127.0.0.1:1"]);
    expect(() => parseWebConfig({ ...good, hosts: [] })).toThrow(/hosts/);
    expect(() => parseWebConfig({ ...good, hosts: ["ftp://x"] })).toThrow(/http/);
    expect(() => parseWebConfig({ ...good, hosts: ["http://x/path"] })).toThrow(/bare origin/);
    expect(() => parseWebConfig({ ...good, pins: { ...PINS, witnessThreshold: 3 } })).toThrow(/pins/);
    expect(() => parseWebConfig({ ...good, tokenKey: "" })).toThrow(/tokenKey/);
    expect(() => parseWebConfig([])).toThrow(/object/);
  });
});

describe("web server", () => {
  it("serves the page on localhost (WebAuthn refuses IP addresses) with a strict CSP", async () => {
    expect(web.url).toBe(`http://localhost:${web.port}`);
    expect(web.origins).toEqual([`http://localhost:${web.port}`, `http://127.0.0.1:${web.port}`]);
    const res = await fetch(`${web.url}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/text\/html/);
    const csp = res.headers.get("content-security-policy")!;
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("script-src 'self' 'wasm-unsafe-eval'");
    expect(csp).toContain("connect-src 'self' http://127.0.0.1:8480 http://127.0.0.1:8481;");
    expect(csp).toContain("img-src 'self' data:");
    expect(csp).toContain("style-src 'self'");
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    const html = await res.text();
    // No inline script: every <script> has a src.
    for (const m of html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)) {
      expect(m[1]).toMatch(/src=/);
      expect(m[2]!.trim()).toBe("");
    }
    expect(html).not.toMatch(/\son[a-z]+=/i); // no inline event handlers
    for (const f of ["app.js", "app.css"]) {
      const r = await fetch(`${web.url}/static/${f}`);
      expect(r.status).toBe(200);
    }
    expect((await fetch(`${web.url}/static/../src/config.ts`)).status).toBe(404);
    expect((await fetch(`${web.url}/static/%2e%2e%2fpackage.json`)).status).toBe(404);
  });

  it("serves the SDK bundle, or says clearly that it is not built", async () => {
    const missing = await fetch(`${web.url}/sdk/bkv-client.js`);
    expect(missing.status).toBe(503);
    expect(((await missing.json()) as { message: string }).message).toMatch(/not built.*npm run build/);
    writeFileSync(sdkFile, "export const x = 1;\n");
    const res = await fetch(`${web.url}/sdk/bkv-client.js`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/text\/javascript/);
    expect(await res.text()).toBe("export const x = 1;\n");
  });

  it("gives the public config only", async () => {
    const res = await fetch(`${web.url}/config.json`);
    const body = (await res.json()) as Record<string, unknown>;
    expect(Object.keys(body).sort()).toEqual(["hosts", "pins", "rpName"]);
    expect(body.pins).toEqual(PINS);
    expect(JSON.stringify(body)).not.toContain("key.jwk");
  });

  it("mints development tokens the hosts accept (EdDSA, issuer, audience, subject, one hour)", async () => {
    const t = await token("alice");
    const jwk = JSON.parse(readFileSync(config.tokenKey, "utf8"));
    const { d: _d, ...pub } = jwk;
    const { payload, protectedHeader } = await jwtVerify(t, await importJWK(pub, "EdDSA"), {
      issuer: "bkv-dev",
      audience: "bkv-vault",
    });
    expect(protectedHeader.alg).toBe("EdDSA");
    expect(payload.sub).toBe("alice");
    expect(payload.exp! - payload.iat!).toBe(3600);
    for (const body of ['{"user":"../x"}', '{"user":""}', "{}", "not json", '{"user":"a b"}']) {
      const res = await fetch(`${web.url}/dev/token`, { method: "POST", body });
      expect(res.status, body).toBe(400);
    }
    expect((await fetch(`${web.url}/dev/token`)).status).toBe(405);
  });

  it("stores a user's files for that user only", async () => {
    const alice = await token("alice");
    const bob = await token("bob");
    const bytes = new Uint8Array(300_000).map((_, i) => (i * 7) & 0xff);
    const put = await fetch(`${web.url}/storage/alice/backup.bkv`, {
      method: "PUT",
      headers: auth(alice),
      body: bytes,
    });
    expect(put.status).toBe(200);
    expect(await put.json()).toEqual({ name: "backup.bkv", size: bytes.length });
    const get = await fetch(`${web.url}/storage/alice/backup.bkv`, { headers: auth(alice) });
    expect(get.status).toBe(200);
    expect(get.headers.get("content-type")).toBe("application/octet-stream");
    expect(new Uint8Array(await get.arrayBuffer())).toEqual(bytes);
    await fetch(`${web.url}/storage/alice/backup.json`, { method: "PUT", headers: auth(alice), body: "{}" });
    const list = await fetch(`${web.url}/storage/alice/`, { headers: auth(alice) });
    expect(await list.json()).toEqual({
      files: [
        { name: "backup.bkv", size: bytes.length },
        { name: "backup.json", size: 2 },
      ],
    });
    // Another user's token, no token, a forged token: refused.
    expect((await fetch(`${web.url}/storage/alice/backup.bkv`, { headers: auth(bob) })).status).toBe(403);
    expect((await fetch(`${web.url}/storage/alice/`, { headers: auth(bob) })).status).toBe(403);
    expect(
      (await fetch(`${web.url}/storage/alice/x`, { method: "PUT", headers: auth(bob), body: "x" })).status,
    ).toBe(403);
    expect((await fetch(`${web.url}/storage/alice/backup.bkv`)).status).toBe(401);
    const forged = `${alice.slice(0, -4)}AAAA`;
    expect((await fetch(`${web.url}/storage/alice/backup.bkv`, { headers: auth(forged) })).status).toBe(401);
    // Names outside [A-Za-z0-9._-]{1,64}, and . / ..: refused before anything touches the disk.
    for (const path of [
      "alice/..",
      "alice/%2e%2e",
      "alice/a%2fb",
      "..%2falice/x",
      "alice/a b",
      `alice/${"x".repeat(65)}`,
    ]) {
      const res = await fetch(`${web.url}/storage/${path}`, { headers: auth(alice) });
      expect([400, 404], path).toContain(res.status);
    }
    // Replace atomically; delete.
    await fetch(`${web.url}/storage/alice/backup.bkv`, { method: "PUT", headers: auth(alice), body: "new" });
    const again = await fetch(`${web.url}/storage/alice/backup.bkv`, { headers: auth(alice) });
    expect(await again.text()).toBe("new");
    expect(readdirSync(join(dir, "storage-tmp"))).toEqual([]);
    const del = await fetch(`${web.url}/storage/alice/backup.bkv`, {
      method: "DELETE",
      headers: auth(alice),
    });
    expect(del.status).toBe(200);
    expect((await fetch(`${web.url}/storage/alice/backup.bkv`, { headers: auth(alice) })).status).toBe(404);
    expect(
      (await fetch(`${web.url}/storage/alice/backup.bkv`, { method: "DELETE", headers: auth(alice) })).status,
    ).toBe(404);
    expect(existsSync(join(dir, "storage", "alice", "backup.json"))).toBe(true);
  });

  it("refuses files over the limit and leaves nothing behind", async () => {
    const storage = new FileStorage(dir);
    const big = Readable.from([Buffer.alloc(600), Buffer.alloc(600)]);
    await expect(storage.put("carol", "big", big, 1000)).rejects.toBeInstanceOf(TooLarge);
    expect(await storage.get("carol", "big")).toBeNull();
    expect(readdirSync(join(dir, "storage-tmp"))).toEqual([]);
  });
});
