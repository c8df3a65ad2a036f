/**
 * The Nitro Secure Module's request and response messages, in CBOR as the NSM driver exchanges
 * them (aws-nitro-enclaves-nsm-api, src/api: serde's externally tagged enums). Only what this
 * platform asks: DescribePCR, Attestation and GetRandom.
 *
 *   {"DescribePCR": {"index": u16}}                     -> {"DescribePCR": {"lock": bool, "data": bstr}}
 *   {"Attestation": {"user_data": bstr|null,
 *                    "nonce": bstr|null,
 *                    "public_key": bstr|null}}          -> {"Attestation": {"document": bstr}}
 *   "GetRandom"                                         -> {"GetRandom": {"random": bstr}}
 *   any                                                 -> {"Error": "InvalidArgument" | ...}
 *
 * The attestation document's specification (nsm-api, docs/attestation_process.md, CDDL) allows
 * up to 1024 bytes for each of user_data, nonce and public_key, and genuine documents carry 1024
 * bytes in all three (client/test/fixtures/nitro/blocky-nitrite-*); its prose says 512 for user_data
 * and nonce. Requests over 1024 are refused here before they reach the device.
 */
import { BkvError, ErrorCode } from "@bkv/wire";
import { decode, encode } from "cborg";

export const NSM_MAX_USER_DATA = 1024;
export const NSM_MAX_NONCE = 1024;
export const NSM_MAX_PUBLIC_KEY = 1024;

/** Field order as serde writes a struct's fields: the order of declaration. */
const inOrder = { mapSorter: () => 0 };

export interface AttestationRequest {
  userData: Uint8Array | null;
  nonce: Uint8Array | null;
  publicKey: Uint8Array | null;
}

function limit(what: string, b: Uint8Array | null, max: number): void {
  if (b !== null && b.length > max)
    throw new BkvError(ErrorCode.Invalid, `NSM ${what} is ${b.length} bytes, more than ${max}`);
}

export function encodeAttestationRequest(r: AttestationRequest): Uint8Array {
  limit("user_data", r.userData, NSM_MAX_USER_DATA);
  limit("nonce", r.nonce, NSM_MAX_NONCE);
  limit("public_key", r.publicKey, NSM_MAX_PUBLIC_KEY);
  return encode(
    new Map([
      [
        "Attestation",
        new Map<string, Uint8Array | null>([
          ["user_data", r.userData],
          ["nonce", r.nonce],
          ["public_key", r.publicKey],
        ]),
      ],
    ]),
    inOrder,
  );
}

export function encodeDescribePcrRequest(index: number): Uint8Array {
  if (!Number.isInteger(index) || index < 0 || index > 0xffff)
    throw new BkvError(ErrorCode.Invalid, "a PCR index is a u16");
  return encode(new Map([["DescribePCR", new Map([["index", index]])]]), inOrder);
}

export function encodeGetRandomRequest(): Uint8Array {
  return encode("GetRandom");
}

/** The NSM's answer, by variant. Throws UNAVAILABLE for an NSM error, MALFORMED for anything else. */
export type NsmResponse =
  | { kind: "Attestation"; document: Uint8Array }
  | { kind: "DescribePCR"; lock: boolean; data: Uint8Array }
  | { kind: "GetRandom"; random: Uint8Array };

function malformed(what: string): never {
  throw new BkvError(ErrorCode.Malformed, `NSM response: ${what}`);
}

export function decodeNsmResponse(bytes: Uint8Array): NsmResponse {
  let v: unknown;
  try {
    v = decode(bytes, { useMaps: true, strict: true, rejectDuplicateMapKeys: true });
  } catch (e) {
    malformed(`not CBOR: ${(e as Error).message}`);
  }
  if (!(v instanceof Map) || v.size !== 1) malformed("not a single variant");
  const [kind, body] = [...v.entries()][0] as [unknown, unknown];
  if (kind === "Error") throw new BkvError(ErrorCode.Unavailable, `the NSM refused: ${String(body)}`);
  if (!(body instanceof Map)) malformed(`${String(kind)} has no fields`);
  if (kind === "Attestation") {
    const d = body.get("document");
    if (!(d instanceof Uint8Array) || body.size !== 1) malformed("Attestation is not {document}");
    return { kind, document: d };
  }
  if (kind === "DescribePCR") {
    const lock = body.get("lock");
    const data = body.get("data");
    if (typeof lock !== "boolean" || !(data instanceof Uint8Array) || body.size !== 2)
      malformed("DescribePCR is not {lock, data}");
    return { kind, lock, data };
  }
  if (kind === "GetRandom") {
    const r = body.get("random");
    if (!(r instanceof Uint8Array) || body.size !== 1) malformed("GetRandom is not {random}");
    return { kind, random: r };
  }
  return malformed(`unknown variant ${String(kind)}`);
}

/** Where requests go: /dev/nsm's ioctl in an enclave; a test double here (test-double-nsm.ts). */
export interface NsmDevice {
  /** Send one encoded request, get the encoded response. */
  call(request: Uint8Array): Promise<Uint8Array>;
}
