/**
 * `bkv audit` on a fleet of AWS Nitro members: --aws-nitro-root pins the genuine AWS root, under which
 * documents of the test double PKI fail by name; trust pins naming the test double's root as a root
 * of kind aws-nitro (a test root, allowed for development) make the same evidence pass.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nitroImageMeasurement, nitroMemberUserData } from "@bkv/client";
import { TestDoubleNitroPki, testDoublePcr } from "@bkv/hsm-nitro";
import { type Attestation, NITRO_PLATFORM, toHex } from "@bkv/wire";
import { ed25519 } from "@noble/curves/ed25519.js";
import { p256 } from "@noble/curves/nist.js";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { world } from "../../client/test/bundle-world.js";
import { auditCommand } from "../src/commands/audit.js";

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "bkv-audit-nitro-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const PCRS = new Map([0, 1, 2].map((i) => [i, testDoublePcr("bkv image v1", i)]));
const IMAGE = nitroImageMeasurement(PCRS.get(0)!, PCRS.get(1)!, PCRS.get(2)!);
const pki = new TestDoubleNitroPki();

function nitroMember() {
  const signSeed = ed25519.utils.randomSecretKey();
  const signKey = ed25519.getPublicKey(signSeed);
  const agreeKey = p256.getPublicKey(p256.utils.randomSecretKey(), false);
  const attestation: Attestation = {
    platform: NITRO_PLATFORM,
    vendor: "AWS Nitro Enclaves (test double PKI)",
    signKey,
    agreeKey,
    measurement: IMAGE,
    properties: [],
    signature: new Uint8Array(0),
    nitroDocument: pki.document({
      moduleId: "i-0123456789abcdef0-enc0123456789abcdef",
      timestamp: Date.now(),
      pcrs: PCRS,
      userData: nitroMemberUserData(signKey, agreeKey),
      nonce: null,
      publicKey: null,
    }),
  };
  return { signSeed, attestation };
}

async function audit(args: string[]): Promise<{ code: number; text: string }> {
  let text = "";
  const spy = vi.spyOn(process.stdout, "write").mockImplementation((s: string | Uint8Array) => {
    text += String(s);
    return true;
  });
  try {
    return { code: await auditCommand(args), text };
  } finally {
    spy.mockRestore();
  }
}

describe("bkv audit: Nitro members", () => {
  const w = world();
  const fleet = w.fleet({ members: [nitroMember(), nitroMember(), nitroMember()], measurement: IMAGE });

  it("under --aws-nitro-root, documents of another PKI fail by name, member by member", async () => {
    const ev = join(dir, "nitro.bin");
    writeFileSync(ev, fleet.evidence);
    const r = await audit(["--evidence", ev, "--aws-nitro-root", "--measurement", toHex(IMAGE)]);
    expect(r.code).toBe(1);
    for (const n of [1, 2, 3])
      expect(r.text).toMatch(
        new RegExp(
          `FAIL  attestation\\.${n} +aws-nitro: ATTESTATION: the chain starts at CN=TEST DOUBLE, not AWS`,
        ),
      );
    expect(r.text).toContain("AUDIT FAILED: 3 of");
  });

  it("with trust pins naming the test double's root (kind aws-nitro, a test root allowed), the same evidence passes", async () => {
    const ev = join(dir, "nitro2.bin");
    writeFileSync(ev, fleet.evidence);
    const trust = join(dir, "trust.json");
    writeFileSync(
      trust,
      JSON.stringify({
        ...w.pins,
        vendorRoots: [
          { name: "nitro test double", key: toHex(pki.rootFingerprint), test: true, kind: "aws-nitro" },
        ],
        measurements: [toHex(IMAGE)],
        allowTestRoots: true,
      }),
    );
    const r = await audit(["--evidence", ev, "--trust", trust]);
    expect(r.text).toMatch(
      /PASS {2}attestation\.3 +aws-nitro: document of i-0123456789abcdef0-enc0123456789abcdef made /,
    );
    expect(r.code).toBe(0);
  });
});
