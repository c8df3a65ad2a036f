/**
 * Start a host agent: storage, listeners, HSM process. Used by `bkv host` (and so by `bkv dev`)
 * and by tests. Every listener (client API, peer port, admin port) is bound before the HSM
 * starts: a port in use fails the start (PORT_IN_USE, naming the listener and its holder) with
 * nothing left running.
 */

import Fastify, { type FastifyInstance } from "fastify";
import { buildAdminApi } from "./admin-api.js";
import { buildApi } from "./api.js";
import { TokenVerifier } from "./auth.js";
import { BundleKeeper } from "./bundle-keeper.js";
import type { AdminConfig, HostConfig } from "./config.js";
import { readHostKey } from "./host-key.js";
import { HsmLink } from "./hsm-link.js";
import { portInUse } from "./listen-check.js";
import { HostMetrics, registerMetrics } from "./metrics.js";
import { FaultsFile, type PeerAddress, PeerListener, PeerTransport } from "./peers.js";
import { RateLimiter } from "./rate-limit.js";
import { HostStorage } from "./storage.js";

export interface RunningHost {
  url: string;
  /** Where other hosts of the fleet connect (null without peers). */
  peerAddress: PeerAddress | null;
  /** The admin listener's URL (null without admin). */
  adminUrl: string | null;
  /** The peer port's counters (null without peers). */
  peerCounters: PeerListener["counters"] | null;
  /** Where GET /metrics is served (null without metricsListen). */
  metricsUrl: string | null;
  app: FastifyInstance;
  hsm: HsmLink;
  storage: HostStorage;
  close(): Promise<void>;
}

async function listenOn(app: FastifyInstance, what: string, host: string, port: number): Promise<number> {
  try {
    await app.listen({ host, port });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EADDRINUSE") throw portInUse(what, host, port);
    throw e;
  }
  const a = app.server.address();
  return typeof a === "object" && a !== null ? a.port : port;
}

function urlOf(scheme: string, host: string, port: number): string {
  return `${scheme}://${host.includes(":") ? `[${host}]` : host}:${port}`;
}

export async function startHost(config: HostConfig): Promise<RunningHost> {
  const storage = new HostStorage(config.storagePath);
  const tokens = new TokenVerifier(config.auth);
  const faults = new FaultsFile(config.faultsFile);
  let bundles: BundleKeeper | undefined;
  let selfUrl: string | undefined;
  const key = config.hostKeyFile === undefined ? null : readHostKey(config.hostKeyFile);
  let listener: PeerListener | null = null;
  let hsm: HsmLink | undefined;
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
  const app = await buildApi({
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
  const link = new HsmLink({
    command: config.hsmCommand,
    storage,
    log: app.log,
    onPeer: (to, bytes) => peers.send(to, bytes),
    ...(config.tickMs === undefined ? {} : { tickMs: config.tickMs }),
  });
  hsm = link;
  link.onPersistTimed = (seconds) => metrics.observePersist(seconds);
  const adminApp =
    config.admin === undefined
      ? null
      : buildAdminApi({ config: config as HostConfig & { admin: AdminConfig }, hsm: () => link });
  // Peer streams come to their own listener, from the configured hosts only (peers.ts); the client
  // API's port takes none.
  let peerAddress: PeerAddress | null = null;
  let adminUrl: string | null = null;
  const scheme = config.tls === undefined ? "http" : "https";
  // GET /metrics on a listener of its own, for the operator's network only (never the client API).
  const metricsApp = config.metricsListen === undefined ? null : Fastify({ logger: false });
  let metricsUrl: string | null = null;
  try {
    if (metricsApp !== null && config.metricsListen !== undefined) {
      registerMetrics(metricsApp, metrics);
      const m = config.metricsListen;
      const port = await listenOn(metricsApp, "metrics listener (metricsListen)", m.host, m.port);
      metricsUrl = urlOf("http", m.host, port);
    }
    if (config.peerListen !== undefined && key !== null) {
      listener = new PeerListener({
        self: config.node,
        key,
        peers: config.peers,
        faults,
        log: app.log,
        deliver: (from, message) => link.peer(from, message),
      });
      try {
        peerAddress = await listener.listen(config.peerListen);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "EADDRINUSE")
          throw portInUse("peer listener (peerListen)", config.peerListen.host, config.peerListen.port);
        throw e;
      }
    }
    if (adminApp !== null && config.admin !== undefined) {
      const a = config.admin;
      const port = await listenOn(adminApp, "admin listener (admin.listen)", a.listen.host, a.listen.port);
      adminUrl = urlOf((a.tls ?? config.tls) === undefined ? "http" : "https", a.listen.host, port);
    }
    app.server.on("upgrade", (_req, socket) => {
      socket.end("HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
    });
    const port = await listenOn(app, "client listener (listen)", config.listen.host, config.listen.port);
    selfUrl = urlOf(scheme, config.listen.host, port);
  } catch (e) {
    // A port in use: leave nothing running behind (the HSM has not started).
    peers.close();
    await listener?.close().catch(() => {});
    await adminApp?.close().catch(() => {});
    await metricsApp?.close().catch(() => {});
    await app.close().catch(() => {});
    storage.close();
    throw e;
  }
  link.start();
  try {
    await link.ready();
  } catch (e) {
    // Keep serving /v1/health so operators see why; vault requests answer 503.
    app.log.error({ event: "hsm-not-serving", error: (e as Error).message }, "HSM did not boot");
  }
  if (config.transparency !== undefined) {
    bundles = new BundleKeeper(config.transparency, link, app.log);
    bundles.start();
  }
  return {
    url: selfUrl,
    peerAddress,
    adminUrl,
    peerCounters: listener?.counters ?? null,
    metricsUrl,
    app,
    hsm: link,
    storage,
    async close() {
      bundles?.stop();
      peers.close();
      await listener?.close();
      await adminApp?.close();
      await metricsApp?.close();
      await app.close();
      await link.stop();
      storage.close();
    },
  };
}
