/** Start a host agent: storage, HSM process, HTTP API. Used by `bkv host` and by tests. */
import type { FastifyInstance } from "fastify";
import { buildApi } from "./api.js";
import { TokenVerifier } from "./auth.js";
import type { HostConfig } from "./config.js";
import { HsmLink } from "./hsm-link.js";
import { FaultsFile, PeerTransport } from "./peers.js";
import { HostStorage } from "./storage.js";

export interface RunningHost {
  url: string;
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
  const app = buildApi({
    config,
    tokens,
    faults,
    get hsm() {
      return hsm!;
    },
  });
  const peers = new PeerTransport(config.node, config.peers, faults, app.log);
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
  await app.listen({ host: config.listen.host, port: config.listen.port });
  const addr = app.server.address();
  const port = typeof addr === "object" && addr !== null ? addr.port : config.listen.port;
  const link = hsm;
  return {
    url: `http://${config.listen.host}:${port}`,
    app,
    hsm: link,
    storage,
    async close() {
      await app.close();
      await link.stop();
      storage.close();
    },
  };
}
