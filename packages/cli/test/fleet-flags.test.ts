/**
 * `bkv fleet create`'s publication flags: the log key is a log's Ed25519 verifier key
 * (name+hash+base64), from which genesis takes the raw 32-byte key; the release key is a raw
 * Ed25519 key in hex, a strict point; the highest successor guess limit is 1 to the fleet's own;
 * the witness policy is cosignature/v1 verifier keys (each once, none the log's) and a required
 * threshold of 1 to their number.
 * Anything else is a usage error, before any HSM is started.
 */

import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateSignerKey, parseVerifierKey, SIG_COSIGNATURE_V1 } from "@bkv/tlog";
import { toHex } from "@bkv/wire";
import { ed25519 } from "@noble/curves/ed25519.js";
import { describe, expect, it } from "vitest";
import { UsageError } from "../src/args.js";
import {
  fleetCommand,
  logKeyFlag,
  maxSuccessorFlag,
  namespaceFlag,
  releaseKeyFlag,
  witnessPolicyFlags,
} from "../src/commands/fleet.js";

describe("fleet create flags", () => {
  it("takes the raw Ed25519 key out of a log's verifier key", () => {
    const { vkey } = generateSignerKey("example.com/log");
    const raw = logKeyFlag(vkey);
    expect(raw).toHaveLength(32);
    expect(raw).toEqual(parseVerifierKey(vkey).publicKey);
  });

  it("refuses a missing key, garbage, a key whose hash does not match, and a witness's key", () => {
    const { vkey } = generateSignerKey("example.com/log");
    const [name, hash, b64] = vkey.split("+");
    const otherHash = (Number.parseInt(hash!, 16) ^ 1).toString(16).padStart(8, "0");
    const witness = generateSignerKey("example.com/witness", SIG_COSIGNATURE_V1).vkey;
    for (const bad of [undefined, "", "not a key", `${name}+${otherHash}+${b64}`, witness]) {
      expect(() => logKeyFlag(bad)).toThrow(UsageError);
    }
  });

  it("the release key is 64 hex digits of a strict Ed25519 point", () => {
    const good = toHex(ed25519.getPublicKey(new Uint8Array(32).fill(5)));
    expect(toHex(releaseKeyFlag(good))).toBe(good);
    const identity = `01${"00".repeat(31)}`;
    for (const bad of [undefined, "", good.slice(2), `${good}00`, good.toUpperCase(), identity])
      expect(() => releaseKeyFlag(bad)).toThrow(UsageError);
  });

  it("the highest successor guess limit is 1 to the fleet's own, the fleet's own by default", () => {
    expect(maxSuccessorFlag(undefined, 10)).toBe(10);
    expect(maxSuccessorFlag("3", 10)).toBe(3);
    for (const bad of ["0", "11", "2.5", "x"]) expect(() => maxSuccessorFlag(bad, 10)).toThrow(UsageError);
  });

  it("the witness policy: cosignature/v1 keys with their names and a threshold of 1 to their number", () => {
    const log = generateSignerKey("example.com/log");
    const logKey = parseVerifierKey(log.vkey).publicKey;
    const w1 = generateSignerKey("example.com/w1", SIG_COSIGNATURE_V1);
    const w2 = generateSignerKey("example.com/w2", SIG_COSIGNATURE_V1);
    const p = witnessPolicyFlags([w1.vkey, w2.vkey], "2", logKey);
    expect(p.threshold).toBe(2);
    expect(p.witnesses.map((w) => w.name)).toEqual(["example.com/w1", "example.com/w2"]);
    expect(p.witnesses[1]!.key).toEqual(parseVerifierKey(w2.vkey).publicKey);
    const cases: [string[] | undefined, string | undefined, RegExp][] = [
      [undefined, "1", /--witness-key is required/],
      [[], "1", /--witness-key is required/],
      [[w1.vkey], undefined, /--witness-threshold is required/],
      [[w1.vkey, w2.vkey], "0", /--witness-threshold must be a whole number from 1 to 2/],
      [[w1.vkey, w2.vkey], "3", /--witness-threshold must be a whole number from 1 to 2/],
      [[w1.vkey, w1.vkey], "1", /named twice/],
      [[log.vkey], "1", /must be a cosignature\/v1 key/],
      [["garbage"], "1", /not a verifier key/],
    ];
    for (const [keys, threshold, words] of cases) {
      expect(() => witnessPolicyFlags(keys, threshold, logKey)).toThrow(UsageError);
      expect(() => witnessPolicyFlags(keys, threshold, logKey)).toThrow(words);
    }
    // A witness key that is the log's own raw key: the log operator would witness itself.
    expect(() => witnessPolicyFlags([w1.vkey], "1", parseVerifierKey(w1.vkey).publicKey)).toThrow(
      /the log's own key/,
    );
  });

  it("a namespace is 1 to 255 bytes", () => {
    expect(namespaceFlag(undefined, "bkv-dev")).toBe("bkv-dev");
    expect(namespaceFlag("é".repeat(127), "x")).toHaveLength(127);
    expect(() => namespaceFlag("", "x")).toThrow(UsageError);
    expect(() => namespaceFlag("é".repeat(128), "x")).toThrow(UsageError);
  });

  it("fleet create --hosts: plain HTTP only on loopback, and one admin key or one per host", async () => {
    const dir = mkdtempSync(join(tmpdir(), "bkv-fleet-flags-"));
    const key = join(dir, "admin.key");
    writeFileSync(key, "k\n");
    const { vkey } = generateSignerKey("example.com/log");
    const run = (hosts: string, keys: string) =>
      fleetCommand([
        "create",
        "--hosts",
        hosts,
        "--admin-key",
        keys,
        "--out",
        join(dir, "out"),
        "--log-key",
        vkey,
      ]);
    // Whoever answers a host's URL takes its place in the ceremony and reads the admin key.
    await expect(run("http://10.0.0.1:8400", key)).rejects.toThrow(
      /plain HTTP; the admin listener of another machine needs https/,
    );
    await expect(run("http://vault-1.example.net:8400", key)).rejects.toThrow(/plain HTTP/);
    await expect(run("https://a:1,https://b:1,https://c:1", `${key},${key}`)).rejects.toThrow(
      /--admin-key names 2 files for 3 hosts/,
    );
    await expect(run("https://a:1", join(dir, "missing.key"))).rejects.toThrow(UsageError);
  });
});
