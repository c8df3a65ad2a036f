/**
 * TEST DOUBLE of the Nitro Secure Module (/dev/nsm) and of the AWS KMS key policy that releases a
 * seal secret only to one enclave image. Neither is AWS: the NSM double signs with the test double
 * PKI (test-double-pki.ts), whose root is not the AWS Nitro root, and the KMS double is an object
 * in this process. They answer the genuine request encoding (nsm-api.ts) so the platform adapter's
 * own code runs here unchanged; on a Nitro instance the platform is given the real device and KMS.
 */
import { randomBytes } from "node:crypto";
import { documentImageMeasurement, verifyNitroDocument } from "@bkv/client";
import { BkvError, bytesEqual, ErrorCode } from "@bkv/wire";
import { decode, encode } from "cborg";
import type { NsmDevice } from "./nsm-api.js";
import { TestDoubleNitroPki } from "./test-double-pki.js";

export interface TestDoubleNsmOptions {
  /** PCR index -> 48 bytes; PCR0, 1 and 2 are the "image" (default: from `image`). */
  pcrs?: Map<number, Uint8Array>;
  /** A name for the image the PCRs stand for (default "bkv test image"). */
  image?: string;
  pki?: TestDoubleNitroPki;
  now?: () => number;
}

/** 48 bytes that stand for a PCR of an image named `image` (not a real measurement of anything). */
export function testDoublePcr(image: string, index: number): Uint8Array {
  const out = new Uint8Array(48);
  const name = new TextEncoder().encode(`${image}#${index}`);
  for (let i = 0; i < out.length; i++) out[i] = (name[i % name.length]! + i * 31 + index) & 0xff;
  return out;
}

const inOrder = { mapSorter: () => 0 };

/** TEST DOUBLE of /dev/nsm: answers DescribePCR, Attestation and GetRandom like the NSM. */
export class TestDoubleNsm implements NsmDevice {
  readonly pki: TestDoubleNitroPki;
  readonly pcrs: Map<number, Uint8Array>;
  readonly requests: Uint8Array[] = [];
  private readonly now: () => number;
  private readonly moduleId = "i-00000000000000000-enc00000000test0double";

  constructor(o: TestDoubleNsmOptions = {}) {
    this.pki = o.pki ?? new TestDoubleNitroPki();
    const image = o.image ?? "bkv test image";
    this.pcrs = o.pcrs ?? new Map([0, 1, 2, 3, 4, 8].map((i) => [i, testDoublePcr(image, i)]));
    this.now = o.now ?? (() => Date.now());
  }

  private answer(kind: string, body: Map<string, unknown>): Uint8Array {
    return encode(new Map([[kind, body]]), inOrder);
  }

  private error(code: string): Uint8Array {
    return encode(new Map([["Error", code]]));
  }

  async call(request: Uint8Array): Promise<Uint8Array> {
    this.requests.push(request.slice());
    let r: unknown;
    try {
      r = decode(request, { useMaps: true, strict: true });
    } catch {
      return this.error("InvalidArgument");
    }
    if (r === "GetRandom")
      return this.answer("GetRandom", new Map([["random", new Uint8Array(randomBytes(256))]]));
    if (!(r instanceof Map) || r.size !== 1) return this.error("InvalidArgument");
    const [kind, body] = [...r.entries()][0] as [unknown, unknown];
    if (!(body instanceof Map)) return this.error("InvalidArgument");
    if (kind === "DescribePCR") {
      const data = this.pcrs.get(body.get("index") as number);
      if (data === undefined) return this.error("InvalidIndex");
      return this.answer(
        "DescribePCR",
        new Map<string, unknown>([
          ["lock", true],
          ["data", data],
        ]),
      );
    }
    if (kind === "Attestation") {
      const field = (k: string, max: number): Uint8Array | null | "bad" => {
        const v = body.get(k);
        if (v === null || v === undefined) return null;
        return v instanceof Uint8Array && v.length <= max ? v : "bad";
      };
      const userData = field("user_data", 1024);
      const nonce = field("nonce", 1024);
      const publicKey = field("public_key", 1024);
      if (userData === "bad" || nonce === "bad" || publicKey === "bad") return this.error("InputTooLarge");
      const document = this.pki.document({
        moduleId: this.moduleId,
        timestamp: this.now(),
        pcrs: this.pcrs,
        userData,
        nonce,
        publicKey,
      });
      return this.answer("Attestation", new Map([["document", document]]));
    }
    return this.error("InvalidOperation");
  }
}

/**
 * TEST DOUBLE of a KMS key whose policy releases it only to enclaves of one image (on AWS: a key
 * policy with the condition kms:RecipientAttestation:ImageSha384 / PCR0, and KMS encrypts its
 * answer to the public key in the document, so the parent instance never sees it). This double
 * checks the document against its own test root and the image measurement, then hands the secret
 * back in the clear, in this process.
 */
export class TestDoubleKms {
  private readonly secret = new Uint8Array(randomBytes(32));

  constructor(
    private readonly rootFingerprint: Uint8Array,
    /** The image measurement the key policy names. */
    private readonly imageMeasurement: Uint8Array,
  ) {}

  async releaseSealSecret(document: Uint8Array): Promise<Uint8Array> {
    const doc = verifyNitroDocument(document, [this.rootFingerprint]);
    if (!bytesEqual(documentImageMeasurement(doc), this.imageMeasurement))
      throw new BkvError(
        ErrorCode.Forbidden,
        "the key policy releases this seal secret to another enclave image",
      );
    return this.secret.slice();
  }
}
