/**
 * The host's metrics (Prometheus text format, prom-client) and its probes. `registerMetrics` serves
 * GET /metrics on the app it is given (today the metrics listener, `metricsListen`: the operator's
 * own network, never the client API); `instrumentRequests` counts and times the client API's
 * requests; `registerProbes` adds GET /livez and GET /readyz to the client API.
 *
 * Counts only: no label carries a user, a token, an address or a request. What only the HSM knows
 * (its decisions, NVRAM latency, forged and replayed peer messages, Raft state) comes through the HSM
 * API (Status and Stats frames) when /metrics is scraped. Every member applies every committed
 * entry, so each host reports the fleet's decisions: read them from one host (or take the max), do
 * not add them up across hosts.
 */
import { type HsmStats, type HsmStatus, NVRAM_WRITE_BUCKETS_MS } from "@bkv/wire";
import type { FastifyInstance } from "fastify";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { BundleKeeper } from "./bundle-keeper.js";
import type { HsmLink } from "./hsm-link.js";
import type { PeerListener } from "./peers.js";
import type { RateLimiter } from "./rate-limit.js";

export interface MetricsSources {
  hsm: () => HsmLink;
  /** The peer port's counters (null without peers). */
  peerCounters: () => PeerListener["counters"] | null;
  bundles: () => BundleKeeper | undefined;
  limiters: () => { perUser: RateLimiter; perAddress: RateLimiter } | null;
}

const ROLES = ["leader", "follower", "candidate", "pre-candidate", "recovering"] as const;
const STATES = ["starting", "uninitialized", "serving", "failed"] as const;

/**
 * A counter fed from a count that starts again at 0 when the process keeping it restarts (the
 * HSM's): it adds what the count grew by, or the whole count after a restart.
 */
class FollowedCount {
  private last = new Map<string, number>();
  constructor(private readonly counter: Counter<string>) {}
  follow(value: number, labels: Record<string, string> = {}): void {
    const key = JSON.stringify(labels);
    const prev = this.last.get(key) ?? 0;
    const add = value >= prev ? value - prev : value;
    this.last.set(key, value);
    if (add > 0) this.counter.inc(labels, add);
  }
}

/** How often the event-loop delay metrics (bkv_host_nodejs_eventloop_lag_*) take a sample. */
export const EVENT_LOOP_SAMPLE_MS = 500;

export class HostMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<string>;
  private readonly latency: Histogram<string>;
  private readonly persist: Histogram<string>;
  private readonly refresh: () => Promise<void>;

  constructor(src: MetricsSources) {
    const r = this.registry;
    // The event-loop delay is sampled every EVENT_LOOP_SAMPLE_MS, not prom-client's default 10 ms,
    // whose timer woke an idle host 100 times a second (issue 13 item 5).
    collectDefaultMetrics({
      register: r,
      prefix: "bkv_host_",
      eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS,
    });
    this.requests = new Counter({
      name: "bkv_http_requests_total",
      help: "Client API requests by route and status code",
      labelNames: ["route", "status"],
      registers: [r],
    });
    this.latency = new Histogram({
      name: "bkv_http_request_duration_seconds",
      help: "Client API request latency by route (POST /v1/vault includes the fleet's commit)",
      labelNames: ["route"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15],
      registers: [r],
    });
    this.persist = new Histogram({
      name: "bkv_host_persist_duration_seconds",
      help: "Time to store one Persist frame of the HSM durably in SQLite",
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [r],
    });

    const counter = (name: string, help: string, labelNames: string[] = []) =>
      new FollowedCount(new Counter({ name, help, labelNames, registers: [r] }));
    const gauge = (name: string, help: string, labelNames: string[] = []) =>
      new Gauge({ name, help, labelNames, registers: [r] });

    const guesses = counter(
      "bkv_guesses_total",
      "Recover-finishes answered, by result (wrong, right), as this host's HSM applied them",
      ["result"],
    );
    const started = counter("bkv_guesses_started_total", "Recover-starts that spent a guess");
    const destroyed = counter(
      "bkv_records_destroyed_total",
      "Records destroyed: every guess used, or deleted by their user",
    );
    const nvramWrites = new Histogram({
      name: "bkv_hsm_nvram_write_seconds",
      help: "HSM NVRAM write latency on the HSM's clock (each write counted at its bucket's upper bound)",
      buckets: NVRAM_WRITE_BUCKETS_MS.map((ms) => ms / 1000),
      registers: [r],
    });
    let lastBuckets: number[] | null = null;
    const peerRefused = counter(
      "bkv_peer_messages_refused_total",
      "Peer messages refused: forged or replayed (by the HSM), oversized or unauthenticated frames (by the host's peer port)",
      ["reason"],
    );
    const peerConnRefused = counter(
      "bkv_peer_connections_refused_total",
      "Connections to the peer port refused (no handshake as a fleet host)",
    );
    const peerRelayed = counter("bkv_peer_frames_relayed_total", "Frames from peer hosts relayed to the HSM");
    const peerDropped = counter(
      "bkv_peer_frames_dropped_total",
      "Frames from peer hosts dropped while the HSM's input was full",
    );
    const framesRejected = counter(
      "bkv_hsm_frames_rejected_total",
      "Frames the HSM refused from its host: over the size cap or undecodable",
    );
    const restarts = counter("bkv_hsm_restarts_total", "HSM processes that exited and were started again");
    const state = gauge("bkv_hsm_state", "1 for the HSM link's current state", ["state"]);
    const role = gauge("bkv_raft_role", "1 for this member's current Raft role", ["role"]);
    const term = gauge("bkv_raft_term", "Raft term");
    const leader = gauge("bkv_raft_leader", "The leader's member number (0: none known)");
    const commit = gauge("bkv_raft_commit_index", "Raft commit index");
    const durable = gauge("bkv_raft_durable_index", "Last log index this HSM knows durable (NVRAM tip)");
    const last = gauge("bkv_raft_last_index", "Last index of this HSM's log");
    const recovering = gauge("bkv_hsm_recovering", "1 while the HSM is recovering from rolled-back storage");
    const recoverUntil = gauge(
      "bkv_hsm_recover_until_index",
      "While recovering: the index it acknowledged before the rollback",
    );
    const match = gauge("bkv_raft_peer_match_index", "On the leader: each member's match index", ["peer"]);
    const lag = gauge(
      "bkv_raft_peer_lag_entries",
      "On the leader: entries each member is behind the leader's log",
      ["peer"],
    );
    const bundleAge = gauge(
      "bkv_bundle_age_seconds",
      "Seconds since the log last confirmed the validation bundle this host serves (absent: none yet)",
    );
    const bundleSize = gauge(
      "bkv_bundle_checkpoint_size",
      "Tree size of the checkpoint in the bundle served",
    );
    const bundleFailures = counter("bkv_bundle_refresh_failures_total", "Failed refreshes of the bundle");
    const proofFetches = counter(
      "bkv_bundle_proof_fetches_total",
      "Consistency proofs fetched from the log for clients",
    );
    const proofsRefused = counter(
      "bkv_bundle_proofs_refused_total",
      "Client checkpoint sizes served without a proof: past the per-checkpoint bound",
    );
    const limited = gauge("bkv_rate_limit_buckets", "Rate-limit buckets held", ["table"]);
    const evicted = counter(
      "bkv_rate_limit_evictions_total",
      "Rate-limit buckets evicted (least recently used) to make room",
      ["table"],
    );

    const applyStatus = (s: HsmStatus | null) => {
      role.reset();
      if (s === null) return;
      const rl = (ROLES as readonly string[]).includes(s.role) ? s.role : "other";
      role.set({ role: rl }, 1);
      term.set(s.term);
      leader.set(s.leader);
      commit.set(s.commitIndex);
      durable.set(s.durableIndex);
      recovering.set(s.recovering ? 1 : 0);
      recoverUntil.set(s.recoverUntil);
      peerRefused.follow(s.peerForged, { reason: "forged" });
      peerRefused.follow(s.peerReplayed, { reason: "replayed" });
      framesRejected.follow(s.framesRejected);
    };
    const applyStats = (s: HsmStats | null) => {
      match.reset();
      lag.reset();
      if (s === null) return;
      guesses.follow(s.guessesWrong, { result: "wrong" });
      guesses.follow(s.guessesRight, { result: "right" });
      started.follow(s.guessesStarted);
      destroyed.follow(s.recordsDestroyed);
      // The HSM's bucket counts only grow while its process lives; after a restart they start again.
      const grown = lastBuckets !== null && s.nvramWriteBuckets.every((n, i) => n >= (lastBuckets?.[i] ?? 0));
      s.nvramWriteBuckets.forEach((n, i) => {
        const add = grown ? n - (lastBuckets?.[i] ?? 0) : n;
        const at =
          NVRAM_WRITE_BUCKETS_MS[i] ?? 2 * NVRAM_WRITE_BUCKETS_MS[NVRAM_WRITE_BUCKETS_MS.length - 1]!;
        for (let k = 0; k < add; k++) nvramWrites.observe(at / 1000);
      });
      lastBuckets = s.nvramWriteBuckets;
      last.set(s.lastIndex);
      for (const p of s.peers) {
        match.set({ peer: String(p.node) }, p.match);
        lag.set({ peer: String(p.node) }, Math.max(0, s.lastIndex - p.match));
      }
    };

    this.refresh = async () => {
      const hsm = src.hsm();
      state.reset();
      state.set({ state: hsm.state.kind }, 1);
      for (const k of STATES) if (k !== hsm.state.kind) state.set({ state: k }, 0);
      restarts.follow(hsm.restarts);
      peerDropped.follow(hsm.peerDropped);
      const [status, stats] = await Promise.all([hsm.status(), hsm.stats()]);
      applyStatus(status);
      applyStats(stats);
      const pc = src.peerCounters();
      if (pc !== null) {
        peerRefused.follow(pc.framesOversized, { reason: "oversized" });
        peerRefused.follow(pc.framesRefused - pc.framesOversized, { reason: "unauthenticated" });
        peerConnRefused.follow(pc.refused);
        peerRelayed.follow(pc.relayed);
      }
      const b = src.bundles();
      bundleAge.reset();
      if (b !== undefined) {
        if (b.fetchedAt > 0) bundleAge.set((Date.now() - b.fetchedAt) / 1000);
        const size = b.servedSize();
        if (size !== null) bundleSize.set(size);
        bundleFailures.follow(b.counters.refreshFailures);
        proofFetches.follow(b.counters.proofFetches);
        proofsRefused.follow(b.counters.proofsRefused);
      }
      const l = src.limiters();
      if (l !== null) {
        for (const [table, rl] of [
          ["user", l.perUser],
          ["address", l.perAddress],
        ] as const) {
          limited.set({ table }, rl.size);
          evicted.follow(rl.evicted, { table });
        }
      }
    };
  }

  /** Count and time one client API request. */
  observeRequest(route: string, status: number, seconds: number): void {
    this.requests.inc({ route, status: String(status) });
    this.latency.observe({ route }, seconds);
  }

  /** Time one Persist frame took to store (HsmLink.onPersistTimed). */
  observePersist(seconds: number): void {
    this.persist.observe(seconds);
  }

  /** The metrics now, in Prometheus text format (asks the HSM first). */
  async scrape(): Promise<{ contentType: string; body: string }> {
    await this.refresh();
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

/** GET /metrics on `app` (an operator-only listener). */
export function registerMetrics(app: FastifyInstance, metrics: HostMetrics): void {
  app.get("/metrics", async (_req, reply) => {
    const { contentType, body } = await metrics.scrape();
    return reply.type(contentType).send(body);
  });
}

/** Count and time every request the client API answers, by route (its pattern) and status. */
export function instrumentRequests(app: FastifyInstance, metrics: HostMetrics): void {
  app.addHook("onResponse", async (req, reply) => {
    // The route's pattern, never the raw URL (no unbounded labels); unknown paths share one label.
    const route = req.routeOptions.url === undefined ? "unmatched" : `${req.method} ${req.routeOptions.url}`;
    metrics.observeRequest(route, reply.statusCode, reply.elapsedTime / 1000);
  });
}

/**
 * GET /livez: 200 while this host agent answers (restarting it would not mend an HSM that refuses
 * to serve). GET /readyz: 200 only when its HSM serves (a member, not recovering, a leader known);
 * 503 with the reason otherwise, so a load balancer sends clients elsewhere.
 */
export function registerProbes(app: FastifyInstance, link: () => HsmLink): void {
  const status = (description: string) => ({
    type: "object",
    required: ["status"],
    properties: { status: { type: "string" } },
    "x-response-description": description,
  });
  const livez = {
    summary: "Liveness: the host agent answers",
    tags: ["health"],
    response: { 200: status("Alive") },
  };
  app.get("/livez", { schema: livez }, async () => ({ status: "alive" }));
  const readyz = {
    summary: "Readiness: the HSM serves (a member, not recovering, a leader known)",
    tags: ["health"],
    response: { 200: status("Ready"), 503: status("Not ready, with why") },
  };
  app.get("/readyz", { schema: readyz }, async (_req, reply) => {
    const hsm = link();
    const s = hsm.state;
    if (s.kind !== "serving") return reply.code(503).send({ status: s.kind });
    const st = await hsm.status();
    if (st === null) return reply.code(503).send({ status: "no-answer" });
    if (st.recovering) return reply.code(503).send({ status: "recovering" });
    if (st.leader === 0) return reply.code(503).send({ status: "no-leader" });
    return { status: "ready" };
  });
}
