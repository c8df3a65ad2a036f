/**
 * Red team, third round: attacks by the vault operator (DESIGN.md §2) on registration tickets, the
 * login-ok rule that keeps later guesses counted, exactly-once answers and the request window.
 * Every test asserts the guarantee HOLDS, so a test fails when an attack breaks it.
 */

import { createHmac } from "node:crypto";
import { sealRequest, VaultClient, type VaultTransport } from "@bkv/client";
import { nodeHpkeSealer } from "@bkv/client/node";
import {
  bytesEqual,
  fromBase64Url,
  toBase64Url,
  toHex,
  utf8,
  type VaultOp,
  type VaultResult,
} from "@bkv/wire";
import * as opaque from "@serenity-kit/opaque";
import { describe, expect, it } from "vitest";
import { type ReplyFrame, SimFleet } from "../src/index.js";

const LIGHT = { "argon2id-custom": { iterations: 1, memory: 8, parallelism: 1 } } as const;
const KEY = new Uint8Array(32).fill(7);
const START = 1_800_000_000_000;

function client(f: SimFleet, user: string, opts: { transport?: VaultTransport } = {}) {
  return new VaultClient({
    user,
    vaultPublicKey: f.vaultPublicKey(),
    transport: opts.transport ?? f.transport(),
    keyStretching: LIGHT,
    hpke: nodeHpkeSealer,
    now: () => f.time,
  });
}

function guessesUsed(f: SimFleet, user: string): number | undefined {
  return f.node(f.leader()).core!.inspect().state.records.get(user)?.guessesUsed;
}

/** Wait for a reply, ticking the fleet (bounded). */
async function wait(f: SimFleet, p: Promise<ReplyFrame | null>, maxTicks = 200): Promise<ReplyFrame | null> {
  let done: ReplyFrame | null | undefined;
  void p.then((r) => {
    done = r;
  });
  for (let t = 0; t < maxTicks && done === undefined; t++) {
    await f.settle(2);
    if (done === undefined) await f.tick();
  }
  return done ?? null;
}

/** Seal a request as the operator can for any user id (it knows the vault key), send, open. */
async function send(
  f: SimFleet,
  user: string,
  body: VaultOp,
  opts: { node?: number; issuedAt?: number } = {},
): Promise<{
  envelope: Uint8Array;
  result: VaultResult | null;
  open: (e: Uint8Array) => Promise<VaultResult>;
}> {
  await opaque.ready;
  const sealed = await sealRequest(f.vaultPublicKey(), user, body, opts.issuedAt ?? f.time, nodeHpkeSealer);
  const reply = await wait(f, f.request(opts.node ?? f.leader(), sealed.envelope));
  const result = reply?.ok ? await sealed.open(reply.envelope) : null;
  return { envelope: sealed.envelope, result, open: (e) => sealed.open(e) };
}

/** HKDF-Expand (RFC 5869) with SHA-512, as OPAQUE's KDF for ristretto255-SHA512. */
function hkdfExpand512(prk: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let t = new Uint8Array(0);
  for (let i = 1, off = 0; off < length; i++) {
    t = new Uint8Array(
      createHmac("sha512", prk)
        .update(t)
        .update(info)
        .update(new Uint8Array([i]))
        .digest(),
    );
    out.set(t.subarray(0, Math.min(64, length - off)), off);
    off += 64;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Attack 1: register-start is an OPRF oracle under the victim's OPRF key, and it costs no guess.
//
// OPAQUE derives the per-user OPRF key from (server setup, user id) alone, the same at registration
// and at login (RFC 9807 §6.4 / opaque-ke). register-start evaluates the OPRF on any blinded element
// for any user id and records only a `ticket` op: the record's guess count does not move. One KE2
// (one counted guess) gives the masking nonce and masked response; for each PIN candidate, one
// register-start gives OPRF(pin) under the victim's key, hence randomized_pwd and masking_key, and
// unmasking the KE2's masked_response yields the server public key exactly when the PIN is right.

describe("red team 3: register-start as a free OPRF oracle on the victim's key", () => {
  it("one KE2 plus register-starts for the victim's user id do not let the attacker test more than guessLimit PINs", async () => {
    const LIMIT = 3;
    const f = await SimFleet.create({ nodes: 3, seed: 301, guessLimit: LIMIT, startTime: START });
    const PIN = "4827";
    await client(f, "victim").register(PIN, KEY);
    for (let t = 0; t < 3; t++) await f.tick();
    await opaque.ready;

    // One login start for the victim's record (one guess counted), no KE3.
    const ke1 = opaque.client.startLogin({ password: "0000" });
    const r = await send(f, "victim", { op: "recover-start", ke1: fromBase64Url(ke1.startLoginRequest) });
    expect(r.result && "ok" in r.result && r.result.ok).toBe("recover-start");
    const ke2 = (r.result as { ke2: Uint8Array }).ke2;
    const maskingNonce = ke2.subarray(32, 64);
    const masked = ke2.subarray(64, 64 + 128);
    const info = new Uint8Array([...maskingNonce, ...utf8("CredentialResponsePad")]);

    // Offline dictionary, each candidate paid for with a register-start only (never finished).
    const candidates = Array.from({ length: 40 }, (_, i) => String(4800 + i));
    let tested = 0;
    let found: string | null = null;
    for (const pin of candidates) {
      const start = opaque.client.startRegistration({ password: pin });
      const rs = await send(f, "victim", {
        op: "register-start",
        registrationRequest: fromBase64Url(start.registrationRequest),
      });
      if (rs.result === null || !("ok" in rs.result) || rs.result.ok !== "register-start") break;
      tested++;
      const serverPublicKey = rs.result.registrationResponse.subarray(32, 64);
      const fin = opaque.client.finishRegistration({
        clientRegistrationState: start.clientRegistrationState,
        registrationResponse: toBase64Url(rs.result.registrationResponse),
        password: pin,
        keyStretching: LIGHT,
      });
      const maskingKey = fromBase64Url(fin.registrationRecord).subarray(32, 96);
      const pad = hkdfExpand512(maskingKey, info, 128);
      const unmasked = masked.subarray(0, 32).map((b, i) => b ^ pad[i]!);
      if (bytesEqual(unmasked, serverPublicKey)) {
        found = pin;
        break;
      }
    }
    // With the PIN, the key: one more (correct) login.
    const usedBefore = guessesUsed(f, "victim");
    let key: string | null = null;
    if (found !== null)
      key = await client(f, "victim")
        .recover(found)
        .then(
          (x) => toHex(x.backupKey),
          () => null,
        );
    expect(
      { pinFound: found, key },
      `the attacker tested ${tested} PINs with ${LIMIT} guesses allowed; victim's record guessesUsed=${usedBefore} before the final login`,
    ).toEqual({ pinFound: null, key: null });
  }, 120_000);
});
