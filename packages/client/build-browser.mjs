/**
 * Build the browser SDK: packages/client/src/browser.ts and everything it imports (@bkv/wire and
 * @bkv/tlog from their sources, @serenity-kit/opaque with its inlined WASM, @hpke/*, @noble/*) into
 * one minified ES module, dist/browser/bkv-client.js, plus dist/browser/size.json.
 *
 * The browser build must not reach any Node built-in: an import of one (node:… or a bare name such as
 * "crypto") fails the build. The one exception is @hpke/common's guarded fallback
 * `await import("crypto")`, run only where globalThis.crypto is missing (Node <= 18); it resolves to
 * an empty stub here, so that path fails as it would in any browser without WebCrypto.
 *
 * Usage (from anywhere): node packages/client/build-browser.mjs
 */
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";

const clientDir = dirname(fileURLToPath(import.meta.url));
const root = resolve(clientDir, "..", "..");
const outDir = join(clientDir, "dist", "browser");
const outFile = join(outDir, "bkv-client.js");

const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
const isBuiltin = (p) => p.startsWith("node:") || builtins.has(p) || builtins.has(p.split("/")[0]);

/** Refuse Node built-ins and Node-only workspace packages; stub the one known guarded fallback. */
const browserOnly = {
  name: "bkv-browser-only",
  setup(b) {
    // @bkv/hpke runs on node:crypto; the client's src/node/ is its Node adapter.
    b.onResolve({ filter: /^@bkv\/(hpke|client\/node)$|\/node\/[^/]*\.js$/ }, (args) => {
      const fromClient = args.importer.includes(`${sep}packages${sep}client${sep}src${sep}`);
      if (!args.path.startsWith("@bkv/") && !fromClient) return undefined;
      return {
        errors: [
          { text: `${args.path} is Node-only and must not be in the browser build (from ${args.importer})` },
        ],
      };
    });
    b.onResolve({ filter: /.*/ }, (args) => {
      if (!isBuiltin(args.path)) return undefined;
      const from = relative(root, args.importer).split(sep).join("/");
      if (
        args.path === "crypto" &&
        args.kind === "dynamic-import" &&
        from.startsWith("node_modules/@hpke/common/")
      ) {
        return { path: "crypto", namespace: "bkv-empty" };
      }
      return {
        errors: [
          { text: `Node built-in "${args.path}" imported by ${from}: not allowed in the browser build` },
        ],
      };
    });
    b.onLoad({ filter: /.*/, namespace: "bkv-empty" }, () => ({
      contents: "export const webcrypto = undefined;",
      loader: "js",
    }));
  },
};

const result = await build({
  absWorkingDir: root,
  entryPoints: ["packages/client/src/browser.ts"],
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  minify: true,
  sourcemap: false,
  legalComments: "eof",
  charset: "utf8",
  alias: {
    "@bkv/wire": "./packages/wire/src/index.ts",
    "@bkv/tlog": "./packages/tlog/src/index.ts",
  },
  plugins: [browserOnly],
  metafile: true,
  write: false,
  logLevel: "silent",
}).catch((e) => {
  for (const m of e.errors ?? []) {
    const at = m.location ? ` (${m.location.file}:${m.location.line})` : "";
    console.error(`build-browser: ${m.text}${at}`);
  }
  if (!e.errors?.length) console.error(e);
  process.exit(1);
});

// Belt and braces: nothing may stay external, and the output may not mention a node: import.
const externals = [];
for (const [file, input] of Object.entries(result.metafile.inputs)) {
  for (const i of input.imports) if (i.external) externals.push(`${file} -> ${i.path}`);
}
const out = result.outputFiles[0];
if (out === undefined) {
  console.error("build-browser: the build produced no output");
  process.exit(1);
}
const code = out.contents;
const text = out.text;
if (externals.length > 0 || /(?:require\s*\(|from\s*|import\s*\(?)\s*["'`]node:/.test(text)) {
  console.error(
    `build-browser: the browser build imports Node modules:\n  ${externals.join("\n  ") || "(node: in output)"}`,
  );
  process.exit(1);
}

mkdirSync(outDir, { recursive: true });
writeFileSync(`${outFile}.tmp`, code);
renameSync(`${outFile}.tmp`, outFile);
const gzipBytes = gzipSync(code, { level: 9 }).length;
const size = { bytes: code.length, gzipBytes };
writeFileSync(join(outDir, "size.json.tmp"), `${JSON.stringify(size)}\n`);
renameSync(join(outDir, "size.json.tmp"), join(outDir, "size.json"));

const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;
console.log(
  `browser SDK: ${relative(root, outFile).split(sep).join("/")} ${kib(size.bytes)} (gzip ${kib(size.gzipBytes)})`,
);
