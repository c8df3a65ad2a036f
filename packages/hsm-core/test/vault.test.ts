/**
 * The vault state machine through its byte API, with the operator (the host) as the adversary:
 * guess limit, replay, tampering, restart mid-login, rollback of host storage.
 */

import { sealRequest, VaultClient } from "@bkv/client";
import { nodeHpkeSealer } from "@bkv/client/node";
import { REQUEST_WINDOW_MS } from "@bkv/hsm-core";
import {
  type BkvError,
  decodeResponseEnvelope,
  decodeVaultResult,
  ErrorCode,
  encodeRequestEnvelope,
  encodeVaultRequest,
  envelopeHeader,
  HPKE_INFO,
  isBkvError,
  RESPONSE_EXPORT_CONTEXT,
} from "@bkv/wire";
import { describe, expect, it } from "vitest";
import { LIGHT, TestHost } from "./harness.js";

const KEY = new Uint8Array(32).map((_, i) => i + 1);

/** Open a response envelope with the HPKE-exported response key (what the client SDK does). */
async function nodeOpenResponse(key: Uint8Array, envelope: Uint8Array): Promise<Uint8Array> {
  const env = decodeResponseEnvelope(envelope);
  return nodeHpkeSealer.openResponse!(key, env.nonce, env.ciphertext);
}

async function setup(guessLimit = 10, opts = {}) {
  const host = await TestHost.create(guessLimit, opts);
  expect(host.booted?.type).toBe("booted");
  const client = (user = "alice") =>
    new VaultClient({
      user,
      vaultPublicKey: host.vaultPublicKey(),
      transport: host.transport(),
      keyStretching: LIGHT,
      now: () => host.now(),
    });
  return { host, client };
}

async function error(p: Promise<unknown>): Promise<BkvError> {
  try {
    await p;
  } catch (e) {
    if (isBkvError(e)) return e;
    throw e;
  }
  throw new Error("expected an error");
}

describe("vault: register and recover", () => {
  it("recovers the registered key with the right PIN", async () => {
    const { client } = await setup();
    expect(await client().register("1234", KEY)).toEqual({ guessesAllowed: 10 });
    const r = await client().recover("1234");
    expect(r.backupKey).toEqual(KEY);
    expect(r.guessesAllowed).toBe(10);
  });

  it("wrong PINs count down; the right PIN resets the count", async () => {
    const { client } = await setup();
    await client().register("1234", KEY);
    expect((await error(client().recover("0000"))).guessesRemaining).toBe(9);
    expect((await error(client().recover("0000"))).guessesRemaining).toBe(8);
    await client().recover("1234");
    const e = await error(client().recover("0000"));
    expect(e.code).toBe(ErrorCode.WrongPin);
    expect(e.guessesRemaining).toBe(9);
  });

  it("the guess that uses the last one destroys the record", async () => {
    const { client } = await setup(3);
    await client().register("1234", KEY);
    expect((await error(client().recover("1"))).guessesRemaining).toBe(2);
    expect((await error(client().recover("2"))).guessesRemaining).toBe(1);
    const last = await error(client().recover("3"));
    expect(last.code).toBe(ErrorCode.WrongPin);
    expect(last.guessesRemaining).toBe(0);
    expect((await error(client().recover("1234"))).code).toBe(ErrorCode.NoRecord);
  });

  it("an unknown user has no record", async () => {
    const { client } = await setup();
    expect((await error(client("bob").recover("1234"))).code).toBe(ErrorCode.NoRecord);
  });

  it("delete needs the PIN, then the record is gone", async () => {
    const { client } = await setup();
    await client().register("1234", KEY);
    expect((await error(client().delete("9999"))).code).toBe(ErrorCode.WrongPin);
    await client().delete("1234");
    expect((await error(client().recover("1234"))).code).toBe(ErrorCode.NoRecord);
  });

  it("records are per user", async () => {
    const { client } = await setup();
    await client("alice").register("1111", KEY);
    await client("bob").register("2222", new Uint8Array(32).fill(7));
    expect((await client("bob").recover("2222")).backupKey).toEqual(new Uint8Array(32).fill(7));
    expect((await error(client("bob").recover("1111"))).code).toBe(ErrorCode.WrongPin);
  });
});

describe("vault: attacks by the operator", () => {
  it("a register-finish held back is refused once anything happened to the record, and gives no guess back", async () => {
    const { host, client } = await setup(3);
    await client().register("1234", KEY);
    const opaque = await import("@serenity-kit/opaque");
    // The user's device registers again; the operator holds its register-finish back.
    const start = opaque.client.startRegistration({ password: "1234" });
    const s1 = await sealRequest(
      host.vaultPublicKey(),
      "alice",
      {
        op: "register-start",
        registrationRequest: Uint8Array.from(Buffer.from(start.registrationRequest, "base64url")),
      },
      host.now(),
    );
    const r1 = await s1.open(((await host.request(s1.envelope)) as { envelope: Uint8Array }).envelope);
    if (!("ok" in r1) || r1.ok !== "register-start") throw new Error("register-start refused");
    const fin = opaque.client.finishRegistration({
      clientRegistrationState: start.clientRegistrationState,
      registrationResponse: Buffer.from(r1.registrationResponse).toString("base64url"),
      password: "1234",
      keyStretching: LIGHT,
    });
    const held = await sealRequest(
      host.vaultPublicKey(),
      "alice",
      {
        op: "register-finish",
        replace: true,
        ticket: r1.ticket,
        registrationRecord: Uint8Array.from(Buffer.from(fin.registrationRecord, "base64url")),
        wrappedKey: new Uint8Array(61).fill(9),
      },
      host.now(),
    );
    // Meanwhile the attacker uses every guess: the record is destroyed.
    for (const left of [2, 1, 0]) expect((await error(client().recover("0000"))).guessesRemaining).toBe(left);
    expect((await error(client().recover("0000"))).code).toBe(ErrorCode.NoRecord);
    // The held register-finish arrives: refused, and the record stays destroyed.
    const late = await held.open(((await host.request(held.envelope)) as { envelope: Uint8Array }).envelope);
    expect("error" in late && late.error).toBe(ErrorCode.Invalid);
    expect((await error(client().recover("1234"))).code).toBe(ErrorCode.NoRecord);
  });

  it("a register-finish with the ticket of a superseded register-start is refused", async () => {
    const { host } = await setup();
    const opaque = await import("@serenity-kit/opaque");
    const startFor = async () => {
      const start = opaque.client.startRegistration({ password: "1234" });
      const s = await sealRequest(
        host.vaultPublicKey(),
        "bob",
        {
          op: "register-start",
          registrationRequest: Uint8Array.from(Buffer.from(start.registrationRequest, "base64url")),
        },
        host.now(),
      );
      const r = await s.open(((await host.request(s.envelope)) as { envelope: Uint8Array }).envelope);
      if (!("ok" in r) || r.ok !== "register-start") throw new Error("register-start refused");
      const fin = opaque.client.finishRegistration({
        clientRegistrationState: start.clientRegistrationState,
        registrationResponse: Buffer.from(r.registrationResponse).toString("base64url"),
        password: "1234",
        keyStretching: LIGHT,
      });
      return { ticket: r.ticket, record: Uint8Array.from(Buffer.from(fin.registrationRecord, "base64url")) };
    };
    const first = await startFor();
    const second = await startFor();
    const finish = async (t: { ticket: Uint8Array; record: Uint8Array }) => {
      const s = await sealRequest(
        host.vaultPublicKey(),
        "bob",
        {
          op: "register-finish",
          replace: true,
          ticket: t.ticket,
          registrationRecord: t.record,
          wrappedKey: new Uint8Array(61).fill(3),
        },
        host.now(),
      );
      return s.open(((await host.request(s.envelope)) as { envelope: Uint8Array }).envelope);
    };
    const stale = await finish(first);
    expect("error" in stale && stale.error).toBe(ErrorCode.Invalid);
    const current = await finish(second);
    expect("ok" in current && current.ok).toBe("register-finish");
    // A ticket is good once.
    const again = await finish(second);
    expect("error" in again && again.error).toBe(ErrorCode.Invalid);
  });

  it("a replayed copy of a request gets the first copy's answer, byte for byte, and uses no second guess", async () => {
    const { host, client } = await setup();
    await client().register("1234", KEY);
    const { startLogin } = (await import("@serenity-kit/opaque")).client;
    const ke1 = startLogin({ password: "0000" }).startLoginRequest;
    const sealed = await sealRequest(host.vaultPublicKey(), "alice", {
      op: "recover-start",
      ke1: Uint8Array.from(Buffer.from(ke1, "base64url")),
    });
    const first = await host.request(sealed.envelope);
    expect(first.ok).toBe(true);
    const r1 = await sealed.open((first as { envelope: Uint8Array }).envelope);
    expect("ok" in r1 && r1.ok).toBe("recover-start");
    for (let i = 0; i < 3; i++) {
      const again = await host.request(sealed.envelope);
      expect(again.ok).toBe(true);
      expect((again as { envelope: Uint8Array }).envelope).toEqual(
        (first as { envelope: Uint8Array }).envelope,
      );
    }
    // Only the first start used a guess.
    expect((await error(client().recover("0000"))).guessesRemaining).toBe(8);
  });

  it("an altered envelope or a swapped user id does not open", async () => {
    const { host, client } = await setup();
    await client().register("1234", KEY);
    const sealed = await sealRequest(host.vaultPublicKey(), "alice", {
      op: "register-start",
      registrationRequest: new Uint8Array(32).fill(1),
    });
    for (let i = 12; i < sealed.envelope.length; i += 7) {
      const bad = sealed.envelope.slice();
      bad[i]! ^= 0x40;
      const r = await host.request(bad);
      expect(r.ok).toBe(false);
      expect((r as { code: string }).code).toMatch(/^(AUTHENTICATION|MALFORMED)$/);
    }
    const asBob = sealed.envelope.slice();
    const at = Buffer.from(asBob).indexOf("alice");
    asBob.set(Buffer.from("alicf"), at);
    const r = await host.request(asBob);
    expect(r.ok).toBe(false);
    expect((r as { code: string }).code).toBe(ErrorCode.Authentication);
  });

  it("a forged response (not sealed for the request) is refused by the client", async () => {
    const { host } = await setup();
    const a = await sealRequest(host.vaultPublicKey(), "alice", {
      op: "register-start",
      registrationRequest: new Uint8Array(32).fill(2),
    });
    const b = await sealRequest(host.vaultPublicKey(), "alice", {
      op: "register-start",
      registrationRequest: new Uint8Array(32).fill(3),
    });
    const rb = await host.request(b.envelope);
    await expect(a.open((rb as { envelope: Uint8Array }).envelope)).rejects.toMatchObject({
      code: ErrorCode.Untrusted,
    });
  });

  it("another envelope with a request id seen before is refused as a replay, and uses no guess", async () => {
    const { host, client } = await setup();
    await client().register("1234", KEY);
    const { startLogin } = (await import("@serenity-kit/opaque")).client;
    const ke1 = () =>
      Uint8Array.from(Buffer.from(startLogin({ password: "0000" }).startLoginRequest, "base64url"));
    const requestId = new Uint8Array(16).fill(7);
    const seal = (body: { op: "recover-start"; ke1: Uint8Array }) =>
      nodeHpkeSealer.seal({
        recipientPublicKey: host.vaultPublicKey(),
        info: HPKE_INFO,
        aad: envelopeHeader("alice"),
        plaintext: encodeVaultRequest({ requestId, issuedAt: host.now(), body }),
        exportContext: RESPONSE_EXPORT_CONTEXT,
        exportLength: 32,
      });
    const one = await seal({ op: "recover-start", ke1: ke1() });
    const two = await seal({ op: "recover-start", ke1: ke1() });
    const envelope = (s: { enc: Uint8Array; ciphertext: Uint8Array }) =>
      encodeRequestEnvelope({ user: "alice", enc: s.enc, ciphertext: s.ciphertext });
    const r1 = await host.request(envelope(one));
    expect(r1.ok).toBe(true);
    const r2 = await host.request(envelope(two));
    const opened = decodeVaultResult(
      await nodeOpenResponse(two.exported, (r2 as { envelope: Uint8Array }).envelope),
    );
    expect("error" in opened && opened.error).toBe(ErrorCode.Replay);
    expect((await error(client().recover("0000"))).guessesRemaining).toBe(8);
  });

  it("a request exactly at the edge of the time window is refused, on either side", async () => {
    const { host } = await setup();
    for (const offset of [-REQUEST_WINDOW_MS, REQUEST_WINDOW_MS]) {
      const edge = await sealRequest(
        host.vaultPublicKey(),
        "alice",
        { op: "register-start", registrationRequest: new Uint8Array(32).fill(2) },
        host.now() + offset,
      );
      const r = await host.request(edge.envelope);
      const res = await edge.open((r as { envelope: Uint8Array }).envelope);
      expect("error" in res && res.error).toBe(ErrorCode.Expired);
    }
  });

  it("a request from outside the time window is refused", async () => {
    const { host } = await setup();
    const old = await sealRequest(
      host.vaultPublicKey(),
      "alice",
      { op: "register-start", registrationRequest: new Uint8Array(32).fill(2) },
      Date.now() - 3600_000,
    );
    const r = await host.request(old.envelope);
    const res = await old.open((r as { envelope: Uint8Array }).envelope);
    expect("error" in res && res.error).toBe(ErrorCode.Expired);
  });

  it("guesses raced in parallel never exceed the limit", async () => {
    const limit = 5;
    const { host, client } = await setup(limit);
    await client().register("1234", KEY);
    const { startLogin } = (await import("@serenity-kit/opaque")).client;
    const attempts = await Promise.all(
      Array.from({ length: 30 }, async () => {
        const ke1 = Uint8Array.from(
          Buffer.from(startLogin({ password: "0000" }).startLoginRequest, "base64url"),
        );
        const s = await sealRequest(host.vaultPublicKey(), "alice", { op: "recover-start", ke1 });
        const r = await host.request(s.envelope);
        return s.open((r as { envelope: Uint8Array }).envelope);
      }),
    );
    const ke2s = attempts.filter((r) => "ok" in r && r.ok === "recover-start");
    expect(ke2s.length).toBe(limit);
    for (const r of attempts) {
      if ("error" in r) expect([ErrorCode.NoRecord, ErrorCode.Invalid]).toContain(r.error);
    }
    // Even the right PIN gets nothing more: every guess was used and the record is destroyed.
    expect((await error(client().recover("1234"))).code).toBe(ErrorCode.NoRecord);
  });

  it("a host that never confirms persistence gets no KE2 out", async () => {
    const { host, client } = await setup();
    await client().register("1234", KEY);
    host.ackPersist = false;
    const { startLogin } = (await import("@serenity-kit/opaque")).client;
    const ke1 = Uint8Array.from(Buffer.from(startLogin({ password: "0000" }).startLoginRequest, "base64url"));
    const s = await sealRequest(host.vaultPublicKey(), "alice", { op: "recover-start", ke1 });
    let answered = false;
    void host.request(s.envelope).then(() => {
      answered = true;
    });
    await new Promise((r) => setTimeout(r, 200));
    expect(answered).toBe(false);
    // Acknowledging a different index than the one in flight releases nothing either.
    await host.send({ type: "persisted", id: 999 });
    await new Promise((r) => setTimeout(r, 50));
    expect(answered).toBe(false);
  });

  it("a restart in the middle of a login keeps the login and its guess", async () => {
    const { host, client } = await setup();
    await client().register("1234", KEY);
    const opaque = await import("@serenity-kit/opaque");
    const start = opaque.client.startLogin({ password: "1234" });
    const s1 = await sealRequest(host.vaultPublicKey(), "alice", {
      op: "recover-start",
      ke1: Uint8Array.from(Buffer.from(start.startLoginRequest, "base64url")),
    });
    const r1 = await s1.open(((await host.request(s1.envelope)) as { envelope: Uint8Array }).envelope);
    if (!("ok" in r1) || r1.ok !== "recover-start") throw new Error("expected KE2");
    expect(r1.guessesRemaining).toBe(9);
    // The HSM restarts from host storage and NVRAM.
    expect((await host.boot()).type).toBe("booted");
    const fin = opaque.client.finishLogin({
      clientLoginState: start.clientLoginState,
      loginResponse: Buffer.from(r1.ke2).toString("base64url"),
      password: "1234",
      keyStretching: LIGHT,
    })!;
    const s2 = await sealRequest(host.vaultPublicKey(), "alice", {
      op: "recover-finish",
      sessionId: r1.sessionId,
      ke3: Uint8Array.from(Buffer.from(fin.finishLoginRequest, "base64url")),
      action: 0,
    });
    const r2 = await s2.open(((await host.request(s2.envelope)) as { envelope: Uint8Array }).envelope);
    expect("ok" in r2 && r2.ok).toBe("recover-finish");
  });

  it("a restart forgets no guess: wrong PINs before and after add up", async () => {
    const { host, client } = await setup(4);
    await client().register("1234", KEY);
    await error(client().recover("0000"));
    await error(client().recover("0000"));
    await host.boot();
    expect((await error(client().recover("0000"))).guessesRemaining).toBe(1);
  });

  it("restoring an old copy of host storage is caught: the HSM recovers first and serves nothing", async () => {
    const { host, client } = await setup(4);
    const alice = client();
    await alice.register("1234", KEY);
    const backup = host.copyStorage();
    await error(alice.recover("0000"));
    await error(alice.recover("0000"));
    host.stored = backup;
    const boot = await host.boot();
    expect(boot).toMatchObject({ type: "booted", recovering: true });
    const e = await error(alice.recover("0000"));
    expect(e.code).toBe(ErrorCode.Unavailable);
  });

  it("dropping only the newest entries is caught too", async () => {
    const { host, client } = await setup();
    await client().register("1234", KEY);
    await error(client().recover("0000"));
    host.stored.entries.pop();
    const boot = await host.boot();
    expect(boot).toMatchObject({ type: "booted", recovering: true });
  });

  it("tampered or reordered host storage is refused as CORRUPT", async () => {
    const { host, client } = await setup();
    await client().register("1234", KEY);
    const good = host.copyStorage();
    host.stored.entries[1]!.sealed[20]! ^= 1;
    expect((await host.boot()).type === "failed" && host.booted).toMatchObject({ code: ErrorCode.Corrupt });
    host.stored = good;
    const [a, b] = [host.stored.entries[1]!, host.stored.entries[2]!];
    host.stored.entries[1] = { index: a.index, sealed: b.sealed };
    host.stored.entries[2] = { index: b.index, sealed: a.sealed };
    expect(await host.boot()).toMatchObject({ type: "failed", code: ErrorCode.Corrupt });
  });

  it("storage from another HSM (or a wiped NVRAM) is refused", async () => {
    const { host, client } = await setup();
    await client().register("1234", KEY);
    host.hsm.nvram = null;
    expect(await host.boot()).toMatchObject({ type: "failed", code: ErrorCode.Corrupt });
  });

  it("snapshots bound the log and a restart from a snapshot keeps every record and count", async () => {
    const { host, client } = await setup(10, { snapshotEvery: 5 });
    await client().register("1234", KEY);
    for (let i = 0; i < 4; i++) await error(client().recover("0000"));
    await client("bob").register("5678", KEY);
    expect(host.stored.snapshot).not.toBeNull();
    expect(host.stored.entries.length).toBeLessThan(5);
    await host.boot();
    expect((await error(client().recover("0000"))).guessesRemaining).toBe(5);
    expect((await client("bob").recover("5678")).backupKey).toEqual(KEY);
  });

  it("the clock moved back by the host does not reopen the replay window", async () => {
    const { host, client } = await setup();
    await client().register("1234", KEY);
    const s = await sealRequest(host.vaultPublicKey(), "alice", {
      op: "register-start",
      registrationRequest: new Uint8Array(32).fill(5),
    });
    await host.request(s.envelope);
    host.node.clockSkew = 25 * 60_000; // far ahead: the replay cache may forget the id
    const ahead = () => host.now();
    await new VaultClient({
      user: "carol",
      vaultPublicKey: host.vaultPublicKey(),
      transport: host.transport(),
      keyStretching: LIGHT,
      now: ahead,
    }).register("1111", KEY);
    host.node.clockSkew = 0; // and back: the core's clock never goes back
    const r = await s.open(((await host.request(s.envelope)) as { envelope: Uint8Array }).envelope);
    expect("error" in r && r.error).toBe(ErrorCode.Expired);
  });

  it("garbage frames from the host change nothing", async () => {
    const { host, client } = await setup();
    await client().register("1234", KEY);
    for (const junk of [
      new Uint8Array(0),
      Uint8Array.of(9),
      Uint8Array.of(2, 0, 0),
      new Uint8Array(100).fill(255),
    ]) {
      await host.core.receive(junk);
    }
    expect(host.core.counters.framesRejected).toBe(4);
    expect((await client().recover("1234")).backupKey).toEqual(KEY);
  });

  it("a vault result decoder rejects trailing bytes", () => {
    expect(() => decodeVaultResult(Uint8Array.of(2, 0, 0, 0, 10, 0))).toThrow(/trailing/);
  });
});

describe("vault: a transport that retries", () => {
  it("a retried copy of a request gets the first copy's answer: exactly once", async () => {
    const { host } = await setup();
    let first = true;
    const retrying = {
      send: async (envelope: Uint8Array) => {
        if (first) {
          first = false;
          await host.transport().send(envelope); // the answer to the first copy is lost
        }
        return host.transport().send(envelope);
      },
    };
    const c = new VaultClient({
      user: "erin",
      vaultPublicKey: host.vaultPublicKey(),
      transport: retrying,
      keyStretching: LIGHT,
      now: () => host.now(),
    });
    await c.register("1234", KEY);
    // The recovery's start is retried too: one guess is counted for it, and the right PIN works.
    first = true;
    expect((await c.recover("1234")).backupKey).toEqual(KEY);
    first = true;
    const wrong = await error(c.recover("0000"));
    expect(wrong.code).toBe(ErrorCode.WrongPin);
    expect(wrong.guessesRemaining).toBe(9);
  });
});
