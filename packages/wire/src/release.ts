/**
 * A release entry: what a releases namespace of the log holds, one per epoch. It says that the
 * HSM core with this measurement is built from this source revision by this recipe, and it is
 * signed by the release key (which clients may pin instead of pinning measurements, and which a
 * fleet's genesis freezes for its successors' code):
 *
 *     "bkv-release/v1" || 0x00
 *     string namespace || u32 epoch          where it is logged (a signature cannot be moved)
 *     measurement (32 bytes)                 SHA-256 of build/hsm-core.js
 *     string source revision                 e.g. a git commit id
 *     string build recipe                    how to rebuild it (what `bkv measure` reproduces)
 *     u64 time                               ms since the epoch, when the release was signed
 *     Ed25519 signature (64 bytes)           by the release key over everything before it
 *
 * The artifact of the log entry is this encoding (self-verifying: the signature travels with the
 * entry in tiles and entries tiles); its evidence is empty. Decoding is strict and canonical.
 * The codec lives here, not in @bkv/tlog, so the HSM core (which imports only the wire format)
 * can read a successor's release; signatures are verified by each side's own strict verifier.
 */
import { utf8 } from "./bytes.js";
import { Reader, Writer } from "./codec.js";
import { check } from "./errors.js";

const RELEASE_DOMAIN = utf8("bkv-release/v1\0");
export const MAX_SOURCE_REVISION = 256;
export const MAX_BUILD_RECIPE = 4096;

export interface Release {
  namespace: string;
  epoch: number;
  measurement: Uint8Array;
  sourceRevision: string;
  buildRecipe: string;
  time: number;
}

export interface SignedRelease extends Release {
  signature: Uint8Array;
}

/** The bytes the release key signs. */
export function releaseSignedBytes(r: Release): Uint8Array {
  return new Writer()
    .fixed(RELEASE_DOMAIN)
    .string(r.namespace)
    .u32(r.epoch)
    .fixed(r.measurement)
    .string(r.sourceRevision)
    .string(r.buildRecipe)
    .u64(r.time)
    .finish();
}

export function encodeSignedRelease(r: SignedRelease): Uint8Array {
  const body = releaseSignedBytes(r);
  const out = new Uint8Array(body.length + 64);
  out.set(body);
  out.set(r.signature, body.length);
  return out;
}

/** Decode a signed release; MALFORMED for anything else (wrong domain, lengths, trailing bytes). */
export function decodeSignedRelease(b: Uint8Array): SignedRelease {
  const r = new Reader(b, "release");
  const d = r.fixed(RELEASE_DOMAIN.length, "domain");
  check(
    d.every((x, i) => x === RELEASE_DOMAIN[i]),
    "release: wrong domain",
  );
  const namespace = r.string("namespace", 255);
  const epoch = r.u32("epoch");
  const measurement = r.fixed(32, "measurement");
  const sourceRevision = r.string("source revision", MAX_SOURCE_REVISION);
  const buildRecipe = r.string("build recipe", MAX_BUILD_RECIPE);
  const time = r.u64("time");
  const signature = r.fixed(64, "signature");
  r.end();
  return { namespace, epoch, measurement, sourceRevision, buildRecipe, time, signature };
}
