import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const pkg = (name: string, file = "index.ts") =>
  fileURLToPath(new URL(`./packages/${name}/src/${file}`, import.meta.url));

// Tests import the TypeScript sources directly; end-to-end tests run the built CLI (dist/).
export default defineConfig({
  resolve: {
    alias: [
      { find: /^@bkv\/client\/node$/, replacement: pkg("client", "node/index.ts") },
      { find: /^@bkv\/client\/node\/backup$/, replacement: pkg("client", "node/backup.ts") },
      {
        find: /^@bkv\/(wire|hpke|hsm-core|hsm-software|hsm-pkcs11|hsm-nitro|client|host|cli|sim|tlog|log|web)$/,
        replacement: pkg("$1"),
      },
    ],
  },
  test: {
    include: ["packages/*/test/**/*.test.ts", "test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
  },
});
