/**
 * The host's copy of its fleet's validation bundle. It follows the transparency log (GET /bundle
 * for the fleet's namespace and epoch), has its own HSM counter-sign each new log signature, and
 * hands the bundle out with every vault response. It also fetches the fleet's evidence from the log
 * (GET /evidence/<hex digest>, checked against the entry's evidenceDigest) and adds it to the bundle
 * that GET /v1/bundle serves, so a client can verify a fleet it has not verified before; vault
 * answers carry the bundle without it. With `releases` configured it asks the log for the release
 * of the fleet's measurement in that releases namespace in the same call (GET /bundle?releases=R),
 * so the release is proven against the very checkpoint of the fleet bundle, and GET /v1/bundle
 * carries it as `release` (clients that pin a release key need it). It also fetches, and caches, the consistency
 * proofs clients ask for (from the largest checkpoint they have seen to the bundle's), but only a
 * bounded set per checkpoint: proofs from the sizes it has seen itself (at most MAX_KNOWN_SIZES),
 * and at most MAX_OTHER_PROOFS from other sizes a client names, so a client choosing sizes cannot
 * make the host fetch from the log on its behalf without bound. The host is untrusted here too:
 * clients verify everything it hands out.
 */
import { createHash } from "node:crypto";
import { BkvError, type BundleJson, ErrorCode, toHex } from "@bkv/wire";
import type { HsmLink } from "./hsm-link.js";
import type { Logger } from "./logger.js";

export interface TransparencyConfig {
  /** The log's base URL (it serves /checkpoint, /tile/..., /bundle, /consistency). */
  log: string;
  namespace: string;
  epoch: number;
  /** The releases namespace where the fleet's code is published, if any (e.g. `<namespace>-releases`). */
  releases?: string;
  /** How often to look for a newer checkpoint (default 2000 ms). */
  refreshMs?: number;
}

/** What the log's GET /bundle answers: the bundle before the fleet counter-signs it. */
type LogBundleAnswer = Omit<BundleJson, "countersignature" | "consistency" | "evidence">;

/** Checkpoint sizes the keeper remembers having fetched from the log (newest kept). */
export const MAX_KNOWN_SIZES = 256;
/**
 * Per checkpoint of its own, the most consistency proofs the keeper fetches from sizes it never saw
 * itself (a client may have seen a checkpoint from another host that this one missed).
 */
export const MAX_OTHER_PROOFS = 16;

/** How long a failed proof fetch answers for itself before the keeper may try again. */
const FAILED_PROOF_RETRY_MS = 5000;

/** The most evidence bytes the host fetches (9 members' statement and signatures fit easily). */
const MAX_EVIDENCE_BYTES = 48 * 1024;

function b64(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s, "base64"));
}

function checkpointSize(note: string): number {
  const size = Number(note.split("\n")[1]);
  if (!Number.isSafeInteger(size) || size < 0)
    throw new BkvError(ErrorCode.Malformed, "log checkpoint has no size");
  return size;
}

export class BundleKeeper {
  private bundle: (BundleJson & { size: number }) | null = null;
  /** The fleet's evidence (base64) and its SHA-256 (base64), once fetched and checked. */
  private evidence: { digest: string; base64: string } | null = null;
  private signed: { logSignature: string; artifact: string; countersignature: string } | null = null;
  private timer: NodeJS.Timeout | null = null;
  private refreshing: Promise<void> | null = null;
  /** Consistency proofs to the current bundle's size, by the size they start from (in flight or done). */
  private proofs = new Map<number, Promise<string[]>>();
  private proofsTo = -1;
  /** Proofs fetched to proofsTo from sizes this keeper never saw itself. */
  private otherProofs = 0;
  /** Checkpoint sizes fetched from the log, oldest first. */
  private knownSizes: number[] = [];
  /** For the metrics: fetches of consistency proofs from the log, and client sizes refused one. */
  readonly counters = { proofFetches: 0, proofsRefused: 0, refreshFailures: 0 };
  /** When the bundle served now was last confirmed by the log (ms since the epoch), 0 before. */
  fetchedAt = 0;
  private readonly base: string;

  constructor(
    private readonly config: TransparencyConfig,
    private readonly hsm: HsmLink,
    private readonly log: Logger,
  ) {
    this.base = config.log.replace(/\/+$/, "");
  }

  start(): void {
    this.refreshing = this.refresh().finally(() => {
      this.refreshing = null;
    });
    this.timer = setInterval(() => void this.refresh(), this.config.refreshMs ?? 2000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** Fetch the latest bundle from the log; counter-sign it if its log signature is new. */
  async refresh(): Promise<void> {
    try {
      const rel = this.config.releases;
      const q =
        `namespace=${encodeURIComponent(this.config.namespace)}&epoch=${this.config.epoch}` +
        (rel === undefined ? "" : `&releases=${encodeURIComponent(rel)}`);
      const res = await fetch(`${this.base}/bundle?${q}`, { signal: AbortSignal.timeout(5000) });
      if (!res.ok) throw new Error(`the log answered ${res.status}`);
      const b = (await res.json()) as LogBundleAnswer;
      if (this.signed?.logSignature !== b.logSignature || this.signed.artifact !== b.artifact) {
        const r = await this.hsm.countersign(b64(b.artifact), b64(b.logSignature));
        if (!r.ok) throw new Error(`the HSM refused to counter-sign: ${r.code}: ${r.message}`);
        this.signed = {
          logSignature: b.logSignature,
          artifact: b.artifact,
          countersignature: Buffer.from(r.envelope).toString("base64"),
        };
      }
      if (this.evidence?.digest !== b.evidenceDigest) {
        this.evidence = { digest: b.evidenceDigest, base64: await this.fetchEvidence(b.evidenceDigest) };
      }
      this.bundle = {
        namespace: b.namespace,
        epoch: b.epoch,
        artifact: b.artifact,
        evidenceDigest: b.evidenceDigest,
        index: b.index,
        logSignature: b.logSignature,
        countersignature: this.signed.countersignature,
        inclusionProof: b.inclusionProof,
        checkpoint: b.checkpoint,
        evidence: this.evidence.base64,
        ...(b.release === undefined ? {} : { release: b.release }),
        size: checkpointSize(b.checkpoint),
      };
      this.fetchedAt = Date.now();
      const size = this.bundle.size;
      if (!this.knownSizes.includes(size)) {
        this.knownSizes.push(size);
        if (this.knownSizes.length > MAX_KNOWN_SIZES) this.knownSizes.shift();
      }
    } catch (e) {
      this.counters.refreshFailures++;
      this.log.warn(
        { event: "bundle-refresh-failed", error: (e as Error).message },
        "keeping the last bundle",
      );
    }
  }

  /** The evidence the log entry names (base64), whose SHA-256 must be the entry's evidenceDigest. */
  private async fetchEvidence(digestB64: string): Promise<string> {
    const want = b64(digestB64);
    if (want.length !== 32) throw new Error("the log's evidence digest is not 32 bytes");
    const res = await fetch(`${this.base}/evidence/${toHex(want)}`, { signal: AbortSignal.timeout(5000) });
    if (!res.ok) throw new Error(`the log has no evidence for the entry (${res.status})`);
    const body = new Uint8Array(await res.arrayBuffer());
    if (body.length > MAX_EVIDENCE_BYTES)
      throw new Error(`the log's evidence is ${body.length} bytes, too big`);
    const got = createHash("sha256").update(body).digest();
    if (!got.equals(want)) throw new Error("the log's evidence does not match the entry's evidenceDigest");
    return Buffer.from(body).toString("base64");
  }

  /** The tree size of the checkpoint in the bundle served now (null before the first). */
  servedSize(): number | null {
    return this.bundle?.size ?? null;
  }

  /**
   * The bundle, with a consistency proof from `from` (the client's largest checkpoint) if it asked,
   * and with the fleet's evidence and release only if asked (GET /v1/bundle; vault answers leave
   * them out).
   * Never fetches the bundle on a client's request: at most it waits for the first fetch to finish.
   */
  async current(from: number | null, o: { evidence?: boolean } = {}): Promise<BundleJson | null> {
    if (this.bundle === null && this.refreshing !== null) await this.refreshing;
    const b = this.bundle;
    if (b === null) return null;
    const { size, evidence, release, ...rest } = b;
    const json: BundleJson =
      o.evidence === true ? { ...rest, evidence, ...(release === undefined ? {} : { release }) } : rest;
    if (from === null || from <= 0 || from >= size) return json;
    const proof = this.consistency(from, size);
    // Past its bound the keeper serves the bundle without a proof (the client says which it lacks).
    return proof === null ? json : { ...json, consistency: { from, proof: await proof } };
  }

  /** The proof from `from` to `to`: cached, or fetched once if within the bound; null past it. */
  private consistency(from: number, to: number): Promise<string[]> | null {
    if (this.proofsTo !== to) {
      this.proofs.clear();
      this.proofsTo = to;
      this.otherProofs = 0;
    }
    const cached = this.proofs.get(from);
    if (cached !== undefined) return cached;
    if (!this.knownSizes.includes(from)) {
      if (this.otherProofs >= MAX_OTHER_PROOFS) {
        this.counters.proofsRefused++;
        return null;
      }
      this.otherProofs++;
    }
    this.counters.proofFetches++;
    const p = this.fetchConsistency(from, to);
    this.proofs.set(from, p);
    // A failed fetch is remembered for a while, then forgotten so a later request may fetch again.
    p.catch(() => {
      setTimeout(() => {
        if (this.proofs.get(from) === p) this.proofs.delete(from);
      }, FAILED_PROOF_RETRY_MS).unref();
    });
    return p;
  }

  private async fetchConsistency(from: number, to: number): Promise<string[]> {
    const res = await fetch(`${this.base}/consistency?from=${from}&to=${to}`, {
      signal: AbortSignal.timeout(5000),
    });
    if (!res.ok)
      throw new BkvError(ErrorCode.Unavailable, `the log has no consistency proof (${res.status})`);
    return ((await res.json()) as { proof: string[] }).proof;
  }
}
