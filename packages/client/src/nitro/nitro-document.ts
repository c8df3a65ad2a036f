/**
 * AWS Nitro Enclaves attestation documents: decode one and verify it against pinned roots, and say
 * exactly what it attests. The format (AWS, "Nitro Enclaves attestation process"): an untagged
 * COSE_Sign1 (RFC 9052) in CBOR, algorithm ES384, whose payload is a CBOR map: module_id, digest
 * ("SHA384"), timestamp (ms), pcrs (index -> 48 bytes), certificate (DER), cabundle (DER, root
 * first), and the optional public_key, user_data and nonce the enclave asked for (each up to 1024
 * bytes, as the specification's CDDL says and genuine documents show, or null).
 *
 * CBOR is cborg's, in its strict mode (smallest encodings, no duplicate keys, no indefinite
 * lengths, nothing after the document). There is no COSE library here: checking one COSE_Sign1 with
 * ES384 is the Sig_structure ["Signature1", protected, h'', payload] in CBOR and a P-384 signature
 * over it, which cborg and @noble/curves do. The chain is judged at the document's own timestamp
 * (x509-chain.ts), never at the verifier's clock: a document stays verifiable after its short-lived
 * certificates expire, and states when it was made.
 */

import { BkvError, ErrorCode } from "@bkv/wire";
import { p384 } from "@noble/curves/nist.js";
import { decode, encode } from "cborg";
import { type ParsedCertificate, parseCertificate, verifyChainAt } from "./x509-chain.js";

/** What a verified document attests, exactly as it states it. */
export interface NitroDocument {
  moduleId: string;
  /** Milliseconds since the epoch, as the Nitro hypervisor stated it. */
  timestamp: number;
  /** PCR index -> 48-byte SHA-384 register. */
  pcrs: Map<number, Uint8Array>;
  publicKey: Uint8Array | null;
  userData: Uint8Array | null;
  nonce: Uint8Array | null;
  /** The chain, root first, ending in the certificate that signed the document. */
  chain: ParsedCertificate[];
}

const STRICT = {
  useMaps: true,
  strict: true,
  rejectDuplicateMapKeys: true,
  allowIndefinite: false,
  allowUndefined: false,
  allowInfinity: false,
  allowNaN: false,
} as const;

const ES384 = -35;
const MAX_DOCUMENT = 16 * 1024;
const FIELDS = new Set([
  "module_id",
  "digest",
  "timestamp",
  "pcrs",
  "certificate",
  "cabundle",
  "public_key",
  "user_data",
  "nonce",
]);

function malformed(what: string): never {
  throw new BkvError(ErrorCode.Malformed, `Nitro attestation document: ${what}`);
}

function cbor(bytes: Uint8Array, what: string): unknown {
  try {
    return decode(bytes, STRICT);
  } catch (e) {
    malformed(`${what} is not strict CBOR: ${(e as Error).message}`);
  }
}

function isBytes(v: unknown): v is Uint8Array {
  return v instanceof Uint8Array;
}

function optionalBytes(m: Map<unknown, unknown>, key: string, max: number): Uint8Array | null {
  if (!m.has(key)) return null;
  const v = m.get(key);
  if (v === null) return null;
  if (!isBytes(v) || v.length > max) malformed(`${key} is not a byte string of at most ${max} bytes`);
  return v;
}

interface CoseParts {
  protectedHeader: Uint8Array;
  payload: Uint8Array;
  signature: Uint8Array;
}

function coseSign1(bytes: Uint8Array): CoseParts {
  if (bytes.length > MAX_DOCUMENT) malformed(`longer than ${MAX_DOCUMENT} bytes`);
  const top = cbor(bytes, "the document");
  if (!Array.isArray(top) || top.length !== 4) malformed("not a COSE_Sign1 array of four");
  const [protectedHeader, unprotected, payload, signature] = top as unknown[];
  if (!isBytes(protectedHeader) || !isBytes(payload) || !isBytes(signature))
    malformed("COSE_Sign1 fields are not byte strings");
  if (!(unprotected instanceof Map) || unprotected.size !== 0)
    malformed("the unprotected header is not empty");
  const header = cbor(protectedHeader, "the protected header");
  if (!(header instanceof Map) || header.size !== 1 || header.get(1) !== ES384)
    malformed("the protected header does not say exactly alg ES384");
  if (signature.length !== 96) malformed("the ES384 signature is not 96 bytes");
  return { protectedHeader, payload, signature };
}

/** The fields of the payload, checked for type and size, before anything is verified. */
function payloadFields(payload: Uint8Array) {
  const m = cbor(payload, "the payload");
  if (!(m instanceof Map)) malformed("the payload is not a map");
  for (const k of m.keys())
    if (typeof k !== "string" || !FIELDS.has(k)) malformed(`unknown field ${String(k)}`);
  const moduleId = m.get("module_id");
  if (typeof moduleId !== "string" || moduleId.length === 0 || moduleId.length > 256)
    malformed("module_id is not a non-empty text");
  if (m.get("digest") !== "SHA384") malformed("digest is not SHA384");
  const timestamp = m.get("timestamp");
  if (typeof timestamp !== "number" || !Number.isSafeInteger(timestamp) || timestamp <= 0)
    malformed("timestamp is not a positive integer of milliseconds");
  const rawPcrs = m.get("pcrs");
  if (!(rawPcrs instanceof Map) || rawPcrs.size < 1 || rawPcrs.size > 32)
    malformed("pcrs is not a map of 1 to 32");
  const pcrs = new Map<number, Uint8Array>();
  for (const [k, v] of rawPcrs) {
    if (typeof k !== "number" || !Number.isInteger(k) || k < 0 || k > 31)
      malformed("a PCR index is not 0 to 31");
    if (!isBytes(v) || v.length !== 48) malformed(`PCR${k} is not 48 bytes (SHA-384)`);
    pcrs.set(k, v);
  }
  const certificate = m.get("certificate");
  if (!isBytes(certificate) || certificate.length < 1 || certificate.length > 1024)
    malformed("certificate is not 1 to 1024 bytes");
  const cabundle = m.get("cabundle");
  if (!Array.isArray(cabundle) || cabundle.length < 1 || cabundle.length > 16)
    malformed("cabundle is not a list of 1 to 16");
  for (const c of cabundle)
    if (!isBytes(c) || c.length < 1 || c.length > 1024) malformed("a cabundle entry is not 1 to 1024 bytes");
  return {
    moduleId,
    timestamp,
    pcrs,
    certificate,
    cabundle: cabundle as Uint8Array[],
    publicKey: optionalBytes(m, "public_key", 1024),
    userData: optionalBytes(m, "user_data", 1024),
    nonce: optionalBytes(m, "nonce", 1024),
  };
}

/**
 * Verify an AWS Nitro attestation document against `pinnedRoots` (SHA-256 fingerprints of root
 * certificates' DER, e.g. AWS_NITRO_ROOT_SHA256) and
 * return what it attests. Throws BkvError: MALFORMED (not a strict document, trailing bytes),
 * ATTESTATION (another root, a broken chain, a COSE signature that does not verify),
 * ATTESTATION_EXPIRED (the document's time is outside a certificate's validity).
 */
export function verifyNitroDocument(bytes: Uint8Array, pinnedRoots: Uint8Array[]): NitroDocument {
  const cose = coseSign1(bytes);
  const f = payloadFields(cose.payload);
  const chain = [
    ...f.cabundle.map((c, i) => parseCertificate(c, `cabundle certificate ${i}`)),
    parseCertificate(f.certificate, "the signing certificate"),
  ];
  verifyChainAt(chain, pinnedRoots, f.timestamp);
  const signed = encode(["Signature1", cose.protectedHeader, new Uint8Array(0), cose.payload]);
  const leaf = chain[chain.length - 1]!;
  let ok = false;
  try {
    ok = p384.verify(cose.signature, signed, leaf.publicKey, { format: "compact", lowS: false });
  } catch {
    ok = false;
  }
  if (!ok)
    throw new BkvError(
      ErrorCode.Attestation,
      "Nitro attestation document: the COSE signature does not verify",
    );
  return {
    moduleId: f.moduleId,
    timestamp: f.timestamp,
    pcrs: f.pcrs,
    publicKey: f.publicKey,
    userData: f.userData,
    nonce: f.nonce,
    chain,
  };
}
