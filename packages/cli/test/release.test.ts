/**
 * `bkv release key` and `bkv release publish` against a log (in this process) with a releases
 * namespace: a release key file is made (mode 0600, never overwritten), a release of a given
 * measurement is appended at the namespace's next epoch and served signed by that key; a release
 * key the log does not know, or a submitter key it does not know, is refused and nothing appended.
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadOrCreateKey, type RunningLog, startLogServer } from "@bkv/log";
import { decodeSignedRelease, fromBase64, SIG_ED25519, verifyRelease } from "@bkv/tlog";
import { fromHex } from "@bkv/wire";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { releaseCommand } from "../src/commands/release.js";
import { readSigningKeyFile } from "../src/signing-key-file.js";

const NS = "example.test/releases";
const MEASUREMENT = "ab".repeat(32);

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const o = vi.spyOn(process.stdout, "write").mockImplementation((s) => {
    out += String(s);
    return true;
  });
  const e = vi.spyOn(process.stderr, "write").mockImplementation((s) => {
    err += String(s);
    return true;
  });
  try {
    return { code: await releaseCommand(argv), out, err };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}

describe("bkv release", () => {
  const dir = { path: mkdtempSync(join(tmpdir(), "bkv-release-test-")) };
  let log: RunningLog;
  const file = (n: string) => join(dir.path, n);

  beforeAll(async () => {
    for (const k of ["release.key", "submitter.key", "other-release.key", "other-submitter.key"]) {
      expect((await run("key", "--out", file(k))).code).toBe(0);
    }
    loadOrCreateKey(file("log"), "log.key", "log.example/release-cli", SIG_ED25519);
    log = await startLogServer(
      {
        dir: file("log"),
        origin: "log.example/release-cli",
        onEvent: () => {},
        namespaces: [
          {
            namespace: NS,
            submitterKey: readSigningKeyFile(file("submitter.key")).publicKey,
            releaseKey: readSigningKeyFile(file("release.key")).publicKey,
          },
        ],
      },
      "127.0.0.1",
      0,
    );
  });

  afterAll(async () => {
    await log?.close();
    rmSync(dir.path, { recursive: true, force: true });
  });

  it("release key: a new Ed25519 key file, mode 0600, never overwritten", async () => {
    const r = await run("key", "--out", file("k"));
    expect(r.out).toMatch(/^[0-9a-f]{64}\n$/);
    expect(statSync(file("k")).mode & 0o777).toBe(0o600);
    expect(readSigningKeyFile(file("k")).publicKey).toEqual(fromHex(r.out.trim()));
    const before = readFileSync(file("k"), "utf8");
    await expect(run("key", "--out", file("k"))).rejects.toThrow(/EEXIST/);
    expect(readFileSync(file("k"), "utf8")).toBe(before);
  });

  const publish = (release: string, submitter: string) =>
    run(
      "publish",
      "--log",
      log.url,
      "--namespace",
      NS,
      "--release-key",
      file(release),
      "--submitter-key",
      file(submitter),
      "--measurement",
      MEASUREMENT,
      "--revision",
      "0123456789abcdef0123456789abcdef01234567",
      "--json",
    );

  it("publishes a release signed by the release key at the next epoch", async () => {
    const r = await publish("release.key", "submitter.key");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ namespace: NS, epoch: 1, index: 0, measurement: MEASUREMENT });
    const b = (await (await fetch(`${log.url}/bundle?namespace=${encodeURIComponent(NS)}`)).json()) as {
      artifact: string;
    };
    const rel = decodeSignedRelease(fromBase64(b.artifact)!);
    expect(rel.measurement).toEqual(fromHex(MEASUREMENT));
    expect(verifyRelease(rel, readSigningKeyFile(file("release.key")).publicKey)).toBe(true);
    expect(JSON.parse((await publish("release.key", "submitter.key")).out).epoch).toBe(2);
  });

  it("a release key or a submitter key the log does not know is refused", async () => {
    const wrongRelease = await publish("other-release.key", "submitter.key");
    expect(wrongRelease.code).toBe(1);
    expect(wrongRelease.err).toContain("(422 SIGNATURE): the release is not signed by");
    const wrongSubmitter = await publish("release.key", "other-submitter.key");
    expect(wrongSubmitter.code).toBe(1);
    expect(wrongSubmitter.err).toContain("(403 SUBMITTER_SIGNATURE): the signature is not by");
    expect(log.service.size).toBe(2);
  });
});
