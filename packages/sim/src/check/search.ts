/**
 * The Wing–Gong search with Lowe's memoization, as Porcupine and Knossos implement it, for the
 * operations of one key. Walk the event list from the head: at a call, try to linearize that
 * operation next (model step legal and the resulting (linearized set, state) not seen before); if
 * so, lift it out of the list, push it on the stack and restart from the head. At a return, the
 * operation returning there was not linearized in time: pop the last choice, put it back, and try
 * the event after it. The history is linearizable once every operation that returned is
 * linearized (unreturned ones may be linearized or left out); it is not once a return is met with
 * an empty stack.
 */
import { type Event, lift, linkEvents, type Node, unlift } from "./events.js";
import { Bitset, Memo } from "./memo.js";
import type { Model, Operation } from "./types.js";

/** Shared by every key of one check. */
export interface Budget {
  steps: number;
  readonly maxSteps: number;
  /** Date.now() value after which the check gives up. */
  readonly deadline: number;
  exhausted: boolean;
}

export type SearchOutcome<S> =
  | { kind: "ok"; order: number[] }
  | { kind: "illegal"; prefix: number[]; state: S }
  | { kind: "unknown" };

/** Counts one step; false once the budget is spent (and from then on). */
function spend(b: Budget): boolean {
  if (b.exhausted) return false;
  const late = b.deadline !== Infinity && (b.steps & 255) === 0 && Date.now() >= b.deadline;
  if (b.steps >= b.maxSteps || late) {
    b.exhausted = true;
    return false;
  }
  b.steps++;
  return true;
}

/** Searches for a linearization of `ops`; indices in the outcome refer to `ops`. */
export function searchLinearization<S, I, O>(
  ops: readonly Operation<I, O>[],
  events: readonly Event[],
  model: Model<S, I, O>,
  budget: Budget,
): SearchOutcome<S> {
  const head = linkEvents(events);
  const linearized = new Bitset(ops.length);
  const memo = new Memo();
  const stack: { node: Node; state: S }[] = [];
  let mustLinearize = ops.reduce((n, o) => (o.ret === Infinity ? n : n + 1), 0);
  let state = model.init();
  let best: { prefix: number[]; state: S } = { prefix: [], state };
  let entry = head.next;

  while (mustLinearize > 0) {
    if (!spend(budget)) return { kind: "unknown" };
    // While a returned operation is not linearized its return event is in the list, so walking
    // from the head meets a return before the end.
    const node = entry!;
    if (node.isCall) {
      const op = ops[node.op]!;
      const next = model.step(state, op.input, op.output);
      if (next !== null) {
        linearized.set(node.op);
        if (memo.add(linearized, model.hash(next))) {
          stack.push({ node, state });
          state = next;
          lift(node);
          if (node.match !== null) mustLinearize--;
          entry = head.next;
          continue;
        }
        linearized.clear(node.op);
      }
      entry = node.next;
    } else {
      if (stack.length > best.prefix.length) best = { prefix: stack.map((e) => e.node.op), state };
      const top = stack.pop();
      if (top === undefined) return { kind: "illegal", ...best };
      state = top.state;
      linearized.clear(top.node.op);
      unlift(top.node);
      if (top.node.match !== null) mustLinearize++;
      entry = top.node.next;
    }
  }
  return { kind: "ok", order: stack.map((e) => e.node.op) };
}
