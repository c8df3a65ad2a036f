/**
 * Nitro members judged on exactly what their document states, with documents the test double of
 * the AWS PKI signs (so each field can be chosen and broken): the chain judged at the document's
 * time (expired, not yet valid), another root, a CA as signing certificate, a document signed by
 * another key, a strictness breach in the CBOR, keys the document does not name (ATTESTATION_KEYS),
 * PCRs that are not the member's measurement or of a debug-mode enclave (MEASUREMENT); the second
 * attestation kind in the wire format; and the audit (SDK, `bkv audit`, log, transparency page) of
 * a fleet of Nitro members under a pinned root of the new kind.
 */
import {
  type AuditOptions,
  AWS_NITRO_ROOT_SHA256,
  auditEvidence,
  nitroImageMeasurement,
  nitroMemberUserData,
  parseTrustPins,
  verifyNitroDocument,
  verifyNitroMember,
} from "@bkv/client";
import {
  issueTestCertificate,
  newTestKey,
  type TestDocumentFields,
  TestDoubleNitroPki,
  testDoublePcr,
} from "@bkv/hsm-nitro";
import {
  type Attestation,
  BkvError,
  decodeAttestation,
  encodeAttestation,
  fromHex,
  NITRO_PLATFORM,
  toHex,
} from "@bkv/wire";
import { ed25519 } from "@noble/curves/ed25519.js";
import { p256 } from "@noble/curves/nist.js";
import { KeyUsageFlags } from "@peculiar/asn1-x509";
import { encode } from "cborg";
import { describe, expect, it } from "vitest";
import { world } from "./bundle-world.js";

const PCRS = new Map([0, 1, 2, 3].map((i) => [i, testDoublePcr("bkv image v1", i)]));
const IMAGE = nitroImageMeasurement(PCRS.get(0)!, PCRS.get(1)!, PCRS.get(2)!);
const T = Date.UTC(2026, 10, 1, 12);
const HOUR = 3_600_000;

function failure(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(BkvError);
    return `${(e as BkvError).code}: ${(e as Error).message}`;
  }
  return "no error";
}

/** A Nitro member: its keys, and its attestation carrying a document from `pki`. */
function nitroMember(
  pki: TestDoubleNitroPki,
  o: { pcrs?: Map<number, Uint8Array>; timestamp?: number; userData?: Uint8Array } = {},
) {
  const signSeed = ed25519.utils.randomSecretKey();
  const signKey = ed25519.getPublicKey(signSeed);
  const agreeKey = p256.getPublicKey(p256.utils.randomSecretKey(), false);
  const fields: TestDocumentFields = {
    moduleId: "i-0123456789abcdef0-enc0123456789abcdef",
    timestamp: o.timestamp ?? T,
    pcrs: o.pcrs ?? PCRS,
    userData: o.userData ?? nitroMemberUserData(signKey, agreeKey),
    nonce: null,
    publicKey: null,
  };
  const attestation: Attestation = {
    platform: NITRO_PLATFORM,
    vendor: "AWS Nitro Enclaves (test double PKI)",
    signKey,
    agreeKey,
    measurement: IMAGE,
    properties: [],
    signature: new Uint8Array(0),
    nitroDocument: pki.document(fields),
  };
  return { signSeed, attestation, fields };
}

const window = { notBefore: T - 10 * HOUR, notAfter: T + 10 * HOUR };

describe("a Nitro member, judged on its document", () => {
  const pki = new TestDoubleNitroPki(window);
  const roots = [pki.rootFingerprint];

  it("a document naming the member's keys and image verifies, and reports its time and root", () => {
    const m = nitroMember(pki);
    const v = verifyNitroMember(m.attestation, roots);
    expect(v.time).toBe(new Date(T).toISOString());
    expect(v.root).toBe(toHex(pki.rootFingerprint));
    expect(v.document.userData).toEqual(nitroMemberUserData(m.attestation.signKey, m.attestation.agreeKey));
  });

  it("the chain is judged at the document's time: a signing certificate expired then, or not yet valid, fails by name and says when", () => {
    const expired = new TestDoubleNitroPki({ ...window, leafNotAfter: T - 1 });
    expect(
      failure(() => verifyNitroMember(nitroMember(expired).attestation, [expired.rootFingerprint])),
    ).toBe(
      `ATTESTATION_EXPIRED: certificate 2 (CN=TEST DOUBLE, not AWS: i-00000000000000000-enc0000000000000000.test-double) is valid from ${new Date(T - 10 * HOUR).toISOString()} to ${new Date(T - 1000).toISOString()}, not at the document's time ${new Date(T).toISOString()}`,
    );
    const early = new TestDoubleNitroPki({ ...window, leafNotBefore: T + HOUR });
    expect(failure(() => verifyNitroMember(nitroMember(early).attestation, [early.rootFingerprint]))).toMatch(
      /^ATTESTATION_EXPIRED: certificate 2 .* not at the document's time 2026-11-01T12:00:00.000Z$/,
    );
    // The root itself expired at the document's time.
    const old = new TestDoubleNitroPki({ notBefore: T - 20 * HOUR, notAfter: T - HOUR });
    expect(failure(() => verifyNitroMember(nitroMember(old).attestation, [old.rootFingerprint]))).toMatch(
      /^ATTESTATION_EXPIRED: certificate 0 /,
    );
    // The same chain verifies a document made while it was valid.
    expect(() =>
      verifyNitroMember(nitroMember(old, { timestamp: T - 2 * HOUR }).attestation, [old.rootFingerprint]),
    ).not.toThrow();
  });

  it("another root: a chain to another root than the pinned one, and the AWS root pinned for a test double document", () => {
    const other = new TestDoubleNitroPki(window);
    const m = nitroMember(other);
    expect(failure(() => verifyNitroMember(m.attestation, roots))).toMatch(
      /^ATTESTATION: the chain starts at .* not a pinned root/,
    );
    expect(failure(() => verifyNitroMember(m.attestation, [fromHex(AWS_NITRO_ROOT_SHA256)]))).toMatch(
      /^ATTESTATION: /,
    );
  });

  it("a changed public key: a document naming other keys fails by name (ATTESTATION_KEYS), for either key", () => {
    const m = nitroMember(pki);
    const otherAgree = p256.getPublicKey(p256.utils.randomSecretKey(), false);
    const otherSign = ed25519.getPublicKey(ed25519.utils.randomSecretKey());
    for (const a of [
      { ...m.attestation, agreeKey: otherAgree },
      { ...m.attestation, signKey: otherSign },
    ])
      expect(failure(() => verifyNitroMember(a, roots))).toMatch(
        /^ATTESTATION_KEYS: .* does not name this member's keys/,
      );
    const noUserData = nitroMember(pki, { userData: new Uint8Array(0) });
    expect(failure(() => verifyNitroMember(noUserData.attestation, roots))).toMatch(/^ATTESTATION_KEYS: /);
  });

  it("a changed measurement: PCRs of another image, or of a debug-mode enclave, fail MEASUREMENT", () => {
    const otherImage = new Map([0, 1, 2].map((i) => [i, testDoublePcr("bkv image v2", i)]));
    expect(
      failure(() => verifyNitroMember(nitroMember(pki, { pcrs: otherImage }).attestation, roots)),
    ).toMatch(
      /^MEASUREMENT: the Nitro document's PCRs give image measurement [0-9a-f]{64}, not the member's/,
    );
    const debug = new Map([0, 1, 2].map((i) => [i, new Uint8Array(48)]));
    const d = nitroMember(pki, { pcrs: debug });
    expect(
      failure(() =>
        verifyNitroMember(
          {
            ...d.attestation,
            measurement: nitroImageMeasurement(new Uint8Array(48), new Uint8Array(48), new Uint8Array(48)),
          },
          roots,
        ),
      ),
    ).toMatch(/^MEASUREMENT: .* debug-mode enclave/);
    const noPcr2 = new Map([0, 1].map((i) => [i, testDoublePcr("bkv image v1", i)]));
    expect(failure(() => verifyNitroMember(nitroMember(pki, { pcrs: noPcr2 }).attestation, roots))).toMatch(
      /^MEASUREMENT: .* PCR0, PCR1 and PCR2/,
    );
  });

  it("a document signed by another key than its signing certificate's, or by a CA certificate, is refused", () => {
    const m = nitroMember(pki);
    const forged = pki.signPayload(pki.payload(m.fields), newTestKey());
    expect(failure(() => verifyNitroDocument(forged, roots))).toBe(
      "ATTESTATION: Nitro attestation document: the COSE signature does not verify",
    );
    // The intermediate CA as the signing certificate (cabundle: the root only).
    const payload = encode(
      new Map<string, unknown>([
        ["module_id", "m"],
        ["digest", "SHA384"],
        ["timestamp", T],
        ["pcrs", PCRS],
        ["certificate", pki.intermediate],
        ["cabundle", [pki.root]],
        ["public_key", null],
        ["user_data", null],
        ["nonce", null],
      ]),
      { mapSorter: () => 0 },
    );
    expect(failure(() => verifyNitroDocument(pki.signPayload(payload, pki.intermediateKey), roots))).toMatch(
      /^ATTESTATION: the signing certificate .* is a CA/,
    );
    // A signing certificate used as an intermediate to issue another.
    const leafKey = newTestKey();
    const below = issueTestCertificate(
      { cn: "below", notBefore: window.notBefore, notAfter: window.notAfter, serial: 9 },
      leafKey,
      "TEST DOUBLE, not AWS: i-00000000000000000-enc0000000000000000.test-double",
      pki.leafKey,
    );
    const deeper = encode(
      new Map<string, unknown>([
        ["module_id", "m"],
        ["digest", "SHA384"],
        ["timestamp", T],
        ["pcrs", PCRS],
        ["certificate", below],
        ["cabundle", [pki.root, pki.intermediate, pki.leaf]],
      ]),
      { mapSorter: () => 0 },
    );
    expect(failure(() => verifyNitroDocument(pki.signPayload(deeper, leafKey), roots))).toMatch(
      /^ATTESTATION: certificate 2 .* is not a CA/,
    );
  });

  it("an intermediate whose key usage does not allow certificate signing is no CA, and a signing certificate that may not sign is refused", () => {
    const m = nitroMember(pki);
    const midKey = newTestKey();
    const mid = issueTestCertificate(
      {
        cn: "no cert sign",
        notBefore: window.notBefore,
        notAfter: window.notAfter,
        caPathLength: 1,
        serial: 5,
        usage: KeyUsageFlags.cRLSign,
      },
      midKey,
      "TEST DOUBLE, not AWS: test-double.nitro-enclaves",
      pki.rootKey,
    );
    const leafKey = newTestKey();
    const leaf = issueTestCertificate(
      { cn: "leaf", notBefore: window.notBefore, notAfter: window.notAfter, serial: 6 },
      leafKey,
      "no cert sign",
      midKey,
    );
    const doc = (certificate: Uint8Array, cabundle: Uint8Array[], key: ReturnType<typeof newTestKey>) =>
      pki.signPayload(
        encode(
          new Map<string, unknown>([
            ["module_id", "m"],
            ["digest", "SHA384"],
            ["timestamp", T],
            ["pcrs", PCRS],
            ["certificate", certificate],
            ["cabundle", cabundle],
            ["user_data", m.fields.userData],
          ]),
          { mapSorter: () => 0 },
        ),
        key,
      );
    expect(failure(() => verifyNitroDocument(doc(leaf, [pki.root, mid], leafKey), roots))).toMatch(
      /^ATTESTATION: certificate 1 \(CN=no cert sign\) is not a CA/,
    );
    const noSign = issueTestCertificate(
      {
        cn: "may not sign",
        notBefore: window.notBefore,
        notAfter: window.notAfter,
        serial: 7,
        usage: KeyUsageFlags.keyAgreement,
      },
      leafKey,
      "TEST DOUBLE, not AWS: intermediate.test-double.nitro-enclaves",
      pki.intermediateKey,
    );
    expect(
      failure(() => verifyNitroDocument(doc(noSign, [pki.root, pki.intermediate], leafKey), roots)),
    ).toMatch(/^ATTESTATION: the signing certificate \(CN=may not sign\) may not sign/);
  });

  it("the payload is strict: an unknown field, a second digest, a wrong algorithm or a non-minimal integer is MALFORMED", () => {
    const m = nitroMember(pki);
    const extra = pki.signPayload(pki.payload(m.fields, { debug: false }));
    expect(failure(() => verifyNitroDocument(extra, roots))).toMatch(/^MALFORMED: .*unknown field debug/);
    const sha256Digest = pki.signPayload(pki.payload(m.fields, { digest: "SHA256" }));
    expect(failure(() => verifyNitroDocument(sha256Digest, roots))).toMatch(
      /^MALFORMED: .*digest is not SHA384/,
    );
    const payload = pki.payload(m.fields);
    const es256 = encode([encode(new Map([[1, -7]])), new Map(), payload, new Uint8Array(96)]);
    expect(failure(() => verifyNitroDocument(es256, roots))).toMatch(/^MALFORMED: .*alg ES384/);
    // The array header of four as 0x98 0x04 instead of 0x84: same value, not the smallest encoding.
    const doc = m.attestation.nitroDocument!;
    const loose = new Uint8Array([0x98, 0x04, ...doc.subarray(1)]);
    expect(failure(() => verifyNitroDocument(loose, roots))).toMatch(/^MALFORMED: .*not strict CBOR/);
  });
});

describe("the second attestation kind in the wire format", () => {
  const pki = new TestDoubleNitroPki(window);

  it("round-trips byte for byte beside the first, whose encoding is unchanged", () => {
    const m = nitroMember(pki);
    const bytes = encodeAttestation(m.attestation);
    const back = decodeAttestation(bytes);
    expect(back).toEqual(m.attestation);
    expect(encodeAttestation(back)).toEqual(bytes);
    const { members } = world().fleet();
    const classic = members[0]!.attestation;
    expect(decodeAttestation(encodeAttestation(classic))).toEqual(classic);
    expect(decodeAttestation(encodeAttestation(classic)).nitroDocument).toBeUndefined();
  });

  it("trailing bytes, a truncated document, another platform name or a root signature are refused", () => {
    const m = nitroMember(pki);
    const bytes = encodeAttestation(m.attestation);
    expect(failure(() => decodeAttestation(new Uint8Array([...bytes, 0])))).toMatch(/^MALFORMED: .*trailing/);
    expect(failure(() => decodeAttestation(bytes.subarray(0, bytes.length - 1)))).toMatch(/^MALFORMED: /);
    expect(failure(() => encodeAttestation({ ...m.attestation, platform: "software" }))).toMatch(
      /^MALFORMED: .*aws-nitro/,
    );
    expect(failure(() => encodeAttestation({ ...m.attestation, signature: new Uint8Array(64) }))).toMatch(
      /^MALFORMED: /,
    );
  });
});

describe("the audit of a fleet of Nitro members", () => {
  const w = world();
  const pki = new TestDoubleNitroPki(window);
  const members = [nitroMember(pki), nitroMember(pki), nitroMember(pki)];
  const fleet = w.fleet({ members, measurement: IMAGE });
  const testRoot = {
    name: "nitro test double",
    key: toHex(pki.rootFingerprint),
    test: true,
    kind: "aws-nitro" as const,
  };
  const opts: AuditOptions = {
    vendorRoots: [testRoot],
    measurements: [IMAGE],
    maxGuessLimit: 10,
    allowTestRoots: true,
  };
  const failed = (o: AuditOptions, ev = fleet.evidence) =>
    auditEvidence(ev, o)
      .checks.filter((c) => !c.ok)
      .map((c) => `${c.name}: ${c.detail}`);

  it("passes under its pinned root, and each member's check states its document's module and time", () => {
    const r = auditEvidence(fleet.evidence, opts);
    expect(failed(opts)).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.checks.find((c) => c.name === "attestation.2")!.detail).toBe(
      `aws-nitro: document of i-0123456789abcdef0-enc0123456789abcdef made ${new Date(T).toISOString()}, chained to nitro test double (a test root, allowed); names this member's keys`,
    );
    expect(r.fleet!.members.map((m) => m.platform)).toEqual(["aws-nitro", "aws-nitro", "aws-nitro"]);
  });

  it("a test root counts only where test roots are allowed; the AWS root alone, or an Ed25519 root of the same bytes, does not vouch for it", () => {
    expect(failed({ ...opts, allowTestRoots: false })).toEqual(
      [1, 2, 3].map((n) =>
        expect.stringMatching(new RegExp(`^attestation\\.${n}: .*a test root \\(development only`)),
      ),
    );
    const aws = {
      name: "AWS Nitro Enclaves",
      key: AWS_NITRO_ROOT_SHA256,
      test: false,
      kind: "aws-nitro" as const,
    };
    expect(failed({ ...opts, vendorRoots: [aws] })).toEqual(
      [1, 2, 3].map((n) =>
        expect.stringMatching(new RegExp(`^attestation\\.${n}: aws-nitro: ATTESTATION: .*not a pinned root`)),
      ),
    );
    const sameBytesEd25519 = { name: "x", key: testRoot.key, test: true };
    expect(
      failed({ ...opts, vendorRoots: [sameBytesEd25519] }).filter((f) => f.startsWith("attestation.")),
    ).toHaveLength(3);
  });

  it("a member whose attestation carries a genuine document of another enclave fails by name", () => {
    const other = nitroMember(new TestDoubleNitroPki(window));
    const swapped = w.fleet({
      members: [
        members[0]!,
        members[1]!,
        {
          ...members[2]!,
          attestation: { ...members[2]!.attestation, nitroDocument: other.attestation.nitroDocument! },
        },
      ],
      measurement: IMAGE,
    });
    const sameRoot = nitroMember(pki);
    const swappedSameRoot = w.fleet({
      members: [
        members[0]!,
        members[1]!,
        {
          ...members[2]!,
          attestation: { ...members[2]!.attestation, nitroDocument: sameRoot.attestation.nitroDocument! },
        },
      ],
      measurement: IMAGE,
    });
    expect(failed(opts, swappedSameRoot.evidence)).toEqual([
      expect.stringMatching(
        /^attestation\.3: aws-nitro: ATTESTATION_KEYS: .* does not name this member's keys/,
      ),
    ]);
    expect(failed(opts, swapped.evidence)).toEqual([
      expect.stringMatching(/^attestation\.3: aws-nitro: ATTESTATION: .*not a pinned root/),
    ]);
  });

  it("pins name a root of the new kind by its certificate's SHA-256; an unknown kind is refused", () => {
    const pins = parseTrustPins({ ...w.pins, vendorRoots: [testRoot] });
    expect(pins.vendorRoots).toEqual([testRoot]);
    expect(() => parseTrustPins({ ...w.pins, vendorRoots: [{ ...testRoot, kind: "sgx" }] })).toThrow(/kind/);
  });
});
