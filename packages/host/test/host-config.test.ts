/**
 * The host's config and listeners as an operator meets them: every bad config is a CONFIG error
 * naming what is wrong; a port in use is PORT_IN_USE naming the listener and its holder, with no
 * HSM started; other Host names are refused (DNS rebinding); the admin listener refuses a caller
 * without the admin key and runs the genesis ceremony with it (over HTTPS).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  adminKeyDigest,
  checkHostConfig,
  DEFAULT_RATE_LIMITS,
  type HostConfig,
  readHostConfigFile,
  runCeremony,
  startHost,
} from "@bkv/host";
import { ed25519PublicKeyOf } from "@bkv/hsm-software";
import { isBkvError } from "@bkv/wire";
import { exportJWK, generateKeyPair } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { remoteMember } from "../../cli/src/admin-client.js";
import { TEST_LOG_SEED, TEST_RELEASE_KEY, TEST_WITNESS_POLICY, testHsmCommand } from "./one-node.js";

let dir: string;
let jwk: Record<string, unknown>;

function cert(name: string): { certFile: string; keyFile: string } {
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-days",
      "2",
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
      "-keyout",
      keyFile,
      "-out",
      certFile,
    ],
    { stdio: "ignore" },
  );
  return { certFile, keyFile };
}

const base = () => ({
  node: 1,
  listen: { host: "127.0.0.1", port: 0 },
  storagePath: join(dir, "s.sqlite"),
  hsmCommand: ["node"],
  peers: [],
  auth: { issuer: "i", audience: "a", publicKeyJwk: jwk },
  rateLimits: DEFAULT_RATE_LIMITS,
});

function configError(raw: unknown): string {
  try {
    checkHostConfig(raw, "test.json");
  } catch (e) {
    expect(isBkvError(e, "CONFIG")).toBe(true);
    return (e as Error).message;
  }
  throw new Error("the config was accepted");
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "bkv-host-config-"));
  jwk = (await exportJWK((await generateKeyPair("EdDSA", { crv: "Ed25519" })).publicKey)) as Record<
    string,
    unknown
  >;
  process.env.BKV_LOG_LEVEL = process.env.BKV_LOG_LEVEL ?? "silent";
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("host config checks", () => {
  it("accepts a good config, comments included", () => {
    const path = join(dir, "good.json");
    writeFileSync(path, `// a comment\n${JSON.stringify(base())} /* trailing "quoted // text" */\n`);
    expect(readHostConfigFile(path).node).toBe(1);
  });

  it("names a missing file", () => {
    expect(() => readHostConfigFile(join(dir, "nope.json"))).toThrow(/no such file.*bkv host init/);
  });

  it("refuses an unknown field", () => {
    expect(configError({ ...base(), listn: { host: "x", port: 1 } })).toMatch(/unknown field listn/);
    expect(configError({ ...base(), listen: { host: "127.0.0.1", port: 0, tls: true } })).toMatch(
      /unknown field listen\.tls/,
    );
  });

  it("refuses a peer listed twice (by node, address or key) and itself as a peer", () => {
    const peer = (node: number, port: number, key: string) => ({
      node,
      url: `http://127.0.0.1:${port}`,
      peerAddress: { host: "127.0.0.1", port },
      hostKey: key.repeat(64),
    });
    const keyFile = join(dir, "hk.pem");
    writeFileSync(keyFile, "x");
    const withPeers = (peers: unknown[]) => ({
      ...base(),
      peerListen: { host: "127.0.0.1", port: 0 },
      hostKeyFile: keyFile,
      peers,
    });
    expect(configError(withPeers([peer(2, 1, "a"), peer(2, 2, "b")]))).toMatch(/node 2 is listed twice/);
    expect(configError(withPeers([peer(2, 1, "a"), peer(3, 1, "b")]))).toMatch(
      /127\.0\.0\.1:1 is listed twice/,
    );
    expect(configError(withPeers([peer(2, 1, "a"), peer(3, 2, "a")]))).toMatch(/host key .* listed twice/);
    expect(configError(withPeers([peer(1, 1, "a")]))).toMatch(/this host's own node 1/);
  });

  it("refuses a key that is not its certificate's, and a public address without hostNames", () => {
    const a = cert("a");
    const b = cert("b");
    expect(configError({ ...base(), tls: { certFile: a.certFile, keyFile: b.keyFile } })).toMatch(
      /is not the key of the certificate/,
    );
    expect(configError({ ...base(), listen: { host: "0.0.0.0", port: 1 } })).toMatch(/hostNames is required/);
    expect(
      configError({ ...base(), auth: { issuer: "i", audience: "a", publicKeyJwk: { ...jwk, d: "x" } } }),
    ).toMatch(/private key/);
  });
});

describe("listeners", () => {
  it("a port in use names the listener and its holder, and starts no HSM", async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, "127.0.0.1", () => r()));
    const port = (taken.address() as { port: number }).port;
    const config = {
      ...base(),
      listen: { host: "127.0.0.1", port },
      hsmCommand: testHsmCommand(join(dir, "p")),
    };
    const err = await startHost(config as HostConfig).then(
      () => null,
      (e: unknown) => e,
    );
    taken.close();
    expect(isBkvError(err, "PORT_IN_USE")).toBe(true);
    expect((err as Error).message).toContain(
      `client listener (listen) port ${port} on 127.0.0.1 is in use by pid ${process.pid}`,
    );
  });

  it("the admin listener refuses without the admin key, runs genesis with it over HTTPS; other Host names are refused", async () => {
    const tls = cert("host");
    const adminKey = "test-admin-key";
    const config = {
      ...base(),
      storagePath: join(dir, "g.sqlite"),
      hsmCommand: testHsmCommand(join(dir, "g")),
      tls,
      admin: { listen: { host: "127.0.0.1", port: 0 }, keySha256: adminKeyDigest(adminKey) },
    } as HostConfig;
    const host = await startHost(config);
    try {
      expect(host.url.startsWith("https://")).toBe(true);
      const ca = readFileSync(tls.certFile, "utf8");
      const params = {
        guessLimit: 5,
        namespace: "bkv-test",
        epoch: 1,
        logKey: ed25519PublicKeyOf(TEST_LOG_SEED),
        releaseKey: TEST_RELEASE_KEY,
        witnessPolicy: TEST_WITNESS_POLICY,
      };
      const wrong = await runCeremony(
        [remoteMember({ url: host.adminUrl!, adminKey: "wrong", ca }, 1)],
        params,
      ).then(
        () => null,
        (e: unknown) => e,
      );
      expect(isBkvError(wrong, "FORBIDDEN")).toBe(true);
      expect(host.hsm.state.kind).toBe("uninitialized");
      const r = await runCeremony([remoteMember({ url: host.adminUrl!, adminKey, ca }, 1)], params);
      expect(r.fleet.members).toHaveLength(1);
      expect(host.hsm.state.kind).toBe("serving");
      // A second ceremony finds the HSM spent.
      const again = await runCeremony([remoteMember({ url: host.adminUrl!, adminKey, ca }, 1)], params).then(
        () => null,
        (e: unknown) => e,
      );
      expect(isBkvError(again, "GENESIS_SPENT")).toBe(true);
      // DNS rebinding: the client API refuses another Host name (plain HTTP client over TLS is not
      // needed: the admin listener applies the same guard).
      const adminPort = Number(new URL(host.adminUrl!).port);
      const status = await new Promise<number>((resolve, reject) => {
        const req = httpsRequest(
          {
            host: "127.0.0.1",
            port: adminPort,
            path: "/admin/v1/status",
            ca,
            servername: "127.0.0.1",
            headers: { host: "evil.example", authorization: `Bearer ${adminKey}` },
          },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on("error", reject);
        req.end();
      });
      expect(status).toBe(403);
    } finally {
      await host.close();
    }
  });
});
