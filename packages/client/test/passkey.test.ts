import { BkvError, concatBytes, ErrorCode, fromBase64Url, toBase64Url, utf8 } from "@bkv/wire";
import { describe, expect, it } from "vitest";
import {
  BACKUP_HEADER_SIZE,
  backupKeyId,
  decodeBackupHeader,
  encryptBytes,
  generateBackupKey,
} from "../src/backup/index.js";
import {
  derivePasskeyKek,
  enrollPasskey,
  newPasskeySalt,
  type PasskeyCredentials,
  type PasskeyWrap,
  parsePasskeyWrap,
  passkeyPrfInput,
  recoverWithPasskey,
  unwrapWithPrf,
  wrapWithPrf,
} from "../src/passkey/index.js";

async function rejection(p: Promise<unknown>): Promise<BkvError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(BkvError);
    return e as BkvError;
  }
  throw new Error("expected a rejection");
}

function flipBit(s: string, byte = 20): string {
  const b = fromBase64Url(s);
  b[byte]! ^= 1;
  return toBase64Url(b);
}

/**
 * A test double for navigator.credentials (not a WebAuthn implementation): each credential has a
 * random secret and its "PRF" is HMAC-SHA256(secret, input). `prf` says what the authenticator
 * reports at creation: results, only `enabled: true`, or nothing (no PRF support).
 */
class FakeAuthenticator implements PasskeyCredentials {
  readonly secrets = new Map<string, Uint8Array>();
  /** The credential the "user" picks in get(); default: the first one allowed that exists. */
  pick: string | undefined;
  cancel = false;
  createCalls = 0;
  getCalls: CredentialRequestOptions[] = [];

  constructor(readonly prf: "results" | "enabled" | "none" = "results") {}

  private async hmac(secret: Uint8Array, input: BufferSource): Promise<ArrayBuffer> {
    const k = await crypto.subtle.importKey(
      "raw",
      secret as Uint8Array<ArrayBuffer>,
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign"],
    );
    return crypto.subtle.sign("HMAC", k, input);
  }

  private credential(rawId: Uint8Array, ext: AuthenticationExtensionsClientOutputs): Credential {
    const id = toBase64Url(rawId);
    return {
      id,
      type: "public-key",
      rawId: rawId.slice().buffer,
      getClientExtensionResults: () => ext,
    } as unknown as Credential;
  }

  async create(options?: CredentialCreationOptions): Promise<Credential | null> {
    this.createCalls++;
    if (this.cancel) throw new DOMException("cancelled", "NotAllowedError");
    const pk = options?.publicKey;
    if (pk === undefined) throw new TypeError("publicKey options expected");
    expect(pk.authenticatorSelection?.userVerification).toBe("required");
    expect(pk.pubKeyCredParams.map((p) => p.alg)).toEqual([-7, -8, -257]);
    expect((pk.user.id as Uint8Array).length).toBe(16);
    const rawId = crypto.getRandomValues(new Uint8Array(20));
    const secret = crypto.getRandomValues(new Uint8Array(32));
    if (this.prf === "none") return this.credential(rawId, {});
    this.secrets.set(toBase64Url(rawId), secret);
    if (this.prf === "enabled") return this.credential(rawId, { prf: { enabled: true } });
    const first = pk.extensions?.prf?.eval?.first;
    expect(first).toBeDefined();
    return this.credential(rawId, {
      prf: { enabled: true, results: { first: await this.hmac(secret, first!) } },
    });
  }

  async get(options?: CredentialRequestOptions): Promise<Credential | null> {
    this.getCalls.push(options!);
    if (this.cancel) throw new DOMException("cancelled", "NotAllowedError");
    const pk = options?.publicKey;
    expect(pk?.userVerification).toBe("required");
    const allowed = (pk?.allowCredentials ?? []).map((c) => toBase64Url(new Uint8Array(c.id as ArrayBuffer)));
    const id = this.pick ?? allowed.find((a) => this.secrets.has(a));
    if (id === undefined || !allowed.includes(id) || !this.secrets.has(id)) {
      throw new DOMException("no credential", "NotAllowedError");
    }
    const input = pk?.extensions?.prf?.evalByCredential?.[id]?.first;
    if (input === undefined) return this.credential(fromBase64Url(id), { prf: {} });
    return this.credential(fromBase64Url(id), {
      prf: { results: { first: await this.hmac(this.secrets.get(id)!, input) } },
    });
  }
}

const rp = { id: "example.com", name: "Example" };

describe("passkey wrap (pure crypto)", () => {
  const prf = crypto.getRandomValues(new Uint8Array(32));
  const credentialId = crypto.getRandomValues(new Uint8Array(16));
  const user = "alice";

  it("round-trips K with a PRF output", async () => {
    const K = generateBackupKey();
    const salt = newPasskeySalt();
    const wrap = await wrapWithPrf(prf, salt, user, credentialId, K, { label: "laptop" });
    const kid = await backupKeyId(K);
    expect(wrap).toMatchObject({
      version: 2,
      keyId: toBase64Url(kid),
      user,
      label: "laptop",
      credentialId: toBase64Url(credentialId),
    });
    expect(fromBase64Url(wrap.salt)).toEqual(salt);
    expect(fromBase64Url(wrap.wrappedKey).length).toBe(12 + 32 + 16);
    expect(parsePasskeyWrap(JSON.parse(JSON.stringify(wrap)))).toEqual(wrap);
    expect(await unwrapWithPrf(prf, wrap, user, kid)).toEqual(K);
    // The credential id may be given as base64url too.
    const wrap2 = await wrapWithPrf(prf, salt, user, toBase64Url(credentialId), K);
    expect(await unwrapWithPrf(prf, wrap2, user, kid)).toEqual(K);
  });

  it("binds the KEK to PRF output, salt, user and credential id", async () => {
    const salt = newPasskeySalt();
    const kek = await derivePasskeyKek(prf, salt, user, credentialId);
    expect(kek.length).toBe(32);
    const others = [
      await derivePasskeyKek(crypto.getRandomValues(new Uint8Array(32)), salt, user, credentialId),
      await derivePasskeyKek(prf, newPasskeySalt(), user, credentialId),
      await derivePasskeyKek(prf, salt, "bob", credentialId),
      await derivePasskeyKek(prf, salt, user, crypto.getRandomValues(new Uint8Array(16))),
    ];
    for (const o of others) expect(o).not.toEqual(kek);
  });

  it("refuses the wrong PRF output, another user, credential id or salt, and tampering (WRONG_KEY)", async () => {
    const K = generateBackupKey();
    const wrap = await wrapWithPrf(prf, newPasskeySalt(), user, credentialId, K);
    const cases: [string, Uint8Array, PasskeyWrap, string][] = [
      ["wrong PRF output", crypto.getRandomValues(new Uint8Array(32)), wrap, user],
      ["other user", prf, wrap, "bob"],
      ["other user in the wrap", prf, { ...wrap, user: "bob" }, "bob"],
      ["other credential id", prf, { ...wrap, credentialId: toBase64Url(new Uint8Array(16)) }, user],
      ["other salt", prf, { ...wrap, salt: toBase64Url(newPasskeySalt()) }, user],
      ["tampered ciphertext", prf, { ...wrap, wrappedKey: flipBit(wrap.wrappedKey, 20) }, user],
      ["tampered nonce", prf, { ...wrap, wrappedKey: flipBit(wrap.wrappedKey, 0) }, user],
      ["tampered tag", prf, { ...wrap, wrappedKey: flipBit(wrap.wrappedKey, 59) }, user],
    ];
    for (const [what, p, w, u] of cases) {
      const e = await rejection(unwrapWithPrf(p, w, u, await backupKeyId(K)));
      expect(e.code, what).toBe(ErrorCode.WrongKey);
    }
  });

  it("refuses malformed wraps (MALFORMED)", async () => {
    const wrap = await wrapWithPrf(prf, newPasskeySalt(), user, credentialId, generateBackupKey());
    const bad: unknown[] = [
      { ...wrap, version: 3 },
      { ...wrap, keyId: toBase64Url(new Uint8Array(7)) },
      { ...wrap, keyId: undefined },
      { ...wrap, salt: toBase64Url(new Uint8Array(16)) },
      { ...wrap, wrappedKey: toBase64Url(new Uint8Array(59)) },
      { ...wrap, credentialId: "" },
      { ...wrap, credentialId: "not base64url!" },
      null,
    ];
    for (const b of bad) {
      const e = await rejection(unwrapWithPrf(prf, b as PasskeyWrap, user, new Uint8Array(8)));
      expect(e.code).toBe(ErrorCode.Malformed);
    }
    expect(() => parsePasskeyWrap({ ...wrap, createdAt: "now" })).toThrow(BkvError);
  });

  it("derives the PRF input from the salt", async () => {
    const a = newPasskeySalt();
    const b = newPasskeySalt();
    expect(a).not.toEqual(b);
    const ia = await passkeyPrfInput(a);
    expect(ia.length).toBe(32);
    expect(await passkeyPrfInput(a)).toEqual(ia);
    expect(await passkeyPrfInput(b)).not.toEqual(ia);
  });
});

describe("passkey enrollment and recovery (fake authenticator)", () => {
  it("enrolls with PRF results at creation and recovers K", async () => {
    const auth = new FakeAuthenticator("results");
    const K = generateBackupKey();
    const wrap = await enrollPasskey({ user: "alice", rp, backupKey: K, label: "phone", credentials: auth });
    expect(auth.getCalls.length).toBe(0);
    expect(wrap.user).toBe("alice");
    expect(wrap.label).toBe("phone");
    const got = await recoverWithPasskey({
      user: "alice",
      wraps: [wrap],
      keyId: await backupKeyId(K),
      rp,
      credentials: auth,
    });
    expect(got.backupKey).toEqual(K);
    expect(got.credentialId).toBe(wrap.credentialId);
    expect(auth.getCalls[0]?.publicKey?.rpId).toBe("example.com");
  });

  it("enrolls with an authenticator that only reports prf.enabled (one extra assertion)", async () => {
    const auth = new FakeAuthenticator("enabled");
    const K = generateBackupKey();
    const wrap = await enrollPasskey({ user: "alice", rp, backupKey: K, credentials: auth });
    expect(auth.getCalls.length).toBe(1);
    const allow = auth.getCalls[0]?.publicKey?.allowCredentials ?? [];
    expect(allow.map((c) => toBase64Url(new Uint8Array(c.id as ArrayBuffer)))).toEqual([wrap.credentialId]);
    const { backupKey } = await recoverWithPasskey({
      user: "alice",
      wraps: [wrap],
      keyId: await backupKeyId(K),
      credentials: auth,
    });
    expect(backupKey).toEqual(K);
  });

  it("fails enrollment when the authenticator has no PRF", async () => {
    const auth = new FakeAuthenticator("none");
    const e = await rejection(
      enrollPasskey({ user: "alice", rp, backupKey: generateBackupKey(), credentials: auth }),
    );
    expect(e.code).toBe(ErrorCode.Invalid);
    expect(e.message).toBe("this authenticator does not support the PRF extension");
  });

  it("gives each credential its own salt, and every wrap of a user recovers the same K", async () => {
    const auth = new FakeAuthenticator("results");
    const other = new FakeAuthenticator("enabled");
    const K = generateBackupKey();
    const wraps = [
      await enrollPasskey({ user: "alice", rp, backupKey: K, credentials: auth }),
      await enrollPasskey({ user: "alice", rp, backupKey: K, credentials: auth }),
      await enrollPasskey({ user: "alice", rp, backupKey: K, credentials: other }),
    ];
    expect(new Set(wraps.map((w) => w.salt)).size).toBe(3);
    expect(new Set(wraps.map((w) => w.credentialId)).size).toBe(3);
    for (const w of wraps) {
      const a = auth.secrets.has(w.credentialId) ? auth : other;
      a.pick = w.credentialId;
      a.getCalls = [];
      const got = await recoverWithPasskey({
        user: "alice",
        wraps,
        keyId: await backupKeyId(K),
        rp,
        credentials: a,
      });
      expect(got.backupKey).toEqual(K);
      expect(got.credentialId).toBe(w.credentialId);
      // One assertion offering every credential, each with the PRF input of its own salt.
      const pk = a.getCalls[0]?.publicKey;
      expect(a.getCalls.length).toBe(1);
      expect(pk?.allowCredentials?.length).toBe(3);
      const inputs = pk?.extensions?.prf?.evalByCredential ?? {};
      expect(Object.keys(inputs).sort()).toEqual(wraps.map((x) => x.credentialId).sort());
      for (const x of wraps) {
        expect(new Uint8Array(inputs[x.credentialId]!.first as Uint8Array)).toEqual(
          await passkeyPrfInput(fromBase64Url(x.salt)),
        );
      }
    }
  });

  it("maps errors: no wraps, cancellation, wrap that does not open", async () => {
    const auth = new FakeAuthenticator("results");
    const K = generateBackupKey();
    const wrap = await enrollPasskey({ user: "alice", rp, backupKey: K, credentials: auth });

    expect(
      (
        await rejection(
          recoverWithPasskey({ user: "alice", wraps: [], keyId: await backupKeyId(K), credentials: auth }),
        )
      ).code,
    ).toBe(ErrorCode.Invalid);
    // Wraps of another user do not count.
    expect(
      (
        await rejection(
          recoverWithPasskey({ user: "bob", wraps: [wrap], keyId: await backupKeyId(K), credentials: auth }),
        )
      ).code,
    ).toBe(ErrorCode.Invalid);

    auth.cancel = true;
    const cancelled = await rejection(
      recoverWithPasskey({ user: "alice", wraps: [wrap], keyId: await backupKeyId(K), credentials: auth }),
    );
    expect(cancelled.code).toBe(ErrorCode.Forbidden);
    expect(cancelled.message).toBe("the passkey was not used");
    const notCreated = await rejection(enrollPasskey({ user: "alice", rp, backupKey: K, credentials: auth }));
    expect(notCreated.code).toBe(ErrorCode.Forbidden);
    auth.cancel = false;

    const tampered = { ...wrap, wrappedKey: flipBit(wrap.wrappedKey) };
    expect(
      (
        await rejection(
          recoverWithPasskey({
            user: "alice",
            wraps: [tampered],
            keyId: await backupKeyId(K),
            credentials: auth,
          }),
        )
      ).code,
    ).toBe(ErrorCode.WrongKey);
    const otherSalt = { ...wrap, salt: toBase64Url(newPasskeySalt()) };
    expect(
      (
        await rejection(
          recoverWithPasskey({
            user: "alice",
            wraps: [otherSalt],
            keyId: await backupKeyId(K),
            credentials: auth,
          }),
        )
      ).code,
    ).toBe(ErrorCode.WrongKey);
  });

  it("says WebAuthn is unavailable where navigator.credentials is missing", async () => {
    const e = await rejection(enrollPasskey({ user: "alice", rp, backupKey: generateBackupKey() }));
    expect(e.code).toBe(ErrorCode.Unavailable);
  });
});

describe("passkey wraps are bound to the key they wrap", () => {
  /** The key id a restoring client reads from the backup it restores. */
  async function headerKeyId(K: Uint8Array): Promise<Uint8Array> {
    const backup = await encryptBytes(K, utf8("chats"));
    return decodeBackupHeader(backup.subarray(0, BACKUP_HEADER_SIZE)).keyId;
  }

  it("an old wrap served after K was rotated is refused (WRONG_KEY) before the passkey is used", async () => {
    const auth = new FakeAuthenticator("results");
    const K1 = generateBackupKey();
    const old = await enrollPasskey({ user: "alice", rp, backupKey: K1, credentials: auth });
    // K is rotated: new backups are made with K2, and the passkey is enrolled again for K2.
    const K2 = generateBackupKey();
    const current = await enrollPasskey({ user: "alice", rp, backupKey: K2, credentials: auth });
    const keyId = await headerKeyId(K2);

    // Storage serves only the old wrap: refused by name, no WebAuthn prompt.
    const e = await rejection(
      recoverWithPasskey({ user: "alice", wraps: [old], keyId, rp, credentials: auth }),
    );
    expect(e.code).toBe(ErrorCode.WrongKey);
    expect(e.message).toMatch(/another backup key .* before the key was rotated/);
    expect(auth.getCalls.length).toBe(0);

    // Storage rewrites the old wrap's keyId to the current one: the associated data catches it.
    auth.pick = old.credentialId;
    const relabelled = { ...old, keyId: current.keyId };
    const e2 = await rejection(
      recoverWithPasskey({ user: "alice", wraps: [relabelled], keyId, rp, credentials: auth }),
    );
    expect(e2.code).toBe(ErrorCode.WrongKey);
    auth.pick = undefined;

    // Old and current wraps together: only the current one is offered, and it gives K2.
    auth.getCalls = [];
    const got = await recoverWithPasskey({
      user: "alice",
      wraps: [old, current],
      keyId,
      rp,
      credentials: auth,
    });
    expect(got.backupKey).toEqual(K2);
    const offered = auth.getCalls[0]?.publicKey?.allowCredentials ?? [];
    expect(offered.map((c) => toBase64Url(new Uint8Array(c.id as ArrayBuffer)))).toEqual([
      current.credentialId,
    ]);

    // The pure unwrap refuses the old wrap for the new backup too, even with the right PRF output.
    expect((await rejection(unwrapWithPrf(new Uint8Array(32), old, "alice", keyId))).code).toBe(
      ErrorCode.WrongKey,
    );
  });

  it("refuses version 1 wraps (they name no key) by name", async () => {
    const K = generateBackupKey();
    const wrap = await wrapWithPrf(
      new Uint8Array(32).fill(1),
      newPasskeySalt(),
      "alice",
      new Uint8Array(16),
      K,
    );
    const { keyId: _k, ...v1 } = { ...wrap, version: 1 };
    for (const f of [
      async (): Promise<unknown> => parsePasskeyWrap(v1),
      () =>
        recoverWithPasskey({
          user: "alice",
          wraps: [v1 as unknown as PasskeyWrap],
          keyId: new Uint8Array(8),
        }),
    ]) {
      const e = await rejection(Promise.resolve().then(() => f()));
      expect(e.code).toBe(ErrorCode.Invalid);
      expect(e.message).toMatch(/version 1 passkey wrap .* add the passkey again/);
    }
  });

  it("a wrap whose named key id is not its K's is refused after opening (WRONG_KEY)", async () => {
    // A faulty or hostile wrapper: K sealed under associated data that names another key id.
    const prf = crypto.getRandomValues(new Uint8Array(32));
    const salt = newPasskeySalt();
    const credentialId = crypto.getRandomValues(new Uint8Array(16));
    const K = generateBackupKey();
    const claimed = new Uint8Array(8).fill(0xab);
    const kek = await derivePasskeyKek(prf, salt, "alice", credentialId);
    const key = await crypto.subtle.importKey("raw", kek as Uint8Array<ArrayBuffer>, "AES-GCM", false, [
      "encrypt",
    ]);
    const nonce = crypto.getRandomValues(new Uint8Array(12));
    const len = new Uint8Array(4);
    new DataView(len.buffer).setUint32(0, 5);
    const aad = concatBytes(
      utf8("bkv passkey wrap v1"),
      Uint8Array.of(0, 2),
      len,
      utf8("alice"),
      claimed,
      credentialId,
    );
    const ct = new Uint8Array(
      await crypto.subtle.encrypt(
        { name: "AES-GCM", iv: nonce, additionalData: aad as Uint8Array<ArrayBuffer> },
        key,
        K as Uint8Array<ArrayBuffer>,
      ),
    );
    const wrap: PasskeyWrap = {
      version: 2,
      credentialId: toBase64Url(credentialId),
      salt: toBase64Url(salt),
      keyId: toBase64Url(claimed),
      wrappedKey: toBase64Url(concatBytes(nonce, ct)),
      user: "alice",
      createdAt: 0,
    };
    const e = await rejection(unwrapWithPrf(prf, wrap, "alice", claimed));
    expect(e.code).toBe(ErrorCode.WrongKey);
    expect(e.message).toMatch(/not the one it names/);
  });
});
