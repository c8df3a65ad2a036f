/**
 * The host's copy of its fleet's validation bundle. It follows the transparency log (GET /bundle
 * for the fleet's namespace and epoch), has its own HSM counter-sign each new log signature, and
 * hands the bundle out with every vault response. It also fetches, and caches, the consistency
 * proofs clients ask for (from the largest checkpoint they have seen to the bundle's). The host is
 * untrusted here too: clients verify everything it hands out.
 */
import { BkvError, type BundleJson, ErrorCode } from "@bkv/wire";
import type { HsmLink } from "./hsm-link.js";
import type { Logger } from "./logger.js";

export interface TransparencyConfig {
  /** The log's base URL (it serves /checkpoint, /tile/..., /bundle, /consistency). */
  log: string;
  namespace: string;
  epoch: number;
  /** How often to look for a newer checkpoint (default 2000 ms). */
  refreshMs?: number;
}

/** What the log's GET /bundle answers: the bundle before the fleet counter-signs it. */
type LogBundleAnswer = Omit<BundleJson, "countersignature" | "consistency">;

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
  private signed: { logSignature: string; artifact: string; countersignature: string } | null = null;
  private timer: NodeJS.Timeout | null = null;
  private refreshing: Promise<void> | null = null;
  private proofs = new Map<string, string[]>();
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
      const q = `namespace=${encodeURIComponent(this.config.namespace)}&epoch=${this.config.epoch}`;
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
        size: checkpointSize(b.checkpoint),
      };
    } catch (e) {
      this.log.warn(
        { event: "bundle-refresh-failed", error: (e as Error).message },
        "keeping the last bundle",
      );
    }
  }

  /**
   * The bundle, with a consistency proof from `from` (the client's largest checkpoint) if it asked.
   * Never fetches the bundle on a client's request: at most it waits for the first fetch to finish.
   */
  async current(from: number | null): Promise<BundleJson | null> {
    if (this.bundle === null && this.refreshing !== null) await this.refreshing;
    const b = this.bundle;
    if (b === null) return null;
    const { size, ...json } = b;
    if (from === null || from <= 0 || from >= size) return json;
    return { ...json, consistency: { from, proof: await this.consistency(from, size) } };
  }

  private async consistency(from: number, to: number): Promise<string[]> {
    const key = `${from}-${to}`;
    const cached = this.proofs.get(key);
    if (cached !== undefined) return cached;
    const res = await fetch(`${this.base}/consistency?from=${from}&to=${to}`, {
      signal: AbortSignal.timeout(5000),
    });
    if (!res.ok)
      throw new BkvError(ErrorCode.Unavailable, `the log has no consistency proof (${res.status})`);
    const proof = ((await res.json()) as { proof: string[] }).proof;
    if (this.proofs.size > 1000) this.proofs.clear();
    this.proofs.set(key, proof);
    return proof;
  }
}
