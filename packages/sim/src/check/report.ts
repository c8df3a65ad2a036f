/**
 * The explanation of an illegal verdict: the key, the longest linearizable prefix found, the model
 * state after it, and the operations that could come next in real time, none of which extends it
 * to a full linearization (each is marked as an illegal step there or as a dead end).
 */
import type { Event } from "./events.js";
import type { Model, Operation } from "./types.js";

const SHOW_PREFIX = 12;
const SHOW_STUCK = 20;

export function describeOp<S, I, O>(index: number, op: Operation<I, O>, model: Model<S, I, O>): string {
  const ret = op.ret === Infinity ? "∞)" : `${op.ret}]`;
  return `#${index} client ${op.client} [${op.call}, ${ret} ${model.describe(op.input, op.output)}`;
}

/** The operations that may come next after `prefix` in real time (indices into `ops`). */
export function frontier(events: readonly Event[], prefix: readonly number[]): number[] {
  const done = new Set(prefix);
  const out: number[] = [];
  for (const e of events) {
    if (done.has(e.op)) continue;
    if (!e.isCall) break;
    out.push(e.op);
  }
  return out;
}

export interface IllegalReport {
  info: string;
  /** Indices into the partition's operations. */
  stuck: number[];
}

/**
 * `ops` are one key's operations, `global[i]` the index of ops[i] in the checked history,
 * `prefix` indices into `ops`, `state` the model state after it.
 */
export function explainIllegal<S, I, O>(
  key: string,
  ops: readonly Operation<I, O>[],
  global: readonly number[],
  events: readonly Event[],
  model: Model<S, I, O>,
  prefix: readonly number[],
  state: S,
): IllegalReport {
  const show = (i: number) => describeOp(global[i]!, ops[i]!, model);
  const lines = [
    `key "${key}": the ${ops.length} operations on it are not linearizable.`,
    `Longest linearizable prefix found: ${prefix.length} operation(s)${prefix.length > 0 ? ", in order:" : "."}`,
  ];
  if (prefix.length > SHOW_PREFIX) lines.push(`  … ${prefix.length - SHOW_PREFIX} earlier operation(s)`);
  for (const i of prefix.slice(-SHOW_PREFIX)) lines.push(`  ${show(i)}`);
  const desc = model.describeState ?? model.hash;
  lines.push(`Model state after it: ${desc.call(model, state)}`);
  const stuck = frontier(events, prefix);
  lines.push("None of these operations can come next and lead to a full linearization:");
  for (const i of stuck.slice(0, SHOW_STUCK)) {
    const op = ops[i]!;
    const why =
      model.step(state, op.input, op.output) === null
        ? "not a legal step from this state"
        : "legal here, but every continuation fails";
    const deadline = op.ret === Infinity ? "" : `; must be linearized before its return at ${op.ret}`;
    lines.push(`  ${show(i)}: ${why}${deadline}`);
  }
  if (stuck.length > SHOW_STUCK) lines.push(`  … and ${stuck.length - SHOW_STUCK} more`);
  return { info: lines.join("\n"), stuck };
}
