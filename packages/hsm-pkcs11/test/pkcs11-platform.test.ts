/**
 * The PKCS#11 platform on a real SoftHSM2 token. Tokens are opened one at a time (a process can
 * have one module initialized); vitest's forks pool gives this file its own process.
 */
import { createECDH, createHash, createPublicKey, verify } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ed25519VerifyWith, newVendorRoot } from "@bkv/hsm-software";
import { attestationSignedBytes, BkvError, decodeAttestation, ErrorCode } from "@bkv/wire";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  inspectKeys,
  type Pkcs11Platform,
  pkcs11Platform,
  provisionPkcs11Hsm,
  provisionToken,
} from "../src/index.js";
import { encodeNvramValue, keysLife } from "../src/pkcs11-platform.js";
import { activeToken, find, pkcs11js } from "../src/token.js";

const MODULE = "/usr/lib/softhsm/libsofthsm2.so";
const vendor = newVendorRoot();
const measurement = new Uint8Array(createHash("sha256").update("bkv pkcs11 test core").digest());
const dirs: string[] = [];

function newHsmDir(): string {
  const d = mkdtempSync(join(tmpdir(), "bkv-pkcs11-"));
  dirs.push(d);
  return join(d, "hsm");
}

interface OpenOptions {
  now?: () => number;
  measurement?: Uint8Array;
  /** Run the provisioning tool's step first (default true), as bkv dev does before every start. */
  provision?: boolean;
}

/** Provision (unless told not to), open the platform, run f, close it (also when f throws). */
async function withPlatform<T>(
  hsmDir: string,
  f: (p: Pkcs11Platform) => Promise<T>,
  opts: OpenOptions = {},
): Promise<T> {
  const m = opts.measurement ?? measurement;
  if (opts.provision !== false) {
    provisionPkcs11Hsm({ hsmDir, vendor, measurement: m, module: MODULE });
  }
  const p = pkcs11Platform({ hsmDir, measurement: m, module: MODULE, now: opts.now });
  try {
    return await f(p);
  } finally {
    p.close();
  }
}

function ed25519Key(raw: Uint8Array) {
  return createPublicKey({
    key: Buffer.concat([Buffer.from("302a300506032b6570032100", "hex"), raw]),
    format: "der",
    type: "spki",
  });
}

const hasSoftHsm = existsSync(MODULE);

describe("pkcs11Platform on SoftHSM2", () => {
  it("has SoftHSM2 installed (npm test installs it)", () => {
    expect(hasSoftHsm).toBe(true);
  });

  let hsmDir: string;

  beforeAll(() => {
    hsmDir = newHsmDir();
    expect(provisionToken(hsmDir, MODULE)).toBe(true);
  });

  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it("provisions the token's conf and PIN at the fixed paths, once", () => {
    const conf = readFileSync(join(hsmDir, "softhsm2.conf"), "utf8");
    expect(conf).toContain(`directories.tokendir = ${join(hsmDir, "tokens")}`);
    expect(conf).toContain("objectstore.backend = file");
    expect(conf).toContain("log.level = ERROR");
    const pin = join(hsmDir, "token-pin");
    expect(statSync(pin).mode & 0o777).toBe(0o600);
    expect(readFileSync(pin, "utf8").trim().length).toBeGreaterThanOrEqual(16);
    expect(statSync(join(hsmDir, "tokens")).isDirectory()).toBe(true);
    const before = readFileSync(pin, "utf8");
    expect(provisionToken(hsmDir, MODULE)).toBe(false);
    expect(readFileSync(pin, "utf8")).toBe(before);
    expect(process.env["SOFTHSM2_CONF"]).toBe(join(hsmDir, "softhsm2.conf"));
  });

  it("makes its keys once and, once it has NVRAM, finds the same ones after a restart", async () => {
    const first = await withPlatform(hsmDir, async (p) => {
      await p.nvramWrite(new Uint8Array([1]));
      return decodeAttestation(await p.identity());
    });
    const second = await withPlatform(hsmDir, async (p) => decodeAttestation(await p.identity()));
    expect(second.signKey).toEqual(first.signKey);
    expect(second.agreeKey).toEqual(first.agreeKey);
    const keys = inspectKeys(hsmDir, MODULE);
    expect(keys.map((k) => [k.label, k.class, k.keyType])).toEqual([
      ["bkv-identity-agree", "CKO_PRIVATE_KEY", "CKK_EC"],
      ["bkv-identity-sign", "CKO_PRIVATE_KEY", "CKK_EC_EDWARDS"],
      ["bkv-seal", "CKO_SECRET_KEY", "CKK_AES"],
    ]);
  });

  it("keeps every private and secret key sensitive and never extractable", async () => {
    // Also while a platform is open (inspectKeys then uses its session), after identityAgree has
    // made and destroyed its session object.
    const keys = await withPlatform(hsmDir, async (p) => {
      const peer = createECDH("prime256v1");
      peer.generateKeys();
      await p.identityAgree(new Uint8Array(peer.getPublicKey()));
      return inspectKeys(hsmDir, MODULE);
    });
    expect(keys).toHaveLength(3);
    for (const k of keys) {
      expect({
        label: k.label,
        sensitive: k.sensitive,
        extractable: k.extractable,
        never: k.neverExtractable,
      }).toEqual({
        label: k.label,
        sensitive: true,
        extractable: false,
        never: true,
      });
      expect(k.alwaysSensitive).toBe(true);
    }
  });

  it("signs with Ed25519 inside the token: node:crypto verifies", async () => {
    await withPlatform(hsmDir, async (p) => {
      const { signKey } = decodeAttestation(await p.identity());
      for (const message of [
        new Uint8Array(0),
        new TextEncoder().encode("genesis statement"),
        p.randomBytes(5000),
      ]) {
        const sig = await p.identitySign(message);
        expect(sig).toHaveLength(64);
        expect(verify(null, message, ed25519Key(signKey), sig)).toBe(true);
        expect(ed25519VerifyWith(signKey, message, sig)).toBe(true);
        const other = message.length > 0 ? message.slice() : new Uint8Array([1]);
        other[0]! ^= 1;
        expect(verify(null, other, ed25519Key(signKey), sig)).toBe(false);
      }
    });
  });

  it("agrees on P-256 inside the token: the same x as node:crypto ECDH", async () => {
    await withPlatform(hsmDir, async (p) => {
      const { agreeKey } = decodeAttestation(await p.identity());
      for (let i = 0; i < 3; i++) {
        const peer = createECDH("prime256v1");
        peer.generateKeys();
        const x = await p.identityAgree(new Uint8Array(peer.getPublicKey(null, "uncompressed")));
        expect(x).toHaveLength(32);
        expect(Buffer.from(x).equals(peer.computeSecret(agreeKey))).toBe(true);
      }
      await expect(p.identityAgree(new Uint8Array(33))).rejects.toThrow(/uncompressed/);
      const offCurve = new Uint8Array(65);
      offCurve[0] = 4;
      offCurve[64] = 7;
      await expect(p.identityAgree(offCurve)).rejects.toThrow(/ECDH failed/);
      // The failed operation left no state behind: the platform goes on working.
      expect(await p.identitySign(new Uint8Array([1]))).toHaveLength(64);
      expect(await p.identityAgree(new Uint8Array(createECDH("prime256v1").generateKeys()))).toHaveLength(32);
    });
  });

  it("seals under the token's AES key and refuses tampering, a wrong aad and other HSMs' blobs", async () => {
    const aad = new TextEncoder().encode("entry 7");
    const plaintext = new TextEncoder().encode("a sealed log entry");
    const sealed = await withPlatform(hsmDir, async (p) => {
      const s = await p.seal(plaintext, aad);
      expect(s).toHaveLength(12 + plaintext.length + 16);
      expect(await p.unseal(s, aad)).toEqual(plaintext);
      const again = await p.seal(plaintext, aad);
      expect(Buffer.from(again).equals(Buffer.from(s))).toBe(false);
      expect(await p.unseal(await p.seal(new Uint8Array(0), aad), aad)).toEqual(new Uint8Array(0));
      const noAad = new Uint8Array(0);
      expect(await p.unseal(await p.seal(plaintext, noAad), noAad)).toEqual(plaintext);
      await expect(p.unseal(await p.seal(plaintext, noAad), aad)).rejects.toThrow(/does not open/);
      const big = p.randomBytes(1 << 20);
      expect(Buffer.from(await p.unseal(await p.seal(big, aad), aad)).equals(big)).toBe(true);
      for (const i of [0, 12, s.length - 1]) {
        const bad = s.slice();
        bad[i]! ^= 1;
        await expect(p.unseal(bad, aad)).rejects.toThrow(/does not open/);
      }
      await expect(p.unseal(s, new TextEncoder().encode("entry 8"))).rejects.toThrow(/does not open/);
      await expect(p.unseal(s.subarray(0, 27), aad)).rejects.toThrow(/too short/);
      // The session still works after refusals.
      expect(await p.unseal(s, aad)).toEqual(plaintext);
      return s;
    });
    // Still opens after a restart; another HSM's token cannot open it.
    expect(await withPlatform(hsmDir, (p) => p.unseal(sealed, aad))).toEqual(plaintext);
    const otherDir = newHsmDir();
    provisionToken(otherDir, MODULE);
    await withPlatform(otherDir, async (p) => {
      await expect(p.unseal(sealed, aad)).rejects.toThrow(/does not open/);
    });
  });

  it("keeps NVRAM in a token object across restarts", async () => {
    const dir = newHsmDir();
    provisionToken(dir, MODULE);
    await withPlatform(dir, async (p) => {
      expect(await p.nvramRead()).toBeNull();
      await p.nvramWrite(new Uint8Array([1, 2, 3]));
      expect(await p.nvramRead()).toEqual(new Uint8Array([1, 2, 3]));
    });
    await withPlatform(dir, async (p) => {
      expect(await p.nvramRead()).toEqual(new Uint8Array([1, 2, 3]));
      for (let i = 0; i < 5; i++) await p.nvramWrite(new Uint8Array(300).fill(i));
      await p.nvramWrite(new Uint8Array(0));
      expect(await p.nvramRead()).toEqual(new Uint8Array(0));
      await p.nvramWrite(new Uint8Array([9, 9]));
    });
    await withPlatform(dir, async (p) => {
      expect(await p.nvramRead()).toEqual(new Uint8Array([9, 9]));
    });
    // One object left (older values destroyed), and it is not a key: inspectKeys lists keys only.
    expect(inspectKeys(dir, MODULE)).toHaveLength(3);
  });

  it("reads the NVRAM object with the highest sequence and skips damaged ones (a crash mid-write)", async () => {
    const dir = newHsmDir();
    provisionToken(dir, MODULE);
    const inject = (seq: bigint, data: Uint8Array, damage = false) => {
      const t = activeToken()!;
      const value = encodeNvramValue(seq, keysLife(t)!, data);
      if (damage) value[value.length - 1]! ^= 1;
      t.p11.C_CreateObject(t.session, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_DATA },
        { type: pkcs11js.CKA_TOKEN, value: true },
        { type: pkcs11js.CKA_PRIVATE, value: true },
        { type: pkcs11js.CKA_LABEL, value: "bkv-nvram" },
        { type: pkcs11js.CKA_VALUE, value },
      ]);
    };
    const count = () => {
      const t = activeToken()!;
      return find(t, [{ type: pkcs11js.CKA_LABEL, value: "bkv-nvram" }]).length;
    };
    await withPlatform(dir, async (p) => {
      await p.nvramWrite(new Uint8Array([1])); // seq 1
      inject(2n, new Uint8Array([2])); // a write whose old object was not destroyed yet
      inject(3n, new Uint8Array([3]), true); // a write torn by a crash: never acknowledged
      expect(count()).toBe(3);
      // NVRAM changed under this process (as if another wrote it): it writes nothing more.
      await expect(p.nvramWrite(new Uint8Array([9]))).rejects.toThrow(/another process/);
      expect(count()).toBe(3);
    });
    // After the crash, the HSM process starts again and reads what the token holds.
    await withPlatform(dir, async (p) => {
      expect(await p.nvramRead()).toEqual(new Uint8Array([2]));
      await p.nvramWrite(new Uint8Array([4]));
      expect(count()).toBe(1);
      expect(await p.nvramRead()).toEqual(new Uint8Array([4]));
    });
  });

  it("keys and NVRAM live and die together: no NVRAM at open means new keys, old seals never open", async () => {
    const dir = newHsmDir();
    provisionToken(dir, MODULE);
    const aad = new TextEncoder().encode("entry 1");
    const identityOf = async (p: Pkcs11Platform) => decodeAttestation(await p.identity());
    const destroyNvram = () =>
      withPlatform(dir, async () => {
        const t = activeToken()!;
        for (const h of find(t, [{ type: pkcs11js.CKA_LABEL, value: "bkv-nvram" }])) {
          t.p11.C_DestroyObject(t.session, h);
        }
      });
    // A start that never wrote NVRAM (a crash before the first write): the keys' life record, an
    // NVRAM value, keeps them (the core signed and sealed nothing for a fleet before writing NVRAM).
    const a = await withPlatform(dir, identityOf);
    expect((await withPlatform(dir, identityOf)).signKey).toEqual(a.signKey);
    // The life record is NVRAM: destroyed with it, the keys go too.
    await destroyNvram();
    const b = await withPlatform(dir, identityOf);
    expect(b.signKey).not.toEqual(a.signKey);
    expect(b.agreeKey).not.toEqual(a.agreeKey);
    // With NVRAM written, the same keys come back.
    const { att, sealed } = await withPlatform(dir, async (p) => {
      await p.nvramWrite(new Uint8Array([7]));
      return { att: await identityOf(p), sealed: await p.seal(new Uint8Array([1, 2]), aad) };
    });
    expect((await withPlatform(dir, identityOf)).signKey).toEqual(att.signKey);
    // Destroy the NVRAM object (a wiped NVRAM): new keys, the old seal key is gone with it.
    await destroyNvram();
    await withPlatform(dir, async (p) => {
      expect(await p.nvramRead()).toBeNull();
      const now = await identityOf(p);
      expect(now.signKey).not.toEqual(att.signKey);
      expect(now.agreeKey).not.toEqual(att.agreeKey);
      await expect(p.unseal(sealed, aad)).rejects.toThrow(/does not open/);
    });
    expect(inspectKeys(dir, MODULE)).toHaveLength(3);
  });

  it("NVRAM that does not name its keys' life is no NVRAM: a new life, and the stray value is gone", async () => {
    const dir = newHsmDir();
    provisionToken(dir, MODULE);
    const before = await withPlatform(dir, async (p) => {
      await p.nvramWrite(new Uint8Array([1]));
      // A value of another life (another token's NVRAM copied in, or keys made after it).
      const t = activeToken()!;
      for (const h of find(t, [{ type: pkcs11js.CKA_LABEL, value: "bkv-nvram" }])) {
        t.p11.C_DestroyObject(t.session, h);
      }
      t.p11.C_CreateObject(t.session, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_DATA },
        { type: pkcs11js.CKA_TOKEN, value: true },
        { type: pkcs11js.CKA_PRIVATE, value: true },
        { type: pkcs11js.CKA_LABEL, value: "bkv-nvram" },
        { type: pkcs11js.CKA_VALUE, value: encodeNvramValue(9n, Buffer.alloc(16, 1), new Uint8Array([5])) },
      ]);
      return decodeAttestation(await p.identity());
    });
    await withPlatform(dir, async (p) => {
      expect(await p.nvramRead()).toBeNull();
      expect(decodeAttestation(await p.identity()).signKey).not.toEqual(before.signKey);
      // The stray value is gone; the only NVRAM value is the new life's record.
      const t = activeToken()!;
      const values = find(t, [{ type: pkcs11js.CKA_LABEL, value: "bkv-nvram" }]).map(
        (h) => t.p11.C_GetAttributeValue(t.session, h, [{ type: pkcs11js.CKA_VALUE }])[0]!.value,
      );
      expect(values.map((v) => v.subarray(0, 4).toString())).toEqual(["BKVK"]);
    });
  });

  it("attests its keys with the vendor root, with the token's properties read back", async () => {
    await withPlatform(hsmDir, async (p) => {
      const att = decodeAttestation(await p.identity());
      expect(att.platform).toBe("pkcs11");
      expect(att.vendor).toMatch(/SoftHSM2.*no vendor attestation/);
      expect(att.measurement).toEqual(measurement);
      expect(p.measurement()).toEqual(measurement);
      expect(p.vendorRoots()).toEqual([vendor.publicKey]);
      expect(att.properties).toContain(
        `pkcs11-module: sha256=${createHash("sha256").update(readFileSync(MODULE)).digest("hex")} (${MODULE})`,
      );
      expect(ed25519VerifyWith(vendor.publicKey, attestationSignedBytes(att), att.signature)).toBe(true);
      expect(ed25519VerifyWith(newVendorRoot().publicKey, attestationSignedBytes(att), att.signature)).toBe(
        false,
      );
      for (const label of ["bkv-identity-sign", "bkv-identity-agree", "bkv-seal"]) {
        expect(att.properties).toContain(
          `${label}: CKA_SENSITIVE=true CKA_EXTRACTABLE=false CKA_NEVER_EXTRACTABLE=true`,
        );
      }
      expect(att.properties.find((s) => s.startsWith("token: "))).toMatch(/SoftHSM project \/ SoftHSM v2/);
    });
    // A root added to vendor-roots.pub is listed, not trusted: only the root that verifies the HSM's
    // own attestation counts.
    provisionPkcs11Hsm({ hsmDir, vendor, measurement, module: MODULE });
    const listed = readFileSync(join(hsmDir, "vendor-roots.pub"), "utf8");
    writeFileSync(
      join(hsmDir, "vendor-roots.pub"),
      `${listed}${Buffer.from(newVendorRoot().publicKey).toString("hex")}\n`,
    );
    expect(await withPlatform(hsmDir, async (p) => p.vendorRoots(), { provision: false })).toEqual([
      vendor.publicKey,
    ]);
    writeFileSync(join(hsmDir, "vendor-roots.pub"), listed);
  });

  it("draws randomness from the token and uses the given clock", async () => {
    await withPlatform(
      hsmDir,
      async (p) => {
        expect(p.randomBytes(0)).toHaveLength(0);
        const a = p.randomBytes(32);
        expect(a).toHaveLength(32);
        expect(Buffer.from(a).equals(Buffer.from(p.randomBytes(32)))).toBe(false);
        expect(p.now()).toBe(1234);
      },
      { now: () => 1234 },
    );
  });

  it("refuses a second open token in the process, an unprovisioned folder, and use after close", async () => {
    provisionPkcs11Hsm({ hsmDir, vendor, measurement, module: MODULE });
    const p = pkcs11Platform({ hsmDir, measurement, module: MODULE });
    try {
      expect(() => pkcs11Platform({ hsmDir, measurement, module: MODULE })).toThrow(/already open/);
    } finally {
      p.close();
    }
    await expect(p.seal(new Uint8Array(1), new Uint8Array(0))).rejects.toThrow(/closed/);
    expect(() => pkcs11Platform({ hsmDir: newHsmDir(), measurement, module: MODULE })).toThrow(/provision/);
  });

  it("seal keys are per measurement: a platform loaded with another core cannot open what this core sealed", async () => {
    const dir = newHsmDir();
    const aad = new TextEncoder().encode("entry 1");
    const sealed = await withPlatform(dir, async (p) => {
      await p.nvramWrite(new Uint8Array([1]));
      return p.seal(new TextEncoder().encode("a log entry"), aad);
    });
    // The operator provisions the same HSM (same token, same master seal key) for a modified core.
    const modified = new Uint8Array(createHash("sha256").update("a modified core").digest());
    const err = await withPlatform(dir, (p) => p.unseal(sealed, aad), { measurement: modified }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(BkvError);
    expect((err as BkvError).code).toBe(ErrorCode.Authentication);
    expect((err as BkvError).message).toMatch(/for the loaded core/);
    // The real core still opens it.
    expect(await withPlatform(dir, (p) => p.unseal(sealed, aad))).toEqual(
      new TextEncoder().encode("a log entry"),
    );
  });

  it("the HSM only reads its attestation: none, of other keys, of another core or another root is refused by name", async () => {
    const dir = newHsmDir();
    const refusal = (m = measurement) => {
      try {
        pkcs11Platform({ hsmDir: dir, measurement: m, module: MODULE }).close();
        return null;
      } catch (e) {
        return e as BkvError;
      }
    };
    provisionToken(dir, MODULE);
    expect(refusal()?.code).toBe(ErrorCode.Attestation);
    expect(refusal()?.message).toMatch(
      /needs an attestation: attestation.bin is missing|vendor-roots.pub is missing/,
    );
    // The refused opens stopped before loading the module (no attestation to check it against), so
    // provisioning makes the keys, and a second provisioning attests the same ones.
    const first = provisionPkcs11Hsm({ hsmDir: dir, vendor, measurement, module: MODULE });
    const again = provisionPkcs11Hsm({ hsmDir: dir, vendor, measurement, module: MODULE });
    expect(first.renewed).toBe(true);
    expect(again.renewed).toBe(false);
    expect(decodeAttestation(again.attestation).signKey).toEqual(
      decodeAttestation(first.attestation).signKey,
    );
    // Another core than the attested one.
    const other = new Uint8Array(createHash("sha256").update("another core").digest());
    expect(refusal(other)?.message).toMatch(/needs an attestation: it attests another core/);
    // An attestation that no root in vendor-roots.pub verifies.
    const rogue = newVendorRoot();
    writeFileSync(join(dir, "vendor-roots.pub"), `${Buffer.from(rogue.publicKey).toString("hex")}\n`);
    expect(refusal()?.message).toMatch(/not signed by a vendor root listed in vendor-roots.pub/);
    // Provisioned again: the HSM runs; no NVRAM written, the life record keeps its keys.
    await withPlatform(dir, async (p) => expect(await p.nvramRead()).toBeNull());
    expect(refusal()).toBeNull();
    // NVRAM destroyed: the next open makes new keys, which need a new attestation (the old one
    // names the old keys).
    await withPlatform(
      dir,
      async () => {
        const t = activeToken()!;
        for (const h of find(t, [{ type: pkcs11js.CKA_LABEL, value: "bkv-nvram" }])) {
          t.p11.C_DestroyObject(t.session, h);
        }
      },
      { provision: false },
    );
    const err = refusal();
    expect(err?.code).toBe(ErrorCode.Attestation);
    expect(err?.message).toMatch(/it attests other identity keys/);
    const renewed = provisionPkcs11Hsm({ hsmDir: dir, vendor, measurement, module: MODULE });
    expect(renewed.renewed).toBe(false); // the refused open already made them, with their life record
    expect(decodeAttestation(renewed.attestation).signKey).not.toEqual(
      decodeAttestation(first.attestation).signKey,
    );
    await withPlatform(dir, async (p) => expect(await p.nvramRead()).toBeNull(), { provision: false });
  });
});
