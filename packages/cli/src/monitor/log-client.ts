/**
 * The log's HTTP API as the monitor reads it: the checkpoint, tiles and entries tiles (a
 * TileReader for TiledLog), evidence by digest and validation bundles. Everything it returns is
 * unverified; the callers check it. Failures to fetch are BkvError(Unavailable); answers that do
 * not parse are BkvError(Malformed).
 */
import { fromBase64, type LogBundle, type TileReader } from "@bkv/tlog";
import { BkvError, ErrorCode, toHex } from "@bkv/wire";

export const REQUEST_TIMEOUT_MS = 15_000;

export class LogClient implements TileReader {
  constructor(
    readonly url: string,
    private readonly stop?: AbortSignal,
  ) {}

  private async get(path: string): Promise<Response | undefined> {
    const signals = [AbortSignal.timeout(REQUEST_TIMEOUT_MS)];
    if (this.stop !== undefined) signals.push(this.stop);
    let res: Response;
    try {
      res = await fetch(`${this.url}/${path}`, { signal: AbortSignal.any(signals) });
    } catch (e) {
      throw new BkvError(ErrorCode.Unavailable, `GET ${this.url}/${path}: ${(e as Error).message}`, {
        cause: e,
      });
    }
    if (res.status === 404) {
      await res.body?.cancel();
      return undefined;
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new BkvError(ErrorCode.Unavailable, `GET ${this.url}/${path}: HTTP ${res.status}`);
    }
    return res;
  }

  private async bytes(path: string): Promise<Uint8Array | undefined> {
    const res = await this.get(path);
    return res === undefined ? undefined : new Uint8Array(await res.arrayBuffer());
  }

  /** TileReader: a tile or entries tile; absent ones throw (TiledLog then tries the full tile). */
  async fetch(path: string): Promise<Uint8Array> {
    const b = await this.bytes(path);
    if (b === undefined) throw new BkvError(ErrorCode.Unavailable, `GET ${this.url}/${path}: not found`);
    return b;
  }

  /** The latest checkpoint note, or undefined if the log has published none (404). */
  async checkpoint(): Promise<string | undefined> {
    const res = await this.get("checkpoint");
    return res === undefined ? undefined : res.text();
  }

  /** The evidence with this SHA-256, or undefined if the log does not have it. */
  evidence(digest: Uint8Array): Promise<Uint8Array | undefined> {
    return this.bytes(`evidence/${toHex(digest)}`);
  }

  /** The validation bundle of (namespace, epoch), or undefined if the log has none. */
  async bundle(namespace: string, epoch: number): Promise<LogBundle | undefined> {
    const q = new URLSearchParams({ namespace, epoch: String(epoch) });
    const res = await this.get(`bundle?${q}`);
    if (res === undefined) return undefined;
    let body: unknown;
    try {
      body = await res.json();
    } catch (e) {
      throw new BkvError(ErrorCode.Malformed, `the log's bundle is not JSON: ${(e as Error).message}`);
    }
    return parseBundle(body);
  }
}

function b64(o: Record<string, unknown>, name: string): Uint8Array {
  const v = o[name];
  const b = typeof v === "string" ? fromBase64(v) : undefined;
  if (b === undefined) throw new BkvError(ErrorCode.Malformed, `the log's bundle: ${name} is not base64`);
  return b;
}

/** A bundle as the log serves it (JSON, standard base64 for bytes). */
export function parseBundle(body: unknown): LogBundle {
  const bad = (what: string) => new BkvError(ErrorCode.Malformed, `the log's bundle: ${what}`);
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw bad("not a JSON object");
  const o = body as Record<string, unknown>;
  if (typeof o.namespace !== "string") throw bad("namespace is not a string");
  if (typeof o.epoch !== "number" || !Number.isInteger(o.epoch)) throw bad("epoch is not an integer");
  if (typeof o.index !== "number" || !Number.isInteger(o.index)) throw bad("index is not an integer");
  if (typeof o.checkpoint !== "string") throw bad("checkpoint is not a string");
  const proof = o.inclusionProof;
  if (!Array.isArray(proof)) throw bad("inclusionProof is not a list");
  return {
    namespace: o.namespace,
    epoch: o.epoch,
    artifact: b64(o, "artifact"),
    evidenceDigest: b64(o, "evidenceDigest"),
    index: o.index,
    logSignature: b64(o, "logSignature"),
    inclusionProof: proof.map((p, i) => {
      const h = typeof p === "string" ? fromBase64(p) : undefined;
      if (h === undefined) throw bad(`inclusionProof[${i}] is not base64`);
      return h;
    }),
    checkpoint: o.checkpoint,
  };
}
