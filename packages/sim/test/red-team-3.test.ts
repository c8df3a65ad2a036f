/**
 * Red team, third round: attacks by the vault operator (DESIGN.md §2) on registration tickets, the
 * login-ok rule that keeps later guesses counted, exactly-once answers and the request window.
 * Every test asserts the guarantee HOLDS, so a test fails when an attack breaks it.
 */

import { createHmac } from "node:crypto";
import { sealRequest, VaultClient, type VaultTransport } from "@bkv/client";
import { nodeHpkeSealer } from "@bkv/client/node";
import { LOGIN_TTL_MS, REQUEST_MEMORY_MS, REQUEST_WINDOW_MS } from "@bkv/hsm-core";
import {
  BkvError,
  bytesEqual,
  ErrorCode,
  FinishAction,
  fromBase64Url,
  toBase64Url,
  toHex,
  utf8,
  type VaultOp,
  type VaultResult,
} from "@bkv/wire";
import * as opaque from "@serenity-kit/opaque";
import { describe, expect, it } from "vitest";
import { Prng, type ReplyFrame, SimFleet } from "../src/index.js";

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

// ---------------------------------------------------------------------------------------------
// Attack 2: held KE3s, parallel logins, expiry, wrong-PIN finishes, in operator-chosen orders.
//
// The oracle (time order, as the attacker sees it): after any successful login of the victim's own
// device, at most LIMIT KE2s (any client's) are released before the next one; none after the fleet
// said the record is destroyed; and a destroyed record never gives the key again.

function isOk(r: VaultResult | null, ok: string): boolean {
  return r !== null && "ok" in r && r.ok === ok;
}

describe("red team 3: held KE3s and parallel logins in any order", () => {
  it("random schedules of victim logins (KE3 held, delivered late, out of order), attacker KE2s, wrong-PIN finishes and expiry never release more than guessLimit KE2s between two of the victim's successes", async () => {
    const LIMIT = 3;
    const PIN = "1357";
    const problems: string[] = [];
    let successes = 0;
    let atLimit = 0;
    let refused = 0;
    for (let seed = 1; seed <= 12; seed++) {
      const rng = new Prng(seed * 7919);
      const f = await SimFleet.create({ nodes: 3, seed: 310 + seed, guessLimit: LIMIT, startTime: START });
      await client(f, "victim").register(PIN, KEY);
      await opaque.ready;
      const heldKe3: { envelope: Uint8Array; open: (e: Uint8Array) => Promise<VaultResult> }[] = [];
      const attackerSessions: Uint8Array[] = [];
      let sinceSuccess = 0;
      let destroyed = false;
      const trace: string[] = [];
      for (let step = 0; step < 40; step++) {
        let r = rng.next();
        // A careful attacker mostly avoids the start or wrong finish that would destroy the record.
        const full = (guessesUsed(f, "victim") ?? 0) >= LIMIT;
        if (full && r < 0.9 && rng.chance(0.9)) r = 0.6 + rng.next() * 0.2;
        if (r < 0.2) {
          // The victim's device starts a login; its KE3 is made and held by the operator.
          const login = opaque.client.startLogin({ password: PIN });
          const s = await send(f, "victim", {
            op: "recover-start",
            ke1: fromBase64Url(login.startLoginRequest),
          });
          if (isOk(s.result, "recover-start")) {
            const res = s.result as Extract<VaultResult, { ok: "recover-start" }>;
            sinceSuccess++;
            if (destroyed) problems.push(`seed ${seed}: victim KE2 after destroy`);
            const fin = opaque.client.finishLogin({
              clientLoginState: login.clientLoginState,
              loginResponse: toBase64Url(res.ke2),
              password: PIN,
              keyStretching: LIGHT,
            })!;
            const sealed = await sealRequest(
              f.vaultPublicKey(),
              "victim",
              {
                op: "recover-finish",
                sessionId: res.sessionId,
                ke3: fromBase64Url(fin.finishLoginRequest),
                action: FinishAction.Recover,
              },
              f.time,
              nodeHpkeSealer,
            );
            heldKe3.push({ envelope: sealed.envelope, open: sealed.open });
            trace.push(`${step} vstart ok (${sinceSuccess})`);
          } else trace.push(`${step} vstart ${JSON.stringify(s.result)}`);
          if (s.result !== null && "error" in s.result && s.result.error === ErrorCode.NoRecord)
            destroyed = true;
        } else if (r < 0.6) {
          const login = opaque.client.startLogin({ password: `9${step}` });
          const s = await send(f, "victim", {
            op: "recover-start",
            ke1: fromBase64Url(login.startLoginRequest),
          });
          if (isOk(s.result, "recover-start")) {
            sinceSuccess++;
            attackerSessions.push((s.result as { sessionId: Uint8Array }).sessionId);
            if (destroyed) problems.push(`seed ${seed}: attacker KE2 after destroy`);
            if (sinceSuccess > LIMIT)
              problems.push(`seed ${seed}: KE2 number ${sinceSuccess} since the victim's last success`);
            trace.push(`${step} astart ok (${sinceSuccess})`);
          } else {
            trace.push(
              `${step} astart ${s.result !== null && "error" in s.result ? s.result.error : "none"}`,
            );
            if (s.result !== null && "error" in s.result && s.result.error === ErrorCode.NoRecord)
              destroyed = true;
          }
        } else if (r < 0.8 && heldKe3.length > 0) {
          // Deliver one held KE3 of the victim, any of them (out of order).
          const h = heldKe3.splice(rng.int(heldKe3.length), 1)[0]!;
          const reply = await wait(f, f.request(f.leader(), h.envelope));
          const res = reply?.ok ? await h.open(reply.envelope) : null;
          if (res !== null && "ok" in res && res.ok === "recover-finish" && res.wrappedKey.length > 0) {
            if (destroyed) problems.push(`seed ${seed}: key returned after destroy`);
            sinceSuccess = 0;
            trace.push(`${step} vfinish key`);
          } else trace.push(`${step} vfinish ${res !== null && "error" in res ? res.error : "none"}`);
        } else if (r < 0.9 && attackerSessions.length > 0 && (!full || rng.chance(0.2))) {
          const sid = attackerSessions.splice(rng.int(attackerSessions.length), 1)[0]!;
          const s = await send(f, "victim", {
            op: "recover-finish",
            sessionId: sid,
            ke3: new Uint8Array(0),
            action: FinishAction.Recover,
          });
          if (
            s.result !== null &&
            "error" in s.result &&
            s.result.guessesRemaining === 0 &&
            s.result.error === ErrorCode.WrongPin
          )
            destroyed = true;
          trace.push(
            `${step} afail ${s.result !== null && "error" in s.result ? `${s.result.error}/${s.result.guessesRemaining}` : "?"}`,
          );
        } else if (r > 0.95) {
          // Clock game: pending logins expire (the next start drops them).
          f.time += LOGIN_TTL_MS;
          await f.tick();
          trace.push(`${step} expire`);
        }
      }
      if (problems.some((p) => p.startsWith(`seed ${seed}:`))) problems.push(trace.join("\n"));
      successes += trace.filter((t) => t.endsWith("vfinish key")).length;
      atLimit += trace.filter((t) => t.endsWith(`ok (${LIMIT})`)).length;
      refused += trace.filter((t) => /astart (INVALID|NO_RECORD)/.test(t)).length;
      if (process.env["RED_DEBUG"]) console.error(trace.join("\n"));
    }
    expect(problems).toEqual([]);
    // The schedules did reach the limit, had successes, and were refused starts.
    expect({ successes: successes > 3, atLimit: atLimit > 3, refused: refused > 3 }).toEqual({
      successes: true,
      atLimit: true,
      refused: true,
    });
  }, 300_000);
});

// ---------------------------------------------------------------------------------------------
// Attack 3: registration tickets against held / copied / interleaved registrations.

describe("red team 3: registration tickets", () => {
  it("a copy of the victim's register-start (exactly-once) and its held register-finish, delivered after the record was destroyed, do not bring it back", async () => {
    const LIMIT = 3;
    const PIN = "2580";
    const f = await SimFleet.create({ nodes: 3, seed: 331, guessLimit: LIMIT, startTime: START });
    await client(f, "victim").register(PIN, KEY);
    // The victim re-registers (same PIN, same key): register-start goes through, its register-finish
    // is held and the client sees an outage.
    const seen: Uint8Array[] = [];
    let n = 0;
    const inner = f.transport();
    const front: VaultTransport = {
      send: async (envelope) => {
        seen.push(envelope.slice());
        if (n++ === 1) throw new BkvError(ErrorCode.Unavailable, "no answer from the fleet");
        return inner.send(envelope);
      },
    };
    await expect(client(f, "victim", { transport: front }).register(PIN, KEY)).rejects.toMatchObject({
      code: "UNAVAILABLE",
    });
    const [regStart, regFinish] = seen as [Uint8Array, Uint8Array];
    // The attacker uses every guess: the record is destroyed.
    let ke2s = 0;
    for (let i = 0; i < LIMIT + 1; i++) {
      const login = opaque.client.startLogin({ password: `000${i}` });
      const s = await send(f, "victim", { op: "recover-start", ke1: fromBase64Url(login.startLoginRequest) });
      if (isOk(s.result, "recover-start")) ke2s++;
    }
    expect(f.node(f.leader()).core!.inspect().state.records.has("victim")).toBe(false);
    // Replays in every order the operator likes: the register-start copy (answered again), an
    // operator register-start for the victim's id in between, the held register-finish, twice.
    const outcomes: string[] = [];
    for (const env of [regStart, regFinish, regStart, regFinish]) {
      const reply = await wait(f, f.request(f.leader(), env));
      outcomes.push(reply === null ? "none" : reply.ok ? "answered" : reply.code);
    }
    await send(f, "victim", {
      op: "register-start",
      registrationRequest: fromBase64Url(
        opaque.client.startRegistration({ password: "x" }).registrationRequest,
      ),
    });
    const reply = await wait(f, f.request(f.leader(), regFinish));
    outcomes.push(reply === null ? "none" : reply.ok ? "answered" : reply.code);
    const key = await client(f, "victim")
      .recover(PIN)
      .then(
        (r) => toHex(r.backupKey),
        (e: { code: string }) => e.code,
      );
    expect(
      { ke2s, key, record: f.node(f.leader()).core!.inspect().state.records.has("victim") },
      outcomes.join(","),
    ).toEqual({
      ke2s: LIMIT,
      key: "NO_RECORD",
      record: false,
    });
  }, 120_000);

  it("a register-finish held across a clock jump past its ticket's expiry, on a leader whose own clock is behind, is refused", async () => {
    const f = await SimFleet.create({ nodes: 3, seed: 341, guessLimit: 3, startTime: START });
    await opaque.ready;
    const PIN = "1111";
    const start = opaque.client.startRegistration({ password: PIN });
    const rs = await send(f, "victim", {
      op: "register-start",
      registrationRequest: fromBase64Url(start.registrationRequest),
    });
    const res = rs.result as Extract<VaultResult, { ok: "register-start" }>;
    const fin = opaque.client.finishRegistration({
      clientRegistrationState: start.clientRegistrationState,
      registrationResponse: toBase64Url(res.registrationResponse),
      password: PIN,
      keyStretching: LIGHT,
    });
    const sealed = await sealRequest(
      f.vaultPublicKey(),
      "victim",
      {
        op: "register-finish",
        replace: true,
        ticket: res.ticket,
        registrationRecord: fromBase64Url(fin.registrationRecord),
        wrappedKey: KEY,
      },
      f.time,
      nodeHpkeSealer,
    );
    // One node's clock runs ahead past the ticket's expiry and leads for an entry; then it is crashed
    // and a node with the true clock leads: its decisions must use the log's clock.
    const leader = f.leader();
    f.node(leader).clockSkew = LOGIN_TTL_MS + 1000;
    await send(
      f,
      "someone",
      {
        op: "register-start",
        registrationRequest: fromBase64Url(
          opaque.client.startRegistration({ password: "y" }).registrationRequest,
        ),
      },
      { issuedAt: f.time + LOGIN_TTL_MS + 1000 },
    );
    for (let t = 0; t < 5; t++) await f.tick();
    f.crash(leader);
    const l2 = await f.waitForLeader();
    const reply = await wait(f, f.request(l2, sealed.envelope));
    const r = reply?.ok ? await sealed.open(reply.envelope) : null;
    expect({ leaderChanged: l2 !== leader, finish: r !== null && "ok" in r ? r.ok : r }).toEqual({
      leaderChanged: true,
      finish: expect.objectContaining({ error: ErrorCode.Invalid }),
    });
  }, 120_000);
});

// ---------------------------------------------------------------------------------------------
// Attack 4: replays against the window and the request memory, with HSM clocks moved apart.

describe("red team 3: the window and the request memory under clock games", () => {
  it("a victim's recover-start replayed after a skewed leader pushed the log's clock past its memory, on leaders with any clock, spends no second guess", async () => {
    const f = await SimFleet.create({ nodes: 3, seed: 351, guessLimit: 5, startTime: START });
    await client(f, "victim").register("4444", KEY);
    await opaque.ready;
    const login = opaque.client.startLogin({ password: "4444" });
    const first = await send(f, "victim", {
      op: "recover-start",
      ke1: fromBase64Url(login.startLoginRequest),
    });
    expect(isOk(first.result, "recover-start")).toBe(true);
    const used0 = guessesUsed(f, "victim")!;
    const outcomes: string[] = [];
    const replay = async (node: number) => {
      const reply = await wait(f, f.request(node, first.envelope));
      const r = reply?.ok ? await first.open(reply.envelope) : null;
      outcomes.push(r === null ? "none" : "ok" in r ? r.ok : r.error);
    };
    // Exactly at the edges of the window and past the memory, by moving one leader's clock.
    const leader = f.leader();
    for (const skew of [
      REQUEST_WINDOW_MS - 1,
      REQUEST_WINDOW_MS,
      REQUEST_MEMORY_MS - 1,
      REQUEST_MEMORY_MS + 1,
    ]) {
      f.node(leader).clockSkew = skew;
      await replay(leader);
    }
    // Commit an entry with the skewed time so the log's clock passes the memory (forgets the id).
    await send(
      f,
      "other",
      {
        op: "register-start",
        registrationRequest: fromBase64Url(
          opaque.client.startRegistration({ password: "z" }).registrationRequest,
        ),
      },
      { node: leader, issuedAt: f.time + REQUEST_MEMORY_MS + 1 },
    );
    for (let t = 0; t < 5; t++) await f.tick();
    // The skewed node is gone; the others' platform clocks are the true time (far behind the log's).
    f.crash(leader);
    const l2 = await f.waitForLeader();
    await replay(l2);
    for (const n of f.nodes) if (n.id !== leader) n.clockSkew = -REQUEST_WINDOW_MS;
    await replay(l2);
    if (process.env["RED_DEBUG"]) console.error(outcomes.join(","));
    expect({ used: guessesUsed(f, "victim"), outcomes }).toEqual({
      used: used0,
      outcomes: ["recover-start", "EXPIRED", "EXPIRED", "EXPIRED", "EXPIRED", "EXPIRED"],
    });
  }, 120_000);
});
