/**
 * Linearizability checking of a concurrent history against a sequential model: Wing–Gong search
 * with Lowe's memoization (as in Porcupine and Knossos), done key by key (P-compositionality: a
 * history is linearizable iff its restriction to every key is). A budget of time or steps turns
 * the verdict into "unknown" instead of a wrong answer.
 *
 * Real-time order: an operation returning at time t precedes one called at t (see events.ts for
 * zero-length operations). An operation with ret = Infinity never returned: it may be linearized
 * anywhere after its call, or left out.
 */
import { sortedEvents, validateTimes } from "./events.js";
import { explainIllegal } from "./report.js";
import { type Budget, searchLinearization } from "./search.js";
import type { CheckOptions, CheckResult, Model, Operation } from "./types.js";

export type { CheckOptions, CheckResult, Model, Operation } from "./types.js";

/** Operation indices grouped by key, keys in order of first appearance. */
function partition<I, O>(ops: readonly Operation<I, O>[]): Map<string, number[]> {
  const parts = new Map<string, number[]>();
  ops.forEach((op, i) => {
    const part = parts.get(op.key);
    if (part === undefined) parts.set(op.key, [i]);
    else part.push(i);
  });
  return parts;
}

/** Throws RangeError for an operation with a non-finite call or ret < call. */
export function checkLinearizable<S, I, O>(
  ops: readonly Operation<I, O>[],
  model: Model<S, I, O>,
  opts: CheckOptions = {},
): CheckResult {
  validateTimes(ops);
  const budget: Budget = {
    steps: 0,
    maxSteps: opts.maxSteps ?? Infinity,
    deadline: opts.timeoutMs === undefined ? Infinity : Date.now() + opts.timeoutMs,
    exhausted: false,
  };
  const parts = partition(ops);
  const linearizations = new Map<string, number[]>();
  for (const [key, global] of parts) {
    const part = global.map((i) => ops[i]!);
    const events = sortedEvents(part);
    const outcome = searchLinearization(part, events, model, budget);
    if (outcome.kind === "unknown") {
      const info =
        `budget exhausted after ${budget.steps} step(s) while checking key "${key}" ` +
        `(${linearizations.size} of ${parts.size} key(s) checked linearizable before it)`;
      return { result: "unknown", key, info, steps: budget.steps };
    }
    if (outcome.kind === "illegal") {
      const report = explainIllegal(key, part, global, events, model, outcome.prefix, outcome.state);
      return {
        result: "illegal",
        key,
        info: report.info,
        prefix: outcome.prefix.map((i) => global[i]!),
        stuck: report.stuck.map((i) => global[i]!),
        steps: budget.steps,
      };
    }
    linearizations.set(
      key,
      outcome.order.map((i) => global[i]!),
    );
  }
  return { result: "ok", linearizations, steps: budget.steps };
}
