/** Start a host agent: storage, HSM process, HTTP API. Used by `bkv host` and by tests. */

import type { FastifyInstance } from "fastify";
import { buildApi } from "./api.js";
import { TokenVerifier } from "./auth.js";
import { BundleKeeper } from "./bundle-keeper.js";
import type { HostConfig } from "./config.js";
import { readHostKey } from "./host-key.js";
import { HsmLink } from "./hsm-link.js";
import { FaultsFile, type PeerAddress, PeerListener, PeerTransport } from "./peers.js";
import { HostStorage } from "./storage.js";

export interface RunningHost {
  url: string;
  /** Where other hosts of the fleet connect (null without peers). */
  peerAddress: PeerAddress | null;
  /** The peer port's counters (null without peers). */
  peerCounters: PeerListener["counters"] | null;
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
  const app = buildApi({
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
  try {
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
    app,
    hsm: link,
    storage,
    async close() {
      bundles?.stop();
      peers.close();
      await listener?.close();
      await app.close();
      await link.stop();
      storage.close();
    },
  };
}
