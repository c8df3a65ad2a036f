#!/usr/bin/env bash
# `npm test`: everything CI checks, from a fresh clone. Installs what the tests need that npm does
# not bring, builds, checks formatting and lint, runs every test, and ends with one summary line.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

# SoftHSM2: the PKCS#11 token the pkcs11 platform's tests and fleet run on.
if [ ! -e /usr/lib/softhsm/libsofthsm2.so ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq softhsm2 >/dev/null
fi

# Chromium: the browser the demo page's tests (test/browser) drive through playwright-core.
if [ ! -e /usr/bin/chromium ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

# iproute2: the namespace test (test/e2e/netns.test.ts) puts each data center in a network namespace of its own.
if ! command -v ip >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null
fi

npm run build --silent
npx tsc -p tsconfig.test.json
npx biome ci --colors=off --error-on-warnings .

mkdir -p test-results
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json=test-results/vitest.json "$@" || status=$?
node -e '
  const r = JSON.parse(require("fs").readFileSync("test-results/vitest.json", "utf8"));
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed`);
' || status=1
exit "$status"
