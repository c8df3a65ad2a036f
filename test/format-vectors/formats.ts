/**
 * The byte formats pinned by golden vectors in testdata/formats/<name>.json: for each, how to
 * encode and decode it and the sample values its vectors are made from. The test
 * (test/format-vectors.test.ts) checks the stored vectors against the code; the generator
 * (scripts/format-vectors.mjs) writes the file of a format that has none yet (or, with --force,
 * rewrites one after a deliberate format change).
 *
 * To pin another format, add an entry to FORMATS and run the generator.
 *
 * A vector's `context` is what the reader knows before it reads the bytes (a key, who it is, which
 * record it asked for); `fields` is what it reads. A format without `decode` is a message that is
 * only ever built and signed, never parsed: its vectors pin the encoding alone.
 */
import { createCipheriv, createHash, createHmac, hkdfSync } from "node:crypto";
import { decryptBytes } from "@bkv/client";
import {
  decodeNvram,
  decodePeerMessage,
  decodeRaftEntry,
  decodeRecord,
  encodeNvram,
  encodePeerMessage,
  encodeRaftEntry,
  encodeRecord,
  openRecord,
  PeerChannel,
  peerKey,
  type RaftEntry,
  RecordTree,
  recordSecretsFromSeed,
  type VaultRecord,
  VaultState,
} from "@bkv/hsm-core";
import { aes256GcmSeal, nodeHsmCrypto, sealKeyFor, softSeal } from "@bkv/hsm-software";
import {
  bundleSignedMessage,
  decodeLogEntry,
  decodeSignedRelease,
  encodeLogEntry,
  encodeSignedRelease,
} from "@bkv/tlog";
import {
  BkvError,
  countersignMessage,
  decodeArtifact,
  decodeAttestation,
  decodeEvidence,
  decodeHostToHsm,
  decodeHsmToHost,
  decodeRecordProof,
  decodeRequestEnvelope,
  decodeResponseEnvelope,
  decodeSignedHandover,
  decodeStatement,
  decodeVaultRequest,
  decodeVaultResult,
  ErrorCode,
  encodeArtifact,
  encodeAttestation,
  encodeEvidence,
  encodeHostToHsm,
  encodeHsmToHost,
  encodeRecordProof,
  encodeRequestEnvelope,
  encodeResponseEnvelope,
  encodeSignedHandover,
  encodeStatement,
  encodeVaultRequest,
  encodeVaultResult,
  type FleetArtifact,
  FrameDecoder,
  frame,
  logBundleMessage,
  NVRAM_WRITE_BUCKETS_MS,
  OpaqueSize,
  type RecordProof,
  utf8,
} from "@bkv/wire";
import { decodeHeader, encodeHeader, FILE_KEY_INFO } from "../../packages/client/src/backup/format.js";
import { aadFor, ENTRY_AAD, SNAPSHOT_AAD } from "../../packages/hsm-core/src/host-storage.js";

// biome-ignore lint/suspicious/noExplicitAny: vectors hold values of every format's own type
type Value = any;
export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

export interface Sample {
  /** The variant, e.g. "register-start". */
  type: string;
  value: Value;
  context?: Value;
}

export interface Format {
  name: string;
  about: string;
  /** Where the format is defined. */
  source: string;
  samples(): Sample[];
  encode(value: Value, context: Value): Uint8Array | Promise<Uint8Array>;
  /** Throws on anything but exactly one encoding. */
  decode?(bytes: Uint8Array, context: Value): Value | Promise<Value>;
}

/** Deterministic filler bytes: n bytes counting from `start` by `step`. */
export function pat(n: number, start: number, step = 1): Uint8Array {
  return new Uint8Array(n).map((_, i) => (start + i * step) & 0xff);
}

function agreeKey(seed: number): Uint8Array {
  const k = pat(65, seed, 7);
  k[0] = 0x04;
  return k;
}

function attestation(i: number) {
  return {
    platform: i === 2 ? "pkcs11" : "software",
    vendor: `test vendor ${i}`,
    signKey: pat(32, 0x10 * i),
    agreeKey: agreeKey(0x20 * i),
    measurement: pat(32, 0xa0),
    properties: i === 2 ? ["CKA_EXTRACTABLE=false", "CKA_SENSITIVE=true"] : [],
    signature: pat(64, 0x30 * i, 3),
  };
}

/** The witness policy the vectors' fleet freezes: two named cosignature/v1 keys, 2 of 2. */
function witnessPolicy() {
  return {
    witnesses: [
      { name: "witness.example/w1", key: pat(32, 0x88) },
      { name: "witness.example/w2", key: pat(32, 0x99) },
    ],
    threshold: 2,
  };
}

function statement() {
  return {
    fleetId: pat(16, 0xf0),
    namespace: "example.org/bkv",
    epoch: 2,
    logKey: pat(32, 0x44),
    releaseKey: pat(32, 0x77),
    members: [attestation(1), attestation(2), attestation(3)],
    challenges: [pat(32, 1), pat(32, 2), pat(32, 3)],
    measurement: pat(32, 0xa0),
    policy: { guessLimit: 10, n: 3, quorum: 2 },
    maxSuccessorGuessLimit: 8,
    witnessPolicy: witnessPolicy(),
    vaultPublicKey: pat(32, 0x55),
    fleetSigningKey: pat(32, 0x66),
    time: 1_767_225_600_000,
  };
}

function artifact(): FleetArtifact {
  return {
    namespace: "example.org/bkv",
    epoch: 2,
    fleetId: pat(16, 0xf0),
    keys: [
      { role: "vault-hpke", key: pat(32, 0x55) },
      { role: "fleet-signing", key: pat(32, 0x66) },
    ],
    members: [1, 2, 3].map((i) => ({
      signKey: pat(32, 0x10 * i),
      agreeKey: agreeKey(0x20 * i),
      platform: "software",
    })),
    measurement: pat(32, 0xa0),
    policy: { guessLimit: 10, n: 3, quorum: 2 },
    notBefore: 1_767_225_600_000,
    notAfter: 1_798_761_600_000,
  };
}

const crypto = nodeHsmCrypto();
/** The peer channel vectors: member 1 (boot epoch 7) to member 2 (boot epoch 3) of one fleet. */
const PEER = {
  fleetId: pat(16, 0xf0),
  shared: pat(32, 0x77),
  epochs: { 1: 7, 2: 3 } as Record<number, number>,
};

function channel(self: number, other: number): PeerChannel {
  const keys = new Map([
    [
      other,
      {
        send: peerKey(crypto, PEER.shared, PEER.fleetId, self, other),
        recv: peerKey(crypto, PEER.shared, PEER.fleetId, other, self),
      },
    ],
  ]);
  return new PeerChannel(crypto, self, PEER.epochs[self]!, keys);
}

/** The backup vector's key, and a spec-level encryptor (STREAM over AES-256-GCM) that takes the salt. */
const BACKUP_KEY = pat(32, 0x42);

function encryptBackup(v: { header: Value; plaintext: Uint8Array }, key: Uint8Array): Uint8Array {
  const header = encodeHeader(v.header);
  const fileKey = new Uint8Array(hkdfSync("sha256", key, v.header.salt, utf8(FILE_KEY_INFO), 32));
  const parts: Uint8Array[] = [header];
  const size = v.header.chunkSize;
  const count = Math.floor(v.plaintext.length / size) + 1;
  for (let i = 0; i < count; i++) {
    const final = i === count - 1;
    const chunk = v.plaintext.subarray(i * size, Math.min((i + 1) * size, v.plaintext.length));
    const nonce = new Uint8Array(12);
    new DataView(nonce.buffer).setUint32(8, i);
    const c = createCipheriv("aes-256-gcm", fileKey, nonce);
    c.setAAD(Uint8Array.of(...header, final ? 1 : 0));
    const body = Buffer.concat([c.update(chunk), c.final(), c.getAuthTag()]);
    if (final) {
      const len = new Uint8Array(4);
      new DataView(len.buffer).setUint32(0, chunk.length);
      parts.push(Uint8Array.of(1), len, body);
    } else {
      parts.push(Uint8Array.of(0), body);
    }
  }
  return Buffer.concat(parts);
}

const SEAL = { masterSecret: pat(32, 0x99), measurement: pat(32, 0xa0) };
const AAD_KINDS: Record<string, Uint8Array> = { entry: ENTRY_AAD, snapshot: SNAPSHOT_AAD };

/** The pipe between a host and its HSM process: one length-prefixed frame, nothing before or after. */
function unframe(b: Uint8Array): Uint8Array {
  const d = new FrameDecoder();
  const frames = d.push(b);
  if (frames.length !== 1 || d.bufferedBytes !== 0) {
    throw new BkvError(ErrorCode.Malformed, "not exactly one frame");
  }
  return frames[0]!;
}

const sealedEntry = (index: number, seed: number) => ({ index, sealed: pat(44, seed) });

/** A Raft log entry (term 9, unlike any index) after entry `index - 1`; `answer` for one that answers a request. */
function entry(index: number, ops: RaftEntry["ops"], answered = true): RaftEntry {
  const base = { index, term: 9, prevHash: pat(32, index), time: 1_767_225_600_000 + index };
  if (!answered) return { ...base, requestId: new Uint8Array(0), ops };
  return {
    ...base,
    requestId: pat(16, 0x11),
    answer: { digest: pat(32, 0x31), reply: pat(90, 0x41) },
    ops,
  };
}

/**
 * The vault snapshot as plain fields: VaultState keeps maps (keyed by user or by the hex of an id),
 * which JSON cannot hold, so the vectors list them as arrays in the snapshot's own order.
 */
function snapshotFields(s: VaultState): Value {
  return {
    index: s.index,
    term: s.term,
    chainHash: s.chainHash,
    clock: s.clock,
    genesis: s.genesis,
    records: [...s.records].map(([user, r]) => recordFields(user, r)),
    tickets: [...s.tickets].map(([user, t]) => ({ user, ...t })),
    seen: [...s.seen].map(([id, x]) => ({ requestId: Buffer.from(id, "hex"), ...x })),
  };
}

function snapshotState(v: Value): VaultState {
  const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
  const s = new VaultState();
  s.index = v.index;
  s.term = v.term;
  s.chainHash = v.chainHash;
  s.clock = v.clock;
  s.genesis = v.genesis;
  for (const r of v.records) s.records.set(r.user, recordOf(r));
  for (const t of v.tickets) s.tickets.set(t.user, { ticket: t.ticket, expiresAt: t.expiresAt });
  for (const x of v.seen)
    s.seen.set(hex(x.requestId), { forgetAt: x.forgetAt, index: x.index, answer: x.answer });
  return s;
}

/** A record's fields (vault-record vectors, the records of vault-snapshot ones) as the core holds them, and back. */
function recordOf(v: Value): VaultRecord {
  const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
  return {
    credential: v.credential,
    registration: v.registration,
    wrappedKey: v.wrappedKey,
    guessesUsed: v.guessesUsed,
    guessSeq: v.guessSeq,
    pending: new Map<string, Value>(
      v.pending.map((p: Value) => [
        hex(p.sessionId),
        { loginState: p.loginState, expiresAt: p.expiresAt, seq: p.seq },
      ]),
    ),
  };
}

function recordFields(user: string, r: VaultRecord): Value {
  return {
    user,
    credential: r.credential,
    registration: r.registration,
    wrappedKey: r.wrappedKey,
    guessesUsed: r.guessesUsed,
    guessSeq: r.guessSeq,
    pending: [...r.pending].map(([id, p]) => ({ sessionId: Buffer.from(id, "hex"), ...p })),
  };
}

/**
 * A record blob's keys written out here with node:crypto (not through record-codec.ts), so the
 * vectors check the code against the layout the comment there states.
 */
function recordBlobKeys(seed: Uint8Array, user: string): { key: Uint8Array; sealKey: Uint8Array } {
  const hkdf = (info: string) => new Uint8Array(hkdfSync("sha256", seed, "bkv/record-tree/v1", info, 32));
  const key = createHmac("sha256", hkdf("record key secret")).update(`bkv record key v1\0${user}`).digest();
  return { key: new Uint8Array(key), sealKey: hkdf("record seal key") };
}

/**
 * The record tree's hashes written out here with node:crypto (not through record-tree-format.ts),
 * so the proof vectors check the code against the formulas its comment states.
 */
const treeHash = {
  sha: (...parts: Uint8Array[]) => new Uint8Array(createHash("sha256").update(Buffer.concat(parts)).digest()),
  value(key: Uint8Array, record: Uint8Array) {
    return this.sha(utf8("bkv-tree value v1"), key, record);
  },
  bucket(...entries: [Uint8Array, Uint8Array][]) {
    const n = Buffer.alloc(4);
    n.writeUInt32BE(entries.length);
    return this.sha(utf8("bkv-tree bucket v2"), n, ...entries.flat());
  },
  /** prefix: the first ceil(depth / 8) bytes, bits past depth zero. */
  branch(depth: number, prefix: Uint8Array, left: Uint8Array, right: Uint8Array) {
    return this.sha(utf8("bkv-tree branch v2"), Uint8Array.of(depth), prefix, left, right);
  },
  empty() {
    return this.sha(utf8("bkv-tree empty v2"));
  },
};

/** Keys for the proof vectors: first byte b, the rest 0x11. */
const treeKey = (b: number) => {
  const k = pat(32, 0x11);
  k[0] = b;
  return k;
};

/**
 * The record-proof vectors' trees: {A 0x00.., B 0x40.., C 0x80..} has its root branch at depth 0
 * (A and B under a branch at depth 1); {A, B} alone has its root at depth 1; and the empty tree.
 */
function proofTrees() {
  const [A, B, C] = [treeKey(0x00), treeKey(0x40), treeKey(0x80)];
  const [vA, vB, vC] = [A, B, C].map((k, i) => treeHash.value(k, pat(20, 0x30 + i))) as [
    Uint8Array,
    Uint8Array,
    Uint8Array,
  ];
  const bA = treeHash.bucket([A, vA]);
  const bB = treeHash.bucket([B, vB]);
  const bC = treeHash.bucket([C, vC]);
  const ab = treeHash.branch(1, Uint8Array.of(0x00), bA, bB);
  return { A, B, C, vA, vB, vC, bA, bB, bC, ab, abc: treeHash.branch(0, new Uint8Array(0), ab, bC) };
}

/** The genesis of the Raft vectors' fleet (the raft-log-entry and vault-snapshot vectors share it). */
function genesis() {
  return {
    fleetId: pat(16, 0xf0),
    namespace: "example.org/bkv",
    epoch: 2,
    logKey: pat(32, 0x44),
    releaseKey: pat(32, 0x77),
    maxSuccessorGuessLimit: 8,
    witnessPolicy: witnessPolicy(),
    members: [1, 2, 3].map((i) => encodeAttestation(attestation(i))),
    challenges: [pat(32, 1), pat(32, 2), pat(32, 3)],
    measurement: pat(32, 0xa0),
    opaqueServerSetup: "c2VydmVyLXNldHVwLW9mLXRoZS10ZXN0LXZlY3Rvcg",
    hpkePrivateKey: pat(32, 0x50),
    hpkePublicKey: pat(32, 0x55),
    fleetSigningSeed: pat(32, 0x60),
    fleetSigningKey: pat(32, 0x66),
    guessLimit: 10,
    createdAt: 1_767_225_600_000,
  };
}

export const FORMATS: Format[] = [
  {
    name: "request-envelope",
    about: "vault request envelope: magic BKVQ, version, user id (the HPKE associated data), enc, ciphertext",
    source: "packages/wire/src/vault-protocol.ts",
    samples: () => [
      { type: "request-envelope", value: { user: "alice", enc: pat(32, 1), ciphertext: pat(48, 2) } },
    ],
    encode: encodeRequestEnvelope,
    decode: decodeRequestEnvelope,
  },
  {
    name: "response-envelope",
    about: "vault response envelope: magic BKVR, version, nonce, ciphertext",
    source: "packages/wire/src/vault-protocol.ts",
    samples: () => [{ type: "response-envelope", value: { nonce: pat(12, 3), ciphertext: pat(40, 4) } }],
    encode: encodeResponseEnvelope,
    decode: decodeResponseEnvelope,
  },
  {
    name: "vault-request",
    about: "the HPKE plaintext of a vault request: request id, issued-at, operation",
    source: "packages/wire/src/vault-protocol.ts",
    samples: () => {
      const base = { requestId: pat(16, 0x11), issuedAt: 1_767_225_600_123 };
      return [
        {
          type: "register-start",
          value: {
            ...base,
            body: { op: "register-start", registrationRequest: pat(OpaqueSize.registrationRequest, 1) },
          },
        },
        {
          type: "register-finish",
          value: {
            ...base,
            body: {
              op: "register-finish",
              ticket: pat(16, 2),
              registrationRecord: pat(OpaqueSize.registrationRecord, 3),
              wrappedKey: pat(60, 4),
              replace: false,
            },
          },
        },
        {
          type: "recover-start",
          value: { ...base, body: { op: "recover-start", ke1: pat(OpaqueSize.ke1, 5) } },
        },
        {
          type: "recover-finish",
          value: {
            ...base,
            body: { op: "recover-finish", sessionId: pat(16, 6), ke3: pat(OpaqueSize.ke3, 7), action: 0 },
          },
        },
        {
          type: "recover-finish (wrong PIN, delete)",
          value: {
            ...base,
            body: { op: "recover-finish", sessionId: pat(16, 6), ke3: new Uint8Array(0), action: 1 },
          },
        },
      ];
    },
    encode: encodeVaultRequest,
    decode: decodeVaultRequest,
  },
  {
    name: "vault-response",
    about: "the sealed plaintext of a vault response: result tag and its fields, or an error",
    source: "packages/wire/src/vault-protocol.ts",
    samples: () => [
      {
        type: "register-start",
        value: {
          ok: "register-start",
          registrationResponse: pat(OpaqueSize.registrationResponse, 1),
          ticket: pat(16, 2),
        },
      },
      { type: "register-finish", value: { ok: "register-finish", guessesAllowed: 10 } },
      {
        type: "recover-start",
        value: {
          ok: "recover-start",
          sessionId: pat(16, 3),
          ke2: pat(OpaqueSize.ke2, 4),
          guessesRemaining: 9,
        },
      },
      { type: "recover-finish", value: { ok: "recover-finish", wrappedKey: pat(60, 5), guessesAllowed: 10 } },
      { type: "error", value: { error: "WRONG_PIN", guessesRemaining: 3, message: "wrong PIN" } },
    ],
    encode: encodeVaultResult,
    decode: decodeVaultResult,
  },
  {
    name: "raft-message",
    about: "messages between HSMs inside the peer channel: Raft append/vote/snapshot, request forwarding",
    source: "packages/hsm-core/src/raft-messages.ts",
    samples: () => [
      {
        type: "app",
        value: {
          type: "app",
          term: 4,
          prevIndex: 10,
          prevTerm: 3,
          prevHash: pat(32, 1),
          entries: [
            { index: 11, term: 4, bytes: pat(20, 2) },
            { index: 12, term: 4, bytes: pat(5, 3) },
          ],
          commit: 9,
        },
      },
      { type: "app-resp", value: { type: "app-resp", term: 4, success: true, index: 12, hint: 0 } },
      { type: "app-resp (reject)", value: { type: "app-resp", term: 4, success: false, index: 10, hint: 8 } },
      { type: "vote", value: { type: "vote", term: 5, lastIndex: 12, lastTerm: 4, pre: true } },
      { type: "vote-resp", value: { type: "vote-resp", term: 5, granted: true, pre: false } },
      {
        type: "snap",
        value: {
          type: "snap",
          term: 5,
          index: 4000,
          snapTerm: 4,
          hash: pat(32, 4),
          state: pat(24, 5),
          commit: 4001,
        },
      },
      { type: "fwd", value: { type: "fwd", id: 77, envelope: pat(30, 6) } },
      { type: "fwd-resp", value: { type: "fwd-resp", id: 77, ok: true, envelope: pat(30, 7) } },
      {
        type: "fwd-resp (error)",
        value: { type: "fwd-resp", id: 78, ok: false, code: "UNAVAILABLE", message: "no leader" },
      },
    ],
    encode: encodePeerMessage,
    decode: decodePeerMessage,
  },
  {
    name: "peer-channel-frame",
    about:
      "the authenticated peer channel: header (magic BKVP, version, kind, from, to, receiver epoch, sender epoch, counter) and AES-256-GCM under the per-direction key; member 1 (epoch 7) to member 2 (epoch 3), first frame of member 1's boot",
    source: "packages/hsm-core/src/peer-channel.ts",
    samples: () => [
      { type: "hello", value: { from: 1, epoch: 7, plaintext: null } },
      { type: "message", value: { from: 1, epoch: 7, plaintext: pat(21, 8) } },
    ],
    async encode(v) {
      const a = channel(v.from, 2);
      if (v.plaintext === null) return a.hello(2);
      // Member 1 learns member 2's boot epoch from its hello, then seals its first frame.
      const heard = await a.open(await channel(2, v.from).hello(v.from));
      if (heard === null) throw new Error("hello not accepted");
      const sealed = await a.seal(2, v.plaintext);
      if (sealed === null) throw new Error("no peer epoch");
      return sealed;
    },
    async decode(b) {
      const opened = await channel(2, 1).open(b);
      if (opened === null) throw new BkvError(ErrorCode.Malformed, "peer frame refused");
      return opened;
    },
  },
  {
    name: "nvram",
    about:
      "the HSM's NVRAM record: magic BKVN, version, term, vote, boot epoch, durable tip, recover tip, ceremony",
    source: "packages/hsm-core/src/nvram.ts",
    samples: () => [
      {
        type: "no recover tip",
        value: {
          term: 3,
          vote: 2,
          epoch: 9,
          tip: { index: 120, term: 3, hash: pat(32, 1) },
          recover: null,
          ceremony: { role: "creator", fleetId: pat(16, 0xf0) },
        },
      },
      {
        type: "recovering",
        value: {
          term: 4,
          vote: 0,
          epoch: 10,
          tip: { index: 100, term: 3, hash: pat(32, 2) },
          recover: { index: 120, term: 3, hash: pat(32, 1) },
          ceremony: { role: "joiner", fleetId: pat(16, 0xf0) },
        },
      },
    ],
    encode: encodeNvram,
    decode: decodeNvram,
  },
  {
    name: "attestation",
    about:
      "an HSM's attested identity (software/PKCS#11 kind): domain, platform, vendor, keys, measurement, properties, vendor signature",
    source: "packages/wire/src/attestation.ts",
    samples: () => [
      { type: "software", value: attestation(1) },
      { type: "pkcs11", value: attestation(2) },
    ],
    encode: encodeAttestation,
    decode: decodeAttestation,
  },
  {
    name: "genesis-statement",
    about: "the genesis statement every member signs, and the fleet evidence (statement and signatures)",
    source: "packages/wire/src/genesis-statement.ts",
    samples: () => [{ type: "statement", value: statement() }],
    encode: encodeStatement,
    decode: decodeStatement,
  },
  {
    name: "fleet-evidence",
    about: "the fleet's evidence: domain, the encoded genesis statement, every member's signature",
    source: "packages/wire/src/genesis-statement.ts",
    samples: () => [
      {
        type: "evidence",
        value: { statement: encodeStatement(statement()), signatures: [pat(64, 1), pat(64, 2), pat(64, 3)] },
      },
    ],
    encode: encodeEvidence,
    decode: decodeEvidence,
  },
  {
    name: "fleet-artifact",
    about:
      "what a validation bundle vouches for: namespace, epoch, fleet id, keys, members, measurement, policy, validity",
    source: "packages/wire/src/fleet-artifact.ts",
    samples: () => [{ type: "artifact", value: artifact() }],
    encode: encodeArtifact,
    decode: decodeArtifact,
  },
  {
    name: "validation-bundle-messages",
    about:
      "the signed messages of a validation bundle: the log's bundle signature (wire and tlog build the same bytes) and the fleet's counter-signature",
    source: "packages/wire/src/fleet-artifact.ts, packages/tlog/src/bundle.ts",
    samples: () => [
      {
        type: "log bundle message",
        value: { namespace: "example.org/bkv", epoch: 2, artifactDigest: pat(32, 1) },
      },
      {
        type: "countersign message",
        value: {
          namespace: "example.org/bkv",
          epoch: 2,
          artifactDigest: pat(32, 1),
          logSignature: pat(64, 2),
        },
      },
    ],
    encode(v) {
      if (v.logSignature !== undefined) return countersignMessage(v);
      const wire = logBundleMessage(v.namespace, v.epoch, v.artifactDigest);
      const tlog = bundleSignedMessage(v.namespace, v.epoch, v.artifactDigest);
      if (Buffer.compare(wire, tlog) !== 0) throw new Error("wire and tlog build different bundle messages");
      return wire;
    },
  },
  {
    name: "log-entry",
    about: "the transparency log's leaf entry: magic, namespace, epoch, artifact, SHA-256 of the evidence",
    source: "packages/wire/src/tlog-log-entry.ts",
    samples: () => [
      {
        type: "fleet entry",
        value: {
          namespace: "example.org/bkv",
          epoch: 2,
          artifact: encodeArtifact(artifact()),
          evidenceDigest: pat(32, 9),
        },
      },
    ],
    encode: encodeLogEntry,
    decode: decodeLogEntry,
  },
  {
    name: "release",
    about: "a signed release entry: measurement, source revision, build recipe, release key signature",
    source: "packages/wire/src/release.ts",
    samples: () => [
      {
        type: "release",
        value: {
          namespace: "example.org/bkv-releases",
          epoch: 1,
          measurement: pat(32, 0xa0),
          sourceRevision: "0123456789abcdef0123456789abcdef01234567",
          buildRecipe: "npm ci && npm run build",
          time: 1_767_225_600_000,
          signature: pat(64, 0x31),
        },
      },
    ],
    encode: encodeSignedRelease,
    decode: decodeSignedRelease,
  },
  {
    name: "handover",
    about:
      "the handover statement the old fleet signs naming its successor: namespace, both epochs and fleet ids, the successor's evidence digest, the checkpoint it was found in, time, fleet signature",
    source: "packages/wire/src/handover.ts",
    samples: () => [
      {
        type: "signed handover",
        value: {
          namespace: "example.org/bkv",
          epoch: 2,
          fleetId: pat(16, 0xf0),
          successorEpoch: 3,
          successorFleetId: pat(16, 0xe0),
          successorEvidenceDigest: pat(32, 0x90),
          checkpointSize: 4711,
          checkpointRoot: pat(32, 0xc0),
          time: 1_767_225_600_000,
          signature: pat(64, 0x32),
        },
      },
    ],
    encode: encodeSignedHandover,
    decode: decodeSignedHandover,
  },
  {
    name: "backup-header",
    about: "the backup file header: magic BKVB, version, key id, salt, chunk size",
    source: "packages/client/src/backup/format.ts",
    samples: () => [
      { type: "header", value: { version: 1, keyId: pat(8, 1), salt: pat(32, 2), chunkSize: 65536 } },
    ],
    encode: encodeHeader,
    decode: decodeHeader,
  },
  {
    name: "backup-file",
    about:
      "a whole backup file (header, then STREAM chunks: type, final length, AES-256-GCM under HKDF(K, salt)) of 1500 bytes in 1024-byte chunks; context: the backup key",
    source: "packages/client/src/backup/format.ts",
    samples: () => [
      {
        type: "two chunks",
        context: { key: BACKUP_KEY },
        // The key id is the backup key's (key.ts); the decoder checks it before anything else.
        value: {
          header: { version: 1, keyId: new Uint8Array(8), salt: pat(32, 2), chunkSize: 1024 },
          plaintext: pat(1500, 5, 3),
        },
      },
    ],
    encode: (v, ctx) => encryptBackup(v, ctx.key),
    async decode(b, ctx) {
      const plaintext = await decryptBytes(ctx.key, b);
      return { header: decodeHeader(b.subarray(0, 49)), plaintext };
    },
  },
  {
    name: "sealed-record",
    about:
      "a sealed storage record of the software platform: nonce (12) and AES-256-GCM under the seal key for the measurement, bound to (kind, index); the plaintext is opaque here; context: the master seal secret, the measurement, the kind and index asked for",
    source: "packages/hsm-software/src/soft-identity.ts, packages/hsm-core/src/host-storage.ts",
    samples: () => [
      {
        type: "entry",
        context: { ...SEAL, kind: "entry", index: 42 },
        value: { nonce: pat(12, 1), plaintext: pat(33, 2) },
      },
      {
        type: "snapshot",
        context: { ...SEAL, kind: "snapshot", index: 4000 },
        value: { nonce: pat(12, 3), plaintext: pat(17, 4) },
      },
    ],
    encode(v, ctx) {
      const aad = aadFor(AAD_KINDS[ctx.kind]!, ctx.index);
      return Buffer.concat([
        v.nonce,
        aes256GcmSeal(sealKeyFor(ctx.masterSecret, ctx.measurement), v.nonce, v.plaintext, aad),
      ]);
    },
    async decode(b, ctx) {
      const aad = aadFor(AAD_KINDS[ctx.kind]!, ctx.index);
      const plaintext = await softSeal(ctx.masterSecret, ctx.measurement).unseal(b, aad);
      return { nonce: b.slice(0, 12), plaintext };
    },
  },
  {
    name: "host-to-hsm-frame",
    about:
      "a frame from the host to its HSM process on the pipe between them: u32 length, type tag, the type's fields (wire/src/framing.ts, then hsm-api.ts)",
    source: "packages/wire/src/hsm-api.ts, packages/wire/src/framing.ts",
    samples: () => [
      {
        type: "boot",
        value: {
          type: "boot",
          snapshot: sealedEntry(4000, 1),
          entries: [sealedEntry(4001, 2), sealedEntry(4002, 3)],
        },
      },
      { type: "boot (nothing stored)", value: { type: "boot", snapshot: null, entries: [] } },
      { type: "client", value: { type: "client", tag: 513, envelope: pat(70, 4) } },
      { type: "persisted", value: { type: "persisted", id: 66051 } },
      { type: "status", value: { type: "status" } },
      { type: "stats", value: { type: "stats" } },
      { type: "tick", value: { type: "tick", ticks: 1 } },
      { type: "tick (several held back)", value: { type: "tick", ticks: 66051 } },
      { type: "peer", value: { type: "peer", from: 2, bytes: pat(40, 5) } },
      {
        type: "genesis-create",
        value: {
          type: "genesis-create",
          members: [1, 2, 3].map((i) => encodeAttestation(attestation(i))),
          challenges: [pat(32, 1), pat(32, 2), pat(32, 3)],
          guessLimit: 10,
          namespace: "example.org/bkv",
          epoch: 2,
          logKey: pat(32, 0x44),
          releaseKey: pat(32, 0x77),
          maxSuccessorGuessLimit: 8,
          witnessPolicy: witnessPolicy(),
        },
      },
      { type: "genesis-join", value: { type: "genesis-join", package: pat(120, 6), statement: pat(80, 7) } },
      {
        type: "genesis-finish",
        value: { type: "genesis-finish", signatures: [pat(64, 1), pat(64, 2), pat(64, 3)] },
      },
      {
        type: "countersign",
        value: { type: "countersign", tag: 9, artifact: pat(100, 8), logSignature: pat(64, 9) },
      },
    ],
    encode: (v) => frame(encodeHostToHsm(v)),
    decode: (b) => decodeHostToHsm(unframe(b)),
  },
  {
    name: "hsm-to-host-frame",
    about:
      "a frame from the HSM process to its host on the pipe between them: u32 length, type tag, the type's fields (wire/src/framing.ts, then hsm-api.ts)",
    source: "packages/wire/src/hsm-api.ts, packages/wire/src/framing.ts",
    samples: () => [
      {
        type: "booted (uninitialized)",
        value: {
          type: "booted",
          identity: encodeAttestation(attestation(1)),
          node: 0,
          fleetId: new Uint8Array(0),
          vaultPublicKey: new Uint8Array(0),
          guessesAllowed: 0,
          recovering: false,
          challenge: pat(32, 1),
        },
      },
      {
        type: "booted (member, recovering)",
        value: {
          type: "booted",
          identity: encodeAttestation(attestation(2)),
          node: 2,
          fleetId: pat(16, 0xf0),
          vaultPublicKey: pat(32, 0x55),
          guessesAllowed: 10,
          recovering: true,
          challenge: new Uint8Array(0),
        },
      },
      {
        type: "failed",
        value: { type: "failed", code: "CORRUPT", message: "sealed entry 42 does not open" },
      },
      {
        type: "persist",
        value: {
          type: "persist",
          id: 7,
          entries: [sealedEntry(4001, 2), sealedEntry(4002, 3)],
          snapshot: null,
          truncateFrom: null,
        },
      },
      {
        type: "persist (snapshot, truncate)",
        value: { type: "persist", id: 8, entries: [], snapshot: sealedEntry(4000, 1), truncateFrom: 3990 },
      },
      { type: "reply", value: { type: "reply", tag: 513, ok: true, envelope: pat(60, 4) } },
      {
        type: "reply (rejected)",
        value: { type: "reply", tag: 514, ok: false, code: "UNAVAILABLE", message: "no leader" },
      },
      {
        type: "status",
        value: {
          type: "status",
          node: 2,
          role: "follower",
          term: 5,
          leader: 1,
          commitIndex: 4002,
          durableIndex: 4001,
          recovering: true,
          recoverUntil: 4100,
          peerForged: 3,
          peerReplayed: 4,
          framesRejected: 5,
        },
      },
      {
        type: "stats",
        value: {
          type: "stats",
          guessesStarted: 11,
          guessesWrong: 6,
          guessesRight: 4,
          recordsDestroyed: 1,
          nvramWrites: 300,
          nvramWriteMs: 912,
          nvramWriteBuckets: NVRAM_WRITE_BUCKETS_MS.map((_, i) => i + 1).concat([0]),
          lastIndex: 4002,
          peers: [
            { node: 2, match: 4001 },
            { node: 3, match: 3999 },
          ],
        },
      },
      { type: "peer", value: { type: "peer", to: 3, bytes: pat(40, 5) } },
      { type: "wake", value: { type: "wake", tick: 4100 } },
      {
        type: "genesis-packages",
        value: {
          type: "genesis-packages",
          statement: pat(80, 7),
          packages: [pat(120, 1), pat(120, 2), pat(120, 3)],
        },
      },
      { type: "genesis-signature", value: { type: "genesis-signature", signature: pat(64, 2) } },
      {
        type: "countersignature",
        value: { type: "countersignature", tag: 9, ok: true, signature: pat(64, 3) },
      },
      {
        type: "countersignature (refused)",
        value: {
          type: "countersignature",
          tag: 10,
          ok: false,
          code: "INVALID",
          message: "not our namespace",
        },
      },
    ],
    encode: (v) => frame(encodeHsmToHost(v)),
    decode: (b) => decodeHsmToHost(unframe(b)),
  },
  {
    name: "raft-log-entry",
    about:
      "an entry of the HSMs' replicated log (the plaintext sealed before it leaves the HSM): index, term, previous hash, time, request id, answer, ops",
    source: "packages/hsm-core/src/raft-entry.ts",
    samples: () => [
      {
        type: "genesis",
        value: entry(
          1,
          [
            {
              op: "genesis",
              genesis: genesis(),
            },
          ],
          false,
        ),
      },
      { type: "no-op (a new leader's first entry)", value: entry(2, [], false) },
      {
        type: "ticket (register-start)",
        value: entry(3, [{ op: "ticket", user: "alice", ticket: pat(16, 2), expiresAt: 1_767_225_660_000 }]),
      },
      {
        type: "put-record (register-finish)",
        value: entry(4, [
          {
            op: "put-record",
            user: "alice",
            credential: pat(16, 2),
            registration: pat(OpaqueSize.registrationRecord, 3),
            wrappedKey: pat(60, 4),
          },
        ]),
      },
      {
        type: "guess (recover-start)",
        value: entry(5, [
          {
            op: "guess",
            user: "alice",
            sessionId: pat(16, 6),
            loginState: "bG9naW4tc3RhdGU",
            expiresAt: 1_767_225_660_005,
          },
        ]),
      },
      { type: "login-ok", value: entry(6, [{ op: "login-ok", user: "alice", sessionId: pat(16, 6) }]) },
      {
        type: "drop-expired, login-failed, destroy (the last guess wrong)",
        value: entry(7, [
          { op: "drop-expired", user: "bob" },
          { op: "login-failed", user: "bob", sessionId: pat(16, 7) },
          { op: "destroy", user: "bob" },
        ]),
      },
    ],
    encode: encodeRaftEntry,
    decode: decodeRaftEntry,
  },
  {
    name: "vault-snapshot",
    about:
      "the HSM's committed vault state (the plaintext sealed into the host's storage every few thousand entries and sent to a lagging peer): index, term, chain hash, clock, genesis, records in user order, tickets, replay cache",
    source: "packages/hsm-core/src/state.ts",
    samples: () => [
      {
        type: "before genesis",
        value: {
          index: 0,
          term: 0,
          chainHash: new Uint8Array(32),
          clock: 0,
          genesis: null,
          records: [],
          tickets: [],
          seen: [],
        },
      },
      {
        type: "records, a pending login, a ticket, answered and unanswered requests",
        value: {
          index: 7,
          term: 9,
          chainHash: pat(32, 0x70),
          clock: 1_767_225_600_007,
          genesis: genesis(),
          records: [
            {
              user: "alice",
              credential: pat(16, 2),
              registration: pat(OpaqueSize.registrationRecord, 3),
              wrappedKey: pat(60, 4),
              guessesUsed: 1,
              guessSeq: 3,
              pending: [
                {
                  sessionId: pat(16, 6),
                  loginState: "bG9naW4tc3RhdGU",
                  expiresAt: 1_767_225_660_005,
                  seq: 3,
                },
              ],
            },
            {
              user: "bob",
              credential: pat(16, 8),
              registration: pat(OpaqueSize.registrationRecord, 9),
              wrappedKey: pat(60, 10),
              guessesUsed: 0,
              guessSeq: 0,
              pending: [],
            },
          ],
          tickets: [{ user: "carol", ticket: pat(16, 12), expiresAt: 1_767_225_660_003 }],
          seen: [
            {
              requestId: pat(16, 0x11),
              forgetAt: 1_767_226_200_004,
              index: 4,
              answer: { digest: pat(32, 0x31), reply: pat(90, 0x41) },
            },
            { requestId: pat(16, 0x21), forgetAt: 1_767_226_200_006, index: 6 },
          ],
        },
      },
    ],
    encode: (v) => snapshotState(v).encode(),
    decode: (b) => snapshotFields(VaultState.decode(b)),
  },
  {
    name: "vault-record",
    about:
      "one user's record, as a vault snapshot holds it and as a record blob seals it: user, credential id, OPAQUE registration record, wrapped key, guesses used, guess sequence, the logins in progress in ascending guess number",
    source: "packages/hsm-core/src/record-codec.ts",
    samples: () => [
      {
        type: "no login in progress",
        value: {
          user: "bob",
          credential: pat(16, 8),
          registration: pat(OpaqueSize.registrationRecord, 9),
          wrappedKey: pat(60, 10),
          guessesUsed: 0,
          guessSeq: 0,
          pending: [],
        },
      },
      {
        type: "two logins in progress",
        value: {
          user: "alice",
          credential: pat(16, 2),
          registration: pat(OpaqueSize.registrationRecord, 3),
          wrappedKey: pat(60, 4),
          guessesUsed: 2,
          guessSeq: 5,
          pending: [
            { sessionId: pat(16, 6), loginState: "bG9naW4tc3RhdGU", expiresAt: 1_767_225_660_004, seq: 4 },
            { sessionId: pat(16, 7), loginState: "c2Vjb25kLXN0YXRl", expiresAt: 1_767_225_660_005, seq: 5 },
          ],
        },
      },
    ],
    encode: (v) => encodeRecord(v.user, recordOf(v)),
    decode: (b) => {
      const { user, record } = decodeRecord(b);
      return recordFields(user, record);
    },
  },
  {
    name: "record-blob",
    about:
      'a record as the host stores it in the record tree: nonce (12) and AES-256-GCM of the vault-record bytes under the fleet\'s record seal key (HKDF-SHA256 of the fleet seed, salt bkv/record-tree/v1, info "record seal key"), associated data "bkv record blob v1" || the record key (HMAC-SHA256 under the HKDF "record key secret" of "bkv record key v1" 0x00 user); context: the fleet seed and the user',
    source: "packages/hsm-core/src/record-codec.ts, packages/hsm-core/src/record-tree.ts",
    samples: () => [
      {
        type: "record blob",
        context: { seed: pat(32, 0x60), user: "alice" },
        value: { nonce: pat(12, 0x21), plaintext: pat(48, 0x31) },
      },
    ],
    encode(v, ctx) {
      const { key, sealKey } = recordBlobKeys(ctx.seed, ctx.user);
      const aad = Buffer.concat([utf8("bkv record blob v1"), key]);
      return Buffer.concat([v.nonce, aes256GcmSeal(sealKey, v.nonce, v.plaintext, aad)]);
    },
    async decode(b, ctx) {
      const { key } = recordBlobKeys(ctx.seed, ctx.user);
      const plaintext = await openRecord(
        nodeHsmCrypto(),
        recordSecretsFromSeed(nodeHsmCrypto(), ctx.seed),
        key,
        b,
      );
      return { nonce: b.slice(0, 12), plaintext };
    },
  },
  {
    name: "record-proof",
    about:
      "a proof of one record key in the record tree, presence or absence: u8 n, n x (u8 branch depth, 32-byte hash of the child the key does not go to), depths ascending; then where the path ends: 0 (the empty tree), 1 u8 m then m x (key, value hash) (a bucket: the key's own without it, or another prefix's), 2 u8 depth, prefix, left, right (a branch the key is not under); context: the key, its value hash (none: absence) and the root the proof must reach",
    source: "packages/wire/src/record-tree-format.ts, packages/hsm-core/src/record-tree.ts",
    samples: () => {
      const t = proofTrees();
      return [
        {
          type: "a stored record (B) alone in its bucket",
          context: { key: t.B, valueHash: t.vB, root: t.abc },
          value: {
            path: [
              { depth: 0, sibling: t.bC },
              { depth: 1, sibling: t.bA },
            ],
            end: { kind: "bucket", entries: [] },
          },
        },
        {
          type: "absence: the path ends at another prefix's bucket (B's)",
          context: { key: treeKey(0x60), root: t.abc },
          value: {
            path: [
              { depth: 0, sibling: t.bC },
              { depth: 1, sibling: t.bA },
            ],
            end: { kind: "bucket", entries: [{ key: t.B, valueHash: t.vB }] },
          },
        },
        {
          type: "absence: the path ends at a branch the key is not under",
          context: { key: treeKey(0x80), root: t.ab },
          value: {
            path: [],
            end: { kind: "branch", depth: 1, prefix: Uint8Array.of(0x00), left: t.bA, right: t.bB },
          },
        },
        {
          type: "absence: the empty tree",
          context: { key: treeKey(0x80), root: treeHash.empty() },
          value: { path: [], end: { kind: "empty" } },
        },
      ];
    },
    encode: (v) => encodeRecordProof(v as unknown as RecordProof),
    decode(b, ctx) {
      const c = ctx as { key: Uint8Array; valueHash?: Uint8Array; root: Uint8Array };
      new RecordTree(nodeHsmCrypto().sha256).verify(c.root, c.key, c.valueHash ?? null, b);
      return decodeRecordProof(b) as unknown as Value;
    },
  },
];

/** Values to JSON: bytes as {"hex": "..."}, the rest as it is. */
export function toJson(v: Value): Json {
  if (v instanceof Uint8Array) return { hex: Buffer.from(v).toString("hex") };
  if (Array.isArray(v)) return v.map(toJson);
  if (v !== null && typeof v === "object") {
    const out: { [k: string]: Json } = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = toJson(x);
    return out;
  }
  return v as Json;
}

export function fromJson(j: Json): Value {
  if (Array.isArray(j)) return j.map(fromJson);
  if (j !== null && typeof j === "object") {
    const keys = Object.keys(j);
    if (keys.length === 1 && keys[0] === "hex" && typeof j.hex === "string") {
      return new Uint8Array(Buffer.from(j.hex, "hex"));
    }
    const out: { [k: string]: Value } = {};
    for (const [k, x] of Object.entries(j)) out[k] = fromJson(x);
    return out;
  }
  return j;
}

export interface Vector {
  type: string;
  context?: Json;
  hex: string;
  fields: Json;
}

export interface VectorFile {
  format: string;
  about: string;
  source: string;
  vectors: Vector[];
}

/** The vector file of a format, from its samples: each encoded, and (if decodable) decoded back. */
export async function makeVectorFile(f: Format): Promise<VectorFile> {
  const vectors: Vector[] = [];
  for (const s of f.samples()) {
    let value = s.value;
    if (f.name === "backup-file") {
      // The key id is derived from the key; fill it in so the sample is a backup the key opens.
      const { backupKeyId } = await import("@bkv/client");
      value = { ...value, header: { ...value.header, keyId: await backupKeyId(s.context.key) } };
    }
    const bytes = await f.encode(value, s.context);
    const fields = f.decode ? await f.decode(bytes, s.context) : value;
    vectors.push({
      type: s.type,
      ...(s.context !== undefined ? { context: toJson(s.context) } : {}),
      hex: Buffer.from(bytes).toString("hex"),
      fields: toJson(fields),
    });
  }
  return { format: f.name, about: f.about, source: f.source, vectors };
}
