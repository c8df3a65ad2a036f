/**
 * The handshake that opens a peer stream between two hosts of a fleet, before any frame is relayed.
 * Both sides prove their configured host key (host-key.ts) over a transcript that holds both host
 * ids, a fresh nonce and an ephemeral X25519 key from each side, so a recorded handshake is useless
 * on a new connection and a signature cannot be reflected (the two roles sign under different labels):
 *
 *   initiator -> responder  HELLO  = "BKVPEER1" ‖ from u8 ‖ to u8 ‖ nonceI[32] ‖ ephI[32]
 *   responder -> initiator  REPLY  = "BKVPEER1" ‖ nonceR[32] ‖ ephR[32] ‖ sigR[64]
 *   initiator -> responder  FINISH = sigI[64]
 *
 *   T    = SHA-256("bkv peer handshake v1" ‖ from ‖ to ‖ nonceI ‖ ephI ‖ nonceR ‖ ephR)
 *   sigR = Ed25519(responder's host key, "responder" ‖ T), sigI = Ed25519(initiator's, "initiator" ‖ T)
 *
 * Then the stream carries the initiator's frames one way: frame(message ‖ tag), tag = the first 16
 * bytes of HMAC-SHA256(k, counter u64 ‖ message), k = HKDF-SHA256(X25519(ephI, ephR), salt T), so
 * nobody on the path can splice bytes into an authenticated stream. The messages stay readable: they
 * are the HSMs' own AES-GCM messages, which the HSMs authenticate end to end.
 */
import {
  createHash,
  createHmac,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  type KeyObject,
  randomBytes,
  sign,
  timingSafeEqual,
  verify,
} from "node:crypto";
import { BkvError, concatBytes, ErrorCode, fromBase64Url, toBase64Url, utf8 } from "@bkv/wire";
import type { HostKey } from "./host-key.js";

const MAGIC = utf8("BKVPEER1");
export const HELLO_BYTES = MAGIC.length + 2 + 32 + 32;
export const REPLY_BYTES = MAGIC.length + 32 + 32 + 64;
export const FINISH_BYTES = 64;
/** Bytes of the MAC after each message on an authenticated stream. */
export const FRAME_TAG_BYTES = 16;

function x25519Pair(): { priv: KeyObject; pub: Uint8Array } {
  const { privateKey, publicKey } = generateKeyPairSync("x25519");
  const x = (publicKey.export({ format: "jwk" }) as { x: string }).x;
  return { priv: privateKey, pub: fromBase64Url(x) };
}

function sharedKey(priv: KeyObject, peerPub: Uint8Array, t: Uint8Array): Buffer {
  let shared: Buffer;
  try {
    const pub = createPublicKey({
      key: { kty: "OKP", crv: "X25519", x: toBase64Url(peerPub) },
      format: "jwk",
    });
    shared = diffieHellman({ privateKey: priv, publicKey: pub });
  } catch (e) {
    throw new BkvError(ErrorCode.Malformed, "peer handshake: bad ephemeral key", { cause: e });
  }
  return Buffer.from(hkdfSync("sha256", shared, t, "bkv peer frames v1", 32));
}

function transcript(
  from: number,
  to: number,
  nI: Uint8Array,
  eI: Uint8Array,
  nR: Uint8Array,
  eR: Uint8Array,
) {
  return new Uint8Array(
    createHash("sha256")
      .update(utf8("bkv peer handshake v1"))
      .update(Uint8Array.of(from, to))
      .update(nI)
      .update(eI)
      .update(nR)
      .update(eR)
      .digest(),
  );
}

const signed = (role: "initiator" | "responder", t: Uint8Array) => concatBytes(utf8(role), t);

function sameMagic(b: Uint8Array): boolean {
  return timingSafeEqual(b.subarray(0, MAGIC.length), MAGIC);
}

/** Counts messages and seals (initiator) or opens (responder) them with the stream's MAC key. */
export class FrameMac {
  private counter = 0n;

  constructor(private readonly key: Buffer) {}

  private tag(message: Uint8Array): Buffer {
    const n = Buffer.alloc(8);
    n.writeBigUInt64BE(this.counter++);
    return createHmac("sha256", this.key).update(n).update(message).digest().subarray(0, FRAME_TAG_BYTES);
  }

  seal(message: Uint8Array): Uint8Array {
    return concatBytes(message, this.tag(message));
  }

  /** The message of a frame, or AUTHENTICATION if its tag is wrong (the stream must then end). */
  open(framed: Uint8Array): Uint8Array {
    if (framed.length < FRAME_TAG_BYTES) throw new BkvError(ErrorCode.Malformed, "peer frame too short");
    const message = framed.subarray(0, framed.length - FRAME_TAG_BYTES);
    const expected = this.tag(message);
    if (!timingSafeEqual(expected, framed.subarray(framed.length - FRAME_TAG_BYTES)))
      throw new BkvError(ErrorCode.Authentication, "peer frame: bad tag");
    return message;
  }
}

/** The connecting side: this host opens a stream to send its HSM's messages to `to`. */
export class Initiator {
  private readonly nonce = new Uint8Array(randomBytes(32));
  private readonly eph = x25519Pair();

  constructor(
    private readonly self: number,
    private readonly to: number,
    private readonly key: HostKey,
    private readonly peerKey: KeyObject,
  ) {}

  hello(): Uint8Array {
    return concatBytes(MAGIC, Uint8Array.of(this.self, this.to), this.nonce, this.eph.pub);
  }

  /** Check the responder's REPLY (exactly REPLY_BYTES); the FINISH to send and the stream's MAC. */
  reply(b: Uint8Array): { finish: Uint8Array; mac: FrameMac } {
    if (b.length !== REPLY_BYTES || !sameMagic(b))
      throw new BkvError(ErrorCode.Malformed, "peer handshake: bad reply");
    const m = MAGIC.length;
    const nR = b.subarray(m, m + 32);
    const eR = b.subarray(m + 32, m + 64);
    const sigR = b.subarray(m + 64, m + 128);
    const t = transcript(this.self, this.to, this.nonce, this.eph.pub, nR, eR);
    if (!verify(null, signed("responder", t), this.peerKey, sigR))
      throw new BkvError(
        ErrorCode.Authentication,
        `peer handshake: host ${this.to} did not prove its host key`,
      );
    const mac = new FrameMac(sharedKey(this.eph.priv, eR, t));
    return { finish: new Uint8Array(sign(null, signed("initiator", t), this.key.privateKey)), mac };
  }
}

/** The listening side: another host connects to send its HSM's messages to this host. */
export class Responder {
  private state: { from: number; t: Uint8Array; mac: FrameMac } | null = null;

  constructor(
    private readonly self: number,
    private readonly key: HostKey,
    private readonly peerKeys: ReadonlyMap<number, KeyObject>,
  ) {}

  /** Check a HELLO (exactly HELLO_BYTES) from a configured host to this one; the REPLY to send. */
  hello(b: Uint8Array): Uint8Array {
    if (this.state !== null || b.length !== HELLO_BYTES || !sameMagic(b))
      throw new BkvError(ErrorCode.Malformed, "peer handshake: bad hello");
    const m = MAGIC.length;
    const from = b[m]!;
    const to = b[m + 1]!;
    const nI = b.subarray(m + 2, m + 34);
    const eI = b.subarray(m + 34, m + 66);
    if (to !== this.self) throw new BkvError(ErrorCode.Forbidden, `peer handshake: addressed to host ${to}`);
    if (from === this.self || !this.peerKeys.has(from))
      throw new BkvError(ErrorCode.Forbidden, `peer handshake: host ${from} is not a configured peer`);
    const nR = new Uint8Array(randomBytes(32));
    const eph = x25519Pair();
    const t = transcript(from, to, nI, eI, nR, eph.pub);
    this.state = { from, t, mac: new FrameMac(sharedKey(eph.priv, eI, t)) };
    const sigR = new Uint8Array(sign(null, signed("responder", t), this.key.privateKey));
    return concatBytes(MAGIC, nR, eph.pub, sigR);
  }

  /** Check the FINISH (exactly FINISH_BYTES): the authenticated peer and its stream's MAC. */
  finish(sigI: Uint8Array): { from: number; mac: FrameMac } {
    const s = this.state;
    if (s === null || sigI.length !== FINISH_BYTES)
      throw new BkvError(ErrorCode.Malformed, "peer handshake: finish out of order");
    if (!verify(null, signed("initiator", s.t), this.peerKeys.get(s.from)!, sigI))
      throw new BkvError(
        ErrorCode.Authentication,
        `peer handshake: host ${s.from} did not prove its host key`,
      );
    return { from: s.from, mac: s.mac };
  }
}
