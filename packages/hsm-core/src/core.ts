/**
 * The HSM core: a state machine driven by frames of the HSM API (packages/wire/src/hsm-api.ts).
 * It opens client requests, decides them (vault.ts), appends the decision to its hash-chained log,
 * hands the sealed entries to the host to store, and releases a client's reply only once the host
 * has confirmed the entry durable and the core has recorded the new commit point in NVRAM.
 *
 * The host is untrusted: every frame is decoded strictly; sealed blobs are authenticated; the NVRAM
 * commit point catches a host that boots the HSM from an old copy of its storage (ROLLBACK).
 */

import {
  BkvError,
  bytesEqual,
  decodeHostToHsm,
  decodeRequestEnvelope,
  decodeVaultRequest,
  ErrorCode,
  encodeHsmToHost,
  encodeResponseEnvelope,
  encodeVaultResult,
  envelopeHeader,
  HPKE_INFO,
  type HsmToHost,
  RESPONSE_EXPORT_CONTEXT,
  Reader,
  type SealedEntry,
  utf8,
  type VaultResult,
  Writer,
} from "@bkv/wire";
import * as opaque from "@serenity-kit/opaque";
import { decodeEntry, type Entry, type EntryBody, encodeEntry } from "./log-entry.js";
import { decodeNvram, encodeNvram } from "./nvram.js";
import type { HsmPlatform } from "./platform.js";
import { MAX_GUESS_LIMIT, SNAPSHOT_EVERY } from "./policy.js";
import { VaultState } from "./state.js";
import { decide } from "./vault.js";

type Phase = "new" | "genesis" | "serving" | "failed";

interface Unpersisted {
  index: number;
  bytes: Uint8Array;
}

const ENTRY_AAD = utf8("bkv log entry v1");
const SNAPSHOT_AAD = utf8("bkv snapshot v1");

function aadFor(kind: Uint8Array, index: number): Uint8Array {
  return new Writer().fixed(kind).u64(index).finish();
}

export interface CoreOptions {
  /** Entries between snapshots (default SNAPSHOT_EVERY). */
  snapshotEvery?: number;
}

export interface CoreCounters {
  framesRejected: number;
  requestsOpened: number;
  requestsRejected: number;
  entriesCommitted: number;
}

export class HsmCore {
  private phase: Phase = "new";
  private state = new VaultState();
  private lastNow = 0;
  private unpersisted: Unpersisted[] = [];
  private inFlight: { lastIndex: number; lastHash: Uint8Array } | null = null;
  private committedIndex = 0;
  private committedHash: Uint8Array = new Uint8Array(32);
  private lastSnapshotIndex = 0;
  private waiters: { index: number; resolve: () => void }[] = [];
  readonly counters: CoreCounters = {
    framesRejected: 0,
    requestsOpened: 0,
    requestsRejected: 0,
    entriesCommitted: 0,
  };

  private constructor(
    private readonly platform: HsmPlatform,
    private readonly emit: (frame: Uint8Array) => void,
    private readonly options: CoreOptions,
  ) {}

  static async create(
    platform: HsmPlatform,
    emit: (frame: Uint8Array) => void,
    options: CoreOptions = {},
  ): Promise<HsmCore> {
    await opaque.ready;
    return new HsmCore(platform, emit, options);
  }

  private send(m: HsmToHost): void {
    this.emit(encodeHsmToHost(m));
  }

  private now(): number {
    this.lastNow = Math.max(this.lastNow, this.state.clock, this.platform.now());
    return this.lastNow;
  }

  /** Handle one frame from the host. Never throws: errors become frames. */
  async receive(frameBytes: Uint8Array): Promise<void> {
    let m: ReturnType<typeof decodeHostToHsm>;
    try {
      m = decodeHostToHsm(frameBytes);
    } catch {
      this.counters.framesRejected++;
      return;
    }
    switch (m.type) {
      case "boot":
        if (this.phase !== "new") {
          this.counters.framesRejected++;
          return;
        }
        await this.boot(m.snapshot, m.entries, m.guessLimit);
        return;
      case "client":
        await this.client(m.tag, m.envelope);
        return;
      case "persisted":
        await this.persisted(m.index);
        return;
      case "status":
        this.send({
          type: "status",
          booted: this.phase === "serving",
          commitIndex: this.committedIndex,
          pendingEntries: this.unpersisted.length,
        });
        return;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Boot: rebuild the state from host storage and check it against NVRAM.

  private fail(code: string, message: string): void {
    this.phase = "failed";
    this.send({ type: "failed", code, message });
  }

  private async boot(
    snapshot: SealedEntry | null,
    entries: SealedEntry[],
    guessLimit: number,
  ): Promise<void> {
    const crypto = this.platform.crypto;
    let nv: ReturnType<typeof decodeNvram> | null;
    try {
      const raw = await this.platform.nvramRead();
      nv = raw === null ? null : decodeNvram(raw);
    } catch (e) {
      this.fail(ErrorCode.Corrupt, `NVRAM unreadable: ${(e as Error).message}`);
      return;
    }
    let base: { index: number; hash: Uint8Array } | null = null;
    const hashes = new Map<number, Uint8Array>();
    try {
      if (snapshot !== null) {
        const plain = await this.platform.unseal(snapshot.sealed, aadFor(SNAPSHOT_AAD, snapshot.index));
        const r = new Reader(plain, "snapshot");
        base = { index: r.u64("base index"), hash: r.fixed(32, "base hash") };
        this.state = VaultState.decode(r.bytes("state", 1 << 30));
        r.end();
        if (this.state.index !== snapshot.index)
          throw new BkvError(ErrorCode.Corrupt, "snapshot index mismatch");
        hashes.set(this.state.index, this.state.chainHash);
        hashes.set(base.index, base.hash);
      }
      for (const se of entries) {
        const bytes = await this.platform.unseal(se.sealed, aadFor(ENTRY_AAD, se.index));
        const entry = decodeEntry(bytes);
        if (entry.index !== se.index || entry.index !== this.state.index + 1) {
          throw new BkvError(ErrorCode.Corrupt, `host storage has a gap or disorder at entry ${se.index}`);
        }
        if (!bytesEqual(entry.prevHash, this.state.chainHash)) {
          throw new BkvError(ErrorCode.Corrupt, `entry ${entry.index} does not chain to the entry before it`);
        }
        const hash = crypto.sha256(bytes);
        this.state.apply(entry, hash);
        hashes.set(entry.index, hash);
      }
    } catch (e) {
      const msg = e instanceof BkvError ? e.message : "a sealed blob failed authentication";
      this.fail(ErrorCode.Corrupt, `host storage rejected: ${msg}`);
      return;
    }

    if (nv === null) {
      if (this.state.index > 0) {
        this.fail(
          ErrorCode.Corrupt,
          "NVRAM is empty but host storage holds a log: refusing storage this HSM cannot vouch for",
        );
        return;
      }
      await this.genesis(guessLimit);
      return;
    }
    if (this.state.index < nv.commitIndex) {
      this.fail(
        ErrorCode.Rollback,
        `host storage ends at entry ${this.state.index} but entry ${nv.commitIndex} was committed: old storage was restored`,
      );
      return;
    }
    const h = hashes.get(nv.commitIndex);
    if (h === undefined || !bytesEqual(h, nv.chainHash)) {
      this.fail(ErrorCode.Rollback, `host storage does not contain the committed entry ${nv.commitIndex}`);
      return;
    }
    if (this.state.genesis === null) {
      this.fail(ErrorCode.Corrupt, "host storage has no genesis");
      return;
    }
    // Entries past the NVRAM commit point were stored but never acknowledged to anyone; they came
    // from this HSM, in order, so they are committed now.
    await this.commit(this.state.index, this.state.chainHash);
    this.lastSnapshotIndex = snapshot?.index ?? 0;
    this.phase = "serving";
    this.sendBooted();
  }

  private sendBooted(): void {
    const g = this.state.genesis!;
    this.send({
      type: "booted",
      commitIndex: this.committedIndex,
      vaultPublicKey: g.hpkePublicKey,
      guessesAllowed: g.guessLimit,
    });
  }

  private async genesis(guessLimit: number): Promise<void> {
    if (!Number.isInteger(guessLimit) || guessLimit < 1 || guessLimit > MAX_GUESS_LIMIT) {
      this.fail(ErrorCode.Invalid, `guess limit must be 1 to ${MAX_GUESS_LIMIT}`);
      return;
    }
    const kp = await this.platform.crypto.hpkeGenerateKeyPair();
    const now = this.now();
    this.phase = "genesis";
    const index = this.append({
      time: now,
      requestId: new Uint8Array(0),
      ops: [
        {
          op: "genesis",
          genesis: {
            opaqueServerSetup: opaque.server.createSetup(),
            hpkePrivateKey: kp.privateKey,
            hpkePublicKey: kp.publicKey,
            guessLimit,
            createdAt: now,
          },
        },
      ],
    });
    void this.committed(index).then(() => {
      this.phase = "serving";
      this.sendBooted();
    });
    await this.flush();
  }

  // -------------------------------------------------------------------------------------------
  // The log: append (speculatively applied), flush to the host, commit on its acknowledgement.

  private append(body: EntryBody): number {
    const entry: Entry = { ...body, index: this.state.index + 1, prevHash: this.state.chainHash };
    const bytes = encodeEntry(entry);
    this.state.apply(entry, this.platform.crypto.sha256(bytes));
    this.unpersisted.push({ index: entry.index, bytes });
    return entry.index;
  }

  private async flush(): Promise<void> {
    if (this.inFlight !== null || this.unpersisted.length === 0) return;
    const batch = this.unpersisted;
    this.unpersisted = [];
    this.inFlight = { lastIndex: this.state.index, lastHash: this.state.chainHash };
    let snapshotPlain: Uint8Array | null = null;
    if (this.state.index - this.lastSnapshotIndex >= (this.options.snapshotEvery ?? SNAPSHOT_EVERY)) {
      snapshotPlain = new Writer()
        .u64(this.committedIndex)
        .fixed(this.committedHash)
        .bytes(this.state.encode())
        .finish();
      this.lastSnapshotIndex = this.state.index;
    }
    const sealed: SealedEntry[] = [];
    for (const u of batch) {
      sealed.push({ index: u.index, sealed: await this.platform.seal(u.bytes, aadFor(ENTRY_AAD, u.index)) });
    }
    const snapshot =
      snapshotPlain === null
        ? null
        : {
            index: this.inFlight.lastIndex,
            sealed: await this.platform.seal(snapshotPlain, aadFor(SNAPSHOT_AAD, this.inFlight.lastIndex)),
          };
    this.send({ type: "persist", entries: sealed, snapshot });
  }

  private async persisted(index: number): Promise<void> {
    const f = this.inFlight;
    if (f === null || index !== f.lastIndex) {
      this.counters.framesRejected++;
      return;
    }
    this.inFlight = null;
    await this.commit(f.lastIndex, f.lastHash);
    await this.flush();
  }

  private async commit(index: number, hash: Uint8Array): Promise<void> {
    if (index > this.committedIndex) {
      await this.platform.nvramWrite(encodeNvram({ commitIndex: index, chainHash: hash }));
      this.counters.entriesCommitted += index - this.committedIndex;
      this.committedIndex = index;
      this.committedHash = hash;
    }
    const ready = this.waiters.filter((w) => w.index <= this.committedIndex);
    this.waiters = this.waiters.filter((w) => w.index > this.committedIndex);
    for (const w of ready) w.resolve();
  }

  private committed(index: number): Promise<void> {
    if (index <= this.committedIndex) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ index, resolve }));
  }

  // -------------------------------------------------------------------------------------------
  // Client requests.

  private reject(tag: number, code: string, message: string): void {
    this.counters.requestsRejected++;
    this.send({ type: "reply", tag, ok: false, code, message });
  }

  private async client(tag: number, envelopeBytes: Uint8Array): Promise<void> {
    if (this.phase !== "serving") {
      this.reject(
        tag,
        ErrorCode.Unavailable,
        this.phase === "failed" ? "HSM refuses to serve (see its boot failure)" : "HSM is not booted",
      );
      return;
    }
    let env: ReturnType<typeof decodeRequestEnvelope>;
    try {
      env = decodeRequestEnvelope(envelopeBytes);
    } catch (e) {
      this.reject(tag, ErrorCode.Malformed, (e as Error).message);
      return;
    }
    const genesis = this.state.genesis!;
    let opened: { plaintext: Uint8Array; exported: Uint8Array };
    try {
      opened = await this.platform.crypto.hpkeOpen({
        privateKey: genesis.hpkePrivateKey,
        enc: env.enc,
        info: HPKE_INFO,
        aad: envelopeHeader(env.user),
        ciphertext: env.ciphertext,
        exportContext: RESPONSE_EXPORT_CONTEXT,
        exportLength: 32,
      });
    } catch {
      this.reject(
        tag,
        ErrorCode.Authentication,
        "request does not open under the vault key (altered, or sealed to another key)",
      );
      return;
    }
    this.counters.requestsOpened++;
    const responseKey = opened.exported;
    let result: VaultResult;
    let index = 0;
    try {
      const req = decodeVaultRequest(opened.plaintext);
      const now = this.now();
      const d = decide(this.state, env.user, req, now, (n) => this.platform.randomBytes(n));
      result = d.result;
      if (d.ops !== null) index = this.append({ time: now, requestId: req.requestId, ops: d.ops });
    } catch (e) {
      result = {
        error: ErrorCode.Invalid,
        guessesRemaining: 0,
        message: e instanceof BkvError ? e.message : "invalid request",
      };
    }
    const nonce = this.platform.randomBytes(12);
    const ct = await this.platform.crypto.aeadSeal(
      responseKey,
      nonce,
      encodeVaultResult(result),
      new Uint8Array(0),
    );
    const envelope = encodeResponseEnvelope({ nonce, ciphertext: ct });
    if (index > 0) {
      void this.flush();
      await this.committed(index);
    }
    this.send({ type: "reply", tag, ok: true, envelope });
  }
}
