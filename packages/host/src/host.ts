/** Start a host agent: storage, HSM process, HTTP API. Used by `bkv host` and by tests. */

import { FrameDecoder } from "@bkv/wire";
import type { FastifyInstance } from "fastify";
import { buildApi } from "./api.js";
import { TokenVerifier } from "./auth.js";
import { BundleKeeper } from "./bundle-keeper.js";
import type { HostConfig } from "./config.js";
import { HsmLink } from "./hsm-link.js";
import { FaultsFile, PEER_PROTOCOL, PeerTransport } from "./peers.js";
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
  let bundles: BundleKeeper | undefined;
  let selfUrl: string | undefined;
  const app = buildApi({
    config,
    tokens,
    faults,
    selfUrl: () => selfUrl,
    get hsm() {
      return hsm!;
    },
    get bundles() {
      return bundles;
    },
  });
  const peers = new PeerTransport(config.node, config.peers, faults, app.log);
  const streams = new Set<import("node:stream").Duplex>();
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
  // Peer streams: another member's host upgrades a connection and sends its HSM's messages as
  // length-prefixed frames. The HSM authenticates each message; the host only relays.
  app.server.on("upgrade", (req, socket) => {
    const from = Number(req.headers["x-bkv-from"]);
    if (
      req.url !== "/v1/peer/stream" ||
      req.headers.upgrade !== PEER_PROTOCOL ||
      !Number.isInteger(from) ||
      from < 1 ||
      from > 9
    ) {
      socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n");
      return;
    }
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nupgrade: ${PEER_PROTOCOL}\r\nconnection: Upgrade\r\n\r\n`,
    );
    if ("setNoDelay" in socket && typeof socket.setNoDelay === "function") socket.setNoDelay(true);
    const decoder = new FrameDecoder();
    socket.on("data", (chunk: Buffer) => {
      let frames: Uint8Array[];
      try {
        frames = decoder.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length));
      } catch {
        socket.destroy();
        return;
      }
      if (faults.cut(from, config.node)) return;
      for (const f of frames) hsm!.peer(from, f);
    });
    socket.on("error", () => socket.destroy());
    streams.add(socket);
    socket.on("close", () => streams.delete(socket));
  });
  await app.listen({ host: config.listen.host, port: config.listen.port });
  const addr = app.server.address();
  const port = typeof addr === "object" && addr !== null ? addr.port : config.listen.port;
  const link = hsm;
  selfUrl = `http://${config.listen.host}:${port}`;
  return {
    url: selfUrl,
    app,
    hsm: link,
    storage,
    async close() {
      bundles?.stop();
      peers.close();
      for (const s of streams) s.destroy();
      await app.close();
      await link.stop();
      storage.close();
    },
  };
}
