/**
 * The demo's web server (fastify, like the host agent and the log): the page and its static files,
 * the SDK's browser build, the public configuration (hosts, pins, relying party name), development
 * tokens, and a stand-in for the user's cloud storage. It never sees K, a PIN or a passkey's PRF
 * output: the page talks to the vault's hosts directly and stores only ciphertext here.
 *
 * Every answer carries the security headers below; every refusal is JSON `{code, message}`
 * (web-errors.ts). A known path asked with a method it does not take is 405 with an Allow header;
 * any other path is 404. HEAD is answered as GET (fastify's HEAD routes: headers only).
 */
import { createReadStream, existsSync } from "node:fs";
import { stat } from "node:fs/promises";
import type { Server } from "node:http";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import Fastify, {
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type HTTPMethods,
  type RouteHandlerMethod,
} from "fastify";
import type { WebConfig } from "./config.js";
import { type DevTokens, devTokens } from "./dev-tokens.js";
import { FileStorage, MAX_FILE_BYTES, TooLarge, validName } from "./storage.js";
import { codeForStatus, WebError, WebErrorCode } from "./web-errors.js";

export interface WebServerOptions {
  /** Folder for the storage (DIR/storage). */
  dir: string;
  config: WebConfig;
  host?: string;
  port?: number;
  /** The SDK's browser build (default: @bkv/client's dist/browser/bkv-client.js). */
  sdkFile?: string;
  /** Folder of index.html, app.js, app.css (default: this package's static/). */
  staticDir?: string;
  /** The largest file the storage stand-in takes (default MAX_FILE_BYTES, 2 GiB). */
  maxFileBytes?: number;
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

/**
 * The only names /static/ serves: one path segment, no dot but the extension's, so no name can
 * leave the folder (fastify decodes %2f and %2e in a parameter; the decoded name is checked here).
 */
const STATIC_NAME = /^[A-Za-z0-9_-]{1,64}\.(html|js|css|svg|png|ico)$/;
const TOKEN_BODY_LIMIT = 4096;

/** The @bkv/client package's browser build, found through the package's location. */
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

/** Headers on every answer, pages and errors alike. */
function securityHeaders(csp: string): Record<string, string> {
  return {
    "content-security-policy": csp,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
  };
}

/** Messages for fastify's own refusals (its messages name fastify internals). */
const FASTIFY_MESSAGES: Record<string, string> = {
  FST_ERR_CTP_BODY_TOO_LARGE: "request body too large",
  FST_ERR_CTP_INVALID_MEDIA_TYPE: "the Content-Type header does not parse",
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: "the body's size differs from its Content-Length",
  FST_ERR_BAD_URL: "the URL does not decode",
  FST_ERR_MAX_PARAM_LENGTH: "a path segment is too long",
};

/** "2 GiB", or a byte count when the limit is not whole GiB. */
const describeLimit = (bytes: number): string =>
  bytes % 1024 ** 3 === 0 ? `${bytes / 1024 ** 3} GiB` : `${bytes} bytes`;

/** Whether the request comes with a body (one without may not count as complete yet when refused early). */
function hasBody(req: FastifyRequest): boolean {
  const length = req.headers["content-length"];
  return req.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0");
}

/**
 * Register one path: a handler per method it takes (GET brings HEAD), and 405 with an Allow header
 * for every other method fastify knows, so a wrong method is never mistaken for an unknown path.
 * `check` refuses, before the 405, a path whose parameters name nothing (no such static file, a
 * bad user or file name): a wrong method there gets the 404 or 400 a GET would.
 */
function resource(
  app: FastifyInstance,
  url: string,
  handlers: Partial<Record<"GET" | "POST" | "PUT" | "DELETE", RouteHandlerMethod>>,
  check?: (req: FastifyRequest) => unknown,
): void {
  const allowed: string[] = [];
  for (const [method, handler] of Object.entries(handlers)) {
    app.route({ method: method as HTTPMethods, url, handler });
    allowed.push(method);
    if (method === "GET") allowed.push("HEAD");
  }
  const others = app.supportedMethods.filter((m) => !allowed.includes(m));
  app.route({
    method: others as HTTPMethods[],
    url,
    handler: async (req, reply) => {
      await check?.(req);
      reply.header("allow", allowed.join(", "));
      throw new WebError(405, WebErrorCode.MethodNotAllowed, "method not allowed");
    },
  });
}

export async function startWebServer(opts: WebServerOptions): Promise<WebServer> {
  const { config } = opts;
  const tokens: DevTokens = await devTokens(config.tokenKey, config.issuer, config.audience);
  const storage = new FileStorage(opts.dir);
  const sdkFile = opts.sdkFile ?? defaultSdkFile();
  const staticDir = opts.staticDir ?? defaultStaticDir();
  const baseHeaders = securityHeaders(contentSecurityPolicy(config.hosts));
  const publicConfig = JSON.stringify({ hosts: config.hosts, pins: config.pins, rpName: config.rpName });

  /** A refusal. A body still arriving (a large upload) is not read on: the connection closes after the answer. */
  const refuse = (
    req: FastifyRequest,
    reply: FastifyReply,
    status: number,
    code: string,
    message: string,
  ) => {
    if (hasBody(req) && !req.raw.complete) reply.header("connection", "close");
    return reply
      .headers(baseHeaders)
      .code(status)
      .header("cache-control", "no-store")
      .type("application/json; charset=utf-8")
      .send({ code, message });
  };

  const app = Fastify({
    logger: false,
    // Uploads of up to 2 GiB (maxFileBytes) may take a while.
    requestTimeout: 0,
    // close() ends every connection, not only idle ones.
    forceCloseConnections: true,
    // URLs that do not decode, over-long path segments: refused like everything else.
    frameworkErrors: (err, req, reply) => {
      const status = err.code === "FST_ERR_BAD_URL" || err.code === "FST_ERR_MAX_PARAM_LENGTH" ? 400 : 500;
      return refuse(
        req,
        reply,
        status,
        codeForStatus(status),
        FASTIFY_MESSAGES[err.code] ?? "internal error",
      );
    },
  });
  app.addHook("onRequest", async (_req, reply) => {
    reply.headers(baseHeaders);
  });
  // Bodies are never parsed by default: a route that reads one says how (the storage streams it).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", (_req, _payload, done) => done(null));

  app.setErrorHandler((err, req, reply) => {
    if (err instanceof WebError) return refuse(req, reply, err.status, err.code, err.message);
    const e = err as { statusCode?: number; code?: string; message: string };
    if (e.statusCode !== undefined && e.statusCode >= 400 && e.statusCode < 500)
      return refuse(
        req,
        reply,
        e.statusCode,
        codeForStatus(e.statusCode),
        FASTIFY_MESSAGES[e.code ?? ""] ?? e.message,
      );
    process.stderr.write(
      `${JSON.stringify({ time: new Date().toISOString(), event: "error", path: req.url.split("?")[0], message: e.message })}\n`,
    );
    return refuse(req, reply, 500, WebErrorCode.Internal, "internal error");
  });
  app.setNotFoundHandler((req, reply) => refuse(req, reply, 404, WebErrorCode.NotFound, "not found"));

  const json = (reply: FastifyReply, body: unknown) =>
    reply.code(200).header("cache-control", "no-store").type("application/json; charset=utf-8").send(body);

  /** A file from disk with its length, or 404. */
  const sendFile = async (reply: FastifyReply, path: string, type: string) => {
    const s = await stat(path).catch(() => null);
    if (s === null || !s.isFile()) throw new WebError(404, WebErrorCode.NotFound, "not found");
    return reply
      .code(200)
      .header("content-type", type)
      .header("content-length", s.size)
      .header("cache-control", "no-cache")
      .send(createReadStream(path));
  };

  // The page, its static files, the SDK's browser build, the public configuration.
  const index: RouteHandlerMethod = (_req, reply) =>
    sendFile(reply, join(staticDir, "index.html"), STATIC_TYPES[".html"]!);
  resource(app, "/", { GET: index });
  resource(app, "/index.html", { GET: index });
  resource(app, "/config.json", { GET: async (_req, reply) => json(reply, JSON.parse(publicConfig)) });
  resource(app, "/sdk/bkv-client.js", {
    GET: async (_req, reply) => {
      if (!existsSync(sdkFile))
        throw new WebError(
          503,
          WebErrorCode.NotBuilt,
          `the SDK's browser build is not built (${sdkFile} is missing): run npm run build`,
        );
      return sendFile(reply, sdkFile, STATIC_TYPES[".js"]!);
    },
  });
  resource(app, "/sdk/bkv-client.js.map", {
    GET: async (_req, reply) => sendFile(reply, `${sdkFile}.map`, STATIC_TYPES[".map"]!),
  });
  /** The static file's name; any other (an empty one too: "/static/" matches) is 404. */
  const staticName = (req: FastifyRequest): string => {
    const name = (req.params as { file: string }).file;
    if (!STATIC_NAME.test(name)) throw new WebError(404, WebErrorCode.NotFound, "not found");
    return name;
  };
  resource(
    app,
    "/static/:file",
    {
      GET: async (req, reply) => {
        const name = staticName(req);
        return sendFile(reply, join(staticDir, name), STATIC_TYPES[name.slice(name.lastIndexOf("."))]!);
      },
    },
    async (req) => {
      const s = await stat(join(staticDir, staticName(req))).catch(() => null);
      if (s === null || !s.isFile()) throw new WebError(404, WebErrorCode.NotFound, "not found");
    },
  );

  // Development tokens: the body is read as text (at most 4 KiB, whatever its Content-Type) and must be JSON {user}.
  await app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser("*", { parseAs: "string", bodyLimit: TOKEN_BODY_LIMIT }, (_req, body, done) =>
      done(null, body),
    );
    resource(scope, "/dev/token", {
      POST: async (req, reply) => {
        let user: unknown;
        try {
          user = (JSON.parse(typeof req.body === "string" ? req.body : "") as { user?: unknown }).user;
        } catch {
          throw new WebError(400, WebErrorCode.Malformed, "expected JSON {user}");
        }
        if (typeof user !== "string" || !validName(user))
          throw new WebError(400, WebErrorCode.Malformed, "user names are 1 to 64 of A-Z a-z 0-9 . _ -");
        return json(reply, { token: await tokens.mint(user), development: true });
      },
    });
  });

  // The storage stand-in: a user's files, for a token whose subject is that user.
  const storageParams = (req: FastifyRequest): { user: string; name: string } => {
    const { user, name = "" } = req.params as { user: string; name?: string };
    if (!validName(user) || (name !== "" && !validName(name)))
      throw new WebError(400, WebErrorCode.Malformed, "user and file names are 1 to 64 of A-Z a-z 0-9 . _ -");
    return { user, name };
  };
  const authorize = async (req: FastifyRequest, user: string) => {
    const sub = await tokens.verify(req.headers.authorization);
    if (sub === null)
      throw new WebError(
        401,
        WebErrorCode.Unauthenticated,
        "a development bearer token is required (POST /dev/token)",
      );
    if (sub !== user) throw new WebError(403, WebErrorCode.Forbidden, "this token is for another user");
  };
  const maxFileBytes = opts.maxFileBytes ?? MAX_FILE_BYTES;
  const tooLarge = () =>
    new WebError(413, WebErrorCode.TooLarge, `files are at most ${describeLimit(maxFileBytes)}`);

  resource(
    app,
    "/storage/:user/",
    {
      GET: async (req, reply) => {
        const { user } = storageParams(req);
        await authorize(req, user);
        return json(reply, { files: await storage.list(user) });
      },
    },
    storageParams,
  );
  resource(
    app,
    "/storage/:user/:name",
    {
      GET: async (req, reply) => {
        const { user, name } = storageParams(req);
        await authorize(req, user);
        const f = await storage.get(user, name);
        if (f === null) throw new WebError(404, WebErrorCode.NotFound, `no file ${name}`);
        return (
          reply
            .code(200)
            // Never rendered by the browser: the page reads these bytes itself.
            .header("content-type", "application/octet-stream")
            .header("content-length", f.size)
            .header("content-disposition", "attachment")
            .header("cache-control", "no-store")
            .send(f.stream)
        );
      },
      PUT: async (req, reply) => {
        const { user, name } = storageParams(req);
        await authorize(req, user);
        if (Number(req.headers["content-length"] ?? 0) > maxFileBytes) throw tooLarge();
        try {
          // The body is the raw request stream: no parser read it (see addContentTypeParser above).
          // On a refusal the storage destroys it, which leaves the connection to the answer (Node's
          // pipeline detaches a server request from its socket before destroying it).
          const size = await storage.put(user, name, req.raw, maxFileBytes);
          return json(reply, { name, size });
        } catch (e) {
          if (e instanceof TooLarge) throw tooLarge();
          // The client went away mid-upload (Node's "aborted"; the storage removed its temporary
          // file): nobody to answer, and no internal error to log.
          if ((e as { code?: unknown }).code === "ECONNRESET" && !req.raw.complete)
            throw new WebError(400, WebErrorCode.Malformed, "the upload was cut off");
          throw e;
        }
      },
      DELETE: async (req, reply) => {
        const { user, name } = storageParams(req);
        await authorize(req, user);
        if (!(await storage.delete(user, name)))
          throw new WebError(404, WebErrorCode.NotFound, `no file ${name}`);
        return json(reply, { deleted: name });
      },
    },
    storageParams,
  );

  const host = opts.host ?? "127.0.0.1";
  await app.listen({ port: opts.port ?? 0, host });
  const port = (app.server.address() as AddressInfo).port;
  const loopback = host === "127.0.0.1" || host === "localhost" || host === "::1";
  const origins = loopback
    ? [`http://localhost:${port}`, `http://127.0.0.1:${port}`]
    : [`http://${host.includes(":") ? `[${host}]` : host}:${port}`];
  return {
    url: origins[0]!,
    origins,
    port,
    server: app.server,
    close: () => app.close(),
  };
}
