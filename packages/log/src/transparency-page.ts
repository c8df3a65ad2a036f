/**
 * The transparency page, served by the log at /transparency/: the fleets and their epochs, an
 * evidence summary, the release entries (measurement, source revision, build recipe; their
 * signature checked when the visitor pins a release key), the checkpoint and the witnesses' cosignatures, all checked in the visitor's
 * browser by the client SDK's own browser build (bkv-client.js) against the keys the visitor pins (the
 * URL fragment or the form). The page's code is static; it trusts nothing the log says.
 * The page's routes take any query string (ignored: what a visitor pins stays in the fragment);
 * errors are the log's {code, message} (http-errors.ts).
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ErrorCode } from "@bkv/wire";
import type { FastifyInstance } from "fastify";
import { LogHttpError } from "./http-errors.js";
import { params } from "./request-schemas.js";

const STATIC = fileURLToPath(new URL("../static/transparency/", import.meta.url));
/** The page's static files, by the name in the URL (a Map: no name reaches an object's properties). */
const FILES = new Map<string, string>([
  ["app.js", "app.js"],
  ["app.css", "app.css"],
]);
const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
};
const CSP =
  "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'";

/**
 * A file name of the page (one path segment). Any name that is not one of the page's files is
 * 404, as for any other unknown path; the lookup is a Map, so no name reaches an object property.
 */
const FILE = params({ file: { type: "string", minLength: 1, maxLength: 128 } });

function sdkBrowserBuild(): string {
  const clientMain = createRequire(import.meta.url).resolve("@bkv/client");
  return join(dirname(clientMain), "browser", "bkv-client.js");
}

export function transparencyRoutes(app: FastifyInstance): void {
  app.get("/transparency", async (_req, reply) => reply.redirect("/transparency/"));
  app.get<{ Params: { file: string } }>(
    "/transparency/:file",
    { schema: { params: FILE } },
    async (req, reply) => {
      const name = req.params.file;
      let path: string;
      if (name === "bkv-client.js") path = sdkBrowserBuild();
      else if (FILES.has(name)) path = join(STATIC, FILES.get(name)!);
      else throw new LogHttpError(404, `no file ${name} in the transparency page`);
      let body: Buffer;
      try {
        body = readFileSync(path);
      } catch {
        throw new LogHttpError(503, `${name} is not built: run npm run build`, ErrorCode.Unavailable);
      }
      const ext = path.slice(path.lastIndexOf(".") + 1);
      return reply
        .header("content-security-policy", CSP)
        .header("x-content-type-options", "nosniff")
        .header("cache-control", "no-cache")
        .type(TYPES[ext] ?? "application/octet-stream")
        .send(body);
    },
  );
  app.get("/transparency/", async (_req, reply) => {
    return reply
      .header("content-security-policy", CSP)
      .header("cache-control", "no-cache")
      .type(TYPES.html!)
      .send(readFileSync(join(STATIC, "index.html")));
  });
}
