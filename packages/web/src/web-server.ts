/**
 * The demo's web server (node:http): the page and its static files, the SDK's browser bundle, the
 * public configuration (hosts, pins, relying party name), development tokens, and a stand-in for
 * the user's cloud storage. It never sees K, a PIN or a passkey's PRF output: the page talks to the
 * vault's hosts directly and stores only ciphertext here.
 */
import { createReadStream, existsSync, statSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { WebConfig } from "./config.js";
import { type DevTokens, devTokens } from "./dev-tokens.js";
import { FileStorage, MAX_FILE_BYTES, TooLarge, validName } from "./storage.js";

export interface WebServerOptions {
  /** Folder for the storage (DIR/storage). */
  dir: string;
  config: WebConfig;
  host?: string;
  port?: number;
  /** The SDK's browser bundle (default: @bkv/client's dist/browser/bkv-client.js). */
  sdkFile?: string;
  /** Folder of index.html, app.js, app.css (default: this package's static/). */
  staticDir?: string;
}

export interface WebServer {
  /** The page's URL. On a loopback address it is http://localhost:PORT: WebAuthn refuses IP addresses. */
  url: string;
  /** Every origin the page may be loaded from (for the hosts' CORS settings). */
  origins: string[];
  port: number;
  server: Server;
  close(): Promise<void>;
}

const STATIC_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".map": "application/json; charset=utf-8",
};

const STATIC_NAME = /^[A-Za-z0-9_-]{1,64}\.(html|js|css|svg|png|ico)$/;
const TOKEN_BODY_LIMIT = 4096;

/** The @bkv/client package's browser bundle, found through the package's location. */
export function defaultSdkFile(): string {
  let dir = dirname(createRequire(import.meta.url).resolve("@bkv/client"));
  for (let i = 0; i < 5 && !existsSync(join(dir, "package.json")); i++) dir = dirname(dir);
  return join(dir, "dist", "browser", "bkv-client.js");
}

export const defaultStaticDir = (): string => fileURLToPath(new URL("../static/", import.meta.url));

/** The page's Content-Security-Policy: scripts only from this origin (and WebAssembly), vault hosts for fetch. */
export function contentSecurityPolicy(hosts: string[]): string {
  const connect = ["'self'", ...new Set(hosts.map((h) => new URL(h).origin))].join(" ");
  return [
    "default-src 'self'",
    "script-src 'self' 'wasm-unsafe-eval'",
    `connect-src ${connect}`,
    "img-src 'self' data:",
    "style-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join("; ");
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function readSmallBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const parts: Buffer[] = [];
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        reject(new HttpError(413, "request body too large"));
        req.destroy();
        return;
      }
      parts.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(parts).toString("utf8")));
    req.on("error", reject);
  });
}

export async function startWebServer(opts: WebServerOptions): Promise<WebServer> {
  const { config } = opts;
  const tokens: DevTokens = await devTokens(config.tokenKey, config.issuer, config.audience);
  const storage = new FileStorage(opts.dir);
  const sdkFile = opts.sdkFile ?? defaultSdkFile();
  const staticDir = opts.staticDir ?? defaultStaticDir();
  const csp = contentSecurityPolicy(config.hosts);
  const publicConfig = JSON.stringify({ hosts: config.hosts, pins: config.pins, rpName: config.rpName });

  const baseHeaders = (res: ServerResponse) => {
    res.setHeader("content-security-policy", csp);
    res.setHeader("x-content-type-options", "nosniff");
    res.setHeader("referrer-policy", "no-referrer");
    res.setHeader("x-frame-options", "DENY");
    res.setHeader("cross-origin-opener-policy", "same-origin");
    res.setHeader("cross-origin-resource-policy", "same-origin");
    res.setHeader("permissions-policy", "camera=(), microphone=(), geolocation=()");
  };
  const json = (res: ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      "content-type": "application/json; charset=utf-8",
      "content-length": Buffer.byteLength(text),
      "cache-control": "no-store",
    });
    res.end(text);
  };
  const sendFile = (res: ServerResponse, path: string, type: string, cache: string) => {
    let size: number;
    try {
      const s = statSync(path);
      if (!s.isFile()) throw new Error("not a file");
      size = s.size;
    } catch {
      throw new HttpError(404, "not found");
    }
    res.writeHead(200, { "content-type": type, "content-length": size, "cache-control": cache });
    createReadStream(path).pipe(res);
  };

  /** The user a storage request may act for: the token's subject must be the user in the path. */
  const authorize = async (req: IncomingMessage, user: string) => {
    const sub = await tokens.verify(req.headers.authorization);
    if (sub === null) throw new HttpError(401, "a development bearer token is required (POST /dev/token)");
    if (sub !== user) throw new HttpError(403, "this token is for another user");
  };

  const storageRoute = async (req: IncomingMessage, res: ServerResponse, user: string, name: string) => {
    if (!validName(user) || (name !== "" && !validName(name)))
      throw new HttpError(400, "user and file names are 1 to 64 of A-Z a-z 0-9 . _ -");
    await authorize(req, user);
    if (name === "") {
      if (req.method !== "GET" && req.method !== "HEAD") throw new HttpError(405, "method not allowed");
      return json(res, 200, { files: await storage.list(user) });
    }
    switch (req.method === "HEAD" ? "GET" : req.method) {
      case "PUT": {
        const declared = Number(req.headers["content-length"] ?? 0);
        if (declared > MAX_FILE_BYTES) throw new HttpError(413, "files are at most 2 GiB");
        try {
          const size = await storage.put(user, name, req);
          return json(res, 200, { name, size });
        } catch (e) {
          if (e instanceof TooLarge) throw new HttpError(413, "files are at most 2 GiB");
          throw e;
        }
      }
      case "GET": {
        const f = await storage.get(user, name);
        if (f === null) throw new HttpError(404, `no file ${name}`);
        res.writeHead(200, {
          // Never rendered by the browser: the page reads these bytes itself.
          "content-type": "application/octet-stream",
          "content-length": f.size,
          "content-disposition": "attachment",
          "cache-control": "no-store",
        });
        f.stream.pipe(res);
        return;
      }
      case "DELETE":
        if (!(await storage.delete(user, name))) throw new HttpError(404, `no file ${name}`);
        return json(res, 200, { deleted: name });
      default:
        throw new HttpError(405, "method not allowed");
    }
  };

  const route = async (req: IncomingMessage, res: ServerResponse) => {
    baseHeaders(res);
    const url = new URL(req.url ?? "/", "http://web.invalid");
    const path = url.pathname;
    // HEAD is answered as GET (node:http sends no body for it).
    const method = req.method === "HEAD" ? "GET" : (req.method ?? "GET");
    const storageMatch = /^\/storage\/([^/]+)\/([^/]*)$/.exec(path);
    if (storageMatch !== null) {
      return storageRoute(
        req,
        res,
        decodeURIComponent(storageMatch[1]!),
        decodeURIComponent(storageMatch[2]!),
      );
    }
    if (path === "/dev/token") {
      if (method !== "POST") throw new HttpError(405, "method not allowed");
      let user: unknown;
      try {
        user = (JSON.parse(await readSmallBody(req, TOKEN_BODY_LIMIT)) as { user?: unknown }).user;
      } catch (e) {
        if (e instanceof HttpError) throw e;
        throw new HttpError(400, "expected JSON {user}");
      }
      if (typeof user !== "string" || !validName(user))
        throw new HttpError(400, "user names are 1 to 64 of A-Z a-z 0-9 . _ -");
      return json(res, 200, { token: await tokens.mint(user), development: true });
    }
    if (method !== "GET") throw new HttpError(405, "method not allowed");
    if (path === "/config.json") return json(res, 200, JSON.parse(publicConfig));
    if (path === "/" || path === "/index.html")
      return sendFile(res, join(staticDir, "index.html"), STATIC_TYPES[".html"]!, "no-cache");
    if (path === "/sdk/bkv-client.js" || path === "/sdk/bkv-client.js.map") {
      const file = path.endsWith(".map") ? `${sdkFile}.map` : sdkFile;
      if (!existsSync(file)) {
        if (path.endsWith(".map")) throw new HttpError(404, "not found");
        throw new HttpError(
          503,
          `the SDK's browser bundle is not built (${sdkFile} is missing): run npm run build`,
        );
      }
      return sendFile(res, file, STATIC_TYPES[path.endsWith(".map") ? ".map" : ".js"]!, "no-cache");
    }
    const st = /^\/static\/([^/]+)$/.exec(path);
    if (st !== null && STATIC_NAME.test(st[1]!)) {
      const ext = st[1]!.slice(st[1]!.lastIndexOf("."));
      return sendFile(res, join(staticDir, st[1]!), STATIC_TYPES[ext]!, "no-cache");
    }
    throw new HttpError(404, "not found");
  };

  const server = createServer((req, res) => {
    route(req, res).catch((e: unknown) => {
      const status = e instanceof HttpError ? e.status : 500;
      const message = e instanceof HttpError ? e.message : "internal error";
      if (!(e instanceof HttpError))
        process.stderr.write(
          `${JSON.stringify({ time: new Date().toISOString(), event: "error", path: req.url?.split("?")[0], message: (e as Error).message })}\n`,
        );
      if (res.headersSent) {
        res.destroy();
        return;
      }
      // Stop reading a body we refuse (a large upload), but let the answer go out first.
      if (!req.complete) res.setHeader("connection", "close");
      json(res, status, { error: status, message });
    });
  });
  server.requestTimeout = 0; // uploads of up to 2 GiB may take a while
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const host = opts.host ?? "127.0.0.1";
  const loopback = host === "127.0.0.1" || host === "localhost" || host === "::1";
  const origins = loopback
    ? [`http://localhost:${port}`, `http://127.0.0.1:${port}`]
    : [`http://${host.includes(":") ? `[${host}]` : host}:${port}`];
  return {
    url: origins[0]!,
    origins,
    port,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
