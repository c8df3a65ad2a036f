/**
 * What `bkv vault` says and how it exits, for the errors the SDK really throws: a host front end
 * (a real local HTTP server here) answering unsealed WRONG_PIN / NO_RECORD gets no "wrong PIN", no
 * "record destroyed" and neither exit 3 nor 4, but the transport's exit 5 and a message naming the
 * host; a bundle problem is exit 6, and its message says truthfully what had been sent.
 * (The same through the built CLI in front of a real fleet: test/e2e/vault-cli.suite.ts.)
 */
import { generateKeyPairSync } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { AnswerBundleError, httpTransport, VaultClient } from "@bkv/client";
import { BkvError, ErrorCode } from "@bkv/wire";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { describeFailure } from "../src/commands/vault.js";
import { EXIT } from "../src/exit-codes.js";

const LIGHT = { "argon2id-custom": { iterations: 1, memory: 8, parallelism: 1 } } as const;

let answer: { status: number; body: unknown } = { status: 400, body: {} };
let server: Server;
let url: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
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

async function sdkError(): Promise<unknown> {
  const { publicKey } = generateKeyPairSync("x25519");
  const der = publicKey.export({ type: "spki", format: "der" });
  const c = new VaultClient({
    user: "ann",
    vaultPublicKey: new Uint8Array(der.subarray(der.length - 32)),
    transport: httpTransport({ url, token: "t" }),
    keyStretching: LIGHT,
  });
  return c.recover("1234").then(
    () => new Error("expected a failure"),
    (e: unknown) => e,
  );
}

describe("bkv vault: a host's word is not the HSM's", () => {
  it("an unsealed WRONG_PIN or NO_RECORD exits 5 with a message that names the host", async () => {
    for (const body of [
      { code: "WRONG_PIN", message: "nope", guessesRemaining: 0 },
      { code: "NO_RECORD", message: "gone" },
    ]) {
      for (const status of [400, 404]) {
        answer = { status, body };
        const f = describeFailure(await sdkError());
        expect(f.code).toBe(EXIT.unavailable);
        expect(f.code).not.toBe(EXIT.wrongPin);
        expect(f.code).not.toBe(EXIT.noRecord);
        expect(f.err.code).toBe(ErrorCode.HostError);
        expect(f.text).toContain(`no verdict from the vault: the host at ${url} said "${body.message}"`);
        expect(f.text).not.toMatch(/wrong PIN|guess(es)? remaining|destroyed/);
        expect(f.err.guessesRemaining).toBeUndefined();
      }
    }
  });

  it("other host refusals: rate limit and unavailability exit 5, a forbidden token exits 1", async () => {
    answer = { status: 429, body: { code: "WRONG_PIN", message: "slow down" } };
    expect(describeFailure(await sdkError()).code).toBe(EXIT.unavailable);
    answer = { status: 503, body: { code: "NO_RECORD", message: "down" } };
    expect(describeFailure(await sdkError()).code).toBe(EXIT.unavailable);
    answer = {
      status: 403,
      body: { code: "WRONG_PIN", message: "the token's user may act only on their own record" },
    };
    const f = describeFailure(await sdkError());
    expect(f.code).toBe(EXIT.error);
    expect(f.text).toMatch(/the host at .* said "the token's user may act only on their own record"/);
  });

  it("the HSM's verdicts keep their exits and words", () => {
    const wrong = describeFailure(new BkvError(ErrorCode.WrongPin, "wrong PIN", { guessesRemaining: 2 }));
    expect([wrong.code, wrong.text]).toEqual([EXIT.wrongPin, "wrong PIN; 2 guesses remaining"]);
    const last = describeFailure(new BkvError(ErrorCode.WrongPin, "wrong PIN", { guessesRemaining: 0 }));
    expect([last.code, last.text]).toEqual([
      EXIT.wrongPin,
      "wrong PIN; no guesses remain: the record is destroyed",
    ]);
    expect(describeFailure(new BkvError(ErrorCode.NoRecord, "no record")).code).toBe(EXIT.noRecord);
  });

  it("exit 6 says what was sent: nothing before the PIN, or the finished login and what failed", () => {
    const early = describeFailure(
      new BkvError(ErrorCode.BundleNamespace, "the bundle is for another namespace"),
    );
    expect(early.code).toBe(EXIT.untrusted);
    expect(early.text).toBe(
      "refused the fleet before sending anything that depends on the PIN: the bundle is for another namespace",
    );
    const late = describeFailure(
      new AnswerBundleError(
        new BkvError(ErrorCode.BundleMissing, "the vault's answer carries no validation bundle"),
        "the login was finished with the fleet verified at the start: the PIN was right (the guess count is reset); the backup key is not returned",
      ),
    );
    expect(late.code).toBe(EXIT.untrusted);
    expect(late.err.code).toBe(ErrorCode.BundleMissing);
    expect(late.text).not.toMatch(/before sending/);
    expect(late.text).toMatch(/BUNDLE_MISSING: the vault's answer carries no validation bundle/);
    expect(late.text).toMatch(/the login was finished .* the backup key is not returned$/);
    // Another fleet's bundle on an answer is a bundle problem too (exit 6), not "other error".
    const swapped = describeFailure(
      new AnswerBundleError(
        new BkvError(ErrorCode.Untrusted, "the answer's bundle vouches for another fleet"),
        "x",
      ),
    );
    expect(swapped.code).toBe(EXIT.untrusted);
  });
});
