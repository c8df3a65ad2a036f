/** Test helpers: temporary folders, HTTP calls, a TileReader over HTTP, and bundle decoding. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fromBase64, type LogBundle, type TileReader } from "@bkv/tlog";

export function tempDir(): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), "bkv-log-test-"));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

export function b64(s: string): Uint8Array {
  const b = fromBase64(s);
  if (b === undefined) throw new Error(`not base64: ${s}`);
  return b;
}

export const enc = (b: Uint8Array): string => Buffer.from(b).toString("base64");

export interface AddResponse {
  index: number;
  namespace: string;
  epoch: number;
  evidenceDigest: string;
  logSignature: string;
  checkpoint: string;
  inclusionProof: string[];
}

/** POST /add with this JSON body as is. */
export async function addRaw(
  url: string,
  body: Record<string, unknown>,
): Promise<{ status: number; body: AddResponse & { code?: string; message?: string } }> {
  const res = await fetch(`${url}/add`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return {
    status: res.status,
    body: (await res.json()) as AddResponse & { code?: string; message?: string },
  };
}

/** POST /add of a submission with this submitter signature (none: the field is left out). */
export function add(
  url: string,
  s: { namespace: string; epoch: number; artifact: Uint8Array; evidence: Uint8Array },
  submitterSignature?: Uint8Array,
): Promise<{ status: number; body: AddResponse & { code?: string; message?: string } }> {
  return addRaw(url, {
    namespace: s.namespace,
    epoch: s.epoch,
    artifact: enc(s.artifact),
    evidence: enc(s.evidence),
    ...(submitterSignature === undefined ? {} : { submitterSignature: enc(submitterSignature) }),
  });
}

export async function getText(url: string): Promise<{ status: number; type: string | null; body: string }> {
  const res = await fetch(url);
  return { status: res.status, type: res.headers.get("content-type"), body: await res.text() };
}

export function httpTileReader(url: string): TileReader {
  return {
    async fetch(path) {
      const res = await fetch(`${url}/${path}`);
      if (!res.ok) throw new Error(`GET ${path}: ${res.status}`);
      return new Uint8Array(await res.arrayBuffer());
    },
  };
}

/** A bundle as a client assembles it from an /add answer and the artifact it logged. */
export function bundleFromAdd(r: AddResponse, artifact: Uint8Array): LogBundle {
  return {
    namespace: r.namespace,
    epoch: r.epoch,
    artifact,
    evidenceDigest: b64(r.evidenceDigest),
    index: r.index,
    logSignature: b64(r.logSignature),
    inclusionProof: r.inclusionProof.map(b64),
    checkpoint: r.checkpoint,
  };
}

export async function postWitness(
  url: string,
  body: string,
): Promise<{ status: number; type: string | null; body: string }> {
  const res = await fetch(`${url}/add-checkpoint`, { method: "POST", body });
  return { status: res.status, type: res.headers.get("content-type"), body: await res.text() };
}
