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
import {
  FinishAction,
  fromBase64Url,
  MAX_TICKS_PER_FRAME,
  toBase64Url,
  toHex,
  type VaultOp,
  type VaultResult,
} from "@bkv/wire";
import * as opaque from "@serenity-kit/opaque";
import {
  checkGuessLimitHistory,
  checkLinearizable,
  type Operation,
  type VaultInput,
  type VaultOutput,
  vaultModel,
} from "./check/index.js";
import { type ReplyFrame, SimFleet, type Stored } from "./fleet.js";
import { Prng } from "./prng.js";
import { Safety } from "./safety.js";

export interface SimOptions {
  seed: number;
  nodes: number;
  steps: number;
  clients: number;
  users: number;
  guessLimit: number;
  /** Snapshot every this many entries (small, so snapshots and their transfer are exercised). */
  snapshotEvery: number;
  /**
   * Adversary powers to leave out (by their counter names: replay, forge, rollback, one-way-cut,
   * withhold-confirm, delay-write, crash-mid-write, nvram-fail, restart-hsm, tick-withhold, tick-hold),
   * e.g. to
   * look for other bugs while a known one is still open.
   */
  without?: string[];
  /**
   * How often a tick event also lets one host start or stop holding its HSM's ticks (default 0.1;
   * stopping sends the held ticks bunched in one Tick frame).
   */
  tickHoldRate?: number;
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
      else if (r.error === "RECORD_EXISTS") {
        count("record-exists");
        output = { error: "RECORD_EXISTS" };
      } else if (r.error === "WRONG_PIN" || r.error === "NO_SESSION")
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
      // Register (or re-register) with the PIN; a third of the puts without replace.
      const replace = force === "put" || !clientRng.chance(1 / 3);
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
        ticket: r1.ticket,
        registrationRecord: fromBase64Url(fin.registrationRecord),
        wrappedKey: new Uint8Array(61).fill(1),
        // The model: a put creates or replaces the record; a put-new creates it or is refused with
        // RECORD_EXISTS, changing nothing (a refused put-new must not reset the guesses used).
        replace,
      });
      record(client, user, { op: replace ? "put" : "put-new" }, c2);
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
  // Invariants, after every step: src/safety.ts (NVRAM tips, acknowledgements, committed entries,
  // leaders, guesses), fed by every NVRAM write and peer message as they happen.

  const safety = new Safety(fleet, { guessLimit: o.guessLimit, everyAction: false });
  function checkInvariants(): void {
    safety.check();
    if (!safety.ok) throw new Violation(safety.violations.join("; "));
  }

  // ---------------------------------------------------------------------------------------------
  // The scheduler: the operator's powers over hosts, network, storage and clocks.

  const upNodes = () => fleet.nodes.filter((n) => n.core !== null).map((n) => n.id);
  const crashed = () => fleet.nodes.filter((n) => n.core === null).map((n) => n.id);
  /** Nodes whose host storage the operator changed behind the HSM's back: their boots may be refused. */
  const tampered = new Set<number>();
  const cuts = new Set<string>();
  fleet.blocked = (from, to) =>
    (partition !== null && partition.has(from) !== partition.has(to)) || cuts.has(`${from}>${to}`);

  // Seeds differ in how stormy they are, so that some histories have many answered operations.
  const storminess = [0.15, 0.5, 1][o.seed % 3]!;

  async function boot(i: number, why: string): Promise<void> {
    log(`${why} ${i}`);
    const b = await fleet.start(i);
    if (b.type === "booted") {
      if (b.recovering) count("booted-recovering");
      return;
    }
    // A host that wrote only part of a batch or restored a copy may hand over storage the HSM
    // refuses; any other refusal is a bug.
    const msg = b.type === "failed" ? `${b.code}: ${b.message}` : b.type;
    if (!tampered.has(i) && fleet.node(i).died === null)
      throw new Violation(`node ${i} failed to boot: ${msg}`);
    log(`node ${i} refused its storage: ${msg}`);
    count("boot-refused");
  }

  function takeBackup(i: number): void {
    backups.set(i, [...(backups.get(i) ?? []).slice(-5), fleet.node(i).copyStorage()]);
  }

  const can = (power: string) => !(o.without ?? []).includes(power);
  const tickRng = new Prng((o.seed ^ 0x71c4b0b) >>> 0);

  async function replay(): Promise<void> {
    const all = fleet.sent;
    if (all.length === 0) return;
    // Prefer what a restarted receiver has not seen in its new boot, from a sender still in the
    // boot that sent it; a burst replays a run of one link's messages in their order.
    const fresh = all.filter(
      (p) => p.toBoot < fleet.node(p.to).boots && p.fromBoot === fleet.node(p.from).boots,
    );
    const pool = fresh.length > 0 && rng.chance(0.7) ? fresh : all;
    const first = rng.pick(pool);
    const burst = rng.chance(0.5) ? 1 + rng.int(8) : 1;
    const run = fleet
      .sentOn(first.from, first.to)
      .filter((p) => p.id >= first.id)
      .slice(0, burst);
    log(`replay ${run.length} old ${first.from}->${first.to} (sent in boot ${first.toBoot} of ${first.to})`);
    count("replay");
    for (const p of run) await fleet.deliver(p, rng.chance(0.5));
  }

  /**
   * A host holds its HSM's ticks back for a while, then sends them all in one Tick frame, sometimes
   * with many more it invents (a day, up to the most a frame may carry): one host starts holding,
   * or one holding host lets go. Its own draws (tickRng), so the other events of a seed stay as
   * they were before hosts could hold ticks.
   */
  async function holdOrBunch(): Promise<void> {
    const n = tickRng.pick(fleet.nodes);
    if (n.core === null) return;
    if (!n.holdTicks) {
      n.holdTicks = true;
      log(`host ${n.id} holds its HSM's ticks`);
      count("tick-hold");
      return;
    }
    const roll = tickRng.next();
    const extra =
      roll < 0.15
        ? Math.max(0, MAX_TICKS_PER_FRAME - n.heldTicks)
        : roll < 0.4
          ? 1 + tickRng.int(24 * 3600 * 20)
          : 0;
    const sent = await fleet.releaseTicks(n.id, extra);
    log(`host ${n.id} sends ${sent} ticks in one frame (${extra} invented)`);
    count("tick-bunch");
    if (sent === MAX_TICKS_PER_FRAME) count("tick-frame-full");
  }

  async function storageFault(): Promise<void> {
    const up = upNodes();
    if (up.length === 0) return;
    const i = rng.pick(up);
    const n = fleet.node(i);
    const roll = rng.next();
    const power =
      roll < 0.3
        ? "withhold-confirm"
        : roll < 0.5
          ? "delay-write"
          : roll < 0.7
            ? "crash-mid-write"
            : roll < 0.8
              ? "nvram-fail"
              : "restart-hsm";
    if (!can(power)) return;
    if (roll < 0.3) {
      // The host stores writes but confirms them late, or never (until it restarts the HSM).
      n.ackPersist = !n.ackPersist;
      if (n.ackPersist) {
        const k = await fleet.confirm(i, rng.chance(0.5) ? 1 : Number.POSITIVE_INFINITY);
        log(`host ${i} confirms writes again (${k} late)`);
      } else {
        takeBackup(i);
        log(`host ${i} stores writes without confirming them`);
      }
      count("withhold-confirm");
    } else if (roll < 0.5) {
      // The host delays its writes, then makes them, all or a part (entries without their
      // truncation, a prefix of the entries, no snapshot).
      if (!n.holdWrites || n.pendingWrites.length === 0) {
        n.holdWrites = !n.holdWrites;
        log(`host ${i} ${n.holdWrites ? "delays" : "resumes"} its writes`);
      } else {
        const m = n.pendingWrites[0]!;
        const part = rng.chance(0.5)
          ? undefined
          : {
              entries: rng.int(m.entries.length + 1),
              skipTruncate: rng.chance(0.3),
              skipSnapshot: rng.chance(0.3),
            };
        if (part !== undefined) {
          tampered.add(i);
          log(`host ${i} writes part of a batch (${part.entries}/${m.entries.length} entries) and crashes`);
          fleet.store(n, m, part);
          fleet.crash(i);
          count("partial-write");
          return;
        }
        await fleet.write(i);
        log(`host ${i} writes a delayed batch`);
      }
      count("delay-write");
    } else if (roll < 0.7) {
      // A crash between two writes: the next batch is stored in part, then the host goes down.
      n.crashOnPersist = {
        entries: rng.int(3),
        skipTruncate: rng.chance(0.5),
        skipSnapshot: rng.chance(0.5),
      };
      tampered.add(i);
      log(`host ${i} will crash in the middle of its next write`);
      count("crash-mid-write");
    } else if (roll < 0.8) {
      n.failNvramWrite = true;
      log(`the next NVRAM write of ${i} fails`);
      count("nvram-fail");
    } else {
      // The host restarts its HSM with whatever it stored, confirmed or not.
      fleet.crash(i);
      count("restart-hsm");
      await boot(i, "host restarts HSM");
    }
  }

  async function event(): Promise<void> {
    let r = rng.next();
    // A disruptive event (replay, forgery, crash, restart, partition, clock, storage) may become a tick.
    if (r >= 0.65 && r < 0.93 && !rng.chance(storminess)) r = 0.5;
    if (r < 0.4 && fleet.inflight.length > 0) {
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
    if (r < 0.55) {
      count("tick");
      if (tickRng.chance(o.tickHoldRate ?? 0.1) && can("tick-hold")) await holdOrBunch();
      // Sometimes a host withholds its HSM's ticks.
      if (rng.chance(0.1) && can("tick-withhold")) {
        const only = fleet.nodes.filter(() => rng.chance(0.6)).map((n) => n.id);
        log(`tick only {${only.join(",")}}`);
        await fleet.tick(only);
      } else await fleet.tick();
      return;
    }
    if (r < 0.65) {
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
    if (r < 0.68) return can("replay") ? replay() : undefined;
    if (r < 0.695 && fleet.sent.length > 0 && can("forge")) {
      const p = rng.pick(fleet.sent);
      const bytes = p.bytes.slice();
      bytes[rng.int(bytes.length)]! ^= 1 << rng.int(8);
      log(`forge ${p.from}->${p.to}`);
      count("forge");
      await fleet.deliver({ ...p, bytes });
      return;
    }
    if (r < 0.72) {
      const up = upNodes();
      if (up.length === 0) return;
      takeBackup(rng.pick(up));
      count("backup");
      return;
    }
    if (r < 0.74) {
      const up = upNodes();
      if (up.length <= 1) return;
      const i = rng.pick(up);
      log(`crash ${i}`);
      count("crash");
      fleet.crash(i);
      return;
    }
    if (r < 0.8) {
      // Restart a node that is down; or crash a running one, restore an old copy of its storage
      // and restart it, as one event.
      const down = crashed();
      const i = down.length > 0 && rng.chance(0.85) ? rng.pick(down) : rng.pick(fleet.nodes).id;
      const old = backups.get(i);
      if (fleet.node(i).core !== null) {
        if (old === undefined || old.length === 0) return;
        fleet.crash(i);
      }
      if (fleet.node(i).core !== null && !can("rollback")) return;
      if (
        old !== undefined &&
        old.length > 0 &&
        (rng.chance(0.25) || fleet.node(i).died !== null) &&
        can("rollback")
      ) {
        fleet.node(i).stored = rng.pick(old);
        tampered.add(i);
        log(`restore old storage of ${i}`);
        count("rollback");
      }
      count("restart");
      await boot(i, "restart");
      return;
    }
    if (r < 0.83) {
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
    if (r < 0.845 && can("one-way-cut")) {
      // A link cut one way only.
      const a = rng.pick(fleet.nodes).id;
      const b = rng.pick(fleet.nodes).id;
      if (a === b) return;
      const k = `${a}>${b}`;
      if (cuts.has(k)) cuts.delete(k);
      else cuts.add(k);
      log(`${cuts.has(k) ? "cut" : "restore"} link ${k}`);
      count("one-way-cut");
      return;
    }
    if (r < 0.86) {
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
    if (r < 0.93) return storageFault();
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
    // Heal: hosts write and confirm everything, the network is whole, every node runs again.
    partition = null;
    cuts.clear();
    for (const n of fleet.nodes) {
      n.clockSkew = 0;
      if (n.holdTicks) await fleet.releaseTicks(n.id);
      n.ackPersist = true;
      n.holdWrites = false;
      n.crashOnPersist = null;
      n.failNvramWrite = false;
      while (n.core !== null && (await fleet.write(n.id))) {}
      if (n.core !== null) await fleet.confirm(n.id);
    }
    for (const i of crashed()) await boot(i, "heal: restart");
    // A node that refused its storage gets the host's newest copy it accepts, if any.
    for (const n of fleet.nodes) {
      const copies = [...(backups.get(n.id) ?? [])].reverse();
      for (const copy of copies) {
        if (n.booted?.type === "booted") break;
        fleet.crash(n.id);
        n.stored = copy;
        await boot(n.id, "heal: restore a copy and restart");
      }
    }
    log("heal all, restart all");
    checkInvariants();
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
    const serving = (n: (typeof fleet.nodes)[number]) =>
      n.core !== null && n.booted?.type === "booted" && !n.core.inspect().recovering;
    const voters = fleet.nodes.filter(serving).length;
    const describe = () =>
      fleet.nodes
        .map((n) => {
          if (n.core === null || n.booted?.type !== "booted")
            return `node ${n.id}: down or refused its storage`;
          const v = n.core.inspect();
          return `node ${n.id}: ${v.role}${v.recovering ? " (recovering)" : ""} term ${v.term} last ${v.lastIndex} commit ${v.commitIndex}`;
        })
        .join("; ");
    const leaderNow = fleet.leader();
    if (voters < quorum && leaderNow === 0) {
      // A majority is down or recovering from rolled-back storage, and no member's log reaches what
      // they acknowledged: the fleet stays unavailable rather than serve stale counts. (Safety is
      // what the invariants, linearizability and the guess limit check below.)
      count("stuck-by-rollback");
    } else if (voters < quorum) {
      // Recovering members voted for one whose log reaches what they acknowledged: it leads.
      count("healed-by-full-log");
    } else {
      if (failure === undefined && fleet.leader() === 0)
        failure = `liveness: no leader after healing: ${describe()}`;
      if (failure === undefined && busy.size > 0) failure = "liveness: clients still waiting after healing";
    }
    // Liveness: a fresh registration goes through (a few tries: one may meet a leader change).
    if (failure === undefined && (voters >= quorum || leaderNow !== 0)) {
      let answered = false;
      for (let attempt = 0; attempt < 3 && !answered; attempt++) {
        busy.add(99);
        const before = history.length;
        const probe = runClient(99, "put").finally(() => busy.delete(99));
        for (let t = 0; t < 300 && busy.has(99); t++, step++) await calm();
        await probe;
        answered = history.slice(before).some((h) => h.input.op === "put" && h.output !== undefined);
        if (!answered) log(`liveness probe ${attempt + 1} not answered`);
      }
      if (!answered)
        failure = `liveness: a registration after healing was not answered (3 tries): ${describe()}`;
    }
  } catch (e) {
    failure ??= e instanceof Violation ? e.message : `simulator error: ${(e as Error).stack}`;
  }

  await o.onEnd?.(fleet);
  if (failure === undefined) {
    const lin = checkLinearizable(history, vaultModel(o.guessLimit), { timeoutMs: 20_000 });
    if (lin.result === "illegal") failure = `not linearizable: ${lin.info}`;
    else if (lin.result === "unknown") count("linearizability-unknown");
    const gl = checkGuessLimitHistory(history, o.guessLimit);
    if (!gl.ok) failure ??= `guess limit: ${gl.violations.join("; ")}`;
  }
  for (const n of fleet.nodes) {
    const r = fleet.refused(n.id);
    stats.forgedRefused = (stats.forgedRefused ?? 0) + r.forged;
    stats.replaysRefused = (stats.replaysRefused ?? 0) + r.replayed;
  }

  stats.operations = history.length;
  stats.opsAnswered = history.filter((h) => h.output !== undefined).length;
  stats.maxCommitted = safety.maxCommitted;
  return { ok: failure === undefined, seed: o.seed, failure, trace, stats };
}
