/**
 * The trust boundary, checked: code that runs inside the HSM (hsm-core) and the portable client SDK
 * use no Node API, so they can run in a real HSM's environment and in browsers. Node adapters live
 * in packages/hsm-software and packages/client/src/node only.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
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

function imports(file: string): string[] {
  const text = readFileSync(file, "utf8");
  return [...text.matchAll(/(?:^|\n)\s*(?:import|export)[^"']*?from\s*["']([^"']+)["']/g)].map((m) => m[1]!);
}

const NODE_ONLY = /^(node:|fs$|path$|crypto$|child_process$|better-sqlite3|fastify|jose)/;

describe("trust boundary", () => {
  it("the HSM core imports only the wire format, OPAQUE and its own files", () => {
    for (const f of sources(join(root, "packages/hsm-core/src"))) {
      for (const i of imports(f)) {
        expect(
          [i.startsWith("./"), i === "@bkv/wire", i === "@serenity-kit/opaque"],
          `${relative(root, f)} imports ${i}`,
        ).toContain(true);
      }
    }
  });

  it("the client SDK core and the wire format use no Node-only module", () => {
    const files = [
      ...sources(join(root, "packages/wire/src")),
      ...sources(join(root, "packages/client/src")).filter((f) => !f.includes(`${join("src", "node")}`)),
    ];
    expect(files.length).toBeGreaterThan(5);
    for (const f of files) {
      for (const i of imports(f)) expect(NODE_ONLY.test(i), `${relative(root, f)} imports ${i}`).toBe(false);
    }
  });
});
