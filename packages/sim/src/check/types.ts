/**
 * The vocabulary of the linearizability checker: an operation of a concurrent history, the
 * sequential model it is checked against, and the checker's verdict.
 */

/**
 * One operation of a concurrent history. `call` and `ret` are logical times with call <= ret.
 * ret = Infinity: the operation never returned, so its outcome is unknown. It may have taken effect
 * at any point after its call, or not at all, and its `output` should be `undefined` (an unknown
 * output matches whatever the model produces).
 */
export interface Operation<I, O> {
  client: number;
  /** Operations on different keys are independent; each key is checked on its own. */
  key: string;
  call: number;
  ret: number;
  input: I;
  /** undefined: unknown (never received); the model accepts any output then. */
  output: O | undefined;
}

/**
 * A deterministic sequential specification. States are values: `step` must not mutate its
 * argument. (A nondeterministic specification can be made deterministic by taking sets of states
 * as the state, as Porcupine does.)
 */
export interface Model<S, I, O> {
  init(): S;
  /**
   * The state after applying `input` to `state` if that can answer `output`, else null. With
   * output undefined (unknown), the state after applying `input` with whatever output the model
   * would produce; it should not return null then.
   */
  step(state: S, input: I, output: O | undefined): S | null;
  /** Equal states must give equal strings, different states different strings (used for memoization). */
  hash(state: S): string;
  /** One line for reports, e.g. "start → ok remaining=2"; output undefined means unknown. */
  describe(input: I, output: O | undefined): string;
  /** Optional one-line description of a state for reports; `hash` is used without it. */
  describeState?(state: S): string;
}

export interface CheckOptions {
  /** Wall-clock budget for the whole check, in milliseconds (default: none). */
  timeoutMs?: number;
  /** Budget of search steps for the whole check, all keys together (default: none). */
  maxSteps?: number;
}

export interface CheckResult {
  /** "unknown": the budget ran out before a definite answer. */
  result: "ok" | "illegal" | "unknown";
  /** illegal: the key whose history is not linearizable; unknown: the key being checked when the budget ran out. */
  key?: string;
  /** illegal or unknown: a human-readable explanation. */
  info?: string;
  /** illegal: the longest linearizable prefix found, as indices into the checked operations, in order. */
  prefix?: number[];
  /** illegal: the operations that could come next after `prefix`, none of which leads to a full linearization. */
  stuck?: number[];
  /** ok: one linearization per key, as indices into the operations; unreturned operations left out are absent. */
  linearizations?: Map<string, number[]>;
  /** Search steps spent. */
  steps: number;
}
