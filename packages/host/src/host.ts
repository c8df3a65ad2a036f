/** Start a host agent: storage, HSM process, HTTP API. Used by `bkv host` and by tests. */

import Fastify, { type FastifyInstance } from "fastify";
import { buildApi } from "./api.js";
import { TokenVerifier } from "./auth.js";
import { BundleKeeper } from "./bundle-keeper.js";
import type { HostConfig } from "./config.js";
import { readHostKey } from "./host-key.js";
import { HsmLink } from "./hsm-link.js";
import { HostMetrics, registerMetrics } from "./metrics.js";
import { FaultsFile, type PeerAddress, PeerListener, PeerTransport } from "./peers.js";
import { RateLimiter } from "./rate-limit.js";
import { HostStorage } from "./storage.js";

export interface RunningHost {
  url: string;
  /** Where other hosts of the fleet connect (null without peers). */
  peerAddress: PeerAddress | null;
  /** The peer port's counters (null without peers). */
  peerCounters: PeerListener["counters"] | null;
  /** Where GET /metrics is served (null without metricsListen). */
  metricsUrl: string | null;
  app: FastifyInstance;
  hsm: HsmLink;
  storage: HostStorage;
  close(): Promise<void>;
}

export async function startHost(config: HostConfig): Promise<RunningHost> {
  const storage = new HostStorage(config.storagePath);
  const tokens = new TokenVerifier(config.auth);
  const faults = new FaultsFile(config.faultsFile);
  // The API exists first so its logger can serve the HSM link too.
  let hsm: HsmLink | undefined;
  let bundles: BundleKeeper | undefined;
  let selfUrl: string | undefined;
  const key = config.hostKeyFile === undefined ? null : readHostKey(config.hostKeyFile);
  let listener: PeerListener | null = null;
  const limiters = {
    perUser: new RateLimiter(config.rateLimits.perUser),
    perAddress: new RateLimiter(config.rateLimits.perAddress),
  };
  const metrics = new HostMetrics({
    hsm: () => hsm!,
    peerCounters: () => listener?.counters ?? null,
    bundles: () => bundles,
    limiters: () => limiters,
  });
  const app = buildApi({
    limiters,
    metrics,
    config,
    tokens,
    faults,
    selfUrl: () => selfUrl,
    peerCounters: () => listener?.counters ?? null,
    get hsm() {
      return hsm!;
    },
    get bundles() {
      return bundles;
    },
  });
  const peers = new PeerTransport(config.node, config.peers, key, faults, app.log);
  hsm = new HsmLink({
    command: config.hsmCommand,
    storage,
    log: app.log,
    onPeer: (to, bytes) => peers.send(to, bytes),
    ...(config.tickMs === undefined ? {} : { tickMs: config.tickMs }),
  });
  hsm.onPersistTimed = (seconds) => metrics.observePersist(seconds);
  hsm.start();
  try {
    await hsm.ready();
  } catch (e) {
    // Keep serving /v1/health so operators see why; vault requests answer 503.
    app.log.error({ event: "hsm-not-serving", error: (e as Error).message }, "HSM did not boot");
  }
  if (config.transparency !== undefined) {
    bundles = new BundleKeeper(config.transparency, hsm, app.log);
    bundles.start();
  }
  // Peer streams come to their own listener, from the configured hosts only (peers.ts); the client
  // API's port takes none.
  let peerAddress: PeerAddress | null = null;
  // GET /metrics on a listener of its own, for the operator's network only (never the client API).
  const metricsApp = config.metricsListen === undefined ? null : Fastify({ logger: false });
  let metricsUrl: string | null = null;
  try {
    if (metricsApp !== null && config.metricsListen !== undefined) {
      registerMetrics(metricsApp, metrics);
      await metricsApp.listen({ host: config.metricsListen.host, port: config.metricsListen.port });
      const a = metricsApp.server.address();
      const p = typeof a === "object" && a !== null ? a.port : config.metricsListen.port;
      metricsUrl = `http://${config.metricsListen.host}:${p}`;
    }
    if (config.peerListen !== undefined && key !== null) {
      const link = hsm;
      listener = new PeerListener({
        self: config.node,
        key,
        peers: config.peers,
        faults,
        log: app.log,
        deliver: (from, message) => link.peer(from, message),
      });
      peerAddress = await listener.listen(config.peerListen);
    }
    app.server.on("upgrade", (_req, socket) => {
      socket.end("HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
    });
    await app.listen({ host: config.listen.host, port: config.listen.port });
  } catch (e) {
    // A port in use: leave nothing running behind.
    bundles?.stop();
    peers.close();
    await listener?.close().catch(() => {});
    await metricsApp?.close().catch(() => {});
    await hsm.stop();
    storage.close();
    throw e;
  }
  const addr = app.server.address();
  const port = typeof addr === "object" && addr !== null ? addr.port : config.listen.port;
  const link = hsm;
  selfUrl = `http://${config.listen.host}:${port}`;
  return {
    url: selfUrl,
    peerAddress,
    peerCounters: listener?.counters ?? null,
    metricsUrl,
    app,
    hsm: link,
    storage,
    async close() {
      bundles?.stop();
      peers.close();
      await listener?.close();
      await metricsApp?.close();
      await app.close();
      await link.stop();
      storage.close();
    },
  };
}
