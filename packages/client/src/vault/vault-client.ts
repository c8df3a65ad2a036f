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

/** The HSM's sealed verdict, in words (for an AnswerBundleError's outcome). */
function verdictText(r: VaultResult): string {
  if (!("error" in r)) return `the vault answered ${r.ok}`;
  if (r.error === ErrorCode.WrongPin) {
    return r.guessesRemaining === 0
      ? "the PIN was wrong and no guesses remain: the record is destroyed"
      : `the PIN was wrong (${r.guessesRemaining} guess${r.guessesRemaining === 1 ? "" : "es"} remaining)`;
  }
  if (r.error === ErrorCode.NoRecord) return "the vault holds no record for this user";
  return `the vault answered ${r.error}: ${r.message}`;
}

/**
 * A validation bundle that came with one of the vault's answers did not verify (or was missing),
 * after the client had sent requests sealed to the fleet it verified at the start. The answers are
 * sealed under keys only that fleet could derive, so the client finished the operation (a login's
 * KE3 resets the guess count on the right PIN) before reporting the bundle; it returns nothing.
 * `code` is the bundle check's code, `bundleError` its error, `outcome` what the vault did, and
 * `verdict` the HSM's sealed error answer, if it gave one.
 */
export class AnswerBundleError extends BkvError {
  constructor(
    readonly bundleError: BkvError,
    readonly outcome: string,
    readonly verdict?: BkvError,
  ) {
    super(bundleError.code, `${bundleError.message}; ${outcome}`, {
      cause: bundleError,
      ...(verdict?.guessesRemaining === undefined ? {} : { guessesRemaining: verdict.guessesRemaining }),
    });
    this.name = "AnswerBundleError";
  }
}

/** An answer from the vault: the HSM's sealed result, and what was wrong with its bundle, if anything. */
interface Answer {
  result: VaultResult;
  bundleProblem: BkvError | null;
}

function asBkvError(e: unknown): BkvError {
  return e instanceof BkvError
    ? e
    : new BkvError(ErrorCode.Untrusted, `the answer's bundle could not be checked: ${String(e)}`, {
        cause: e,
      });
}

/** The verdict of a sealed error answer, as an error. */
function verdictError(r: VaultResult): BkvError | undefined {
  return "error" in r
    ? new BkvError(r.error, r.message, { guessesRemaining: r.guessesRemaining })
    : undefined;
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

  /**
   * Send one sealed request and open the answer. The answer is opened first: it is sealed under a
   * key derived for this request and the vault key verified at the start, so it is the HSM's word
   * (a host's unsealed error is only a transport error, see transport.ts). The bundle that comes
   * with it is checked next, but a problem with it is returned, not thrown, so that a login that
   * has started is finished before the problem is reported.
   */
  private async call(vault: { key: Uint8Array; bundle: string | null }, body: VaultOp): Promise<Answer> {
    await opaque.ready;
    const sealed = await sealRequest(vault.key, this.user, body, this.now(), this.opts.hpke);
    const t = this.opts.trust;
    const seen = t === undefined ? undefined : (await t.checkpoints.load())?.size;
    const reply = await this.opts.transport.send(sealed.envelope, seen);
    const result = await sealed.open(reply.response);
    if ("error" in result && result.error === ErrorCode.Replay) {
      // Only a copy of this very request can be a replay: a transport that retried it on another
      // host after the first answer was lost. What the first copy did is unknown here.
      throw new BkvError(
        ErrorCode.Unavailable,
        "the vault had already received this request (a retry after a lost answer); its outcome is unknown: try again",
      );
    }
    let bundleProblem: BkvError | null = null;
    if (t !== undefined) {
      // Every answer carries the bundle; it must verify and vouch for the key we sealed to.
      try {
        if (reply.bundle === undefined)
          throw new BkvError(ErrorCode.BundleMissing, "the vault's answer carries no validation bundle");
        if (bundleId(reply.bundle) !== vault.bundle) {
          const fleet = await verifyBundle(reply.bundle, t.pins, t.checkpoints, this.now());
          if (!bytesEqual(fleet.vaultPublicKey, vault.key))
            throw new BkvError(ErrorCode.Untrusted, "the answer's bundle vouches for another fleet");
        }
      } catch (e) {
        bundleProblem = asBkvError(e);
      }
    }
    return { result, bundleProblem };
  }

  /**
   * Protect backupKey with pin. An existing record for this user is replaced only with
   * `replace: true`; otherwise the HSM refuses with RECORD_EXISTS and changes nothing.
   */
  async register(
    pin: string,
    backupKey: Uint8Array,
    opts: { replace?: boolean } = {},
  ): Promise<{ guessesAllowed: number }> {
    const vault = await this.vaultKey();
    await opaque.ready;
    const start = opaque.client.startRegistration({ password: pin });
    const a1 = await this.call(vault, {
      op: "register-start",
      registrationRequest: fromBase64Url(start.registrationRequest),
    });
    const r1 = a1.result;
    if (a1.bundleProblem !== null) {
      // No guess is at stake in a registration: stop before the record is sent.
      throw new AnswerBundleError(
        a1.bundleProblem,
        "the registration was stopped after its first message (a blinded value that reveals nothing about the PIN); no record was sent",
        verdictError(r1),
      );
    }
    if (!("ok" in r1) || r1.ok !== "register-start") throwResult(r1);
    const fin = opaque.client.finishRegistration({
      clientRegistrationState: start.clientRegistrationState,
      registrationResponse: toBase64Url(r1.registrationResponse),
      password: pin,
      ...(this.opts.keyStretching === undefined ? {} : { keyStretching: this.opts.keyStretching }),
    });
    const wrappedKey = await wrapBackupKey(fromBase64Url(fin.exportKey), this.user, backupKey);
    const a2 = await this.call(vault, {
      op: "register-finish",
      ticket: r1.ticket,
      registrationRecord: fromBase64Url(fin.registrationRecord),
      wrappedKey,
      replace: opts.replace === true,
    });
    const r2 = a2.result;
    const done = "ok" in r2 && r2.ok === "register-finish";
    if (a2.bundleProblem !== null) {
      throw new AnswerBundleError(
        a2.bundleProblem,
        done
          ? `the registration was finished with the fleet verified at the start: the record is stored (${r2.guessesAllowed} wrong guesses allowed)`
          : `the registration was sent to the fleet verified at the start and refused: ${verdictText(r2)}`,
        verdictError(r2),
      );
    }
    if (!done) throwResult(r2);
    return { guessesAllowed: r2.guessesAllowed };
  }

  /**
   * Log in with pin; throws BkvError WRONG_PIN (with guessesRemaining) or NO_RECORD, from the HSM's
   * sealed answers only. Once KE2 has arrived (sealed under the key verified at the start), KE3 is
   * always sent, even if the bundle with KE2 did not verify: on the right PIN it resets the guess
   * count, so no check between KE2 and KE3 can leave a guess spent. A bundle problem is reported
   * after that, as an AnswerBundleError, and K is not returned.
   */
  private async login(
    pin: string,
    action: FinishAction,
  ): Promise<{ wrappedKey: Uint8Array; exportKey: Uint8Array; guessesAllowed: number }> {
    const vault = await this.vaultKey();
    await opaque.ready;
    const start = opaque.client.startLogin({ password: pin });
    const a1 = await this.call(vault, { op: "recover-start", ke1: fromBase64Url(start.startLoginRequest) });
    const r1 = a1.result;
    if (!("ok" in r1) || r1.ok !== "recover-start") {
      if (a1.bundleProblem !== null)
        throw new AnswerBundleError(
          a1.bundleProblem,
          `the login could not start: ${verdictText(r1)}`,
          verdictError(r1),
        );
      throwResult(r1);
    }
    const fin = opaque.client.finishLogin({
      clientLoginState: start.clientLoginState,
      loginResponse: toBase64Url(r1.ke2),
      password: pin,
      ...(this.opts.keyStretching === undefined ? {} : { keyStretching: this.opts.keyStretching }),
    });
    const ke3 = fin === undefined ? new Uint8Array(0) : fromBase64Url(fin.finishLoginRequest);
    let a2: Answer;
    try {
      a2 = await this.call(vault, { op: "recover-finish", sessionId: r1.sessionId, ke3, action });
    } catch (e) {
      if (a1.bundleProblem === null) throw e;
      throw new AnswerBundleError(
        a1.bundleProblem,
        `the login was sent to the fleet verified at the start but could not be finished: ${asBkvError(e).message}`,
      );
    }
    const r2 = a2.result;
    const problem = a1.bundleProblem ?? a2.bundleProblem;
    if (problem !== null) {
      const finished = "ok" in r2 && r2.ok === "recover-finish" && fin !== undefined;
      const what = !finished
        ? verdictText(r2)
        : action === FinishAction.Delete
          ? "the PIN was right and the record is deleted"
          : "the PIN was right (the guess count is reset); the backup key is not returned";
      throw new AnswerBundleError(
        problem,
        `the login was finished with the fleet verified at the start: ${what}`,
        verdictError(r2),
      );
    }
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
