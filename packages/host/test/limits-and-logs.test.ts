/**
 * Rate limits over real HTTP (per user and per address answer 429 and change nothing), and the
 * host's structured logs carry no token, request body or PIN-derived bytes.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { httpTransport, VaultClient } from "@bkv/client";
import { nodeHpkeSealer } from "@bkv/client/node";
import type { HostConfig, RunningHost } from "@bkv/host";
import { fromHex } from "@bkv/wire";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterEach, describe, expect, it } from "vitest";
import { startOneNodeVault, testHsmCommand } from "./one-node.js";

const LIGHT = { "argon2id-custom": { iterations: 1, memory: 8, parallelism: 1 } } as const;

let host: RunningHost | undefined;
let dir: string | undefined;

afterEach(async () => {
  await host?.close();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  host = undefined;
});

async function start(rateLimits: HostConfig["rateLimits"]) {
  dir = mkdtempSync(join(tmpdir(), "bkv-limits-"));
  const { privateKey, publicKey } = await generateKeyPair("EdDSA", { crv: "Ed25519" });
  host = await startOneNodeVault({
    node: 1,
    listen: { host: "127.0.0.1", port: 0 },
    storagePath: join(dir, "host.sqlite"),
    hsmCommand: testHsmCommand(dir),
    peers: [],
    auth: { issuer: "t", audience: "t", publicKeyJwk: await exportJWK(publicKey) },
    rateLimits,
  });
  const info = (await (await fetch(`${host.url}/v1/info`)).json()) as { vaultPublicKey: string };
  const token = (user: string) =>
    new SignJWT({})
      .setProtectedHeader({ alg: "EdDSA" })
      .setSubject(user)
      .setIssuer("t")
      .setAudience("t")
      .setExpirationTime("1h")
      .sign(privateKey);
  const client = async (user: string) =>
    new VaultClient({
      user,
      vaultPublicKey: fromHex(info.vaultPublicKey),
      transport: httpTransport({ url: host!.url, token: await token(user) }),
      keyStretching: LIGHT,
      hpke: nodeHpkeSealer,
    });
  return { client, token, url: host.url };
}

const big = { capacity: 1000, refillPerSecond: 1000 };

describe("rate limits", () => {
  it("per user: 429 past the burst, and other users are unaffected", async () => {
    const { client } = await start({ perUser: { capacity: 6, refillPerSecond: 0.001 }, perAddress: big });
    const alice = await client("alice");
    await alice.register("1234", new Uint8Array(32)); // 2 requests
    await expect(alice.recover("0000")).rejects.toMatchObject({ code: "WRONG_PIN", guessesRemaining: 9 }); // 2 more
    await expect(alice.recover("0000")).rejects.toMatchObject({ code: "WRONG_PIN", guessesRemaining: 8 }); // 6 used
    await expect(alice.recover("0000")).rejects.toMatchObject({ code: "RATE_LIMITED" });
    const bob = await client("bob");
    await bob.register("5678", new Uint8Array(32));
    expect((await bob.recover("5678")).backupKey).toEqual(new Uint8Array(32));
  });

  it("per address: 429 for everyone from that address past its burst", async () => {
    const { client } = await start({ perUser: big, perAddress: { capacity: 3, refillPerSecond: 0.001 } });
    const alice = await client("alice");
    await alice.register("1234", new Uint8Array(32));
    await expect((await client("carol")).register("1234", new Uint8Array(32))).rejects.toMatchObject({
      code: "RATE_LIMITED",
    });
  });
});

describe("host logs", () => {
  it("never contain the bearer token or the request bytes", async () => {
    const lines: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      lines.push(String(chunk));
      return (write as (c: string | Uint8Array, ...r: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof process.stderr.write;
    const level = process.env.BKV_LOG_LEVEL;
    process.env.BKV_LOG_LEVEL = "debug";
    try {
      const { client, token, url } = await start({ perUser: big, perAddress: big });
      const t = await token("alice");
      const alice = await client("alice");
      await alice.register("1234", new Uint8Array(32));
      await alice.recover("1234");
      const bad = await fetch(`${url}/v1/vault`, {
        method: "POST",
        headers: { authorization: `Bearer ${t}`, "content-type": "application/json" },
        body: JSON.stringify({ request: "QUJDREVGR0hJSktMTU5PUA" }),
      });
      expect(bad.status).toBe(400);
      const log = lines.join("");
      expect(log).toContain('"event"');
      expect(log).not.toContain(t);
      expect(log).not.toContain(t.split(".")[2]!);
      expect(log).not.toContain("QUJDREVGR0hJSktMTU5PUA");
      expect(log).not.toMatch(/authorization":"Bearer/);
    } finally {
      process.stderr.write = write;
      if (level === undefined) delete process.env.BKV_LOG_LEVEL;
      else process.env.BKV_LOG_LEVEL = level;
    }
  });
});
