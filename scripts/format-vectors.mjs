/**
 * Writes the golden vector files (testdata/formats/<name>.json) from test/format-vectors/formats.ts.
 *
 *   node scripts/format-vectors.mjs            write the file of every format that has none yet
 *   node scripts/format-vectors.mjs NAME...    the same, for these formats only
 *   node scripts/format-vectors.mjs --force NAME...
 *                                              rewrite these files (after a deliberate format change;
 *                                              the diff is then the change to review)
 *
 * It runs the sources (packages/<name>/src), as the tests do, compiled with esbuild into one file in
 * node_modules/.cache (so third-party packages resolve from node_modules), removed afterwards. It
 * writes each file as the project's formatter lays it out (Biome, with biome.json), so a freshly
 * written file passes `npx biome ci` as it is.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { build } from "esbuild";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const outDir = join(root, "testdata", "formats");
const args = process.argv.slice(2);
const force = args.includes("--force");
const names = args.filter((a) => a !== "--force");

/** @bkv/<pkg> -> packages/<pkg>/src/index.ts, like vitest.config.ts. */
const sources = {
  name: "bkv-sources",
  setup(b) {
    b.onResolve({ filter: /^@bkv\/[a-z0-9-]+$/ }, (a) => ({
      path: join(root, "packages", a.path.slice("@bkv/".length), "src", "index.ts"),
    }));
  },
};

/** JSON text as Biome formats it (it puts short lists on one line, which JSON.stringify does not). */
function biomeLayout(path, text) {
  const biome = join(root, "node_modules", ".bin", "biome");
  return execFileSync(biome, ["format", `--stdin-file-path=${path}`], {
    cwd: root,
    input: text,
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  });
}

const compiled = join(root, "node_modules", ".cache", "bkv-format-vectors.mjs");
try {
  await build({
    entryPoints: [join(root, "test", "format-vectors", "formats.ts")],
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    outfile: compiled,
    packages: "external",
    plugins: [sources],
    logLevel: "warning",
  });
  const mod = await import(pathToFileURL(compiled).href);
  const known = new Set(mod.FORMATS.map((f) => f.name));
  for (const n of names) {
    if (!known.has(n)) {
      console.error(`no format named ${n}; known: ${[...known].join(", ")}`);
      process.exit(2);
    }
  }
  mkdirSync(outDir, { recursive: true });
  for (const f of mod.FORMATS) {
    if (names.length > 0 && !names.includes(f.name)) continue;
    const path = join(outDir, `${f.name}.json`);
    if (existsSync(path) && !force) {
      console.log(`kept    ${f.name} (exists; --force rewrites it)`);
      continue;
    }
    const file = await mod.makeVectorFile(f);
    writeFileSync(path, biomeLayout(path, `${JSON.stringify(file, null, 2)}\n`));
    console.log(`wrote   ${f.name}: ${file.vectors.length} vectors`);
  }
} finally {
  rmSync(compiled, { force: true });
}
