/**
 * The trust boundary, checked: code that runs inside the HSM (hsm-core) and the portable client SDK
 * use no Node API, so they can run in a real HSM's environment and in browsers. Node adapters live
 * in packages/hsm-software and packages/client/src/node only. Every package imports only the
 * workspace packages ARCHITECTURE.md allows it.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { builtinModules } from "node:module";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("..", import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith(".ts") ? [p] : [];
  });
}

/** Every module specifier: `import … from`, `export … from`, bare `import "x"`, `import("x")`, `require("x")`. */
function imports(text: string): string[] {
  const patterns = [
    /(?:^|[\n;])\s*(?:import|export)\s[^"'`;]*?\sfrom\s*["']([^"']+)["']/g,
    /(?:^|[\n;])\s*import\s*["']([^"']+)["']/g,
    /\bimport\s*\(\s*["'`]([^"'`]+)["'`]\s*\)/g,
    /\brequire\s*\(\s*["'`]([^"'`]+)["'`]\s*\)/g,
  ];
  return patterns.flatMap((re) => [...text.matchAll(re)].map((m) => m[1]!));
}

const fileImports = (file: string) => imports(readFileSync(file, "utf8"));

const BUILTINS = new Set(builtinModules.flatMap((m) => [m, m.split("/")[0]!]));
const NODE_ONLY = (i: string) =>
  i.startsWith("node:") ||
  BUILTINS.has(i.split("/")[0]!) ||
  /^(better-sqlite3|fastify|@fastify\/|jose|pkcs11js)/.test(i);

/** The workspace packages each package may import (ARCHITECTURE.md). */
const ALLOWED: Record<string, string[]> = {
  wire: [],
  hpke: [],
  tlog: ["wire"],
  "hsm-core": ["wire"],
  "hsm-software": ["wire", "hpke", "hsm-core"],
  "hsm-pkcs11": ["wire", "hsm-core", "hsm-software"],
  "hsm-nitro": ["wire", "client", "hsm-core", "hsm-software"],
  host: ["wire"],
  client: ["wire", "tlog", "hpke"],
  log: ["wire", "tlog", "client"],
  web: ["client"],
  cli: ["wire", "tlog", "client", "host", "hsm-core", "hsm-software", "web"],
  sim: ["wire", "client", "hsm-core", "hsm-software"],
};

describe("trust boundary", () => {
  it("the HSM core imports only the wire format, OPAQUE and its own files", () => {
    for (const f of sources(join(root, "packages/hsm-core/src"))) {
      for (const i of fileImports(f)) {
        expect(
          [i.startsWith("./"), i === "@bkv/wire", i === "@serenity-kit/opaque"],
          `${relative(root, f)} imports ${i}`,
        ).toContain(true);
      }
    }
  });

  it("finds every form of import", () => {
    const text = [
      'import { a } from "a";',
      "import type { B } from 'b';",
      'export * from "c";',
      'import "d";',
      'const e = await import("e");',
      "const f = require('f');",
      'import {\n  g,\n} from "g";',
    ].join("\n");
    expect(imports(text).sort()).toEqual(["a", "b", "c", "d", "e", "f", "g"]);
  });

  it("each package imports only the workspace packages it may", () => {
    const packages = readdirSync(join(root, "packages")).filter((p) =>
      statSync(join(root, "packages", p)).isDirectory(),
    );
    expect(packages.sort()).toEqual(Object.keys(ALLOWED).sort());
    for (const p of packages) {
      for (const f of sources(join(root, "packages", p, "src"))) {
        for (const i of fileImports(f)) {
          const m = /^@bkv\/([a-z0-9-]+)/.exec(i);
          if (m === null) continue;
          expect(m[1] === p || ALLOWED[p]!.includes(m[1]!), `${relative(root, f)} imports ${i}`).toBe(true);
        }
      }
    }
  });

  it("bkv key/backup/restore reach only the backup modules: no vault, HPKE, log or curve code to load", () => {
    // Follows relative imports from the command, and @bkv/client/node/backup into the client's sources.
    const entry = join(root, "packages/cli/src/commands/backup.ts");
    const seen = new Set<string>();
    const outside = new Set<string>();
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      for (const i of fileImports(file)) {
        if (i.startsWith(".")) visit(join(file, "..", i.replace(/\.js$/, ".ts")));
        else if (i === "@bkv/client/node/backup") visit(join(root, "packages/client/src/node/backup.ts"));
        else if (!NODE_ONLY(i)) outside.add(i);
      }
    };
    visit(entry);
    expect(seen.has(join(root, "packages/client/src/node/files.ts"))).toBe(true);
    expect([...outside].sort()).toEqual(["@bkv/wire"]);
  });

  it("the client SDK core, the wire format and tlog use no Node-only module", () => {
    const files = [
      ...sources(join(root, "packages/wire/src")),
      ...sources(join(root, "packages/tlog/src")),
      ...sources(join(root, "packages/client/src")).filter((f) => !f.includes(`${join("src", "node")}`)),
    ];
    expect(files.length).toBeGreaterThan(5);
    for (const f of files) {
      for (const i of fileImports(f)) expect(NODE_ONLY(i), `${relative(root, f)} imports ${i}`).toBe(false);
    }
  });
});
