/**
 * The vault client: register a backup key behind a PIN, recover it, delete the record. OPAQUE
 * (RFC 9807, @serenity-kit/opaque) runs between this client and the HSM; the PIN never leaves the
 * client, and K travels only wrapped under a key derived from OPAQUE's export key.
 */

import {
  BkvError,
  type BundleJson,
  bytesEqual,
  ErrorCode,
  FinishAction,
  fromBase64Url,
  toBase64Url,
  type VaultOp,
  type VaultResult,
  validateUserId,
} from "@bkv/wire";
import * as opaque from "@serenity-kit/opaque";
import type { CheckpointStore, TrustPins } from "../bundle/pins.js";
import { verifyBundle } from "../bundle/verify-bundle.js";
import { type HpkeSealer, sealRequest } from "./channel.js";
import { unwrapBackupKey, wrapBackupKey } from "./key-wrap.js";
import type { VaultTransport } from "./transport.js";

/** Argon2id settings for stretching the PIN on the client (opaque-ke's "memory-constrained" by default). */
export type KeyStretching = opaque.client.FinishLoginParams["keyStretching"];

export interface VaultClientOptions {
  user: string;
  /**
   * How the client learns the fleet's keys. Normally `trust`: it pins only the log key, the witness
   * keys with a threshold and the namespace, and takes the fleet's keys from validation bundles it
   * verifies (remembering the largest checkpoint in `checkpoints`).
   */
  trust?: { pins: TrustPins; checkpoints: CheckpointStore };
  /** Or the vault's HPKE public key (32 bytes) itself, for a fleet not published in a log (tests). */
  vaultPublicKey?: Uint8Array;
  transport: VaultTransport;
  /** Must be the same at registration and recovery. */
  keyStretching?: KeyStretching;
  now?: () => number;
  /** HPKE implementation (default: WebCrypto via @hpke/core). */
  hpke?: HpkeSealer;
}

export interface RecoverResult {
  backupKey: Uint8Array;
  guessesAllowed: number;
}

/** What identifies a bundle's content (everything but the consistency proof, which only links it to the past). */
function bundleId(b: BundleJson): string {
  const { consistency: _c, ...rest } = b;
  return JSON.stringify([
    rest.namespace,
    rest.epoch,
    rest.artifact,
    rest.evidenceDigest,
    rest.index,
    rest.logSignature,
    rest.countersignature,
    rest.inclusionProof,
    rest.checkpoint,
  ]);
}

function throwResult(r: VaultResult): never {
  if ("error" in r) throw new BkvError(r.error, r.message, { guessesRemaining: r.guessesRemaining });
  throw new BkvError(ErrorCode.Malformed, `vault answered ${r.ok} to a different request`);
}

export class VaultClient {
  private readonly user: string;

  constructor(private readonly opts: VaultClientOptions) {
    this.user = validateUserId(opts.user);
    if ((opts.trust === undefined) === (opts.vaultPublicKey === undefined))
      throw new BkvError(ErrorCode.Invalid, "give either trust pins or a vault public key");
    if (opts.vaultPublicKey !== undefined && opts.vaultPublicKey.length !== 32)
      throw new BkvError(ErrorCode.Untrusted, "vault public key must be 32 bytes");
  }

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }

  /**
   * The vault key to seal to. With trust pins: fetch the fleet's validation bundle and verify all of
   * it, before anything that depends on the PIN is sent. `bundle` names what was verified, so the
   * same bundle coming back with the answers of this operation is not checked twice.
   */
  private async vaultKey(): Promise<{ key: Uint8Array; bundle: string | null }> {
    const t = this.opts.trust;
    if (t === undefined) return { key: this.opts.vaultPublicKey!, bundle: null };
    if (this.opts.transport.bundle === undefined)
      throw new BkvError(ErrorCode.BundleMissing, "this transport cannot fetch validation bundles");
    const seen = await t.checkpoints.load();
    const bundle = await this.opts.transport.bundle(seen?.size);
    const fleet = await verifyBundle(bundle, t.pins, t.checkpoints, this.now());
    return { key: fleet.vaultPublicKey, bundle: bundleId(bundle) };
  }

  private async call(vault: { key: Uint8Array; bundle: string | null }, body: VaultOp): Promise<VaultResult> {
    await opaque.ready;
    const sealed = await sealRequest(vault.key, this.user, body, this.now(), this.opts.hpke);
    const t = this.opts.trust;
    const seen = t === undefined ? undefined : (await t.checkpoints.load())?.size;
    const reply = await this.opts.transport.send(sealed.envelope, seen);
    if (t !== undefined) {
      // Every answer carries the bundle; it must verify and vouch for the key we sealed to.
      if (reply.bundle === undefined)
        throw new BkvError(ErrorCode.BundleMissing, "the vault's answer carries no validation bundle");
      if (bundleId(reply.bundle) !== vault.bundle) {
        const fleet = await verifyBundle(reply.bundle, t.pins, t.checkpoints, this.now());
        if (!bytesEqual(fleet.vaultPublicKey, vault.key))
          throw new BkvError(ErrorCode.Untrusted, "the answer's bundle vouches for another fleet");
      }
    }
    const result = await sealed.open(reply.response);
    if ("error" in result && result.error === ErrorCode.Replay) {
      // Only a copy of this very request can be a replay: a transport that retried it on another
      // host after the first answer was lost. What the first copy did is unknown here.
      throw new BkvError(
        ErrorCode.Unavailable,
        "the vault had already received this request (a retry after a lost answer); its outcome is unknown: try again",
      );
    }
    return result;
  }

  /** Protect backupKey with pin. Replaces an existing record for this user. */
  async register(pin: string, backupKey: Uint8Array): Promise<{ guessesAllowed: number }> {
    const vault = await this.vaultKey();
    await opaque.ready;
    const start = opaque.client.startRegistration({ password: pin });
    const r1 = await this.call(vault, {
      op: "register-start",
      registrationRequest: fromBase64Url(start.registrationRequest),
    });
    if (!("ok" in r1) || r1.ok !== "register-start") throwResult(r1);
    const fin = opaque.client.finishRegistration({
      clientRegistrationState: start.clientRegistrationState,
      registrationResponse: toBase64Url(r1.registrationResponse),
      password: pin,
      ...(this.opts.keyStretching === undefined ? {} : { keyStretching: this.opts.keyStretching }),
    });
    const wrappedKey = await wrapBackupKey(fromBase64Url(fin.exportKey), this.user, backupKey);
    const r2 = await this.call(vault, {
      op: "register-finish",
      ticket: r1.ticket,
      registrationRecord: fromBase64Url(fin.registrationRecord),
      wrappedKey,
    });
    if (!("ok" in r2) || r2.ok !== "register-finish") throwResult(r2);
    return { guessesAllowed: r2.guessesAllowed };
  }

  /** Log in with pin; throws BkvError WRONG_PIN (with guessesRemaining) or NO_RECORD. */
  private async login(
    pin: string,
    action: FinishAction,
  ): Promise<{ wrappedKey: Uint8Array; exportKey: Uint8Array; guessesAllowed: number }> {
    const vault = await this.vaultKey();
    await opaque.ready;
    const start = opaque.client.startLogin({ password: pin });
    const r1 = await this.call(vault, { op: "recover-start", ke1: fromBase64Url(start.startLoginRequest) });
    if (!("ok" in r1) || r1.ok !== "recover-start") throwResult(r1);
    const fin = opaque.client.finishLogin({
      clientLoginState: start.clientLoginState,
      loginResponse: toBase64Url(r1.ke2),
      password: pin,
      ...(this.opts.keyStretching === undefined ? {} : { keyStretching: this.opts.keyStretching }),
    });
    const ke3 = fin === undefined ? new Uint8Array(0) : fromBase64Url(fin.finishLoginRequest);
    const r2 = await this.call(vault, { op: "recover-finish", sessionId: r1.sessionId, ke3, action });
    if (fin === undefined) {
      if ("error" in r2) throwResult(r2);
      throw new BkvError(ErrorCode.Malformed, "vault accepted a login the client could not finish");
    }
    if (!("ok" in r2) || r2.ok !== "recover-finish") throwResult(r2);
    return {
      wrappedKey: r2.wrappedKey,
      exportKey: fromBase64Url(fin.exportKey),
      guessesAllowed: r2.guessesAllowed,
    };
  }

  async recover(pin: string): Promise<RecoverResult> {
    const r = await this.login(pin, FinishAction.Recover);
    const backupKey = await unwrapBackupKey(r.exportKey, this.user, r.wrappedKey);
    return { backupKey, guessesAllowed: r.guessesAllowed };
  }

  /** Delete the record; needs the PIN (a successful login), and uses a guess like a recovery. */
  async delete(pin: string): Promise<void> {
    await this.login(pin, FinishAction.Delete);
  }
}
