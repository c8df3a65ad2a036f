/**
 * The transparency log service: an append-only Merkle log of fleet artifacts in the C2SP formats,
 * its own process with its own key and SQLite database, cosigned by independent witnesses.
 *
 * HTTP API (all JSON bodies use standard base64 for bytes). Every error answer is JSON in the host's
 * shape, {code, message} (http-errors.ts): code an ErrorCode of @bkv/wire, or NOT_FOUND (no such
 * endpoint, entry, tile, evidence, release or checkpoint) or INTERNAL (500). Every route's path
 * parameters, query and JSON body have a schema (request-schemas.ts): a request it refuses (a
 * wrong type, a missing or unknown field or parameter, a field too long, a parameter given twice)
 * is 400 MALFORMED before the handler runs, and changes nothing. Unknown routes are 404 NOT_FOUND.
 *
 *   POST /add       {namespace, epoch, artifact, evidence, submitterSignature}   (from the operator)
 *        → 200 {index, namespace, epoch, evidenceDigest, logSignature, checkpoint, inclusionProof}
 *
 *     The /add contract. A namespace exists only if the log's configuration registers it with its
 *     submitter's Ed25519 public key (`--namespace NAME=<hex key>`; `bkv dev` makes that key in its
 *     folder). The log appends only when all of these hold, in this order, and appends nothing
 *     otherwise:
 *       1. the body is well formed: a JSON object of exactly these fields (submitterSignature
 *          may be left out), namespace 1..255 printable ASCII, epoch 0..2^32-1, the bytes in
 *          canonical base64, artifact at most maxArtifactSize(namespace) bytes, evidence at most
 *          MAX_EVIDENCE_SIZE (1 MiB), a signature of 64 bytes          else 400 MALFORMED
 *          (a body over ADD_BODY_LIMIT: 413 MALFORMED; not JSON: 400 or 415 MALFORMED)
 *       2. the namespace is registered                                  else 403 FORBIDDEN
 *       3. submitterSignature is the namespace's submitter key's Ed25519 signature over
 *          submitMessage(namespace, epoch, SHA-256(artifact), SHA-256(evidence)) (@bkv/tlog,
 *          domain "bkv-log-submit/v1")                                  else 403 SUBMITTER_SIGNATURE
 *       4. (namespace, epoch) is not logged yet and epoch is the namespace's next one: 1 for its
 *          first entry, then its latest epoch + 1. The same artifact and evidence again for a
 *          logged (namespace, epoch) is idempotent: it answers the existing entry. Anything else
 *          for a logged or skipped epoch                                else 409 INVALID
 *       5. the evidence proves the artifact (evidence-check.ts): the client's auditEvidence passes
 *          against the log's configured vendor roots (`--vendor-root`), accepted measurements
 *          (`--measurement`; none configured: any that every member attests) and maximum guess
 *          limit (`--max-guess-limit`, default 10); the statement froze this log's key and the
 *          artifact's namespace and epoch; artifactMismatches(artifact, statement) is empty; the
 *          validity window is at most MAX_ARTIFACT_VALIDITY_MS; and no member's signing or
 *          agreement key (compared as points) is a member key of a fleet already appended, in any
 *          namespace (one HSM, one genesis: the message names the member and the earlier entry)
 *                                                                       else 422 BUNDLE_EVIDENCE
 *          In a releases namespace (registered with `--release-key NAME=<hex key>` too) instead:
 *          the artifact is a release entry (measurement, source revision, build recipe) for this
 *          (namespace, epoch) signed by that key, with empty evidence (release-check.ts)
 *                                                          else 422 MALFORMED or SIGNATURE
 *          In a handovers namespace (registered with `--handovers NAME=FLEETS` too) instead: the
 *          artifact is a handover statement (wire handover.ts) of FLEETS' fleet at this epoch to
 *          the next, both logged as it names them, signed by the old fleet's signing key, naming a
 *          checkpoint this log had, with empty evidence (handover-check.ts)
 *                                           else 422 MALFORMED, INVALID or SIGNATURE
 *     Then the entry is appended durably, a checkpoint of the new tree is signed, cosigned by the
 *     witnesses (tlog-witness), and published once `threshold` of them cosigned; the proof is
 *     against that checkpoint. 503 UNAVAILABLE: too few witnesses cosigned (the entry stays; retry
 *     the same call).
 *
 *   GET  /checkpoint                  the latest published checkpoint, text/plain (C2SP signed
 *                                      note: the log's Ed25519 signature, witness cosignatures);
 *                                      404 NOT_FOUND before the first
 *   GET  /tile/<L>/<N>[.p/<W>]        tlog-tiles hash tiles        (application/octet-stream)
 *   GET  /tile/entries/<N>[.p/<W>]    tlog-tiles entries tiles     (application/octet-stream)
 *                                      404 beyond the published tree; 400 not a tile path
 *   GET  /proof?index=I[&size=S]      {index, size, proof}   inclusion proof (S ≤ published size)
 *   GET  /consistency?from=A[&to=B]   {from, to, proof}      consistency proof
 *   GET  /bundle?namespace=N[&epoch=E] the entry (the highest epoch if E is omitted) as a
 *                                      validation bundle against the latest checkpoint:
 *                                      {namespace, epoch, artifact, evidenceDigest, index,
 *                                       logSignature, inclusionProof, checkpoint}
 *                                      With &releases=R (a releases namespace): also `release`,
 *                                      the release entry of the fleet's measurement in R as below,
 *                                      against the same checkpoint (absent if R has none)
 *   GET  /release/<measurement hex>?namespace=R
 *                                      the release entry (highest epoch) for that measurement in
 *                                      the releases namespace R, as a bundle against the latest
 *                                      checkpoint: {namespace, epoch, artifact, evidenceDigest,
 *                                      index, logSignature, inclusionProof, checkpoint}; 404 if none
 *   GET  /evidence/<hex SHA-256>      the evidence bytes with that digest (lowercase hex)
 *   GET  /transparency/               the transparency page (transparency-page.ts)
 *
 * Entries are the `bkv-log-entry/v1` encoding of @bkv/tlog (log-entry.ts); the log's signature
 * per artifact is Ed25519 over bundleSignedMessage(namespace, epoch, SHA-256(artifact)). Reads
 * show only what the latest published checkpoint covers.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { MemberIndex } from "@bkv/client";
import {
  artifactDigest,
  bundleSignedMessage,
  type Checkpoint,
  decodeSignedRelease,
  ed25519VerifyStrict,
  encodeEntriesTile,
  encodeLogEntry,
  evidenceDigest,
  formatCheckpoint,
  fromBase64,
  isValidEpoch,
  isValidNamespace,
  leafHash,
  MerkleTree,
  maxArtifactSize,
  type NoteSignature,
  noteVerifier,
  parseDecimal,
  parseNote,
  parseTilePath,
  SIG_COSIGNATURE_V1,
  SIG_ED25519,
  signNote,
  submitMessage,
  TILE_WIDTH,
  TlogError,
  toBase64,
} from "@bkv/tlog";
import {
  BkvError,
  bytesEqual,
  decodeArtifact,
  ErrorCode,
  ed25519PointProblem,
  fromHex,
  type GenesisStatement,
  toHex,
} from "@bkv/wire";
import Fastify, { type FastifyInstance } from "fastify";
import { type EventSink, logEvent } from "./events.js";
import {
  checkFleetEvidence,
  checkFreshMembers,
  type EvidencePolicy,
  type LoggedFleetRef,
  loggedFleetOf,
} from "./evidence-check.js";
import { checkHandover, type HandoverLookups, loggedStatement } from "./handover-check.js";
import { installErrorHandlers, LogHttpError } from "./http-errors.js";
import { listen } from "./listen.js";
import { LogStore, type StoredEntry } from "./log-store.js";
import { ed25519Signer, loadOrCreateKey, type NodeKey } from "./node-keys.js";
import { checkRelease } from "./release-check.js";
import {
  ADD_BODY,
  ADD_BODY_LIMIT,
  AJV_OPTIONS,
  DECIMAL,
  EPOCH,
  HEX32,
  MAX_EVIDENCE_SIZE,
  NAMESPACE,
  NO_QUERY,
  OTHER_BODY_LIMIT,
  params,
  query,
  TILE_PARAMS,
} from "./request-schemas.js";
import { transparencyRoutes } from "./transparency-page.js";
import { requestCosignature, type WitnessConfig } from "./witness-client.js";

export interface LogOptions {
  readonly dir: string;
  /** The checkpoint origin, also the log key's name. */
  readonly origin: string;
  /** Witnesses as [submission URL, cosignature/v1 verifier key]. */
  readonly witnesses?: readonly (readonly [string, string])[];
  /** How often to retry publishing entries not yet published (default 5000 ms). */
  readonly publishRetryMs?: number;
  /** How many witnesses must cosign before a checkpoint is published; default all of them. */
  readonly witnessThreshold?: number;
  /** Where events go; default one JSON line each on stderr. */
  readonly onEvent?: EventSink;
  /** The namespaces this log hosts, each with its submitter's key; no other namespace is written. */
  readonly namespaces?: readonly NamespaceConfig[];
  /** Raw Ed25519 vendor root keys that every member's attestation must chain to. */
  readonly vendorRoots?: readonly Uint8Array[];
  /** Accepted measurements; none: any measurement every member attests. */
  readonly measurements?: readonly Uint8Array[];
  /** The largest guess limit of a fleet the log appends (default DEFAULT_MAX_GUESS_LIMIT). */
  readonly maxGuessLimit?: number;
  /** Development logs only: append fleets below the audit's minimum size (1 member). */
  readonly allowSmallFleet?: boolean;
}

export const DEFAULT_MAX_GUESS_LIMIT = 10;

export interface NamespaceConfig {
  readonly namespace: string;
  /** Raw 32-byte Ed25519 public key whose signature every /add to this namespace carries. */
  readonly submitterKey: Uint8Array;
  /**
   * If given, this is a releases namespace: its entries are release entries signed by this raw
   * Ed25519 key (release-check.ts), not fleets.
   */
  readonly releaseKey?: Uint8Array;
  /**
   * If given, this is a handovers namespace of the fleets of that namespace: its entries are
   * handover statements signed by those fleets (handover-check.ts), each at the old fleet's epoch.
   */
  readonly handoversOf?: string;
}

export interface AddRequest {
  readonly namespace: string;
  readonly epoch: number;
  readonly artifact: Uint8Array;
  readonly evidence: Uint8Array;
  /** The submitter's Ed25519 signature over submitMessage(namespace, epoch, digests). */
  readonly submitterSignature?: Uint8Array;
}

export interface AddResult {
  readonly entry: StoredEntry;
  readonly checkpoint: string;
  readonly size: number;
  readonly inclusionProof: Uint8Array[];
}

const IMMUTABLE = "public, max-age=31536000, immutable";

/** The log: durable store, in-memory tree, signing, witnessing. Calls to add are serialized. */
export class LogService {
  readonly key: NodeKey;
  private readonly store: LogStore;
  private readonly tree: MerkleTree;
  private readonly witnesses: WitnessConfig[];
  private readonly threshold: number;
  private readonly witnessSizes: Map<string, number>;
  private published: { size: number; note: string } | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly event: EventSink;
  private readonly submitters = new Map<string, Uint8Array>();
  private readonly releaseKeys = new Map<string, Uint8Array>();
  /** Handovers namespace -> the fleets' namespace it logs the handovers of. */
  private readonly handovers = new Map<string, string>();
  private readonly evidencePolicy: EvidencePolicy;
  /** The member keys of every fleet appended (release entries are not fleets), built at open. */
  private readonly members = new MemberIndex<LoggedFleetRef>();

  constructor(readonly options: LogOptions) {
    mkdirSync(options.dir, { recursive: true, mode: 0o700 });
    this.event = options.onEvent ?? logEvent;
    this.key = loadOrCreateKey(options.dir, "log.key", options.origin, SIG_ED25519);
    this.store = new LogStore(join(options.dir, "log.sqlite"));
    this.tree = MerkleTree.fromLeafHashes(this.store.leafHashes());
    this.witnesses = (options.witnesses ?? []).map(([url, vkey]) => {
      const verifier = noteVerifier(vkey);
      if (verifier.type !== SIG_COSIGNATURE_V1)
        throw new Error(`witness key ${vkey} is not a cosignature/v1 key`);
      return { url, verifier };
    });
    this.threshold = options.witnessThreshold ?? this.witnesses.length;
    if (!Number.isInteger(this.threshold) || this.threshold < 0 || this.threshold > this.witnesses.length) {
      throw new Error(`the witness threshold must be 0..${this.witnesses.length}`);
    }
    for (const n of options.namespaces ?? []) {
      if (!isValidNamespace(n.namespace)) throw new Error(`bad namespace ${JSON.stringify(n.namespace)}`);
      if (this.submitters.has(n.namespace)) throw new Error(`namespace ${n.namespace} is registered twice`);
      const problem = ed25519PointProblem(n.submitterKey);
      if (problem !== null) throw new Error(`the submitter key of ${n.namespace}: ${problem}`);
      this.submitters.set(n.namespace, n.submitterKey);
      if (n.releaseKey !== undefined) {
        const p = ed25519PointProblem(n.releaseKey);
        if (p !== null) throw new Error(`the release key of ${n.namespace}: ${p}`);
        this.releaseKeys.set(n.namespace, n.releaseKey);
      }
      if (n.handoversOf !== undefined) {
        if (n.releaseKey !== undefined)
          throw new Error(`${n.namespace} cannot hold both releases and handovers`);
        if (!isValidNamespace(n.handoversOf) || n.handoversOf === n.namespace)
          throw new Error(
            `${n.namespace}: bad fleets namespace ${JSON.stringify(n.handoversOf)} for its handovers`,
          );
        this.handovers.set(n.namespace, n.handoversOf);
      }
    }
    const maxGuessLimit = options.maxGuessLimit ?? DEFAULT_MAX_GUESS_LIMIT;
    if (!Number.isInteger(maxGuessLimit) || maxGuessLimit < 1)
      throw new Error("the maximum guess limit must be ≥ 1");
    for (const r of options.vendorRoots ?? []) {
      const problem = ed25519PointProblem(r);
      if (problem !== null) throw new Error(`a vendor root: ${problem}`);
    }
    for (const m of options.measurements ?? []) {
      if (m.length !== 32) throw new Error("a measurement is 32 bytes");
    }
    this.evidencePolicy = {
      vendorRoots: options.vendorRoots ?? [],
      measurements: options.measurements ?? [],
      maxGuessLimit,
      logKey: this.key.publicKey,
      allowSmallFleet: options.allowSmallFleet === true,
    };
    for (const e of this.store.entriesWithEvidence()) {
      if (this.releaseKeys.has(e.namespace) || this.handovers.has(e.namespace)) continue;
      const st = loggedFleetOf(e.evidence);
      if (st !== undefined) this.members.add(st.members, fleetRef(e, st));
    }
    this.witnessSizes = this.store.witnessSizes();
    this.published = this.store.latestCheckpoint();
    if (this.published !== undefined && this.published.size > this.tree.size) {
      throw new Error(
        `the database's checkpoint (size ${this.published.size}) is ahead of its entries (${this.tree.size})`,
      );
    }
  }

  /** Where this log's events go. */
  get onEvent(): EventSink {
    return this.event;
  }

  get origin(): string {
    return this.options.origin;
  }

  /** How many entries are appended (published or not). */
  get size(): number {
    return this.tree.size;
  }

  /** The latest published checkpoint note, if any. */
  checkpoint(): { size: number; note: string } | undefined {
    return this.published;
  }

  close(): void {
    this.store.close();
  }

  private serialized<T>(f: () => Promise<T>): Promise<T> {
    const next = this.queue.then(f, f);
    this.queue = next.catch(() => undefined);
    return next;
  }

  async add(req: AddRequest): Promise<AddResult> {
    if (!isValidNamespace(req.namespace))
      throw new LogHttpError(400, "namespace: 1..255 printable ASCII characters");
    if (!isValidEpoch(req.epoch)) throw new LogHttpError(400, "epoch: an integer 0..2^32-1");
    if (req.artifact.length > maxArtifactSize(req.namespace)) {
      throw new LogHttpError(400, `artifact: at most ${maxArtifactSize(req.namespace)} bytes`);
    }
    if (req.evidence.length > MAX_EVIDENCE_SIZE)
      throw new LogHttpError(400, `evidence: at most ${MAX_EVIDENCE_SIZE} bytes`);
    const submitter = this.submitters.get(req.namespace);
    if (submitter === undefined) {
      this.event("add-refused", { namespace: req.namespace, epoch: req.epoch, code: ErrorCode.Forbidden });
      throw new LogHttpError(
        403,
        `this log hosts no namespace ${req.namespace} (namespaces are registered in its configuration)`,
        ErrorCode.Forbidden,
      );
    }
    const digest = evidenceDigest(req.evidence);
    const signed = submitMessage(req.namespace, req.epoch, artifactDigest(req.artifact), digest);
    if (
      req.submitterSignature === undefined ||
      !ed25519VerifyStrict(submitter, signed, req.submitterSignature)
    ) {
      this.event("add-refused", {
        namespace: req.namespace,
        epoch: req.epoch,
        code: ErrorCode.SubmitterSignature,
      });
      throw new LogHttpError(
        403,
        req.submitterSignature === undefined
          ? `an /add to ${req.namespace} must carry its submitter's signature`
          : `the signature is not by ${req.namespace}'s submitter key, or not over this submission`,
        ErrorCode.SubmitterSignature,
      );
    }
    return this.serialized(async () => {
      let entry = this.store.byNamespaceEpoch(req.namespace, req.epoch);
      if (entry !== undefined) {
        if (!bytesEqual(entry.artifact, req.artifact) || !bytesEqual(entry.evidenceDigest, digest)) {
          this.event("add-refused", { namespace: req.namespace, epoch: req.epoch, index: entry.index });
          throw new LogHttpError(
            409,
            `(${req.namespace}, ${req.epoch}) is already logged with a different artifact or evidence`,
          );
        }
      } else {
        const latest = this.store.latestInNamespace(req.namespace, this.tree.size);
        const next = latest === undefined ? 1 : latest.epoch + 1;
        if (req.epoch !== next) {
          this.event("add-refused", { namespace: req.namespace, epoch: req.epoch, next });
          throw new LogHttpError(409, `the next epoch of ${req.namespace} is ${next}, not ${req.epoch}`);
        }
        let fleet: GenesisStatement | undefined;
        try {
          const releaseKey = this.releaseKeys.get(req.namespace);
          const handoversOf = this.handovers.get(req.namespace);
          if (releaseKey !== undefined) checkRelease(req, releaseKey);
          else if (handoversOf !== undefined) checkHandover(req, handoversOf, this.handoverLookups());
          else {
            fleet = checkFleetEvidence(req, this.evidencePolicy).statement;
            checkFreshMembers(fleet, this.members);
          }
        } catch (e) {
          if (!(e instanceof BkvError)) throw e;
          this.event("add-refused", { namespace: req.namespace, epoch: req.epoch, code: e.code });
          throw new LogHttpError(422, e.message, e.code);
        }
        entry = this.append(req);
        if (fleet !== undefined) this.members.add(fleet.members, fleetRef(entry, fleet));
      }
      if (this.published === undefined || this.published.size <= entry.index) await this.publish();
      const cp = this.published!;
      return {
        entry,
        checkpoint: cp.note,
        size: cp.size,
        inclusionProof: this.tree.inclusionProof(entry.index, cp.size),
      };
    });
  }

  /** What a handover is checked against: the fleets and tree this log holds. */
  private handoverLookups(): HandoverLookups {
    return {
      fleet: (namespace, epoch) => {
        const e = this.store.byNamespaceEpoch(namespace, epoch);
        const evidence = e === undefined ? undefined : this.store.evidence(e.evidenceDigest);
        if (e === undefined || evidence === undefined) return undefined;
        return { statement: loggedStatement(evidence), evidenceDigest: e.evidenceDigest };
      },
      root: (size) =>
        Number.isSafeInteger(size) && size >= 1 && size <= this.tree.size ? this.tree.root(size) : undefined,
    };
  }

  private append(req: AddRequest): StoredEntry {
    const digest = evidenceDigest(req.evidence);
    const encoded = encodeLogEntry({
      namespace: req.namespace,
      epoch: req.epoch,
      artifact: req.artifact,
      evidenceDigest: digest,
    });
    const entry: StoredEntry = {
      index: this.tree.size,
      namespace: req.namespace,
      epoch: req.epoch,
      artifact: req.artifact,
      evidenceDigest: digest,
      entry: encoded,
      logSignature: this.key.signRaw(
        bundleSignedMessage(req.namespace, req.epoch, artifactDigest(req.artifact)),
      ),
    };
    const h = leafHash(encoded);
    this.store.append(entry, h, req.evidence);
    this.tree.append(h);
    this.event("appended", { namespace: req.namespace, epoch: req.epoch, index: entry.index });
    return entry;
  }

  /**
   * Publish entries that were appended but never published (the witnesses were down, or the log
   * stopped between appending and publishing). Runs at start and on a timer; true if all is published.
   */
  publishPending(): Promise<boolean> {
    return this.serialized(async () => {
      if (this.tree.size === 0 || this.tree.size <= this.publishedSize()) return true;
      try {
        await this.publish();
        return true;
      } catch (e) {
        this.event("publish-pending-failed", { size: this.tree.size, message: (e as Error).message });
        return false;
      }
    });
  }

  /** Sign a checkpoint of the whole tree, collect cosignatures, publish at the threshold. */
  private async publish(): Promise<void> {
    const checkpoint: Checkpoint = {
      origin: this.origin,
      size: this.tree.size,
      root: this.tree.root(),
      extensions: [],
    };
    const text = formatCheckpoint(checkpoint);
    const logNote = await signNote(text, [ed25519Signer(this.key)]);
    const results = await Promise.allSettled(
      this.witnesses.map((w) =>
        requestCosignature(w, logNote, checkpoint, this.tree, this.witnessSizes.get(w.url) ?? 0),
      ),
    );
    const cosignatures: NoteSignature[] = [];
    results.forEach((r, i) => {
      const w = this.witnesses[i]!;
      if (r.status === "fulfilled") {
        cosignatures.push(r.value.signature);
        this.witnessSizes.set(w.url, r.value.size);
      } else {
        const code = r.reason instanceof TlogError ? r.reason.code : "UNREACHABLE";
        this.event("witness-failed", { witness: w.verifier.name, code, size: checkpoint.size });
      }
    });
    if (cosignatures.length < this.threshold) {
      this.store.saveWitnessSizes(this.witnessSizes);
      throw new LogHttpError(
        503,
        `only ${cosignatures.length} of the ${this.threshold} required witnesses cosigned; the entry is kept, retry`,
        ErrorCode.Unavailable,
      );
    }
    const note = await signNote(text, [], [...parseNote(logNote).signatures, ...cosignatures]);
    this.store.saveCheckpoint(checkpoint.size, note, this.witnessSizes);
    this.published = { size: checkpoint.size, note };
    this.event("published", { size: checkpoint.size, cosignatures: cosignatures.length });
  }

  private publishedSize(): number {
    return this.published?.size ?? 0;
  }

  /** Contents of a tile or entries tile path, within the published tree. */
  tile(path: string): Uint8Array {
    let p: ReturnType<typeof parseTilePath>;
    try {
      p = parseTilePath(path);
    } catch (e) {
      throw new LogHttpError(400, e instanceof Error ? e.message : "not a tile path");
    }
    const size = this.publishedSize();
    const start = p.index * TILE_WIDTH;
    if (p.kind === "entries") {
      if (start + p.width > size) throw new LogHttpError(404, "no such entries tile in the published tree");
      return encodeEntriesTile(this.store.entries(start, start + p.width));
    }
    const count = Math.floor(size / TILE_WIDTH ** p.level);
    if (start + p.width > count) throw new LogHttpError(404, "no such tile in the published tree");
    return this.tree.hashesAt(p.level * 8, start, start + p.width);
  }

  inclusionProof(index: number, size: number): Uint8Array[] {
    if (size > this.publishedSize() || index >= size)
      throw new LogHttpError(400, "index and size out of range");
    return this.tree.inclusionProof(index, size);
  }

  consistencyProof(from: number, to: number): Uint8Array[] {
    if (from < 1 || from > to || to > this.publishedSize()) throw new LogHttpError(400, "sizes out of range");
    return from === to ? [] : this.tree.consistencyProof(from, to);
  }

  /**
   * The entry (highest epoch if none given) as a bundle against the latest published checkpoint;
   * with `releases`, also the release of the fleet's measurement in that releases namespace,
   * against the same checkpoint (so a client can require the two checkpoints to be one).
   */
  bundle(namespace: string, epoch: number | undefined, releases?: string) {
    const cp = this.published;
    if (cp === undefined) throw new LogHttpError(404, "nothing published yet");
    const e =
      epoch === undefined
        ? this.store.latestInNamespace(namespace, cp.size)
        : this.store.byNamespaceEpoch(namespace, epoch);
    if (e === undefined || e.index >= cp.size)
      throw new LogHttpError(404, "no such entry in the published tree");
    const out = this.servedBundle(e, cp);
    // Absent when `releases` is no releases namespace here: the fleet bundle is served regardless.
    if (releases === undefined || !this.releaseKeys.has(releases) || this.releaseKeys.has(namespace))
      return out;
    let measurement: Uint8Array;
    try {
      measurement = decodeArtifact(e.artifact).measurement;
    } catch {
      return out;
    }
    const r = this.findRelease(releases, measurement, cp.size);
    return r === undefined ? out : { ...out, release: this.servedBundle(r, cp) };
  }

  /** The release entry (highest epoch) of `measurement` in the releases namespace, as a bundle. */
  release(namespace: string, measurementHex: string) {
    const cp = this.published;
    if (cp === undefined) throw new LogHttpError(404, "nothing published yet");
    if (!/^[0-9a-f]{64}$/.test(measurementHex))
      throw new LogHttpError(400, "measurement: 64 lowercase hex digits");
    const r = this.findRelease(namespace, fromHex(measurementHex), cp.size);
    if (r === undefined)
      throw new LogHttpError(404, `no release of ${measurementHex} in ${namespace} in the published tree`);
    return this.servedBundle(r, cp);
  }

  private findRelease(namespace: string, measurement: Uint8Array, size: number): StoredEntry | undefined {
    if (!this.releaseKeys.has(namespace))
      throw new LogHttpError(404, `${namespace} is not a releases namespace of this log`);
    for (const e of this.store.inNamespace(namespace, size)) {
      try {
        if (bytesEqual(decodeSignedRelease(e.artifact).measurement, measurement)) return e;
      } catch {
        // not a release entry: the log appends none, but skip rather than fail
      }
    }
    return undefined;
  }

  private servedBundle(e: StoredEntry, cp: { size: number; note: string }) {
    return {
      namespace: e.namespace,
      epoch: e.epoch,
      artifact: toBase64(e.artifact),
      evidenceDigest: toBase64(e.evidenceDigest),
      index: e.index,
      logSignature: toBase64(e.logSignature),
      inclusionProof: this.tree.inclusionProof(e.index, cp.size).map(toBase64),
      checkpoint: cp.note,
    };
  }

  evidence(hexDigest: string): Uint8Array {
    if (!/^[0-9a-f]{64}$/.test(hexDigest)) throw new LogHttpError(400, "digest: 64 lowercase hex digits");
    const body = this.store.evidence(fromHex(hexDigest));
    if (body === undefined) throw new LogHttpError(404, "no evidence with that digest");
    return body;
  }
}

function fleetRef(
  e: { index: number; namespace: string; epoch: number },
  st: GenesisStatement,
): LoggedFleetRef {
  return { index: e.index, namespace: e.namespace, epoch: e.epoch, fleetId: toHex(st.fleetId) };
}

function b64Field(body: Record<string, unknown>, name: string): Uint8Array {
  const v = body[name];
  const b = typeof v === "string" ? fromBase64(v) : undefined;
  if (b === undefined) throw new LogHttpError(400, `${name}: standard base64 expected`);
  return b;
}

function sizeParam(q: Record<string, string | undefined>, name: string, fallback?: number): number {
  const v = q[name];
  if (v === undefined && fallback !== undefined) return fallback;
  const n = v === undefined ? undefined : parseDecimal(v);
  if (n === undefined) throw new LogHttpError(400, `${name}: a decimal integer expected`);
  return n;
}

/** The HTTP API over a LogService: every route's parameters, query and JSON body have a schema. */
export function logApp(log: LogService): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: OTHER_BODY_LIMIT, ajv: AJV_OPTIONS });
  installErrorHandlers(app, log.onEvent);
  transparencyRoutes(app);

  app.post<{ Body: Record<string, unknown> }>(
    "/add",
    { schema: { querystring: NO_QUERY, body: ADD_BODY }, bodyLimit: ADD_BODY_LIMIT },
    async (req, reply) => {
      const body = req.body;
      const signature = body.submitterSignature;
      const r = await log.add({
        namespace: body.namespace as string,
        epoch: body.epoch as number,
        artifact: b64Field(body, "artifact"),
        evidence: b64Field(body, "evidence"),
        ...(signature === undefined ? {} : { submitterSignature: b64Field(body, "submitterSignature") }),
      });
      return reply.send({
        index: r.entry.index,
        namespace: r.entry.namespace,
        epoch: r.entry.epoch,
        evidenceDigest: toBase64(r.entry.evidenceDigest),
        logSignature: toBase64(r.entry.logSignature),
        checkpoint: r.checkpoint,
        inclusionProof: r.inclusionProof.map(toBase64),
      });
    },
  );

  app.get("/checkpoint", { schema: { querystring: NO_QUERY } }, async (_req, reply) => {
    const cp = log.checkpoint();
    reply.header("cache-control", "no-store");
    if (cp === undefined) throw new LogHttpError(404, "no checkpoint yet");
    return reply.type("text/plain; charset=utf-8").send(cp.note);
  });

  app.get<{ Params: { "*": string } }>(
    "/tile/*",
    { schema: { params: TILE_PARAMS, querystring: NO_QUERY } },
    async (req, reply) => {
      const body = log.tile(`tile/${req.params["*"]}`);
      return reply
        .type("application/octet-stream")
        .header("cache-control", IMMUTABLE)
        .send(Buffer.from(body));
    },
  );

  app.get<{ Querystring: Record<string, string | undefined> }>(
    "/proof",
    { schema: { querystring: query({ index: DECIMAL, size: DECIMAL }, ["index"]) } },
    async (req, reply) => {
      const size = sizeParam(req.query, "size", log.checkpoint()?.size ?? 0);
      const index = sizeParam(req.query, "index");
      return reply.send({ index, size, proof: log.inclusionProof(index, size).map(toBase64) });
    },
  );

  app.get<{ Querystring: Record<string, string | undefined> }>(
    "/consistency",
    { schema: { querystring: query({ from: DECIMAL, to: DECIMAL }, ["from"]) } },
    async (req, reply) => {
      const to = sizeParam(req.query, "to", log.checkpoint()?.size ?? 0);
      const from = sizeParam(req.query, "from");
      return reply.send({ from, to, proof: log.consistencyProof(from, to).map(toBase64) });
    },
  );

  app.get<{ Querystring: { namespace: string; epoch?: string; releases?: string } }>(
    "/bundle",
    {
      schema: {
        querystring: query({ namespace: NAMESPACE, epoch: EPOCH, releases: NAMESPACE }, ["namespace"]),
      },
    },
    async (req, reply) => {
      const q = req.query;
      const epoch = q.epoch === undefined ? undefined : sizeParam(q, "epoch");
      const bundle = log.bundle(q.namespace, epoch, q.releases);
      return reply.header("cache-control", "no-store").send(bundle);
    },
  );

  app.get<{ Params: { measurement: string }; Querystring: { namespace: string } }>(
    "/release/:measurement",
    {
      schema: {
        params: params({ measurement: HEX32 }),
        querystring: query({ namespace: NAMESPACE }, ["namespace"]),
      },
    },
    async (req, reply) => {
      const release = log.release(req.query.namespace, req.params.measurement);
      return reply.header("cache-control", "no-store").send(release);
    },
  );

  app.get<{ Params: { digest: string } }>(
    "/evidence/:digest",
    { schema: { params: params({ digest: HEX32 }), querystring: NO_QUERY } },
    async (req, reply) => {
      const body = log.evidence(req.params.digest);
      return reply
        .type("application/octet-stream")
        .header("cache-control", IMMUTABLE)
        .send(Buffer.from(body));
    },
  );

  return app;
}

export interface RunningLog {
  readonly url: string;
  readonly service: LogService;
  close(): Promise<void>;
}

/** Open the log in `dir` and serve it on host:port (0: any free port). */
export async function startLogServer(options: LogOptions, host: string, port: number): Promise<RunningLog> {
  const service = new LogService(options);
  const app = logApp(service);
  const url = await listen(app, host, port, () => service.close());
  // Entries appended but not published (a crash, absent witnesses) are published as soon as the
  // witnesses answer, without waiting for the next /add.
  void service.publishPending();
  const retry = setInterval(() => void service.publishPending(), options.publishRetryMs ?? 5000);
  retry.unref();
  return {
    url,
    service,
    close: async () => {
      clearInterval(retry);
      await app.close();
      service.close();
    },
  };
}
