/**
 * TEST DOUBLE of the AWS Nitro Attestation PKI. It is not AWS: its root is a P-384 key made in this
 * process, and nothing it signs chains to the AWS Nitro root (AWS_NITRO_ROOT_SHA256), so no client
 * that pins the genuine root accepts its documents. It exists so that tests can make attestation
 * documents in the genuine format (COSE_Sign1 / ES384 over the CBOR payload, a certificate chain
 * root -> intermediate -> signing certificate) that name keys and PCRs of the test's choosing, and
 * break them one field at a time; the test double of the NSM (test-double-nsm.ts) signs with it.
 *
 * Certificates are built with @peculiar/asn1-x509 and signed with @noble/curves p384 (ECDSA,
 * SHA-384), as AWS's are.
 */
import { p384 } from "@noble/curves/nist.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { AsnConvert, OctetString } from "@peculiar/asn1-schema";
import {
  AlgorithmIdentifier,
  AttributeTypeAndValue,
  AttributeValue,
  BasicConstraints,
  Certificate,
  Extension,
  Extensions,
  KeyUsage,
  KeyUsageFlags,
  Name,
  RelativeDistinguishedName,
  SubjectPublicKeyInfo,
  TBSCertificate,
  Validity,
  Version,
} from "@peculiar/asn1-x509";
import { encode } from "cborg";

const ECDSA_WITH_SHA384 = "1.2.840.10045.4.3.3";
const EC_PUBLIC_KEY = "1.2.840.10045.2.1";
const SECP384R1_DER = new Uint8Array([0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22]);

const ab = (b: Uint8Array): ArrayBuffer => b.slice().buffer as ArrayBuffer;

function name(cn: string): Name {
  return new Name([
    new RelativeDistinguishedName([
      new AttributeTypeAndValue({ type: "2.5.4.3", value: new AttributeValue({ utf8String: cn }) }),
    ]),
  ]);
}

export interface TestCertificateSpec {
  cn: string;
  notBefore: number;
  notAfter: number;
  /** A CA (with this path length), or the signing certificate (undefined). */
  caPathLength?: number;
  serial: number;
  /** Key usage bits (default: certificate and CRL signing for a CA, digital signature otherwise). */
  usage?: number;
}

export interface TestKey {
  secretKey: Uint8Array;
  publicKey: Uint8Array;
}

export function newTestKey(): TestKey {
  const secretKey = p384.utils.randomSecretKey();
  return { secretKey, publicKey: p384.getPublicKey(secretKey, false) };
}

/** A certificate for `subject`'s key, issued (signed) by `issuerKey` under `issuerCn`. */
export function issueTestCertificate(
  spec: TestCertificateSpec,
  subject: TestKey,
  issuerCn: string,
  issuerKey: TestKey,
): Uint8Array {
  const ca = spec.caPathLength !== undefined;
  const usage =
    spec.usage ?? (ca ? KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign : KeyUsageFlags.digitalSignature);
  const tbs = new TBSCertificate({
    version: Version.v3,
    serialNumber: ab(new Uint8Array([0x01, spec.serial & 0x7f])),
    signature: new AlgorithmIdentifier({ algorithm: ECDSA_WITH_SHA384 }),
    issuer: name(issuerCn),
    validity: new Validity({ notBefore: new Date(spec.notBefore), notAfter: new Date(spec.notAfter) }),
    subject: name(spec.cn),
    subjectPublicKeyInfo: new SubjectPublicKeyInfo({
      algorithm: new AlgorithmIdentifier({ algorithm: EC_PUBLIC_KEY, parameters: ab(SECP384R1_DER) }),
      subjectPublicKey: ab(subject.publicKey),
    }),
    extensions: new Extensions([
      new Extension({
        extnID: "2.5.29.19",
        critical: true,
        extnValue: new OctetString(
          AsnConvert.serialize(
            ca
              ? new BasicConstraints({ cA: true, pathLenConstraint: spec.caPathLength })
              : new BasicConstraints({ cA: false }),
          ),
        ),
      }),
      new Extension({
        extnID: "2.5.29.15",
        critical: true,
        extnValue: new OctetString(AsnConvert.serialize(new KeyUsage(usage))),
      }),
    ]),
  });
  const tbsDer = new Uint8Array(AsnConvert.serialize(tbs));
  const signature = p384.sign(tbsDer, issuerKey.secretKey, { format: "der" });
  const cert = new Certificate({
    tbsCertificate: tbs,
    signatureAlgorithm: new AlgorithmIdentifier({ algorithm: ECDSA_WITH_SHA384 }),
    signatureValue: ab(signature),
  });
  return new Uint8Array(AsnConvert.serialize(cert));
}

/** The payload fields of a document, as the NSM states them. */
export interface TestDocumentFields {
  moduleId: string;
  timestamp: number;
  pcrs: Map<number, Uint8Array>;
  userData: Uint8Array | null;
  nonce: Uint8Array | null;
  publicKey: Uint8Array | null;
}

export interface TestPkiOptions {
  /** Validity of every certificate (default: one day either side of now). */
  notBefore?: number;
  notAfter?: number;
  /** Validity of the signing certificate alone (default: the chain's). */
  leafNotBefore?: number;
  leafNotAfter?: number;
}

/** TEST DOUBLE of the AWS Nitro PKI: a root, one intermediate and a signing certificate. */
export class TestDoubleNitroPki {
  readonly rootKey = newTestKey();
  readonly intermediateKey = newTestKey();
  readonly leafKey = newTestKey();
  readonly root: Uint8Array;
  readonly intermediate: Uint8Array;
  readonly leaf: Uint8Array;

  constructor(o: TestPkiOptions = {}) {
    const day = 86_400_000;
    const notBefore = o.notBefore ?? Date.now() - day;
    const notAfter = o.notAfter ?? Date.now() + day;
    const rootCn = "TEST DOUBLE, not AWS: test-double.nitro-enclaves";
    const midCn = "TEST DOUBLE, not AWS: intermediate.test-double.nitro-enclaves";
    this.root = issueTestCertificate(
      { cn: rootCn, notBefore, notAfter, caPathLength: 2, serial: 1 },
      this.rootKey,
      rootCn,
      this.rootKey,
    );
    this.intermediate = issueTestCertificate(
      { cn: midCn, notBefore, notAfter, caPathLength: 1, serial: 2 },
      this.intermediateKey,
      rootCn,
      this.rootKey,
    );
    this.leaf = issueTestCertificate(
      {
        cn: "TEST DOUBLE, not AWS: i-00000000000000000-enc0000000000000000.test-double",
        notBefore: o.leafNotBefore ?? notBefore,
        notAfter: o.leafNotAfter ?? notAfter,
        serial: 3,
      },
      this.leafKey,
      midCn,
      this.intermediateKey,
    );
  }

  /** SHA-256 of the test root's DER: what a test pins (as a test root) instead of AWS's. */
  get rootFingerprint(): Uint8Array {
    return sha256(this.root);
  }

  /** The payload CBOR, in the field order the NSM writes (nsm-api AttestationDoc). */
  payload(f: TestDocumentFields, extra: Record<string, unknown> = {}): Uint8Array {
    const m = new Map<string, unknown>([
      ["module_id", f.moduleId],
      ["digest", "SHA384"],
      ["timestamp", f.timestamp],
      ["pcrs", f.pcrs],
      ["certificate", this.leaf],
      ["cabundle", [this.root, this.intermediate]],
      ["public_key", f.publicKey],
      ["user_data", f.userData],
      ["nonce", f.nonce],
    ]);
    for (const [k, v] of Object.entries(extra)) m.set(k, v);
    return encode(m, { mapSorter: () => 0 });
  }

  /** A COSE_Sign1 document over `payload`, signed ES384 by the signing certificate's key. */
  signPayload(payload: Uint8Array, key: TestKey = this.leafKey): Uint8Array {
    const protectedHeader = encode(new Map([[1, -35]]));
    const toSign = encode(["Signature1", protectedHeader, new Uint8Array(0), payload]);
    const signature = p384.sign(toSign, key.secretKey);
    return encode([protectedHeader, new Map(), payload, signature]);
  }

  document(f: TestDocumentFields): Uint8Array {
    return this.signPayload(this.payload(f));
  }
}
