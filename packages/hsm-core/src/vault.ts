/**
 * The vault's decisions: given the state and one authenticated client request, what to record and
 * what to answer. Pure apart from OPAQUE's own randomness and the session ids it draws; the ops it
 * returns carry every decision, so applying them on any replica gives the same state.
 *
 * The guess limit: a login start records a "guess" op and its KE2 is released only after that
 * entry is committed; KE3 success resets the count; a failure once every guess is used destroys
 * the record.
 */

import {
  bytesEqual,
  ErrorCode,
  FinishAction,
  fromBase64Url,
  TICKET_BYTES,
  toBase64Url,
  toHex,
  type VaultErrorCode,
  type VaultRequest,
  type VaultResult,
} from "@bkv/wire";
import * as opaque from "@serenity-kit/opaque";
import { LOGIN_TTL_MS, MAX_PENDING_LOGINS, REQUEST_WINDOW_MS } from "./policy.js";
import type { Op } from "./raft-entry.js";
import type { VaultRecord, VaultState } from "./state.js";

export interface Decision {
  /** null: refuse without recording anything (replay, stale request). */
  ops: Op[] | null;
  result: VaultResult;
  /**
   * A retry of a request the log already answered: answer it again with the same sealed reply,
   * once the entry at index is committed (no new entry, no second guess).
   */
  again?: { index: number; reply: Uint8Array };
}

function fail(error: VaultErrorCode, message: string, guessesRemaining = 0): VaultResult {
  return { error, guessesRemaining, message };
}

function remaining(state: VaultState, rec: VaultRecord): number {
  return Math.max(0, state.guessLimit - rec.guessesUsed);
}

/**
 * digest is SHA-256 of the request envelope: a copy of the very same envelope is a retry and gets
 * the first copy's answer; another envelope with a request id seen before is a replay.
 */
/**
 * OPAQUE's credential identifier (RFC 9807 §6.1: the OPRF key is derived from the server's OPRF
 * seed and it): the user id and the registration's own random credential id. Were it the user id
 * alone, a register-start for that user would evaluate the OPRF under the stored record's key for
 * any PIN the caller likes, a PIN test that counts no guess.
 */
export function credentialIdentifier(user: string, credential: Uint8Array): string {
  return `bkv-credential:${toHex(credential)}:${user}`;
}

export function decide(
  state: VaultState,
  user: string,
  req: VaultRequest,
  now: number,
  randomBytes: (n: number) => Uint8Array,
  digest: Uint8Array,
): Decision {
  if (Math.abs(req.issuedAt - now) >= REQUEST_WINDOW_MS) {
    return {
      ops: null,
      result: fail(ErrorCode.Expired, "request time is outside the vault's window; check the clock"),
    };
  }
  const seen = state.seen.get(toHex(req.requestId));
  if (seen !== undefined) {
    const replay = fail(ErrorCode.Replay, "this request was already received");
    if (seen.answer !== undefined && bytesEqual(seen.answer.digest, digest))
      return { ops: null, result: replay, again: { index: seen.index, reply: seen.answer.reply } };
    return { ops: null, result: replay };
  }
  const genesis = state.genesis!;
  const body = req.body;
  const rec = state.records.get(user);
  const ops: Op[] = [];

  switch (body.op) {
    case "register-start": {
      // A fresh credential id per registration names its OPRF key: a register-start, which uses no
      // guess, never evaluates the OPRF under the key of a stored record (only a counted login does).
      const ticket = randomBytes(TICKET_BYTES);
      const { registrationResponse } = opaque.server.createRegistrationResponse({
        serverSetup: genesis.opaqueServerSetup,
        userIdentifier: credentialIdentifier(user, ticket),
        registrationRequest: toBase64Url(body.registrationRequest),
      });
      ops.push({ op: "ticket", user, ticket, expiresAt: now + LOGIN_TTL_MS });
      return {
        ops,
        result: { ok: "register-start", registrationResponse: fromBase64Url(registrationResponse), ticket },
      };
    }

    case "register-finish": {
      // Only with the ticket of this user's latest register-start, while nothing else happened to
      // the record since: a register-finish held back by the operator cannot replace a record
      // later and give back the guesses used on it.
      const t = state.tickets.get(user);
      if (t === undefined || !bytesEqual(t.ticket, body.ticket) || t.expiresAt <= now) {
        return {
          ops,
          result: fail(
            ErrorCode.Invalid,
            "this registration is no longer current (its record changed, or it expired): register again",
            rec === undefined ? 0 : remaining(state, rec),
          ),
        };
      }
      if (rec !== undefined && !body.replace) {
        return {
          ops,
          result: fail(
            ErrorCode.RecordExists,
            "this user already has a record: register with replace to replace it (its PIN and key are then lost)",
            remaining(state, rec),
          ),
        };
      }
      ops.push({
        op: "put-record",
        user,
        credential: t.ticket,
        registration: body.registrationRecord,
        wrappedKey: body.wrappedKey,
      });
      return { ops, result: { ok: "register-finish", guessesAllowed: genesis.guessLimit } };
    }

    case "recover-start": {
      if (rec === undefined) return { ops, result: fail(ErrorCode.NoRecord, "no record for this user") };
      let live = 0;
      let expired = 0;
      for (const p of rec.pending.values()) {
        if (p.expiresAt <= now) expired++;
        else live++;
      }
      if (expired > 0) ops.push({ op: "drop-expired", user });
      if (rec.guessesUsed >= genesis.guessLimit) {
        ops.push({ op: "destroy", user });
        return { ops, result: fail(ErrorCode.NoRecord, "every guess was used: the record is destroyed") };
      }
      if (live >= MAX_PENDING_LOGINS) {
        return { ops, result: fail(ErrorCode.Invalid, "too many logins in progress", remaining(state, rec)) };
      }
      let started: opaque.server.LoginStartResult;
      try {
        started = opaque.server.startLogin({
          serverSetup: genesis.opaqueServerSetup,
          registrationRecord: toBase64Url(rec.registration),
          startLoginRequest: toBase64Url(body.ke1),
          userIdentifier: credentialIdentifier(user, rec.credential),
        });
      } catch {
        return {
          ops,
          result: fail(ErrorCode.Invalid, "KE1 is not a valid OPAQUE message", remaining(state, rec)),
        };
      }
      const sessionId = randomBytes(16);
      ops.push({
        op: "guess",
        user,
        sessionId,
        loginState: started.serverLoginState,
        expiresAt: now + LOGIN_TTL_MS,
      });
      return {
        ops,
        result: {
          ok: "recover-start",
          sessionId,
          ke2: fromBase64Url(started.loginResponse),
          guessesRemaining: Math.max(0, genesis.guessLimit - rec.guessesUsed - 1),
        },
      };
    }

    case "recover-finish": {
      if (rec === undefined) return { ops, result: fail(ErrorCode.NoRecord, "no record for this user") };
      const pending = rec.pending.get(toHex(body.sessionId));
      if (pending === undefined || pending.expiresAt <= now) {
        return {
          ops,
          result: fail(ErrorCode.NoSession, "no login in progress for this session", remaining(state, rec)),
        };
      }
      let ok = false;
      if (body.ke3.length > 0) {
        try {
          opaque.server.finishLogin({
            serverLoginState: pending.loginState,
            finishLoginRequest: toBase64Url(body.ke3),
          });
          ok = true;
        } catch {
          ok = false;
        }
      }
      if (!ok) {
        ops.push({ op: "login-failed", user, sessionId: body.sessionId });
        const left = remaining(state, rec);
        if (left === 0) {
          ops.push({ op: "destroy", user });
          return {
            ops,
            result: fail(ErrorCode.WrongPin, "wrong PIN; no guesses remain: the record is destroyed", 0),
          };
        }
        return { ops, result: fail(ErrorCode.WrongPin, "wrong PIN", left) };
      }
      if (body.action === FinishAction.Delete) {
        ops.push({ op: "destroy", user });
        return {
          ops,
          result: { ok: "recover-finish", wrappedKey: new Uint8Array(0), guessesAllowed: genesis.guessLimit },
        };
      }
      ops.push({ op: "login-ok", user, sessionId: body.sessionId });
      return {
        ops,
        result: { ok: "recover-finish", wrappedKey: rec.wrappedKey, guessesAllowed: genesis.guessLimit },
      };
    }
  }
}
