import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { type IncomingHttpHeaders, request } from "node:http";
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
  WebErrorCode,
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

  it("serves the SDK's browser build, or says clearly that it is not built", async () => {
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

interface RawAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/**
 * One request over its own connection, the path sent exactly as given (fetch would resolve "..",
 * "%2e%2e" and "//" before sending). With `end: false` the body is left unfinished: the answer
 * must come without it.
 */
function raw(
  method: string,
  path: string,
  opts: { headers?: Record<string, string>; body?: (string | Buffer)[]; end?: boolean; port?: number } = {},
): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: "127.0.0.1", port: opts.port ?? web.port, method, path, headers: opts.headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString() });
          req.destroy();
        });
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    for (const c of opts.body ?? []) req.write(c);
    if (opts.end ?? true) req.end();
    else req.flushHeaders();
  });
}

/** A refusal: JSON {code, message} with the given code, never cached, with the security headers. */
function expectRefusal(r: RawAnswer, status: number, code: string, what: string) {
  expect(r.status, what).toBe(status);
  expect(r.headers["content-type"], what).toBe("application/json; charset=utf-8");
  expect(r.headers["cache-control"], what).toBe("no-store");
  expect(r.headers["content-security-policy"], what).toContain("default-src 'self'");
  expect(r.headers["x-content-type-options"], what).toBe("nosniff");
  expect(r.headers["x-frame-options"], what).toBe("DENY");
  const body = JSON.parse(r.body) as Record<string, unknown>;
  expect(Object.keys(body).sort(), what).toEqual(["code", "message"]);
  expect(body.code, what).toBe(code);
  expect(typeof body.message, what).toBe("string");
}

describe("refusals", () => {
  it("serves nothing outside its folders, however the path is written", async () => {
    const alice = await token("alice");
    const secretD = (JSON.parse(readFileSync(config.tokenKey, "utf8")) as { d: string }).d;
    writeFileSync(join(dir, "outside.txt"), "OUTSIDE-THE-STATIC-FOLDER");
    const paths = [
      "/static/../package.json",
      "/static/..%2fpackage.json",
      "/static/%2e%2e%2fpackage.json",
      "/static/%2e%2e/package.json",
      "/static/.%2e/.%2e/package.json",
      "/static/..%5cpackage.json",
      "/static/%2fetc%2fpasswd",
      "/static//etc/passwd",
      "//etc/passwd",
      "/static/app.js%00.html",
      `/static/${encodeURIComponent(join(dir, "outside.txt"))}`,
      "/sdk/..%2fbkv-client.js",
      "/sdk/bkv-client.js/../../package.json",
      "/index.html/../package.json",
      "http://localhost/static/../../package.json",
      "/storage/..%2fkey.jwk/x",
      "/storage/%2e%2e/key.jwk",
      "/storage/alice/..%2f..%2fkey.jwk",
      "/storage/alice/%2e%2e%2f%2e%2e%2foutside.txt",
      `/storage/alice/${encodeURIComponent(join(dir, "key.jwk"))}`,
      "/storage/alice/..",
      "/storage/alice/%2e%2e",
      "/storage/alice/%ZZ",
    ];
    for (const path of paths) {
      const r = await raw("GET", path, { headers: auth(alice) });
      expect([400, 404], path).toContain(r.status);
      expectRefusal(r, r.status, r.status === 400 ? WebErrorCode.Malformed : WebErrorCode.NotFound, path);
      for (const secret of [secretD, "OUTSIDE-THE-STATIC-FOLDER", '"name": "@bkv/web"', "root:"])
        expect(r.body, path).not.toContain(secret);
    }
    // Writes are refused the same way, before anything touches the disk.
    for (const path of ["/storage/alice/..%2f..%2fevil", "/storage/%2e%2e/evil", "/storage/alice/%2fevil"]) {
      const r = await raw("PUT", path, { headers: auth(alice), body: ["EVIL"] });
      expectRefusal(r, 400, WebErrorCode.Malformed, path);
    }
    expect(existsSync(join(dir, "evil"))).toBe(false);
    expect(existsSync(join(dir, "storage", "evil"))).toBe(false);
    expect(readdirSync(join(dir, "storage-tmp"))).toEqual([]);
  });

  it("answers 404 for unknown paths under every prefix, object property names included", async () => {
    const paths = [
      "/nope",
      "/constructor",
      "/__proto__",
      "/toString",
      "/hasOwnProperty",
      "/static/",
      "/static/constructor",
      "/static/__proto__",
      "/static/toString.js",
      "/static/app.js/x",
      "/sdk/",
      "/sdk/constructor",
      "/dev/",
      "/dev/constructor",
      "/dev/token/x",
      "/storage",
      "/storage/",
      "/storage/constructor",
      "/storage/alice",
      "/storage/alice/x/y",
      "/config.json/constructor",
      "/index.html/x",
    ];
    for (const path of paths) {
      for (const method of ["GET", "POST", "DELETE"])
        expectRefusal(await raw(method, path), 404, WebErrorCode.NotFound, `${method} ${path}`);
    }
    // A file name that is an object property of JavaScript is just a file that is not there.
    const alice = await token("alice");
    for (const name of ["constructor", "__proto__", "toString"])
      expectRefusal(
        await raw("GET", `/storage/alice/${name}`, { headers: auth(alice) }),
        404,
        WebErrorCode.NotFound,
        name,
      );
  });

  it("answers 405 with Allow for a known path and another method; HEAD is GET without the body", async () => {
    writeFileSync(sdkFile, "export const x = 1;\n");
    const alice = await token("alice");
    await fetch(`${web.url}/storage/alice/f405`, { method: "PUT", headers: auth(alice), body: "12345" });
    const table: [string, string[]][] = [
      ["/", ["GET"]],
      ["/index.html", ["GET"]],
      ["/config.json", ["GET"]],
      ["/sdk/bkv-client.js", ["GET"]],
      ["/sdk/bkv-client.js.map", ["GET"]],
      ["/static/app.js", ["GET"]],
      ["/dev/token", ["POST"]],
      ["/storage/alice/", ["GET"]],
      ["/storage/alice/f405", ["GET", "PUT", "DELETE"]],
    ];
    for (const [path, methods] of table) {
      const allowed = methods.flatMap((m) => (m === "GET" ? ["GET", "HEAD"] : [m]));
      for (const method of ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]) {
        if (allowed.includes(method)) continue;
        const r = await raw(method, path, { headers: auth(alice) });
        const what = `${method} ${path}`;
        expect(r.status, what).toBe(405);
        expect(r.headers.allow, what).toBe(allowed.join(", "));
        if (method === "HEAD") expect(r.body, what).toBe("");
        else expectRefusal(r, 405, WebErrorCode.MethodNotAllowed, what);
      }
    }
    // Refused methods changed nothing.
    expect(readFileSync(join(dir, "storage", "alice", "f405"), "utf8")).toBe("12345");
    // HEAD: the GET's status and headers, no body.
    for (const path of [
      "/",
      "/config.json",
      "/static/app.css",
      "/sdk/bkv-client.js",
      "/storage/alice/f405",
    ]) {
      const get = await raw("GET", path, { headers: auth(alice) });
      const head = await raw("HEAD", path, { headers: auth(alice) });
      expect(get.status, path).toBe(200);
      expect(head.status, path).toBe(200);
      expect(head.body, path).toBe("");
      for (const h of ["content-type", "content-length", "cache-control", "content-security-policy"])
        expect(head.headers[h], `${path} ${h}`).toBe(get.headers[h]);
      expect(Number(get.headers["content-length"]), path).toBe(Buffer.byteLength(get.body));
    }
  });

  it("refuses oversized bodies with 413 and keeps what was stored", async () => {
    // A second server with a small file limit, on its own folder.
    const small = mkdtempSync(join(tmpdir(), "bkv-web-small-"));
    const web2 = await startWebServer({ dir: small, config, sdkFile, maxFileBytes: 1000 });
    try {
      const t = await token("dave");
      const h = auth(t);
      const at = (path: string) => ({ port: web2.port, headers: h, path });
      const put = (body: (string | Buffer)[], headers: Record<string, string> = {}) =>
        raw("PUT", at("/storage/dave/f").path, { port: web2.port, headers: { ...h, ...headers }, body });
      const stored = () => readFileSync(join(small, "storage", "dave", "f"));
      const original = Buffer.alloc(1000, 7);
      const ok = await put([original], { "content-length": "1000" });
      expect(ok.status).toBe(200);
      expect(JSON.parse(ok.body)).toEqual({ name: "f", size: 1000 });

      // Declared too large: refused before a byte is read.
      const declared = await put([Buffer.alloc(1001, 1)], { "content-length": "1001" });
      expectRefusal(declared, 413, WebErrorCode.TooLarge, "declared 1001");
      expect(JSON.parse(declared.body).message).toBe("files are at most 1000 bytes");
      // Not declared (chunked): refused once it passes the limit.
      const chunked = await put([Buffer.alloc(600, 2), Buffer.alloc(600, 3)]);
      expectRefusal(chunked, 413, WebErrorCode.TooLarge, "chunked 1200");
      // No token and too large: 401 first, nothing written.
      const anonymous = await raw("PUT", "/storage/dave/g", {
        port: web2.port,
        headers: { "content-length": "5000" },
        body: [Buffer.alloc(5000)],
      });
      expectRefusal(anonymous, 401, WebErrorCode.Unauthenticated, "no token");
      expect(stored()).toEqual(original);
      expect(existsSync(join(small, "storage", "dave", "g"))).toBe(false);
      expect(readdirSync(join(small, "storage-tmp"))).toEqual([]);

      // An upload cut off by its client: the temporary file goes, the stored one stays.
      await new Promise<void>((resolve, reject) => {
        const req = request({
          host: "127.0.0.1",
          port: web2.port,
          method: "PUT",
          path: "/storage/dave/f",
          headers: h,
          agent: false,
        });
        req.on("error", () => {}); // the connection we cut
        req.write(Buffer.alloc(500, 9));
        const started = async () => {
          for (let i = 0; i < 500; i++) {
            if (readdirSync(join(small, "storage-tmp")).length > 0) return;
            await new Promise((r) => setTimeout(r, 10));
          }
          throw new Error("the server never started writing the upload");
        };
        started().then(() => {
          req.destroy();
          resolve();
        }, reject);
      });
      await expect.poll(() => readdirSync(join(small, "storage-tmp")), { timeout: 10_000 }).toEqual([]);
      expect(stored()).toEqual(original);
    } finally {
      await web2.close();
    }

    // The default limit (2 GiB), declared: the answer comes without the body, and the connection closes.
    const alice = await token("alice");
    const huge = await raw("PUT", "/storage/alice/huge", {
      headers: { ...auth(alice), "content-length": String(3 * 1024 ** 3) },
      body: [Buffer.alloc(1024)],
      end: false,
    });
    expectRefusal(huge, 413, WebErrorCode.TooLarge, "3 GiB");
    expect(JSON.parse(huge.body).message).toBe("files are at most 2 GiB");
    expect(huge.headers.connection).toBe("close");
    expect(existsSync(join(dir, "storage", "alice", "huge"))).toBe(false);

    // Token requests: at most 4 KiB, whatever the Content-Type, declared or not.
    const json = { "content-type": "application/json" };
    const padded = (n: number) => `{"user":"erin"}${" ".repeat(n - 15)}`;
    expect((await raw("POST", "/dev/token", { headers: json, body: [padded(4096)] })).status).toBe(200);
    expectRefusal(
      await raw("POST", "/dev/token", { headers: json, body: [padded(4097)] }),
      413,
      WebErrorCode.TooLarge,
      "4097",
    );
    expectRefusal(
      await raw("POST", "/dev/token", {
        headers: { "content-type": "text/plain", "transfer-encoding": "chunked" },
        body: [padded(3000), " ".repeat(3000)],
      }),
      413,
      WebErrorCode.TooLarge,
      "chunked 6000",
    );
  });

  it("answers every refusal as JSON {code, message}", async () => {
    const alice = await token("alice");
    const bob = await token("bob");
    expectRefusal(await raw("GET", "/storage/alice/"), 401, WebErrorCode.Unauthenticated, "no token");
    expectRefusal(
      await raw("GET", "/storage/alice/", { headers: auth(bob) }),
      403,
      WebErrorCode.Forbidden,
      "bob",
    );
    expectRefusal(
      await raw("GET", "/storage/alice/a%20b", { headers: auth(alice) }),
      400,
      WebErrorCode.Malformed,
      "name",
    );
    expectRefusal(
      await raw("POST", "/dev/token", { body: ["not json"] }),
      400,
      WebErrorCode.Malformed,
      "json",
    );
    expectRefusal(
      await raw("GET", "/storage/alice/%E0%A4%A", { headers: auth(alice) }),
      400,
      WebErrorCode.Malformed,
      "bad URL",
    );
    expectRefusal(
      await raw("PUT", "/storage/alice/x", {
        headers: { ...auth(alice), "content-type": "no slash" },
        body: ["x"],
      }),
      415,
      WebErrorCode.UnsupportedMediaType,
      "content-type",
    );
    expect(existsSync(join(dir, "storage", "alice", "x"))).toBe(false);
    const long = await raw("GET", `/storage/alice/${"x".repeat(200)}`, { headers: auth(alice) });
    expectRefusal(long, 400, WebErrorCode.Malformed, "long name");
  });
});
