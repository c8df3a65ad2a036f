/**
 * The real-time order of a history: call and return events sorted by time, and the doubly linked
 * list of them that the search lifts operations out of (and puts back into when it backtracks).
 *
 * Ties: a call at time t happens after a return at time t, so an operation returning at t
 * precedes one called at t. Exception: operations with call = ret (zero length) at the same t are
 * concurrent with each other (the rule cannot order them both ways); they still come after the
 * returns at t of longer operations and before the calls at t of longer operations. An operation
 * with ret = Infinity has no return event: nothing forces it to be linearized.
 */

interface Interval {
  call: number;
  ret: number;
}

export interface Event {
  /** Index of the operation. */
  op: number;
  isCall: boolean;
}

/** Must a precede b in every linearization (a returned before b was called)? */
export function precedes(a: Interval, b: Interval): boolean {
  if (a.ret < b.call) return true;
  if (a.ret > b.call) return false;
  return !(a.call === a.ret && b.call === b.ret);
}

/** Throws RangeError unless every operation has a finite call and call <= ret (ret may be Infinity). */
export function validateTimes(ops: readonly Interval[]): void {
  ops.forEach((o, i) => {
    if (!Number.isFinite(o.call) || Number.isNaN(o.ret) || o.ret < o.call) {
      throw new RangeError(`operation #${i}: need a finite call <= ret, got call=${o.call} ret=${o.ret}`);
    }
  });
}

/** The events of a history in real-time order (see the module comment for ties). */
export function sortedEvents(ops: readonly Interval[]): Event[] {
  const ev: { op: number; isCall: boolean; time: number; rank: number }[] = [];
  ops.forEach((o, op) => {
    const zero = o.call === o.ret;
    // rank at equal times: 0 returns of longer ops, 1 calls of zero-length ops,
    // 2 returns of zero-length ops, 3 calls of longer ops.
    ev.push({ op, isCall: true, time: o.call, rank: zero ? 1 : 3 });
    if (o.ret !== Infinity) ev.push({ op, isCall: false, time: o.ret, rank: zero ? 2 : 0 });
  });
  ev.sort((a, b) => a.time - b.time || a.rank - b.rank || a.op - b.op);
  return ev.map(({ op, isCall }) => ({ op, isCall }));
}

export interface Node {
  /** Index of the operation; -1 for the list head. */
  readonly op: number;
  readonly isCall: boolean;
  /** For a call: its return event, or null when the operation never returned. */
  match: Node | null;
  prev: Node | null;
  next: Node | null;
}

/** A doubly linked list of the events, behind a head node. */
export function linkEvents(events: readonly Event[]): Node {
  const head: Node = { op: -1, isCall: false, match: null, prev: null, next: null };
  const calls = new Map<number, Node>();
  let last = head;
  for (const e of events) {
    const node: Node = { op: e.op, isCall: e.isCall, match: null, prev: last, next: null };
    last.next = node;
    last = node;
    if (e.isCall) calls.set(e.op, node);
    else calls.get(e.op)!.match = node;
  }
  return head;
}

function unlink(n: Node): void {
  n.prev!.next = n.next;
  if (n.next !== null) n.next.prev = n.prev;
}

function relink(n: Node): void {
  n.prev!.next = n;
  if (n.next !== null) n.next.prev = n;
}

/** Removes a call event and its return event from the list (they keep their own links). */
export function lift(call: Node): void {
  unlink(call);
  if (call.match !== null) unlink(call.match);
}

/** Undoes `lift`; lifts must be undone in reverse order. */
export function unlift(call: Node): void {
  if (call.match !== null) relink(call.match);
  relink(call);
}
