/**
 * The deterministic simulator: the real HSM cores of a fleet in one process, a seeded scheduler
 * that plays the hosts and the network as an adversary would (loss, duplication, reordering, replay
 * and forgery of peer messages, partitions, crashes and restarts, clock jumps, old copies of host
 * storage), clients running the vault protocol against it, invariants checked after every step, and
 * at the end the history checked for per-record linearizability and for the guess limit.
 *
 * A run is a function of its seed: a failing seed replays exactly and prints its trace.
 */

import { sealRequest } from "@bkv/client";
import { nodeHpkeSealer } from "@bkv/client/node";
import { FinishAction, fromBase64Url, toBase64Url, toHex, type VaultOp, type VaultResult } from "@bkv/wire";
import * as opaque from "@serenity-kit/opaque";
import {
  checkGuessLimit,
  checkLinearizable,
  type Operation,
  type VaultInput,
  type VaultOutput,
  vaultModel,
} from "./check/index.js";
import { type ReplyFrame, SimFleet, type Stored } from "./fleet.js";
import { Prng } from "./prng.js";

export interface SimOptions {
  seed: number;
  nodes: number;
  steps: number;
  clients: number;
  users: number;
  guessLimit: number;
  /** Snapshot every this many entries (small, so snapshots and their transfer are exercised). */
  snapshotEvery: number;
  /** For debugging: called with the fleet at the end. */
  onEnd?: (fleet: SimFleet) => void | Promise<void>;
}

export const DEFAULT_SIM: Omit<SimOptions, "seed"> = {
  nodes: 3,
  steps: 300,
  clients: 3,
  users: 2,
  guessLimit: 3,
  snapshotEvery: 25,
};

export interface SimResult {
  ok: boolean;
  seed: number;
  failure?: string;
  trace: string[];
  stats: Record<string, number>;
}

type Op = Operation<VaultInput, VaultOutput>;

class Violation extends Error {}

const LIGHT = { "argon2id-custom": { iterations: 1, memory: 8, parallelism: 1 } } as const;
const PIN = "2468";

export async function simulate(o: SimOptions): Promise<SimResult> {
  await opaque.ready;
  const rng = new Prng(o.seed);
  const trace: string[] = [];
  const stats: Record<string, number> = {};
  const count = (k: string) => {
    stats[k] = (stats[k] ?? 0) + 1;
  };
  const log = (s: string) => {
    trace.push(`${step} ${s}`);
  };
  let step = 0;
  const fleet = await SimFleet.create({
    nodes: o.nodes,
    guessLimit: o.guessLimit,
    seed: rng.u32(),
    startTime: 1_800_000_000_000,
    core: { snapshotEvery: o.snapshotEvery, electionTicks: 10, heartbeatTicks: 2, forwardTicks: 100 },
  });
  fleet.autoDeliver = false;
  const vaultKey = fleet.vaultPublicKey();
  const history: Op[] = [];
  const backups = new Map<number, Stored[]>();
  let partition: Set<number> | null = null;
  fleet.blocked = (from, to) => partition !== null && partition.has(from) !== partition.has(to);

  // ---------------------------------------------------------------------------------------------
  // Clients: each runs one vault operation at a time, recording request-level operations.

  const waits: { until: number; resolve: () => void }[] = [];
  const waitSteps = (n: number) => new Promise<void>((resolve) => waits.push({ until: step + n, resolve }));
  const busy = new Set<number>();
  const clientRng = rng.fork();

  /**
   * History times come from one counter bumped at every send and every receipt, so the order of
   * calls and returns in the history is exactly the order in which they happened.
   */
  let clock = 0;

  async function call(
    client: number,
    user: string,
    body: VaultOp,
  ): Promise<{ result: VaultResult | null; callAt: number; retAt: number }> {
    // The liveness probe asks the leader; other clients ask any node (followers forward).
    const node = client === 99 && fleet.leader() !== 0 ? fleet.leader() : 1 + clientRng.int(o.nodes);
    const sealed = await sealRequest(vaultKey, user, body, fleet.time, nodeHpkeSealer);
    const callAt = ++clock;
    const reply = fleet.request(node, sealed.envelope);
    let got: ReplyFrame | null | undefined;
    let retAt = Number.POSITIVE_INFINITY;
    void reply.then((r) => {
      got = r;
      retAt = ++clock;
    });
    await Promise.race([reply, waitSteps(120)]);
    // Lost, unavailable or timed out: the outcome is unknown.
    if (got === undefined || got === null || !got.ok)
      return { result: null, callAt, retAt: Number.POSITIVE_INFINITY };
    return { result: await sealed.open(got.envelope), callAt, retAt };
  }

  function record(
    client: number,
    user: string,
    input: VaultInput,
    c: { result: VaultResult | null; callAt: number; retAt: number },
  ): VaultOutput | undefined {
    const r = c.result;
    let output: VaultOutput | undefined;
    if (r !== null) {
      if ("ok" in r) {
        output =
          r.ok === "recover-start"
            ? { ok: true, session: toHex(r.sessionId), remaining: r.guessesRemaining }
            : { ok: true };
      } else if (r.error === "NO_RECORD") output = { error: "NO_RECORD" };
      else if (r.error === "WRONG_PIN" || r.error === "NO_SESSION")
        output = { error: r.error, remaining: r.guessesRemaining };
      else {
        count(`client-error-${r.error}`);
        output = undefined;
      }
    }
    history.push({
      client,
      key: user,
      call: c.callAt,
      ret: output === undefined ? Number.POSITIVE_INFINITY : c.retAt,
      input,
      output,
    });
    return output;
  }

  async function runClient(client: number, force?: "put"): Promise<void> {
    const user = `user${1 + clientRng.int(o.users)}`;
    const kind = clientRng.next();
    if (force === "put" || kind < 0.3) {
      // Register (or re-register) with the PIN.
      const start = opaque.client.startRegistration({ password: PIN });
      const { result: r1 } = await call(client, user, {
        op: "register-start",
        registrationRequest: fromBase64Url(start.registrationRequest),
      });
      if (r1 === null || !("ok" in r1) || r1.ok !== "register-start") return;
      const fin = opaque.client.finishRegistration({
        clientRegistrationState: start.clientRegistrationState,
        registrationResponse: toBase64Url(r1.registrationResponse),
        password: PIN,
        keyStretching: LIGHT,
      });
      log(`client ${client} put ${user}`);
      const c2 = await call(client, user, {
        op: "register-finish",
        registrationRecord: fromBase64Url(fin.registrationRecord),
        wrappedKey: new Uint8Array(61).fill(1),
      });
      record(client, user, { op: "put" }, c2);
      return;
    }
    // A login: right or wrong PIN, to recover or to delete.
    const correct = clientRng.chance(0.4);
    const action = clientRng.chance(0.15) ? "delete" : "recover";
    const start = opaque.client.startLogin({ password: correct ? PIN : "0000" });
    log(`client ${client} start ${user} (${correct ? "right" : "wrong"} PIN)`);
    const c1 = await call(client, user, { op: "recover-start", ke1: fromBase64Url(start.startLoginRequest) });
    const r1 = c1.result;
    const out1 = record(client, user, { op: "start" }, c1);
    if (
      out1 === undefined ||
      !("session" in out1) ||
      r1 === null ||
      !("ok" in r1) ||
      r1.ok !== "recover-start"
    )
      return;
    const fin = opaque.client.finishLogin({
      clientLoginState: start.clientLoginState,
      loginResponse: toBase64Url(r1.ke2),
      password: correct ? PIN : "0000",
      keyStretching: LIGHT,
    });
    if ((fin !== undefined) !== correct)
      throw new Violation(`OPAQUE answered a ${correct ? "right" : "wrong"} PIN wrongly`);
    const c2 = await call(client, user, {
      op: "recover-finish",
      sessionId: r1.sessionId,
      ke3: fin === undefined ? new Uint8Array(0) : fromBase64Url(fin.finishLoginRequest),
      action: action === "delete" ? FinishAction.Delete : FinishAction.Recover,
    });
    record(client, user, { op: "finish", session: out1.session, correct, action }, c2);
  }

  // ---------------------------------------------------------------------------------------------
  // Invariants, after every step.

  const leaders = new Map<number, number>();
  const committedAt = new Map<number, string>();
  const lastCommitted = new Map<number, number>();

  function checkInvariants(): void {
    for (const n of fleet.nodes) {
      if (n.core === null) continue;
      const v = n.core.inspect();
      if (v.role === "leader") {
        const l = leaders.get(v.term);
        if (l !== undefined && l !== n.id)
          throw new Violation(`two leaders in term ${v.term}: ${l} and ${n.id}`);
        leaders.set(v.term, n.id);
      }
      const s = v.state;
      const h = toHex(s.chainHash);
      const seen = committedAt.get(s.index);
      if (seen !== undefined && seen !== h)
        throw new Violation(`node ${n.id} committed a different entry ${s.index}`);
      committedAt.set(s.index, h);
      const prev = lastCommitted.get(n.id) ?? 0;
      if (s.index < prev)
        throw new Violation(`node ${n.id}'s committed state went back from ${prev} to ${s.index}`);
      lastCommitted.set(n.id, s.index);
      for (const [user, rec] of s.records) {
        if (rec.guessesUsed > o.guessLimit)
          throw new Violation(`${user} has ${rec.guessesUsed} guesses used on node ${n.id}`);
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // The scheduler.

  const upNodes = () => fleet.nodes.filter((n) => n.core !== null).map((n) => n.id);
  const crashed = () => fleet.nodes.filter((n) => n.core === null).map((n) => n.id);

  // Seeds differ in how stormy they are, so that some histories have many answered operations.
  const storminess = [0.15, 0.5, 1][o.seed % 3]!;

  async function event(): Promise<void> {
    let r = rng.next();
    // A disruptive event (replay, forgery, crash, restart, partition, clock) may become a tick.
    if (r >= 0.72 && r < 0.95 && !rng.chance(storminess)) r = 0.5;
    if (r < 0.45 && fleet.inflight.length > 0) {
      const i = rng.int(fleet.inflight.length);
      const p = fleet.inflight[i]!;
      const roll = rng.next();
      if (roll < 0.05) {
        fleet.inflight.splice(i, 1);
        log(`drop ${p.from}->${p.to}`);
        count("drop");
        return;
      }
      if (roll < 0.1) {
        log(`duplicate ${p.from}->${p.to}`);
        count("duplicate");
        await fleet.deliver(p);
        return;
      }
      fleet.inflight.splice(i, 1);
      count("deliver");
      await fleet.deliver(p);
      // Usually the network is not that slow: deliver a few of the oldest messages too (in order).
      for (let k = rng.int(4); k > 0 && fleet.inflight.length > 0; k--) {
        count("deliver");
        await fleet.deliver(fleet.inflight.shift()!);
      }
      return;
    }
    if (r < 0.62) {
      count("tick");
      await fleet.tick();
      return;
    }
    if (r < 0.72) {
      const idle = Array.from({ length: o.clients }, (_, k) => k + 1).filter((c) => !busy.has(c));
      if (idle.length === 0) return;
      const c = rng.pick(idle);
      busy.add(c);
      count("client-op");
      void runClient(c)
        .catch((e: unknown) => {
          if (e instanceof Violation) failure ??= e.message;
          else failure ??= `client ${c} crashed: ${(e as Error).stack}`;
        })
        .finally(() => busy.delete(c));
      return;
    }
    if (r < 0.75 && fleet.sent.length > 0) {
      const p = rng.pick(fleet.sent);
      log(`replay old ${p.from}->${p.to}`);
      count("replay");
      await fleet.deliver(p);
      return;
    }
    if (r < 0.77 && fleet.sent.length > 0) {
      const p = rng.pick(fleet.sent);
      const bytes = p.bytes.slice();
      bytes[rng.int(bytes.length)]! ^= 1 << rng.int(8);
      log(`forge ${p.from}->${p.to}`);
      count("forge");
      await fleet.deliver({ ...p, bytes });
      return;
    }
    if (r < 0.8) {
      const up = upNodes();
      if (up.length === 0) return;
      const i = rng.pick(up);
      backups.set(i, [...(backups.get(i) ?? []).slice(-3), fleet.node(i).copyStorage()]);
      count("backup");
      return;
    }
    if (r < 0.825) {
      const up = upNodes();
      if (up.length <= 1) return;
      const i = rng.pick(up);
      log(`crash ${i}`);
      count("crash");
      fleet.crash(i);
      return;
    }
    if (r < 0.89) {
      const down = crashed();
      if (down.length === 0) return;
      const i = rng.pick(down);
      const old = backups.get(i);
      if (old !== undefined && old.length > 0 && rng.chance(0.2)) {
        fleet.node(i).stored = rng.pick(old);
        log(`restore old storage of ${i}`);
        count("rollback");
      }
      log(`restart ${i}`);
      count("restart");
      lastCommitted.delete(i); // a restarted HSM rebuilds its state from storage as the fleet commits
      const b = await fleet.start(i);
      if (b.type !== "booted") throw new Violation(`node ${i} failed to boot: ${JSON.stringify(b)}`);
      return;
    }
    if (r < 0.93) {
      if (partition === null) {
        const side = new Set(fleet.nodes.filter(() => rng.chance(0.5)).map((n) => n.id));
        partition = side;
        log(`partition {${[...side].join(",")}} from the rest`);
        count("partition");
      } else {
        partition = null;
        log("heal");
        count("heal");
      }
      return;
    }
    if (r < 0.95) {
      const up = upNodes();
      if (up.length === 0) return;
      const i = rng.pick(up);
      // The host sets its HSM's clock anywhere within 5 minutes of true time, forward or back.
      const skew = Math.round((rng.next() * 2 - 1) * 5 * 60_000);
      fleet.node(i).clockSkew = skew;
      log(`clock of ${i} set ${skew >= 0 ? "+" : ""}${(skew / 60_000).toFixed(1)} min`);
      count("clock-jump");
      return;
    }
    count("idle");
  }

  let failure: string | undefined;
  try {
    for (step = 1; step <= o.steps && failure === undefined; step++) {
      await event();
      await fleet.settle(2);
      for (const w of waits.filter((w) => w.until <= step)) w.resolve();
      checkInvariants();
    }
    // Heal: everything back up and connected, then let the fleet settle and the clients finish.
    partition = null;
    for (const n of fleet.nodes) n.clockSkew = 0;
    for (const i of crashed()) {
      lastCommitted.delete(i);
      await fleet.start(i);
    }
    log("heal all, restart all");
    // A healthy fleet: every message is delivered, time passes. A message storm is a failure.
    const calm = async () => {
      let delivered = 0;
      while (fleet.inflight.length > 0) {
        if (++delivered > 5000) throw new Violation("livelock: more than 5000 peer messages within one tick");
        await fleet.deliver(fleet.inflight.shift()!);
        if (delivered % 50 === 0) await fleet.settle(1);
      }
      await fleet.tick();
      await fleet.settle(2);
      for (const w of waits.filter((w) => w.until <= step)) w.resolve();
      checkInvariants();
    };
    for (
      let t = 0;
      t < 600 && (busy.size > 0 || fleet.inflight.length > 0 || fleet.leader() === 0);
      t++, step++
    ) {
      await calm();
    }
    const quorum = Math.floor(o.nodes / 2) + 1;
    const voters = fleet.nodes.filter((n) => n.core !== null && !n.core.inspect().recovering).length;
    const describe = () =>
      fleet.nodes
        .map((n) => {
          const v = n.core!.inspect();
          return `node ${n.id}: ${v.role}${v.recovering ? " (recovering)" : ""} term ${v.term} last ${v.lastIndex} commit ${v.commitIndex}`;
        })
        .join("; ");
    if (voters < quorum) {
      // A majority's storage was rolled back: the fleet must stay unavailable, not serve stale counts.
      count("stuck-by-rollback");
      if (fleet.leader() !== 0) failure = `a leader emerged with a majority rolled back: ${describe()}`;
    } else {
      if (failure === undefined && fleet.leader() === 0)
        failure = `liveness: no leader after healing: ${describe()}`;
      if (failure === undefined && busy.size > 0) failure = "liveness: clients still waiting after healing";
    }
    // Liveness: a fresh registration goes through.
    if (failure === undefined && voters >= quorum) {
      busy.add(99);
      const before = history.length;
      const probe = runClient(99, "put").finally(() => busy.delete(99));
      for (let t = 0; t < 300 && busy.has(99); t++, step++) await calm();
      await probe;
      const answered = history.slice(before).some((h) => h.input.op === "put" && h.output !== undefined);
      if (!answered) failure = "liveness: a registration after healing was not answered";
    }
  } catch (e) {
    failure ??= e instanceof Violation ? e.message : `simulator error: ${(e as Error).stack}`;
  }

  await o.onEnd?.(fleet);
  if (failure === undefined) {
    const lin = checkLinearizable(history, vaultModel(o.guessLimit), { timeoutMs: 20_000 });
    if (lin.result === "illegal") failure = `not linearizable: ${lin.info}`;
    else if (lin.result === "unknown") count("linearizability-unknown");
    const gl = checkGuessLimit(history, o.guessLimit);
    if (!gl.ok) failure ??= `guess limit: ${gl.violations.join("; ")}`;
  }
  for (const n of fleet.nodes) {
    const v = n.core?.inspect();
    if (v !== undefined) {
      stats.forgedRefused = (stats.forgedRefused ?? 0) + v.peerForged;
      stats.replaysRefused = (stats.replaysRefused ?? 0) + v.peerReplayed;
    }
  }
  stats.operations = history.length;
  stats.opsAnswered = history.filter((h) => h.output !== undefined).length;
  stats.maxCommitted = Math.max(0, ...lastCommitted.values());
  return { ok: failure === undefined, seed: o.seed, failure, trace, stats };
}
