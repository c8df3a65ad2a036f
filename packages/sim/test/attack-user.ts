/**
 * A vault user for the attack tests, driven one request at a time through a chosen node's host, and
 * the guess-limit oracle: every KE2 the fleet answers is a guess the holder of the answer can test
 * offline, so at most `limit` KE2s may be answered since the last successful recovery, and once the
 * fleet said the record is destroyed no PIN may recover the key again.
 *
 * Requests do not tick the fleet themselves unless asked to (`wait`), so an attack's schedule stays
 * exactly the one the test writes down.
 */
import { sealRequest } from "@bkv/client";
import { nodeHpkeSealer } from "@bkv/client/node";
import {
  ErrorCode,
  FinishAction,
  fromBase64Url,
  toBase64Url,
  type VaultOp,
  type VaultResult,
} from "@bkv/wire";
import * as opaque from "@serenity-kit/opaque";
import type { ReplyFrame, SimFleet } from "../src/index.js";

const LIGHT = { "argon2id-custom": { iterations: 1, memory: 8, parallelism: 1 } } as const;
export const RIGHT = "2468";
export const WRONG = "0000";

export type Outcome = "key" | "wrong" | "no-record" | "unavailable" | "error";

export class AttackUser {
  /** KE2s answered since the last recovery that returned the key. */
  guesses = 0;
  /** Every answered KE2, and every recovered key, in order (for the failure message). */
  readonly log: string[] = [];
  /** Broken promises of the guess limit. */
  readonly violations: string[] = [];
  private destroyed = false;

  constructor(
    readonly f: SimFleet,
    readonly user: string,
    readonly limit: number,
  ) {}

  private cutoffs: (() => void)[] = [];

  /** Requests sent with maxTicks "manual" stop waiting now: those not answered yet get null. */
  stopWaiting(): void {
    for (const c of this.cutoffs.splice(0)) c();
  }

  /**
   * Send one vault request through node `via`; resolves with the opened answer, or null. The fleet
   * is ticked up to maxTicks times while it waits; "manual": the test ticks and delivers itself and
   * ends the wait with stopWaiting().
   */
  async send(via: number, body: VaultOp, maxTicks: number | "manual"): Promise<VaultResult | null> {
    await opaque.ready;
    const sealed = await sealRequest(this.f.vaultPublicKey(), this.user, body, this.f.time, nodeHpkeSealer);
    const p = this.f.request(via, sealed.envelope);
    const reply =
      maxTicks === "manual"
        ? await Promise.race([p, new Promise<null>((r) => this.cutoffs.push(() => r(null)))])
        : await wait(this.f, p, maxTicks);
    if (reply === null || !reply.ok) return null;
    return sealed.open(reply.envelope);
  }

  async register(via: number, maxTicks = 100): Promise<boolean> {
    const start = opaque.client.startRegistration({ password: RIGHT });
    const r1 = await this.send(
      via,
      { op: "register-start", registrationRequest: fromBase64Url(start.registrationRequest) },
      maxTicks,
    );
    if (r1 === null || !("ok" in r1) || r1.ok !== "register-start") return false;
    const fin = opaque.client.finishRegistration({
      clientRegistrationState: start.clientRegistrationState,
      registrationResponse: toBase64Url(r1.registrationResponse),
      password: RIGHT,
      keyStretching: LIGHT,
    });
    const r2 = await this.send(
      via,
      {
        op: "register-finish",
        replace: true,
        ticket: r1.ticket,
        registrationRecord: fromBase64Url(fin.registrationRecord),
        wrappedKey: new Uint8Array(61).fill(7),
      },
      maxTicks,
    );
    const ok = r2 !== null && "ok" in r2 && r2.ok === "register-finish";
    if (ok) {
      this.guesses = 0;
      this.destroyed = false;
    }
    return ok;
  }

  /** The first round trip of a login: KE1 -> KE2. Counts the guess if a KE2 comes back. */
  async start(via: number, pin: string, maxTicks: number | "manual" = 100) {
    const login = opaque.client.startLogin({ password: pin });
    const r = await this.send(
      via,
      { op: "recover-start", ke1: fromBase64Url(login.startLoginRequest) },
      maxTicks,
    );
    if (r !== null && "ok" in r && r.ok === "recover-start") {
      this.guesses++;
      this.log.push(
        `KE2 for ${pin === RIGHT ? "the right" : "a wrong"} PIN via node ${via}: guess ${this.guesses}`,
      );
      if (this.destroyed)
        this.violations.push(
          `a KE2 was answered (via node ${via}) after the fleet said the record was destroyed`,
        );
      else if (this.guesses > this.limit)
        this.violations.push(
          `KE2 number ${this.guesses} was answered (via node ${via}); the limit is ${this.limit}`,
        );
      return { login, ke2: r, pin };
    }
    if (r !== null && "error" in r && r.error === ErrorCode.NoRecord) this.destroyed = true;
    return null;
  }

  /** A whole login (KE1 -> KE2 -> KE3): what came of it. */
  async guess(via: number, pin: string, maxTicks = 100): Promise<Outcome> {
    const s = await this.start(via, pin, maxTicks);
    if (s === null) return this.destroyed ? "no-record" : "unavailable";
    const fin = opaque.client.finishLogin({
      clientLoginState: s.login.clientLoginState,
      loginResponse: toBase64Url(s.ke2.ke2),
      password: pin,
      keyStretching: LIGHT,
    });
    const r = await this.send(
      via,
      {
        op: "recover-finish",
        sessionId: s.ke2.sessionId,
        ke3: fin === undefined ? new Uint8Array(0) : fromBase64Url(fin.finishLoginRequest),
        action: FinishAction.Recover,
      },
      maxTicks,
    );
    if (r === null) return "unavailable";
    if ("error" in r) {
      if (r.error === ErrorCode.WrongPin) {
        if (r.guessesRemaining === 0) this.destroyed = true;
        return "wrong";
      }
      if (r.error === ErrorCode.NoRecord) {
        this.destroyed = true;
        return "no-record";
      }
      return "error";
    }
    if (r.ok === "recover-finish" && fin !== undefined && r.wrappedKey.length > 0) {
      this.log.push(`the key was returned via node ${via}`);
      if (this.destroyed)
        this.violations.push(`the key was returned (via node ${via}) after the record was destroyed`);
      this.guesses = 0;
      return "key";
    }
    return "error";
  }
}

/** Tick the whole fleet until the reply comes (at most maxTicks ticks); null if none came. */
export async function wait(
  f: SimFleet,
  p: Promise<ReplyFrame | null>,
  maxTicks: number,
): Promise<ReplyFrame | null> {
  let done: ReplyFrame | null | undefined;
  void p.then((r) => {
    done = r;
  });
  for (let t = 0; t <= maxTicks && done === undefined; t++) {
    await f.settle(3);
    if (done === undefined && t < maxTicks) await f.tick();
  }
  return done ?? null;
}
