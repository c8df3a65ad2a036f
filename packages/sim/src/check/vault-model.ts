/**
 * The sequential model of one vault record, on the level of client requests, following the HSM's
 * rules (hsm-core vault.ts): register-finish with replace ("put") creates or replaces the record,
 * without replace ("put-new") creates it or is refused with RECORD_EXISTS and changes nothing; recover-start
 * ("start") counts a guess and opens a session, or destroys the record once every guess is used;
 * recover-finish ("finish") with the right PIN sets the count to the guesses started after that
 * session's own (or deletes the record), with a wrong PIN closes the session and destroys the record
 * when no guess remains. A put refused because its registration ticket went stale is recorded as an
 * operation without an answer (it may or may not have happened).
 *
 * Not modelled: session expiry, the cap on logins in progress, malformed requests, replays.
 *
 * A start whose answer is unknown (never returned) counts its guess but adds no session to
 * `pending`: its session id was never seen by any client, so no finish can name it, and leaving it
 * out keeps equal states equal for memoization.
 */
import type { Model } from "./types.js";

export interface VaultState {
  readonly exists: boolean;
  /** Guesses counted since the record was created or last recovered. */
  readonly used: number;
  /** Logins in progress, sorted by session id: how many guesses were counted after each one's. */
  readonly pending: readonly { readonly session: string; readonly after: number }[];
}

export type VaultInput =
  | { op: "put" }
  | { op: "put-new" }
  | { op: "start" }
  | { op: "finish"; session: string; correct: boolean; action: "recover" | "delete" };

export type VaultOutput =
  | { ok: true }
  | { ok: true; session: string; remaining: number }
  | { error: "NO_RECORD" }
  | { error: "RECORD_EXISTS" }
  | { error: "WRONG_PIN"; remaining: number }
  | { error: "NO_SESSION"; remaining: number };

const NONE: VaultState = { exists: false, used: 0, pending: [] };
const FRESH: VaultState = { exists: true, used: 0, pending: [] };

/** What the model answers, except that a successful start's session id is the caller's. */
type Decision = { state: VaultState } & ({ output: VaultOutput } | { started: number });

function decide(limit: number, s: VaultState, input: VaultInput): Decision {
  switch (input.op) {
    case "put":
      return { state: FRESH, output: { ok: true } };
    case "put-new":
      return s.exists
        ? { state: s, output: { error: "RECORD_EXISTS" } }
        : { state: FRESH, output: { ok: true } };
    case "start": {
      if (!s.exists) return { state: s, output: { error: "NO_RECORD" } };
      if (s.used >= limit) return { state: NONE, output: { error: "NO_RECORD" } };
      const pending = s.pending.map((p) => ({ session: p.session, after: p.after + 1 }));
      return { state: { ...s, used: s.used + 1, pending }, started: limit - s.used - 1 };
    }
    case "finish": {
      if (!s.exists) return { state: s, output: { error: "NO_RECORD" } };
      const mine = s.pending.find((p) => p.session === input.session);
      if (mine === undefined) {
        return { state: s, output: { error: "NO_SESSION", remaining: Math.max(0, limit - s.used) } };
      }
      if (input.correct) {
        if (input.action === "delete") return { state: NONE, output: { ok: true } };
        // Guesses started after this session's stay counted, and their sessions stay open.
        const pending = s.pending.filter((p) => p.after < mine.after);
        return { state: { exists: true, used: mine.after, pending }, output: { ok: true } };
      }
      if (s.used >= limit) return { state: NONE, output: { error: "WRONG_PIN", remaining: 0 } };
      const pending = s.pending.filter((p) => p.session !== input.session);
      return { state: { ...s, pending }, output: { error: "WRONG_PIN", remaining: limit - s.used } };
    }
  }
}

function withSession(s: VaultState, session: string): VaultState {
  if (s.pending.some((p) => p.session === session)) return s;
  const pending = [...s.pending, { session, after: 0 }];
  pending.sort((a, b) => (a.session < b.session ? -1 : a.session > b.session ? 1 : 0));
  return { ...s, pending };
}

function checkLimit(limit: number): void {
  if (!Number.isInteger(limit) || limit < 0)
    throw new RangeError(`guess limit must be an integer >= 0: ${limit}`);
}

/**
 * Runs one request sequentially, as the HSM would: the answer and the next state. `session` is the
 * id a successful start hands out (ignored otherwise).
 */
export function vaultApply(
  limit: number,
  state: VaultState,
  input: VaultInput,
  session: string,
): { output: VaultOutput; state: VaultState } {
  checkLimit(limit);
  const d = decide(limit, state, input);
  if ("output" in d) return d;
  return { output: { ok: true, session, remaining: d.started }, state: withSession(d.state, session) };
}

/** A canonical one-line form of an output, e.g. "ok session=s1 remaining=2", "WRONG_PIN remaining=0". */
export function formatVaultOutput(o: VaultOutput): string {
  if ("error" in o) return "remaining" in o ? `${o.error} remaining=${o.remaining}` : o.error;
  return "session" in o ? `ok session=${o.session} remaining=${o.remaining}` : "ok";
}

function formatInput(input: VaultInput): string {
  if (input.op !== "finish") return input.op;
  return `finish(${input.session}, ${input.correct ? "right" : "wrong"} PIN, ${input.action})`;
}

export function vaultModel(limit: number): Model<VaultState, VaultInput, VaultOutput> {
  checkLimit(limit);
  return {
    init: () => NONE,
    step(state, input, output) {
      // A login in progress may also end as NO_SESSION because it expired: the host moves the HSM's
      // clock, so expiry can happen at any time. It changes no guess count.
      if (
        input.op === "finish" &&
        output !== undefined &&
        "error" in output &&
        output.error === "NO_SESSION" &&
        state.exists &&
        state.pending.some((p) => p.session === input.session)
      ) {
        if (output.remaining !== Math.max(0, limit - state.used)) return null;
        return { ...state, pending: state.pending.filter((p) => p.session !== input.session) };
      }
      const d = decide(limit, state, input);
      if (output === undefined) return d.state;
      if ("output" in d) return formatVaultOutput(d.output) === formatVaultOutput(output) ? d.state : null;
      if (!("session" in output) || output.remaining !== d.started) return null;
      return withSession(d.state, output.session);
    },
    hash: (s) => `${s.exists ? 1 : 0}/${s.used}/${JSON.stringify(s.pending)}`,
    describe: (input, output) =>
      `${formatInput(input)} → ${output === undefined ? "? (no answer)" : formatVaultOutput(output)}`,
    describeState: (s) =>
      s.exists
        ? `record, ${s.used}/${limit} guesses used, sessions [${s.pending.map((p) => `${p.session}+${p.after}`).join(", ")}]`
        : "no record",
  };
}
