/**
 * The HSM core: a state machine driven by frames of the HSM API (packages/wire/src/hsm-api.ts).
 *
 * A member of a fleet runs Raft (raft.ts) over the authenticated peer channel (peer-channel.ts).
 * The leader opens client requests, decides them on its speculative state (vault.ts), proposes the
 * decision as a log entry, and releases the sealed reply only once the entry is committed: stored
 * by a majority of hosts and recorded in each of those HSMs' NVRAM. Followers forward client
 * requests to the leader. Every member applies committed entries to its state (state.ts).
 *
 * The host is untrusted: frames are decoded strictly; sealed blobs, client requests and peer
 * messages are authenticated; the NVRAM record of the durable log tip catches a host that boots the
 * HSM from an old copy of its storage (the HSM then records in NVRAM what it had acknowledged, and
 * neither campaigns nor serves, and votes only for logs that reach it, until its own durable log and
 * the fleet's commit index have passed it). An internal error stops the core (a `failed` frame)
 * rather than losing what Raft handed it.
 */

import {
  type Attestation,
  artifactMismatches,
  BkvError,
  bytesEqual,
  countersignMessage,
  decodeArtifact,
  decodeAttestation,
  decodeHostToHsm,
  decodeVaultRequest,
  ErrorCode,
  ed25519SignatureProblem,
  encodeHsmToHost,
  type FleetArtifact,
  GENESIS_CHALLENGE_LENGTH,
  type HostToHsm,
  type HsmToHost,
  logBundleMessage,
  MAX_ARTIFACT_LEAD_MS,
  MAX_ARTIFACT_VALIDITY_MS,
  type SealedEntry,
  type VaultResult,
} from "@bkv/wire";
import * as opaque from "@serenity-kit/opaque";
import { type OpenedRequest, openRequest } from "./client-channel.js";
import {
  checkChallenges,
  checkMembers,
  checkPublication,
  checkSignatures,
  checkSuccessorTerms,
  decodePackage,
  spentMessage,
  statementOf,
  validateGuessLimit,
  vendorDocumentCheck,
} from "./genesis.js";
import { type OpenedPackage, openPackage, sealFleet } from "./genesis-steps.js";
import { PersistPipeline, readStorage, type StoredLog } from "./host-storage.js";
import { decodeNvram, emptyTip, encodeNvram, type NvramState } from "./nvram.js";
import { PeerChannel, peerKey } from "./peer-channel.js";
import type { HsmPlatform } from "./platform.js";
import { SNAPSHOT_EVERY } from "./policy.js";
import { type LogRecord, type Position, Raft, type SnapshotMeta } from "./raft.js";
import {
  decodeRaftEntry,
  encodeRaftEntry,
  type Genesis,
  type RaftEntry,
  type RaftEntryBody,
} from "./raft-entry.js";
import { decodePeerMessage, encodePeerMessage, type PeerMessage } from "./raft-messages.js";
import { VaultState } from "./state.js";
import { CoreStats, timeNvramWrites } from "./stats.js";
import { checkStorage } from "./storage-check.js";
import { decide } from "./vault.js";

type Phase = "new" | "uninitialized" | "joining" | "member" | "failed";

const ZERO_HASH = new Uint8Array(32);

export interface CoreOptions {
  /** Entries between snapshots (default SNAPSHOT_EVERY). */
  snapshotEvery?: number;
  /** Ticks without a leader before an election (randomized up to twice this). Default 10. */
  electionTicks?: number;
  /** Ticks between leader heartbeats. Default 2. */
  heartbeatTicks?: number;
  /** Ticks a forwarded request may wait for the leader's answer. Default 100. */
  forwardTicks?: number;
  /**
   * Forwarded requests waiting for the leader's answer at once; more are UNAVAILABLE. A host that
   * holds the leader's answers and the ticks that would expire them cannot grow this HSM's memory
   * without bound. Default 4096.
   */
  maxForwards?: number;
}

export interface CoreCounters {
  framesRejected: number;
}

interface MemberState {
  genesis: Genesis;
  /** This HSM's member number (1-based). */
  node: number;
  raft: Raft;
  channel: PeerChannel;
}

type Reply = { ok: true; envelope: Uint8Array } | { ok: false; code: string; message: string };

export class HsmCore {
  private phase: Phase = "new";
  private queue: Promise<void> = Promise.resolve();
  private lastNow = 0;
  /** This HSM's attestation (encoded) and the signing key it attests, which identifies it in a fleet. */
  private identity: Uint8Array = new Uint8Array(0);
  private signKey: Uint8Array = new Uint8Array(0);
  /** While uninitialized: this boot's genesis challenge (memory only: a restart makes a new one). */
  private challenge: Uint8Array = new Uint8Array(0);
  private nv: NvramState | null = null;
  /** Set once the HSM is a member of a fleet (phase "member"), with everything that goes with it. */
  private m: MemberState | null = null;
  private committed = new VaultState();
  private spec: VaultState | null = null;
  private wasLeaderTerm = 0;
  private waiters = new Map<number, { hash: Uint8Array; resolve: () => void; reject: () => void }[]>();
  private forwards = new Map<number, { resolve: (r: Reply) => void; age: number; leader: number }>();
  private nextForward = 1;
  private readonly persist: PersistPipeline;
  private ticks = 0;
  /** The last Wake tick sent to the host. */
  private wakeSent = -1;
  private failure: { code: string; message: string } | null = null;
  private helloSentAt = new Map<number, number>();
  private joinEntry: {
    record: LogRecord;
    entry: RaftEntry;
    statement: Uint8Array;
    genesis: Genesis;
    finished: boolean;
  } | null = null;
  readonly counters: CoreCounters = {
    framesRejected: 0,
  };

  private readonly platform: HsmPlatform;
  /** Counts for the Stats frame: decisions applied and NVRAM write latency, nothing per user. */
  private readonly stats = new CoreStats();

  private constructor(
    platform: HsmPlatform,
    private readonly emit: (frame: Uint8Array) => void,
    private readonly options: CoreOptions,
  ) {
    this.platform = timeNvramWrites(platform, this.stats);
    this.persist = new PersistPipeline(this.platform);
  }

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
    this.lastNow = Math.max(this.lastNow, this.committed.clock, this.spec?.clock ?? 0, this.platform.now());
    return this.lastNow;
  }

  /** Handle one frame from the host. Frames are handled one at a time; errors become frames. */
  receive(frameBytes: Uint8Array): Promise<void> {
    const run = this.queue.then(() => this.handle(frameBytes));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async handle(frameBytes: Uint8Array): Promise<void> {
    let m: HostToHsm;
    try {
      m = decodeHostToHsm(frameBytes);
    } catch {
      this.counters.framesRejected++;
      return;
    }
    if (this.phase === "failed") {
      // A stopped core answers every frame with why it stopped, and does nothing else.
      if (m.type === "status") this.sendStatus();
      else if (m.type === "stats") this.sendStats();
      else {
        this.counters.framesRejected++;
        if (this.failure !== null) this.send({ type: "failed", ...this.failure });
      }
      return;
    }
    try {
      await this.dispatch(m);
    } catch (e) {
      // Never carry on with Raft's output half handled (an NVRAM write that failed, say): stop.
      this.fail(ErrorCode.Corrupt, `internal error, HSM stopped: ${(e as Error).message}`);
    }
  }

  private async dispatch(m: HostToHsm): Promise<void> {
    switch (m.type) {
      case "boot":
        if (this.phase !== "new") {
          this.counters.framesRejected++;
          return;
        }
        await this.boot(m.snapshot, m.entries);
        break;
      case "genesis-create":
        await this.genesisCreate(m);
        return;
      case "genesis-join":
        await this.genesisJoin(m.package, m.statement);
        return;
      case "genesis-finish":
        await this.genesisFinish(m.signatures);
        break;
      case "countersign":
        this.countersign(m.tag, m.artifact, m.logSignature);
        return;
      case "client": {
        const tag = m.tag;
        const { wait } = await this.prepare(m.envelope);
        void wait.then((r) => {
          this.send(
            r.ok ? { type: "reply", tag, ok: true, envelope: r.envelope } : { type: "reply", tag, ...r },
          );
        });
        break;
      }
      case "persisted":
        await this.persisted(m.id);
        break;
      case "tick":
        this.tick(m.ticks);
        break;
      case "peer":
        await this.peer(m.bytes);
        break;
      case "status":
        this.sendStatus();
        return;
      case "stats":
        this.sendStats();
        return;
    }
    await this.processReady();
  }

  private sendStatus(): void {
    const r = this.raft;
    this.send({
      type: "status",
      node: this.m?.node ?? 0,
      role: this.phase !== "member" || r === null ? this.phase : r.recovering ? "recovering" : r.role,
      term: r?.term ?? 0,
      leader: r?.leader ?? 0,
      commitIndex: r?.commitIndex ?? 0,
      durableIndex: r?.durableIndex ?? 0,
      recovering: r?.recovering ?? false,
      recoverUntil: r?.recover?.index ?? 0,
      peerForged: this.m?.channel.counters.forged ?? 0,
      peerReplayed: this.m?.channel.counters.replayed ?? 0,
      framesRejected: Math.min(this.counters.framesRejected, 0xffffffff),
    });
  }

  private sendStats(): void {
    const r = this.raft;
    this.send({
      type: "stats",
      ...this.stats.decisions,
      nvramWrites: this.stats.nvramWrites,
      nvramWriteMs: this.stats.nvramWriteMs,
      nvramWriteBuckets: [...this.stats.nvramWriteBuckets],
      lastIndex: r?.lastIndex() ?? 0,
      peers: r?.role === "leader" ? r.matchIndexes() : [],
    });
  }

  /**
   * The HSM process refused a frame before it reached the core (over the frame cap, skipped unread):
   * count it with the undecodable ones.
   */
  frameRefused(): void {
    this.counters.framesRejected++;
  }

  private fail(code: string, message: string): void {
    this.phase = "failed";
    this.failure = { code, message };
    this.send({ type: "failed", code, message });
  }

  /** The member state; only called where the phase is "member" (a bug otherwise: the core stops). */
  private member(): MemberState {
    if (this.m === null) throw new BkvError(ErrorCode.Corrupt, "not a fleet member");
    return this.m;
  }

  /** NVRAM as last written; only called once it exists (a bug otherwise: the core stops). */
  private nvram(): NvramState {
    if (this.nv === null) throw new BkvError(ErrorCode.Corrupt, "no NVRAM record");
    return this.nv;
  }

  private get raft(): Raft | null {
    return this.m?.raft ?? null;
  }

  private sendBooted(): void {
    const g = this.m?.genesis;
    this.send({
      type: "booted",
      identity: this.identity,
      node: this.m?.node ?? 0,
      fleetId: g?.fleetId ?? new Uint8Array(0),
      vaultPublicKey: g?.hpkePublicKey ?? new Uint8Array(0),
      guessesAllowed: g?.guessLimit ?? 0,
      recovering: this.raft?.recovering ?? false,
      challenge: this.phase === "uninitialized" ? this.challenge : new Uint8Array(0),
    });
  }

  // -------------------------------------------------------------------------------------------
  // Boot: rebuild from host storage and check it against NVRAM.

  private async boot(snapshot: SealedEntry | null, entries: SealedEntry[]): Promise<void> {
    this.identity = await this.platform.identity();
    this.signKey = decodeAttestation(this.identity).signKey;
    let nv: NvramState | null;
    try {
      const raw = await this.platform.nvramRead();
      nv = raw === null ? null : decodeNvram(raw);
    } catch (e) {
      return this.fail(ErrorCode.Corrupt, `NVRAM unreadable: ${(e as Error).message}`);
    }
    if (nv === null) {
      if (snapshot !== null || entries.length > 0) {
        return this.fail(
          ErrorCode.Corrupt,
          "NVRAM is empty but host storage holds a log: refusing storage this HSM cannot vouch for",
        );
      }
      this.phase = "uninitialized";
      this.challenge = this.platform.randomBytes(GENESIS_CHALLENGE_LENGTH);
      this.sendBooted();
      return;
    }
    if (snapshot === null && entries.length === 0 && nv.tip.index === 0) {
      return this.fail(ErrorCode.GenesisSpent, spentMessage(nv));
    }
    let stored: StoredLog;
    try {
      stored = await readStorage(this.platform, snapshot, entries);
    } catch (e) {
      const msg = e instanceof BkvError ? e.message : "a sealed blob failed authentication";
      return this.fail(ErrorCode.Corrupt, `host storage rejected: ${msg}`);
    }
    const { state, meta, snapshotState, log } = stored;
    const genesis = state.genesis ?? this.genesisFrom(log[0]);
    if (genesis === null) {
      return this.fail(
        ErrorCode.Rollback,
        "host storage lost the fleet's genesis: it was restored from before this HSM joined",
      );
    }
    if (!bytesEqual(genesis.measurement, this.platform.measurement())) {
      return this.fail(
        ErrorCode.Measurement,
        "this HSM now runs other code than the fleet was created with: the fleet's code cannot change",
      );
    }
    // Is the tip this HSM recorded as durable (and so may have acknowledged) still in host storage?
    const { durableIndex, recover } = checkStorage(nv, meta, log);
    nv = { ...nv, epoch: nv.epoch + 1, recover };
    await this.platform.nvramWrite(encodeNvram(nv));
    this.nv = nv;
    this.committed = state;
    const position = recover === null ? null : { index: recover.index, term: recover.term };
    await this.becomeMember(genesis, meta, snapshotState, log, durableIndex, position);
  }

  private genesisFrom(rec: LogRecord | undefined): Genesis | null {
    if (rec === undefined || rec.index !== 1) return null;
    const op = decodeRaftEntry(rec.bytes).ops[0];
    return op?.op === "genesis" ? op.genesis : null;
  }

  private async becomeMember(
    genesis: Genesis,
    meta: SnapshotMeta,
    snapshotState: Uint8Array | null,
    log: LogRecord[],
    durableIndex: number,
    recover: Position | null,
  ): Promise<void> {
    const members = genesis.members.map((m) => decodeAttestation(m));
    const self = members.findIndex((m) => bytesEqual(m.signKey, this.signKey)) + 1;
    if (self === 0)
      return this.fail(ErrorCode.Corrupt, "this HSM is not a member of the fleet in its storage");
    const crypto = this.platform.crypto;
    const keys = new Map<number, { send: Uint8Array; recv: Uint8Array }>();
    for (let j = 1; j <= genesis.members.length; j++) {
      if (j === self) continue;
      const shared = await this.platform.identityAgree(members[j - 1]!.agreeKey);
      keys.set(j, {
        send: peerKey(crypto, shared, genesis.fleetId, self, j),
        recv: peerKey(crypto, shared, genesis.fleetId, j, self),
      });
    }
    const nv = this.nvram();
    const channel = new PeerChannel(crypto, self, nv.epoch, keys);
    const raft = new Raft(
      {
        id: self,
        members: members.map((_, i) => i + 1),
        electionTicks: this.options.electionTicks ?? 10,
        heartbeatTicks: this.options.heartbeatTicks ?? 2,
        random: () => {
          const b = this.platform.randomBytes(4);
          return (((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0) / 2 ** 32;
        },
        hash: (b) => crypto.sha256(b),
        noop: (index, term, prevHash) =>
          encodeRaftEntry({ index, term, prevHash, time: this.now(), requestId: new Uint8Array(0), ops: [] }),
      },
      { term: nv.term, vote: nv.vote, snapshot: meta, snapshotState, log, durableIndex, recover },
    );
    this.m = { genesis, node: self, raft, channel };
    this.phase = "member";
    if (members.length === 1) raft.tick(); // a fleet of one need not wait for a timeout
    this.sendBooted();
  }

  // -------------------------------------------------------------------------------------------
  // Genesis ceremony.

  /** Refuse a genesis step if this HSM's NVRAM already names a ceremony (other than `allow`). */
  private spentFor(allow: { role: "creator"; fleetId: Uint8Array } | null): boolean {
    const c = this.nv?.ceremony;
    if (c === undefined) return false;
    if (allow !== null && c.role === allow.role && bytesEqual(c.fleetId, allow.fleetId)) return false;
    this.fail(ErrorCode.GenesisSpent, spentMessage(this.nvram()));
    return true;
  }

  /** The first NVRAM record of this HSM's life: the one genesis it takes part in, as what. */
  private async recordCeremony(role: "creator" | "joiner", fleetId: Uint8Array): Promise<void> {
    this.nv = { term: 0, vote: 0, epoch: 0, tip: emptyTip(), recover: null, ceremony: { role, fleetId } };
    await this.platform.nvramWrite(encodeNvram(this.nv));
  }

  private async genesisCreate(m: HostToHsm & { type: "genesis-create" }): Promise<void> {
    const {
      members,
      challenges,
      guessLimit,
      namespace,
      epoch,
      logKey,
      releaseKey,
      maxSuccessorGuessLimit,
      witnessPolicy,
    } = m;
    if (this.spentFor(null)) return;
    if (this.phase !== "uninitialized")
      return this.fail(ErrorCode.Invalid, "only an uninitialized HSM can create a fleet");
    const crypto = this.platform.crypto;
    let attestations: Attestation[];
    try {
      validateGuessLimit(guessLimit);
      checkPublication(namespace, epoch, logKey);
      checkSuccessorTerms(releaseKey, maxSuccessorGuessLimit, guessLimit, witnessPolicy, logKey);
      attestations = checkMembers(
        crypto,
        this.platform.vendorRoots(),
        this.platform.measurement(),
        members,
        vendorDocumentCheck(this.platform),
      );
      checkChallenges(challenges, members.length);
    } catch (e) {
      return this.failWith(e, "genesis refused");
    }
    const creator = attestations.findIndex((a) => bytesEqual(a.signKey, this.signKey)) + 1;
    if (creator === 0) return this.fail(ErrorCode.Invalid, "the creating HSM must be a member");
    if (!bytesEqual(challenges[creator - 1]!, this.challenge)) {
      return this.fail(
        ErrorCode.GenesisChallenge,
        `genesis refused: member ${creator} (this HSM) did not make that challenge in this boot`,
      );
    }
    const kp = await crypto.hpkeGenerateKeyPair();
    const fleetSigningSeed = this.platform.randomBytes(32);
    const fleetId = this.platform.randomBytes(16);
    // One genesis in this HSM's life: record it before anything is sealed for this fleet.
    await this.recordCeremony("creator", fleetId);
    const { statement, packages } = await sealFleet(this.platform, {
      members,
      challenges,
      attestations,
      creator,
      guessLimit,
      namespace,
      epoch,
      logKey,
      releaseKey,
      maxSuccessorGuessLimit,
      witnessPolicy,
      fleetId,
      fleetSigningSeed,
      hpke: kp,
      now: this.now(),
    });
    this.send({ type: "genesis-packages", statement, packages });
  }

  private async genesisJoin(pkgBytes: Uint8Array, statement: Uint8Array): Promise<void> {
    const crypto = this.platform.crypto;
    let p: ReturnType<typeof decodePackage>;
    try {
      p = decodePackage(pkgBytes);
    } catch (e) {
      return this.failWith(e, "genesis package refused");
    }
    if (this.spentFor({ role: "creator", fleetId: p.fleetId })) return;
    if (this.phase !== "uninitialized")
      return this.fail(ErrorCode.Invalid, "only an uninitialized HSM can join a fleet");
    // A package answers one boot of one HSM: a saved one replayed after a restart is refused here.
    if (!bytesEqual(p.challenge, this.challenge)) {
      return this.fail(
        ErrorCode.GenesisChallenge,
        "genesis package refused: it answers a challenge this HSM did not make in this boot (replayed or stale)",
      );
    }
    let opened: OpenedPackage;
    try {
      opened = await openPackage(this.platform, this.signKey, p, statement, this.nv !== null);
    } catch (e) {
      return this.failWith(e, "genesis package refused");
    }
    const { entry, bytes, genesis } = opened;
    // One genesis in this HSM's life: record it before signing (the creator already has).
    if (this.nv === null) await this.recordCeremony("joiner", genesis.fleetId);
    this.phase = "joining";
    const record: LogRecord = { index: 1, term: 0, bytes, hash: crypto.sha256(bytes) };
    this.joinEntry = { record, entry, statement, genesis, finished: false };
    this.send({ type: "genesis-signature", signature: await this.platform.identitySign(statement) });
  }

  private async genesisFinish(signatures: Uint8Array[]): Promise<void> {
    const j = this.joinEntry;
    if (this.phase !== "joining" || j === null || j.finished || this.nv === null)
      return this.fail(ErrorCode.Invalid, "no genesis to finish: join first");
    try {
      const members = j.genesis.members.map((m) => decodeAttestation(m));
      checkSignatures(this.platform.crypto, members, j.statement, signatures);
    } catch (e) {
      return this.failWith(e, "genesis not finished");
    }
    j.finished = true;
    this.nv = { ...this.nv, epoch: this.nv.epoch + 1 };
    await this.platform.nvramWrite(encodeNvram(this.nv));
    this.persist.push({ entries: [j.record], truncateFrom: null, snapshot: null });
  }

  /**
   * Counter-sign a validation bundle, only for what this fleet vouches for: an artifact that
   * describes this very fleet (id, keys, members, measurement, policy, and the namespace and epoch
   * frozen at genesis), whose validity window is at most MAX_ARTIFACT_VALIDITY_MS long and starts at
   * most MAX_ARTIFACT_LEAD_MS after this HSM's clock, and that the log
   * key frozen at genesis signed (the log's signature over logBundleMessage). The fleet then signs
   * countersignMessage(namespace, epoch, SHA-256(artifact), log signature). Refusing changes nothing.
   */
  private countersign(tag: number, artifactBytes: Uint8Array, logSignature: Uint8Array): void {
    const g = this.m?.genesis;
    const refuse = (message: string) =>
      this.send({ type: "countersignature", tag, ok: false, code: ErrorCode.CountersignRefused, message });
    if (this.phase !== "member" || g === undefined) {
      this.send({
        type: "countersignature",
        tag,
        ok: false,
        code: ErrorCode.Unavailable,
        message: "not a fleet member",
      });
      return;
    }
    let artifact: FleetArtifact;
    try {
      artifact = decodeArtifact(artifactBytes);
    } catch (e) {
      return refuse(`the artifact does not decode: ${(e as Error).message}`);
    }
    if (artifact.namespace !== g.namespace) {
      return refuse(
        `the artifact is for namespace ${JSON.stringify(artifact.namespace)}, not this fleet's ${JSON.stringify(g.namespace)}`,
      );
    }
    if (artifact.epoch !== g.epoch) {
      return refuse(`the artifact is for epoch ${artifact.epoch}, not this fleet's epoch ${g.epoch}`);
    }
    const wrong = artifactMismatches(artifact, statementOf(g));
    if (wrong.length > 0) {
      return refuse(`the artifact does not describe this fleet: ${wrong.join(", ")} differ`);
    }
    if (artifact.notAfter - artifact.notBefore > MAX_ARTIFACT_VALIDITY_MS) {
      return refuse(
        `the artifact's validity window is ${artifact.notAfter - artifact.notBefore} ms, longer than the ${MAX_ARTIFACT_VALIDITY_MS} ms allowed`,
      );
    }
    const lead = artifact.notBefore - this.now();
    if (lead > MAX_ARTIFACT_LEAD_MS) {
      return refuse(
        `the artifact's validity window starts ${lead} ms after this HSM's clock; at most ${MAX_ARTIFACT_LEAD_MS} ms ahead is allowed`,
      );
    }
    const crypto = this.platform.crypto;
    const artifactDigest = crypto.sha256(artifactBytes);
    const problem = ed25519SignatureProblem(logSignature);
    if (problem !== null) return refuse(`the log's signature is not strict: ${problem}`);
    if (
      !crypto.ed25519Verify(g.logKey, logBundleMessage(g.namespace, g.epoch, artifactDigest), logSignature)
    ) {
      return refuse("the log's signature does not verify under the log key frozen at genesis");
    }
    const signature = crypto.ed25519Sign(
      g.fleetSigningSeed,
      countersignMessage({ namespace: g.namespace, epoch: g.epoch, artifactDigest, logSignature }),
    );
    this.send({ type: "countersignature", tag, ok: true, signature });
  }

  private failWith(e: unknown, what: string): void {
    const code = e instanceof BkvError ? e.code : ErrorCode.Invalid;
    this.fail(code, `${what}: ${(e as Error).message}`);
  }

  // -------------------------------------------------------------------------------------------
  // Ready: NVRAM, persistence, messages, applying committed entries.

  private async processReady(): Promise<void> {
    const raft = this.raft;
    if (raft !== null && this.phase === "member") {
      while (raft.hasReady()) {
        const rd = raft.ready();
        if (rd.hardState !== null) {
          this.nv = { ...this.nvram(), term: rd.hardState.term, vote: rd.hardState.vote };
          await this.platform.nvramWrite(encodeNvram(this.nv));
        }
        if (rd.snapshot !== null) this.installSnapshot(rd.snapshot.meta, rd.snapshot.state);
        if (rd.entries.length > 0 || rd.truncateFrom !== null || rd.snapshot !== null) {
          this.persist.push({
            entries: rd.entries,
            truncateFrom: rd.truncateFrom,
            snapshot: rd.snapshot,
          });
        }
        for (const out of rd.messages) await this.sendPeer(out.to, out.msg);
      }
      await this.maybeRecovered();
      await this.sendHellos();
      this.trackLeadership();
      this.applyCommitted();
      this.maybeCompact();
      this.sendWake();
    }
    await this.flush();
  }

  /** A message to a peer; dropped (Raft resends) until this HSM knows the peer's boot epoch. */
  private async sendPeer(to: number, msg: PeerMessage): Promise<void> {
    const bytes = await this.member().channel.seal(to, encodePeerMessage(msg));
    if (bytes !== null) this.send({ type: "peer", to, bytes });
  }

  /** Hellos owed to peers (at boot, or to one that addressed an older boot): one per peer per tick. */
  private async sendHellos(): Promise<void> {
    const channel = this.member().channel;
    for (const p of [...channel.helloDue]) {
      if (this.helloSentAt.get(p) === this.ticks) continue;
      channel.helloDue.delete(p);
      this.helloSentAt.set(p, this.ticks);
      this.send({ type: "peer", to: p, bytes: await channel.hello(p) });
    }
  }

  /**
   * A recovering HSM whose own durable log and commit index have passed what it had acknowledged
   * before the rollback: record in NVRAM that it has recovered, then let Raft vote and serve again.
   */
  private async maybeRecovered(): Promise<void> {
    const raft = this.member().raft;
    if (!raft.recoverReached()) return;
    this.nv = { ...this.nvram(), recover: null };
    await this.platform.nvramWrite(encodeNvram(this.nv));
    raft.clearRecover();
  }

  /** The leader decides on a speculative state: committed state plus its uncommitted entries. */
  private trackLeadership(): void {
    const raft = this.member().raft;
    // Forwards to a leader that is no longer the leader: answer them now, the client may retry.
    for (const [id, f] of this.forwards) {
      if (f.leader !== raft.leader) {
        this.forwards.delete(id);
        f.resolve({ ok: false, code: ErrorCode.Unavailable, message: "the leader changed; try again" });
      }
    }
    if (raft.role !== "leader") {
      this.spec = null;
      this.wasLeaderTerm = 0;
      return;
    }
    if (this.spec !== null && this.wasLeaderTerm === raft.term) return;
    this.wasLeaderTerm = raft.term;
    const spec = this.committed.clone();
    for (const rec of raft.entries(spec.index + 1, raft.lastIndex()))
      spec.apply(decodeRaftEntry(rec.bytes), rec.hash);
    this.spec = spec;
  }

  private applyCommitted(): void {
    const raft = this.member().raft;
    while (this.committed.index < raft.commitIndex) {
      const rec = raft.entry(this.committed.index + 1);
      if (rec === undefined) break;
      const entry = decodeRaftEntry(rec.bytes);
      this.committed.apply(entry, rec.hash);
      this.stats.countEntry(entry);
      const ws = this.waiters.get(rec.index);
      if (ws !== undefined) {
        this.waiters.delete(rec.index);
        for (const w of ws) (bytesEqual(w.hash, rec.hash) ? w.resolve : w.reject)();
      }
    }
  }

  private installSnapshot(meta: SnapshotMeta, state: Uint8Array): void {
    this.committed = VaultState.decode(state);
    this.spec = null;
    for (const [index, ws] of this.waiters) {
      if (index <= meta.index) {
        this.waiters.delete(index);
        for (const w of ws) w.reject();
      }
    }
  }

  private maybeCompact(): void {
    const raft = this.member().raft;
    const at = Math.min(this.committed.index, raft.durableIndex);
    if (
      at - raft.snapshot.index < (this.options.snapshotEvery ?? SNAPSHOT_EVERY) ||
      at !== this.committed.index
    )
      return;
    const state = this.committed.encode();
    const meta = { index: this.committed.index, term: this.committed.term, hash: this.committed.chainHash };
    raft.compact(meta, state);
    this.persist.push({ entries: [], truncateFrom: null, snapshot: { meta, state } });
  }

  private async flush(): Promise<void> {
    const frame = await this.persist.next(this.raft);
    if (frame !== null) this.send(frame);
  }

  private async persisted(id: number): Promise<void> {
    const f = this.persist.confirm(id);
    if (f === null) {
      this.counters.framesRejected++;
      return;
    }
    const j = this.joinEntry;
    if (this.phase === "joining" && j !== null) {
      this.nv = { ...this.nvram(), tip: { index: 1, term: 0, hash: j.record.hash } };
      await this.platform.nvramWrite(encodeNvram(this.nv));
      this.joinEntry = null;
      await this.becomeMember(j.genesis, { index: 0, term: 0, hash: ZERO_HASH }, null, [j.record], 1, null);
      return;
    }
    const raft = this.raft;
    if (raft === null) return;
    const h = raft.hashAt(f.tip);
    const term = raft.termAt(f.tip);
    if (h !== undefined && term !== undefined && bytesEqual(h, f.tipHash)) {
      // NVRAM first: nothing is acknowledged before its tip is recorded there.
      this.nv = { ...this.nvram(), tip: { index: f.tip, term, hash: f.tipHash } };
      await this.platform.nvramWrite(encodeNvram(this.nv));
      raft.advanceDurable(f.tip);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Ticks and peers.

  /** n ticks passed (the host may hold them back until the Wake tick, see sendWake). */
  private tick(n: number): void {
    // Counted in every phase: the Wake tick is in the host's count of ticks sent since boot.
    this.ticks += n;
    if (this.phase !== "member") return;
    this.member().raft.tick(n);
    const limit = this.options.forwardTicks ?? 100;
    for (const [id, f] of this.forwards) {
      f.age += n;
      if (f.age > limit) {
        this.forwards.delete(id);
        f.resolve({ ok: false, code: ErrorCode.Unavailable, message: "the leader did not answer in time" });
      }
    }
  }

  /**
   * Tell the host the tick by which this HSM next has something to do on its own (Raft's next
   * heartbeat or timeout, a forward's expiry, a hello held back to the next tick), so that it need
   * not send a Tick frame every tick. A hint only: the host controls time anyway (it could always
   * delay, drop or hurry ticks), so it learns nothing and gains nothing it could not before.
   */
  private sendWake(): void {
    const raft = this.member().raft;
    let due = raft.ticksToNextEvent() ?? this.options.electionTicks ?? 10;
    const limit = this.options.forwardTicks ?? 100;
    for (const f of this.forwards.values()) due = Math.min(due, Math.max(1, limit + 1 - f.age));
    if (this.member().channel.helloDue.size > 0) due = 1;
    const tick = this.ticks + due;
    if (tick === this.wakeSent) return;
    this.wakeSent = tick;
    this.send({ type: "wake", tick });
  }

  private async peer(bytes: Uint8Array): Promise<void> {
    if (this.phase !== "member") return;
    const opened = await this.member().channel.open(bytes);
    if (opened === null || opened.plaintext === null) return; // refused, or a hello
    let m: PeerMessage;
    try {
      m = decodePeerMessage(opened.plaintext);
    } catch {
      this.counters.framesRejected++;
      return;
    }
    const from = opened.from;
    switch (m.type) {
      case "fwd": {
        const id = m.id;
        const { wait } = await this.prepare(m.envelope);
        void wait.then((r) => this.answerForward(from, id, r));
        return;
      }
      case "fwd-resp": {
        const f = this.forwards.get(m.id);
        if (f === undefined) return;
        this.forwards.delete(m.id);
        f.resolve(
          m.ok ? { ok: true, envelope: m.envelope } : { ok: false, code: m.code, message: m.message },
        );
        return;
      }
      default:
        this.member().raft.step(from, m, opened.epoch);
    }
  }

  private answerForward(to: number, id: number, r: Reply): void {
    const msg: PeerMessage = r.ok
      ? { type: "fwd-resp", id, ok: true, envelope: r.envelope }
      : { type: "fwd-resp", id, ok: false, code: r.code, message: r.message };
    void this.receiveInternal(() => this.sendPeer(to, msg));
  }

  /** Run work inside the frame queue (used for events that do not come from a frame). */
  private receiveInternal(work: () => Promise<void>): Promise<void> {
    const run = this.queue.then(work);
    this.queue = run.catch(() => undefined);
    return run;
  }

  // -------------------------------------------------------------------------------------------
  // Client requests.

  private unavailable(message: string): { wait: Promise<Reply> } {
    return { wait: Promise.resolve({ ok: false, code: ErrorCode.Unavailable, message }) };
  }

  private rejected(code: string, message: string): { wait: Promise<Reply> } {
    return { wait: Promise.resolve({ ok: false, code, message }) };
  }

  /**
   * Take a client envelope: on the leader, open it, decide and propose; on a follower, forward it to
   * the leader. Runs inside the frame queue, so decisions are serialized; resolves to a promise of
   * the reply, which settles once the entry is committed (or the leader answers a forward).
   */
  private async prepare(envelopeBytes: Uint8Array): Promise<{ wait: Promise<Reply> }> {
    const raft = this.raft;
    if (this.phase !== "member" || raft === null)
      return this.unavailable("HSM is not a serving member of a fleet");
    if (raft.recovering) {
      return this.unavailable("HSM storage was rolled back; waiting for the fleet to bring it up to date");
    }
    if (raft.role !== "leader") {
      if (raft.leader === 0) return this.unavailable("no leader: the fleet has no majority right now");
      if (this.member().channel.peerEpoch(raft.leader) === 0)
        return this.unavailable("not yet in touch with the leader; try again");
      if (this.forwards.size >= (this.options.maxForwards ?? 4096))
        return this.unavailable("too many requests waiting for the leader's answer; try again");
      // Unique across restarts (boot epoch), so a late answer to a forward from before a restart
      // cannot be taken for the answer to a new one.
      const id = this.nvram().epoch * 2 ** 21 + (this.nextForward++ % 2 ** 21);
      const leader = raft.leader;
      const p = new Promise<Reply>((resolve) => this.forwards.set(id, { resolve, age: 0, leader }));
      await this.sendPeer(leader, { type: "fwd", id, envelope: envelopeBytes });
      return { wait: p };
    }
    let request: OpenedRequest;
    try {
      request = await openRequest(this.platform, this.member().genesis.hpkePrivateKey, envelopeBytes);
    } catch (e) {
      const code = e instanceof BkvError ? e.code : ErrorCode.Malformed;
      return this.rejected(code, (e as Error).message);
    }
    // Leadership may have changed while the request was being opened.
    const spec = this.spec;
    if (raft.role !== "leader" || spec === null) return this.unavailable("leadership changed; try again");
    const digest = this.platform.crypto.sha256(envelopeBytes);
    const seal = (result: VaultResult) => request.seal(result);
    let req: ReturnType<typeof decodeVaultRequest>;
    let d: ReturnType<typeof decide>;
    const now = this.now();
    try {
      req = decodeVaultRequest(request.plaintext);
      d = decide(spec, request.user, req, now, (n) => this.platform.randomBytes(n), digest);
    } catch (e) {
      const message = e instanceof BkvError ? e.message : "invalid request";
      const envelope = await seal({ error: ErrorCode.Invalid, guessesRemaining: 0, message });
      return { wait: Promise.resolve({ ok: true, envelope }) };
    }
    if (d.again !== undefined) {
      // A retry of a request the log answered: the same answer, once its entry is committed.
      const { index, reply } = d.again;
      return { wait: this.replyOnCommit(index, raft.hashAt(index), reply) };
    }
    const envelope = await seal(d.result);
    if (d.ops === null) return { wait: Promise.resolve({ ok: true, envelope }) };
    const body: RaftEntryBody = {
      time: now,
      requestId: req.requestId,
      answer: { digest, reply: envelope },
      ops: d.ops,
    };
    let made: { entry: RaftEntry; bytes: Uint8Array } | null = null;
    const index = raft.propose((index, term, prevHash) => {
      const entry: RaftEntry = { ...body, index, term, prevHash };
      made = { entry, bytes: encodeRaftEntry(entry) };
      return made.bytes;
    });
    if (index === null || made === null) return this.unavailable("leadership changed; try again");
    const m = made as { entry: RaftEntry; bytes: Uint8Array };
    const hash = this.platform.crypto.sha256(m.bytes);
    spec.apply(m.entry, hash);
    return { wait: this.replyOnCommit(index, hash, envelope) };
  }

  /**
   * The reply, once the entry at index (with this hash) is committed; "unavailable" if another
   * entry is committed there (leadership changed before it committed).
   */
  private async replyOnCommit(
    index: number,
    hash: Uint8Array | undefined,
    envelope: Uint8Array,
  ): Promise<Reply> {
    const committed =
      index <= this.committed.index ||
      (hash !== undefined &&
        (await new Promise<boolean>((resolve) => {
          const ws = this.waiters.get(index) ?? [];
          ws.push({ hash, resolve: () => resolve(true), reject: () => resolve(false) });
          this.waiters.set(index, ws);
        })));
    return committed
      ? { ok: true, envelope }
      : {
          ok: false,
          code: ErrorCode.Unavailable,
          message: "leadership changed before the request committed",
        };
  }

  /** For tests and the simulator: a read-only view of the committed state. */
  inspect(): {
    node: number;
    role: string;
    term: number;
    leader: number;
    commitIndex: number;
    lastIndex: number;
    state: VaultState;
    recovering: boolean;
    peerForged: number;
    peerReplayed: number;
  } {
    const r = this.raft;
    return {
      node: this.m?.node ?? 0,
      role: this.phase !== "member" || r === null ? this.phase : r.role,
      term: r?.term ?? 0,
      leader: r?.leader ?? 0,
      commitIndex: r?.commitIndex ?? 0,
      lastIndex: r?.lastIndex() ?? 0,
      state: this.committed,
      recovering: r?.recovering ?? false,
      peerForged: this.m?.channel.counters.forged ?? 0,
      peerReplayed: this.m?.channel.counters.replayed ?? 0,
    };
  }
}
