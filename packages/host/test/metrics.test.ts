/**
 * GET /metrics from a running fleet (a host agent with its HSM process, over real HTTP): the names
 * the runbook alerts on are there, the guess counts move after a wrong and a right PIN, nothing
 * names a user, and the metrics are served only on their own listener, not on the client API.
 * /livez and /readyz answer on the client API.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { httpTransport, VaultClient } from "@bkv/client";
import { nodeHpkeSealer } from "@bkv/client/node";
import type { RunningHost } from "@bkv/host";
import { fromHex } from "@bkv/wire";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startOneNodeVault, testHsmCommand } from "./one-node.js";

const LIGHT = { "argon2id-custom": { iterations: 1, memory: 8, parallelism: 1 } } as const;
const USER = "metrics-user-5d1e";

let host: RunningHost;
let dir: string;
let client: () => Promise<VaultClient>;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "bkv-metrics-"));
  const { privateKey, publicKey } = await generateKeyPair("EdDSA", { crv: "Ed25519" });
  host = await startOneNodeVault({
    node: 1,
    listen: { host: "127.0.0.1", port: 0 },
    metricsListen: { host: "127.0.0.1", port: 0 },
    storagePath: join(dir, "host.sqlite"),
    hsmCommand: testHsmCommand(dir),
    peers: [],
    auth: { issuer: "t", audience: "t", publicKeyJwk: await exportJWK(publicKey) },
    rateLimits: {
      perUser: { capacity: 1000, refillPerSecond: 1000 },
      perAddress: { capacity: 1000, refillPerSecond: 1000 },
    },
  });
  const info = (await (await fetch(`${host.url}/v1/info`)).json()) as { vaultPublicKey: string };
  const token = await new SignJWT({})
    .setProtectedHeader({ alg: "EdDSA" })
    .setSubject(USER)
    .setIssuer("t")
    .setAudience("t")
    .setExpirationTime("1h")
    .sign(privateKey);
  client = async () =>
    new VaultClient({
      user: USER,
      vaultPublicKey: fromHex(info.vaultPublicKey),
      transport: httpTransport({ url: host.url, token }),
      keyStretching: LIGHT,
      hpke: nodeHpkeSealer,
    });
});

afterAll(async () => {
  await host?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function scrape(): Promise<string> {
  const res = await fetch(`${host.metricsUrl}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toContain("text/plain");
  return res.text();
}

/** The value of one sample (name with its labels exactly as printed), 0 when absent. */
function value(text: string, sample: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${sample} `));
  return line === undefined ? 0 : Number(line.slice(sample.length + 1));
}

describe("metrics", () => {
  it("are served on their own listener, not on the client API", async () => {
    expect(host.metricsUrl).not.toBeNull();
    expect(host.metricsUrl).not.toBe(host.url);
    expect((await fetch(`${host.url}/metrics`)).status).toBe(404);
  });

  it("name what the runbook alerts on", async () => {
    const text = await scrape();
    for (const name of [
      "bkv_http_requests_total",
      "bkv_http_request_duration_seconds",
      "bkv_guesses_total",
      "bkv_guesses_started_total",
      "bkv_records_destroyed_total",
      "bkv_raft_role",
      "bkv_raft_term",
      "bkv_raft_commit_index",
      "bkv_raft_peer_lag_entries",
      "bkv_host_persist_duration_seconds",
      "bkv_hsm_nvram_write_seconds",
      "bkv_peer_messages_refused_total",
      "bkv_hsm_state",
      "bkv_hsm_recovering",
      "bkv_hsm_restarts_total",
      "bkv_rate_limit_buckets",
    ])
      expect(text).toContain(`# TYPE ${name} `);
    expect(value(text, 'bkv_raft_role{role="leader"}')).toBe(1);
    expect(value(text, 'bkv_hsm_state{state="serving"}')).toBe(1);
    expect(value(text, "bkv_raft_term")).toBeGreaterThan(0);
    expect(value(text, "bkv_raft_commit_index")).toBeGreaterThan(0);
    expect(value(text, "bkv_hsm_nvram_write_seconds_count")).toBeGreaterThan(0);
  });

  it("count a wrong and a right guess, and name no user", async () => {
    await (await client()).register("2468", new Uint8Array(32).fill(3));
    const before = await scrape();
    await expect((await client()).recover("0000")).rejects.toMatchObject({ code: "WRONG_PIN" });
    const afterWrong = await scrape();
    expect(value(afterWrong, 'bkv_guesses_total{result="wrong"}')).toBe(
      value(before, 'bkv_guesses_total{result="wrong"}') + 1,
    );
    expect(value(afterWrong, 'bkv_guesses_total{result="right"}')).toBe(
      value(before, 'bkv_guesses_total{result="right"}'),
    );
    expect(value(afterWrong, "bkv_guesses_started_total")).toBe(
      value(before, "bkv_guesses_started_total") + 1,
    );
    await (await client()).recover("2468");
    const afterRight = await scrape();
    expect(value(afterRight, 'bkv_guesses_total{result="right"}')).toBe(
      value(afterWrong, 'bkv_guesses_total{result="right"}') + 1,
    );
    expect(value(afterRight, 'bkv_guesses_total{result="wrong"}')).toBe(
      value(afterWrong, 'bkv_guesses_total{result="wrong"}'),
    );
    // Requests by route and outcome: the vault route answered 200 at least for the right guess.
    expect(value(afterRight, 'bkv_http_requests_total{route="POST /v1/vault",status="200"}')).toBeGreaterThan(
      0,
    );
    expect(afterRight).not.toContain(USER);
    expect(value(afterRight, "bkv_host_persist_duration_seconds_count")).toBeGreaterThan(0);
  });

  it("liveness and readiness answer on the client API", async () => {
    expect((await fetch(`${host.url}/livez`)).status).toBe(200);
    const ready = await fetch(`${host.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: "ready" });
  });
});
