/**
 * Only the HSM's sealed answer is a verdict. A host front end run by the operator (here a real
 * local HTTP server in the test, with no vault behind it) answers the client's sealed requests with
 * unsealed error bodies claiming WRONG_PIN, NO_RECORD or REPLAY: the SDK must report a transport
 * error that names the host, never a wrong PIN, a missing record or guesses remaining.
 */
import { generateKeyPairSync } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { httpTransport, VaultClient } from "@bkv/client";
import { BkvError, ErrorCode } from "@bkv/wire";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const LIGHT = { "argon2id-custom": { iterations: 1, memory: 8, parallelism: 1 } } as const;

/** A real X25519 public key whose private key nobody uses: the fake host cannot open anything. */
function vaultPublicKey(): Uint8Array {
  const { publicKey } = generateKeyPairSync("x25519");
  const der = publicKey.export({ type: "spki", format: "der" });
  return new Uint8Array(der.subarray(der.length - 32));
}

/** What the fake host answers to POST /v1/vault: status and JSON body (set per test). */
let answer: { status: number; body: unknown } = { status: 400, body: {} };
let requests = 0;
let server: Server;
let url: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      if (req.url === "/v1/vault" && req.method === "POST") requests++;
      res.writeHead(answer.status, { "content-type": "application/json" });
      res.end(JSON.stringify(answer.body));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((r) => server.close(r));
});

function client(user = "ann"): VaultClient {
  return new VaultClient({
    user,
    vaultPublicKey: vaultPublicKey(),
    transport: httpTransport({ url, token: "token" }),
    keyStretching: LIGHT,
  });
}

async function failure(p: Promise<unknown>): Promise<BkvError> {
  const e = await p.then(
    () => new Error("expected a failure"),
    (err: unknown) => err,
  );
  if (!(e instanceof BkvError)) throw e;
  return e;
}

const VERDICTS: string[] = [ErrorCode.WrongPin, ErrorCode.NoRecord, ErrorCode.Replay];

describe("a host's unsealed error is no verdict", () => {
  it("an unsealed WRONG_PIN (even with guessesRemaining) is a host error naming the host", async () => {
    answer = { status: 400, body: { code: "WRONG_PIN", message: "wrong PIN", guessesRemaining: 0 } };
    for (const op of ["recover", "delete"] as const) {
      const before = requests;
      const e = await failure(op === "recover" ? client().recover("1234") : client().delete("1234"));
      expect(e.code).toBe(ErrorCode.HostError);
      expect(e.guessesRemaining).toBeUndefined();
      expect(e.message).toContain(`the host at ${url} said "wrong PIN" (HTTP 400, WRONG_PIN)`);
      expect(e.message).toMatch(/no verdict/);
      // The first request got the host's answer; nothing more was sent.
      expect(requests).toBe(before + 1);
    }
  });

  it("an unsealed NO_RECORD, whatever the HTTP status, is never NO_RECORD", async () => {
    const cases: [number, string][] = [
      [400, ErrorCode.HostError],
      [404, ErrorCode.HostError],
      [410, ErrorCode.HostError],
      [403, ErrorCode.Forbidden],
      [401, ErrorCode.Forbidden],
      [429, ErrorCode.RateLimited],
      [500, ErrorCode.Unavailable],
      [503, ErrorCode.Unavailable],
    ];
    for (const [status, code] of cases) {
      answer = { status, body: { code: "NO_RECORD", message: "record destroyed" } };
      const e = await failure(client().recover("1234"));
      expect(e.code, `HTTP ${status}`).toBe(code);
      expect(VERDICTS).not.toContain(e.code);
      expect(e.message).toContain(`the host at ${url} said "record destroyed" (HTTP ${status}, NO_RECORD)`);
    }
  });

  it("no claimed code passes through: REPLAY, WRONG_PIN on 200, unknown codes, registration too", async () => {
    answer = { status: 400, body: { code: "REPLAY", message: "seen before" } };
    expect((await failure(client().recover("1234"))).code).toBe(ErrorCode.HostError);
    answer = { status: 400, body: { code: "EXPIRED" } };
    expect((await failure(client().register("1234", new Uint8Array(32)))).code).toBe(ErrorCode.HostError);
    answer = { status: 200, body: { code: "WRONG_PIN", message: "wrong PIN" } };
    const ok200 = await failure(client().recover("1234"));
    expect(ok200.code).toBe(ErrorCode.Malformed);
    expect(ok200.message).toMatch(/without a sealed response/);
    // The host's own malformed-request answer keeps its meaning (it is about the transport).
    answer = { status: 400, body: { code: "MALFORMED", message: "bad envelope" } };
    expect((await failure(client().recover("1234"))).code).toBe(ErrorCode.Malformed);
    answer = { status: 400, body: null };
    const bare = await failure(client().recover("1234"));
    expect(bare.code).toBe(ErrorCode.HostError);
    expect(bare.message).toContain(`the host at ${url} said (HTTP 400)`);
  });

  it("a host's text is quoted without control characters and cut to a line", async () => {
    answer = {
      status: 400,
      body: { code: "WRONG_PIN\u001b[2J", message: `\u001b[31mwrong\nPIN${"x".repeat(500)}` },
    };
    const e = await failure(client().recover("1234"));
    expect(e.code).toBe(ErrorCode.HostError);
    expect([...e.message].some((ch) => ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f)).toBe(false);
    expect(e.message.length).toBeLessThan(600);
  });

  it("a sealed-looking response that does not open under the request's key is refused", async () => {
    // A response envelope from the host: right shape, but not sealed for this request.
    const { encodeResponseEnvelope, toBase64Url } = await import("@bkv/wire");
    const env = encodeResponseEnvelope({ nonce: new Uint8Array(12), ciphertext: new Uint8Array(40) });
    answer = { status: 200, body: { response: toBase64Url(env) } };
    expect((await failure(client().recover("1234"))).code).toBe(ErrorCode.Untrusted);
  });
});
