/**
 * The bundle keeper fetches the fleet's evidence from the log by the entry's digest, checks that the
 * bytes hash to it, and serves it in GET /v1/bundle's bundle (vault answers leave it out). A log (or
 * a path to it) that serves other bytes under the digest gets no bundle served with them. With a
 * releases namespace configured it asks for the release in the same call and serves it the same way.
 */
import { createHash } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { BundleKeeper, type HsmLink, MAX_OTHER_PROOFS } from "@bkv/host";
import { toHex } from "@bkv/wire";
import { afterEach, describe, expect, it } from "vitest";

const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64");
const sha256 = (b: Uint8Array) => new Uint8Array(createHash("sha256").update(b).digest());

const EVIDENCE = new Uint8Array(300).map((_, i) => i & 0xff);
const ARTIFACT = new Uint8Array([1, 2, 3, 4]);
const LOG_SIG = new Uint8Array(64).fill(7);
const COUNTERSIG = new Uint8Array(64).fill(8);

const RELEASE = {
  namespace: "",
  epoch: 1,
  artifact: b64(new Uint8Array([9, 9])),
  evidenceDigest: b64(sha256(new Uint8Array(0))),
  index: 1,
  logSignature: b64(LOG_SIG),
  inclusionProof: [],
  checkpoint: "origin\n1\nroot\n\n— sig\n",
};

let server: Server | null = null;
const fetched: string[] = [];
/** The stand-in log's tree size (its checkpoint's second line). */
let logSize = 1;

/** A stand-in log serving one bundle, and `served` under the evidence digest of EVIDENCE. */
async function standInLog(served: Uint8Array): Promise<string> {
  const digest = sha256(EVIDENCE);
  server = createServer((req, res) => {
    fetched.push(req.url ?? "");
    if (req.url?.startsWith("/bundle?")) {
      res.setHeader("content-type", "application/json");
      const releases = new URL(req.url, "http://x").searchParams.get("releases");
      res.end(
        JSON.stringify({
          ...(releases === null ? {} : { release: { ...RELEASE, namespace: releases } }),
          namespace: "bkv-test",
          epoch: 1,
          artifact: b64(ARTIFACT),
          evidenceDigest: b64(digest),
          index: 0,
          logSignature: b64(LOG_SIG),
          inclusionProof: [],
          checkpoint: `origin\n${logSize}\nroot\n\n— sig\n`,
        }),
      );
    } else if (req.url?.startsWith("/consistency?")) {
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ proof: [b64(new Uint8Array(32).fill(1))] }));
    } else if (req.url === `/evidence/${toHex(digest)}`) {
      res.setHeader("content-type", "application/octet-stream");
      res.end(Buffer.from(served));
    } else {
      res.statusCode = 404;
      res.end();
    }
  });
  await new Promise<void>((r) => server!.listen(0, "127.0.0.1", r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const hsm = {
  countersign: async () => ({ ok: true as const, envelope: COUNTERSIG }),
} as unknown as HsmLink;
const warnings: unknown[] = [];
const log = { info: () => {}, warn: (o: unknown) => warnings.push(o), error: () => {} };

afterEach(async () => {
  await new Promise<void>((r) => (server === null ? r() : server.close(() => r())));
  server = null;
  fetched.length = 0;
  warnings.length = 0;
  logSize = 1;
});

describe("bundle keeper", () => {
  it("serves the log's evidence in GET /v1/bundle's bundle, not in vault answers", async () => {
    const url = await standInLog(EVIDENCE);
    const k = new BundleKeeper({ log: url, namespace: "bkv-test", epoch: 1 }, hsm, log as never);
    await k.refresh();
    const full = await k.current(null, { evidence: true });
    expect(full?.evidence).toBe(b64(EVIDENCE));
    expect(full?.countersignature).toBe(b64(COUNTERSIG));
    const lean = await k.current(null);
    expect(lean).not.toBeNull();
    expect(lean !== null && "evidence" in lean).toBe(false);
    // The evidence is fetched once per digest, not on every refresh.
    await k.refresh();
    expect(fetched.filter((u) => u.startsWith("/evidence/"))).toHaveLength(1);
  });

  it("with a releases namespace, asks for the release with the bundle and serves it only in GET /v1/bundle", async () => {
    const url = await standInLog(EVIDENCE);
    const k = new BundleKeeper(
      { log: url, namespace: "bkv-test", epoch: 1, releases: "bkv-test-releases" },
      hsm,
      log as never,
    );
    await k.refresh();
    expect(fetched[0]).toBe("/bundle?namespace=bkv-test&epoch=1&releases=bkv-test-releases");
    const full = await k.current(null, { evidence: true });
    expect(full?.release).toEqual({ ...RELEASE, namespace: "bkv-test-releases" });
    const lean = await k.current(null);
    expect(lean !== null && "release" in lean).toBe(false);
    // Without one configured, none is asked for.
    const plain = new BundleKeeper({ log: url, namespace: "bkv-test", epoch: 1 }, hsm, log as never);
    await plain.refresh();
    expect((await plain.current(null, { evidence: true }))?.release).toBeUndefined();
  });

  it("serves no bundle with evidence whose SHA-256 is not the entry's evidenceDigest", async () => {
    const other = EVIDENCE.slice();
    other[0]! ^= 1;
    const url = await standInLog(other);
    const k = new BundleKeeper({ log: url, namespace: "bkv-test", epoch: 1 }, hsm, log as never);
    await k.refresh();
    expect(await k.current(null, { evidence: true })).toBeNull();
    expect(JSON.stringify(warnings)).toContain("does not match the entry's evidenceDigest");
  });

  it("attack: client-chosen checkpoint sizes make it fetch only a bounded, cached set of proofs", async () => {
    const url = await standInLog(EVIDENCE);
    const k = new BundleKeeper({ log: url, namespace: "bkv-test", epoch: 1 }, hsm, log as never);
    logSize = 100;
    await k.refresh();
    logSize = 5000;
    await k.refresh();
    const proofFetches = () => fetched.filter((u) => u.startsWith("/consistency?")).length;
    // A client names a thousand sizes it never saw, some of them many times.
    for (let i = 1; i <= 1000; i++) {
      const b = await k.current(i % 200 === 0 ? 3 : 1000 + i);
      expect(b).not.toBeNull();
    }
    expect(proofFetches()).toBe(MAX_OTHER_PROOFS);
    expect(k.counters.proofsRefused).toBeGreaterThan(900);
    // A size the host saw itself still gets its proof past the bound, fetched once.
    for (let i = 0; i < 10; i++) expect((await k.current(100))?.consistency?.from).toBe(100);
    expect(proofFetches()).toBe(MAX_OTHER_PROOFS + 1);
    // Beyond the bound the bundle comes without a proof, which the client reports as missing.
    expect((await k.current(4321))?.consistency).toBeUndefined();
    // A new checkpoint of its own starts a new bound.
    logSize = 6000;
    await k.refresh();
    expect((await k.current(4321))?.consistency?.from).toBe(4321);
    expect(proofFetches()).toBe(MAX_OTHER_PROOFS + 2);
  });
});
