/**
 * The log's and the witness's error answers (issue 16): every route has a request schema, so a
 * malformed request (a wrong type, a missing, unknown or repeated field or parameter, an overlong
 * value, a body that is not JSON or too large) is refused with 400 (413, 415) before a handler
 * runs, an unknown route with 404, all as the host answers them, {code, message} and nothing else,
 * and none of them changes anything: the log's size, checkpoint and entries, the witness's state.
 * The witness's tlog-witness answers keep their spec-defined text formats.
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { SIG_ED25519 } from "@bkv/tlog";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  loadOrCreateKey,
  type RunningLog,
  type RunningWitness,
  startLogServer,
  startWitnessServer,
  WITNESS_BODY_LIMIT,
} from "../src/index.js";
import { ADD_BODY_LIMIT } from "../src/request-schemas.js";
import { type FleetWorld, fleetWorld } from "./fleet-world.js";
import { add, enc, getText, postWitness, tempDir } from "./helpers.js";

const ORIGIN = "log.example/http-errors";
const NS = "example.test/vault";
const quiet = () => {};

interface Answer {
  status: number;
  type: string | null;
  body: unknown;
}

async function call(url: string, init?: RequestInit): Promise<Answer> {
  const res = await fetch(url, init);
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: the test below says so
  }
  return { status: res.status, type: res.headers.get("content-type"), body };
}

const postJson = (body: unknown): RequestInit => ({
  method: "POST",
  headers: { "content-type": "application/json" },
  body: typeof body === "string" ? body : JSON.stringify(body),
});

/** The host's error shape: JSON with exactly code and message, both non-empty strings. */
function expectError(a: Answer, status: number, code: string): string {
  expect({ status: a.status, code: (a.body as { code?: unknown }).code }).toEqual({ status, code });
  expect(a.type).toMatch(/^application\/json/);
  expect(Object.keys(a.body as object).sort()).toEqual(["code", "message"]);
  const message = (a.body as { message: unknown }).message;
  expect(typeof message).toBe("string");
  expect(message).not.toBe("");
  return message as string;
}

describe("the log's and the witness's error answers", () => {
  const dir = tempDir();
  let log: RunningLog;
  let witness: RunningWitness;
  let world: FleetWorld;
  let good: Record<string, unknown>;
  /** What must not change: the log's size and checkpoint, the witness's latest size. */
  let before: { size: number; checkpoint: string; witness: number | undefined };

  const state = async () => ({
    size: log.service.size,
    checkpoint: (await getText(`${log.url}/checkpoint`)).body,
    witness: witness.service.latest(ORIGIN)?.size,
  });

  beforeAll(async () => {
    const logKey = loadOrCreateKey(join(dir.path, "log"), "log.key", ORIGIN, SIG_ED25519);
    world = fleetWorld(logKey.publicKey, { freshMembers: true });
    witness = await startWitnessServer(
      { dir: join(dir.path, "w"), name: "w.example", logs: [[ORIGIN, logKey.vkey]], onEvent: quiet },
      "127.0.0.1",
      0,
    );
    log = await startLogServer(
      {
        dir: join(dir.path, "log"),
        origin: ORIGIN,
        onEvent: quiet,
        witnesses: [[witness.url, witness.service.key.vkey]],
        namespaces: [{ namespace: NS, submitterKey: world.submitterKey }],
        vendorRoots: [world.vendorRoot],
      },
      "127.0.0.1",
      0,
    );
    const first = world.fleet(NS, 1);
    expect((await add(log.url, first, world.sign(first))).status).toBe(200);
    // A well-formed, signed /add of epoch 2: the malformed variants below start from it.
    const f2 = world.fleet(NS, 2);
    good = {
      namespace: f2.namespace,
      epoch: f2.epoch,
      artifact: enc(f2.artifact),
      evidence: enc(f2.evidence),
      submitterSignature: enc(world.sign(f2)),
    };
    before = await state();
    expect(before).toMatchObject({ size: 1, witness: 1 });
  });

  afterAll(async () => {
    await log?.close();
    await witness?.close();
    dir.remove();
  });

  it("POST /add: wrong types, missing, unknown or overlong fields are 400 MALFORMED by the schema", async () => {
    const variants: [string, unknown][] = [
      ["epoch as a string", { ...good, epoch: "2" }],
      ["epoch not an integer", { ...good, epoch: 2.5 }],
      ["epoch negative", { ...good, epoch: -1 }],
      ["epoch above 2^32-1", { ...good, epoch: 2 ** 32 }],
      ["namespace a number", { ...good, namespace: 5 }],
      ["namespace with a space", { ...good, namespace: "a b" }],
      ["namespace empty", { ...good, namespace: "" }],
      ["namespace of 256 characters", { ...good, namespace: "n".repeat(256) }],
      ["artifact missing", { ...good, artifact: undefined }],
      ["evidence missing", { ...good, evidence: undefined }],
      ["artifact a list", { ...good, artifact: [1, 2] }],
      ["artifact unpadded base64", { ...good, artifact: "AQ" }],
      ["artifact base64url", { ...good, artifact: "-_-_" }],
      ["artifact with unused bits set", { ...good, artifact: "AB==" }],
      ["artifact longer than any entry", { ...good, artifact: "A".repeat(90_000) }],
      ["evidence over 1 MiB", { ...good, evidence: "A".repeat(1_400_004) }],
      ["a 63-byte signature", { ...good, submitterSignature: enc(new Uint8Array(63)) }],
      ["a 65-byte signature", { ...good, submitterSignature: enc(new Uint8Array(65)) }],
      ["signature null", { ...good, submitterSignature: null }],
      ["an unknown field", { ...good, replace: true }],
      ["an array", [good]],
      ["a string", "add"],
      ["null", null],
    ];
    for (const [what, body] of variants) {
      const a = await call(`${log.url}/add`, postJson(body));
      expect.soft(a.status, what).toBe(400);
      expectError(a, 400, "MALFORMED");
    }
    expect(await state()).toEqual(before);
  });

  it("POST /add: bodies that are not JSON, too large, or with a query are refused", async () => {
    const url = `${log.url}/add`;
    const notJson = await call(url, postJson("{namespace:"));
    expectError(notJson, 400, "MALFORMED");
    const empty = await call(url, postJson(""));
    expectError(empty, 400, "MALFORMED");
    const text = await call(url, { method: "POST", headers: { "content-type": "text/plain" }, body: "x" });
    expectError(text, 400, "MALFORMED");
    const octets = await call(url, {
      method: "POST",
      headers: { "content-type": "application/octet-stream" },
      body: new Uint8Array(8),
    });
    expectError(octets, 415, "MALFORMED");
    const huge = await call(url, postJson({ ...good, evidence: "A".repeat(ADD_BODY_LIMIT) }));
    expectError(huge, 413, "MALFORMED");
    const withQuery = await call(`${url}?replace=1`, postJson(good));
    expectError(withQuery, 400, "MALFORMED");
    expect(await state()).toEqual(before);
  });

  it("GET routes: wrong, missing, repeated or unknown query and path parameters are 400 MALFORMED", async () => {
    const measurement = "ab".repeat(32);
    const paths = [
      "/proof",
      "/proof?index=x",
      "/proof?index=-1",
      "/proof?index=01",
      "/proof?index=0&index=0",
      "/proof?index=0&size=1&more=1",
      "/proof?index=12345678901234567",
      "/consistency",
      "/consistency?from=1&to=one",
      "/bundle",
      `/bundle?namespace=${encodeURIComponent(NS)}&epoch=1.0`,
      `/bundle?namespace=${encodeURIComponent(NS)}&epoch=12345678901`,
      `/bundle?namespace=${"n".repeat(256)}`,
      `/bundle?namespace=${encodeURIComponent(NS)}&namespace=${encodeURIComponent(NS)}`,
      `/release/${measurement}`,
      `/release/${measurement.toUpperCase()}?namespace=r`,
      `/release/${measurement.slice(2)}?namespace=r`,
      "/evidence/abc",
      `/evidence/${"AB".repeat(32)}`,
      `/evidence/${"ab".repeat(33)}`,
      `/evidence/${"ab".repeat(32)}?x=1`,
      "/tile/abc",
      "/tile/64/000",
      "/tile/0/1",
      "/tile/0/000.p/0",
      "/tile/0/x000/000",
      "/tile/0/000.p/256",
      "/checkpoint?x=1",
    ];
    for (const p of paths) {
      const a = await call(`${log.url}${p}`);
      expect.soft(a.status, p).toBe(400);
      expectError(a, 400, "MALFORMED");
    }
    expect(await state()).toEqual(before);
  });

  it("unknown routes and absent resources are 404 NOT_FOUND", async () => {
    const routes: [string, RequestInit?][] = [
      ["/nope"],
      ["/add"],
      ["/add", { method: "PUT", body: "{}" }],
      ["/checkpoint", { method: "POST", body: "x" }],
      ["/tile"],
      ["/evidence"],
      ["/transparency/secret.txt"],
      // Not one of the page's files: no path, no object property.
      ["/transparency/..%2Fpackage.json"],
      ["/transparency/constructor"],
      ["/transparency/__proto__"],
      ["/transparency/hasOwnProperty"],
    ];
    for (const [p, init] of routes) {
      const a = await call(`${log.url}${p}`, init);
      expect.soft(a.status, p).toBe(404);
      expectError(a, 404, "NOT_FOUND");
    }
    const absent = [
      `/bundle?namespace=nobody`,
      `/bundle?namespace=${encodeURIComponent(NS)}&epoch=9`,
      `/evidence/${"00".repeat(32)}`,
      "/tile/0/001",
      `/release/${"ab".repeat(32)}?namespace=${encodeURIComponent(NS)}`,
    ];
    for (const p of absent) {
      const a = await call(`${log.url}${p}`);
      expect.soft(a.status, p).toBe(404);
      expectError(a, 404, "NOT_FOUND");
    }
    expect(await state()).toEqual(before);
  });

  it("semantic refusals keep their codes in the same shape", async () => {
    const range = await call(`${log.url}/proof?index=5&size=3`);
    expectError(range, 400, "MALFORMED");
    const unknownNs = world.fleet("example.test/unknown", 1);
    const forbidden = await add(log.url, unknownNs, world.sign(unknownNs));
    expect([forbidden.status, forbidden.body.code]).toEqual([403, "FORBIDDEN"]);
    expect(Object.keys(forbidden.body).sort()).toEqual(["code", "message"]);
    const unsigned = await call(`${log.url}/add`, postJson({ ...good, submitterSignature: undefined }));
    expectError(unsigned, 403, "SUBMITTER_SIGNATURE");
    expect(await state()).toEqual(before);
  });

  it("a fault of the log is 500 INTERNAL without the fault's message", async () => {
    const events: Record<string, unknown>[] = [];
    const broken = await startLogServer(
      {
        dir: join(dir.path, "broken"),
        origin: ORIGIN,
        onEvent: (event, fields) => events.push({ event, ...fields }),
      },
      "127.0.0.1",
      0,
    );
    try {
      broken.service.close(); // its database is closed under it
      const e = await call(`${broken.url}/evidence/${"00".repeat(32)}`);
      expect(expectError(e, 500, "INTERNAL")).toBe("internal error");
      expect(events.filter((x) => x.event === "internal-error")).toHaveLength(1);
    } finally {
      await broken.close().catch(() => undefined);
    }
  });

  it("the witness: spec answers stay text; its own route and unknown routes answer {code, message}", async () => {
    // tlog-witness answers, as the spec has them: text, not JSON.
    const malformed = await postWitness(witness.url, "old 0\n");
    expect(malformed.status).toBe(400);
    expect(malformed.type).toMatch(/^text\/plain/);
    const notUtf8 = await call(`${witness.url}/add-checkpoint`, {
      method: "POST",
      headers: { "content-type": "text/plain" },
      body: new Uint8Array([0xff, 0xfe]),
    });
    expect([notUtf8.status, notUtf8.body]).toEqual([400, "the body is not UTF-8\n"]);
    // Not the spec's: too large a body, the checkpoint route's parameter, unknown routes.
    const huge = await call(`${witness.url}/add-checkpoint`, {
      method: "POST",
      body: "x".repeat(WITNESS_BODY_LIMIT + 1),
    });
    expectError(huge, 413, "MALFORMED");
    for (const p of [
      "/abc/checkpoint",
      `/${"AB".repeat(32)}/checkpoint`,
      `/${"ab".repeat(32)}/checkpoint?x=1`,
    ]) {
      const a = await call(`${witness.url}${p}`);
      expect.soft(a.status, p).toBe(400);
      expectError(a, 400, "MALFORMED");
    }
    expectError(await call(`${witness.url}/${"ab".repeat(32)}/checkpoint`), 404, "NOT_FOUND");
    expectError(await call(`${witness.url}/add-checkpoint`), 404, "NOT_FOUND");
    expectError(await call(`${witness.url}/nope`), 404, "NOT_FOUND");
    // The route still serves what it has.
    const hash = createHash("sha256").update(ORIGIN).digest("hex");
    const ok = await getText(`${witness.url}/${hash}/checkpoint`);
    expect(ok.status).toBe(200);
    expect(await state()).toEqual(before);
  });

  it("the well-formed body every variant above was made from is appended: the refusals were of the variants", async () => {
    const r = await call(`${log.url}/add`, postJson(good));
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ index: 1, namespace: NS, epoch: 2 });
    expect(log.service.size).toBe(2);
  });
});
