/**
 * The code measurement: a reproducible build of the HSM core (packages/hsm-core and what it
 * imports: @bkv/wire and @serenity-kit/opaque with its WASM) into one ES module, and the SHA-256 of
 * those bytes. The HSM process loads exactly these bytes and its platform attests their hash, so an
 * auditor who builds the same source with the same locked dependencies gets the same measurement.
 *
 * Reproducible because: esbuild is pinned in package-lock.json, paths in the output are relative to
 * the source root, nothing depends on the time or the machine, and no source maps are emitted.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { BkvError, ErrorCode } from "@bkv/wire";
import { build } from "esbuild";

/** The source tree this CLI was built from (packages/cli/dist/measure.js → the repository root). */
export const OWN_SOURCE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
/** Where `npm run build` puts the measured core, and where the HSM processes load it from. */
export const MEASURED_CORE_FILE = join(OWN_SOURCE_ROOT, "build", "hsm-core.js");

export interface MeasuredCore {
  code: Uint8Array;
  /** SHA-256 of code, hex. */
  measurement: string;
}

export function measurementOf(code: Uint8Array): string {
  return createHash("sha256").update(code).digest("hex");
}

export async function buildCore(sourceRoot: string): Promise<MeasuredCore> {
  const root = resolve(sourceRoot);
  const entry = join(root, "packages", "hsm-core", "src", "index.ts");
  if (!existsSync(entry)) {
    throw new BkvError(ErrorCode.Invalid, `${root} is not a source tree of this project (no ${entry})`);
  }
  if (!existsSync(join(root, "node_modules", "@serenity-kit", "opaque"))) {
    throw new BkvError(ErrorCode.Invalid, `${root} has no node_modules: run 'npm ci' there first`);
  }
  const result = await build({
    absWorkingDir: root,
    entryPoints: ["packages/hsm-core/src/index.ts"],
    bundle: true,
    format: "esm",
    platform: "neutral",
    mainFields: ["module", "main"],
    target: "es2022",
    alias: { "@bkv/wire": "./packages/wire/src/index.ts" },
    // Paths stay inside the source tree even where node_modules is a link, so they read the same
    // in any folder.
    preserveSymlinks: true,
    write: false,
    minify: false,
    sourcemap: false,
    legalComments: "inline",
    charset: "utf8",
    logLevel: "silent",
  });
  const out = result.outputFiles[0];
  if (out === undefined) throw new BkvError(ErrorCode.Invalid, "the build produced no output");
  const code = new Uint8Array(out.contents);
  return { code, measurement: measurementOf(code) };
}

/** Build and write the core to path (atomically). */
export async function writeCore(sourceRoot: string, path: string): Promise<MeasuredCore> {
  const m = await buildCore(sourceRoot);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(`${path}.tmp`, m.code);
  renameSync(`${path}.tmp`, path);
  return m;
}
