/**
 * The AWS Nitro Enclaves HSM platform: the HsmPlatform the core runs on inside an enclave.
 *
 *   - measurement: the enclave image's, from PCR0, PCR1 and PCR2 read from the NSM
 *     (nitroImageMeasurement): the whole HSM process (Linux, Node, the platform, the core) is in
 *     the image those registers measure, not only build/hsm-core.js;
 *   - identity: an Ed25519 and a P-256 key made in enclave memory at start, never written out, and
 *     an NSM attestation document whose user_data names exactly those keys (nitroMemberUserData):
 *     the identity is the second attestation kind of @bkv/wire, verified by @bkv/client against
 *     the AWS Nitro root;
 *   - seal: AES-256-GCM under HKDF(seal secret, measurement), the seal secret released by a key
 *     service (on AWS: KMS with a key policy on the image's PCRs) only to a document of this image;
 *   - NVRAM: none. An enclave has no persistent storage of its own, so what the core writes lives
 *     in enclave memory for this run only: a restarted enclave starts with no NVRAM, new keys and a
 *     new attestation, and rejoins a fleet only as a new member (docs/platforms.md).
 *
 * The device is passed in: /dev/nsm in an enclave (its ioctl needs a native binding this
 * repository does not ship), TestDoubleNsm in tests.
 */
import { randomBytes } from "node:crypto";
import {
  AWS_NITRO_ROOT_SHA256,
  nitroImageMeasurement,
  nitroMemberUserData,
  verifyNitroMember,
} from "@bkv/client";
import type { HsmPlatform } from "@bkv/hsm-core";
import { identityPublicKeys, newIdentityKey, nodeHsmCrypto, softIdentity, softSeal } from "@bkv/hsm-software";
import { BkvError, ErrorCode, encodeAttestation, fromHex, NITRO_PLATFORM } from "@bkv/wire";
import {
  decodeNsmResponse,
  encodeAttestationRequest,
  encodeDescribePcrRequest,
  encodeGetRandomRequest,
  type NsmDevice,
} from "./nsm-api.js";

/** Releases the 32-byte seal secret to an attestation document of the right image (KMS on AWS). */
export interface SealSecretSource {
  releaseSealSecret(document: Uint8Array): Promise<Uint8Array>;
}

export interface NitroPlatformOptions {
  nsm: NsmDevice;
  sealSecrets: SealSecretSource;
  now?: () => number;
  /**
   * Root certificate fingerprints whose documents this HSM accepts from other members at genesis:
   * fixed by the enclave's own code (measured in PCR0, never read from the host). Default: the
   * AWS Nitro root only. Tests pass the test double's root.
   */
  nitroRoots?: Uint8Array[];
}

export const NITRO_VENDOR = "AWS Nitro Enclaves: NSM attestation document";

/** Read one PCR from the NSM. */
export async function describePcr(nsm: NsmDevice, index: number): Promise<Uint8Array> {
  const r = decodeNsmResponse(await nsm.call(encodeDescribePcrRequest(index)));
  if (r.kind !== "DescribePCR" || r.data.length !== 48)
    throw new BkvError(ErrorCode.Malformed, `NSM: PCR${index} is not a 48-byte register`);
  return r.data;
}

/** An attestation document from the NSM naming `userData`. */
export async function attestationDocument(
  nsm: NsmDevice,
  userData: Uint8Array,
  nonce: Uint8Array | null = null,
): Promise<Uint8Array> {
  const r = decodeNsmResponse(await nsm.call(encodeAttestationRequest({ userData, nonce, publicKey: null })));
  if (r.kind !== "Attestation") throw new BkvError(ErrorCode.Malformed, "NSM: no attestation document");
  return r.document;
}

/** Entropy from the NSM (256 bytes a call). */
export async function nsmRandom(nsm: NsmDevice): Promise<Uint8Array> {
  const r = decodeNsmResponse(await nsm.call(encodeGetRandomRequest()));
  if (r.kind !== "GetRandom" || r.random.length === 0)
    throw new BkvError(ErrorCode.Malformed, "NSM: no entropy");
  return r.random;
}

/**
 * Open the platform for one run of the enclave: read the image's PCRs, make this run's keys, have
 * the NSM attest them, obtain the seal secret for this image. Every call is a new life: new keys,
 * no NVRAM.
 */
export async function openNitroPlatform(o: NitroPlatformOptions): Promise<HsmPlatform> {
  const [pcr0, pcr1, pcr2] = [
    await describePcr(o.nsm, 0),
    await describePcr(o.nsm, 1),
    await describePcr(o.nsm, 2),
  ];
  const measurement = nitroImageMeasurement(pcr0!, pcr1!, pcr2!);
  const identityKey = newIdentityKey();
  const { signKey, agreeKey } = identityPublicKeys(identityKey);
  const document = await attestationDocument(o.nsm, nitroMemberUserData(signKey, agreeKey));
  const attestation = encodeAttestation({
    platform: NITRO_PLATFORM,
    vendor: NITRO_VENDOR,
    signKey,
    agreeKey,
    measurement,
    properties: [
      "keys made in enclave memory at start and never written out",
      "no NVRAM: state lives for one run",
    ],
    signature: new Uint8Array(0),
    nitroDocument: document,
  });
  const sealSecret = await o.sealSecrets.releaseSealSecret(document);
  let nvram: Uint8Array | null = null;
  const roots = (o.nitroRoots ?? [fromHex(AWS_NITRO_ROOT_SHA256)]).map((r) => r.slice());
  return {
    now: o.now ?? (() => Date.now()),
    randomBytes: (n) => new Uint8Array(randomBytes(n)),
    crypto: nodeHsmCrypto(),
    ...softSeal(sealSecret, measurement),
    async nvramRead() {
      return nvram === null ? null : nvram.slice();
    },
    async nvramWrite(data) {
      nvram = data.slice();
    },
    // No Ed25519 vendor root: members are attested by their NSM documents alone.
    ...softIdentity({ identityKey, attestation, vendorRoots: [], measurement }),
    verifyVendorDocument(a) {
      verifyNitroMember(a, roots);
    },
  };
}
