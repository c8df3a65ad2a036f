/** The host agent's configuration file (JSON), validated on load. */
import { readFileSync } from "node:fs";
import type { JWK } from "jose";
import type { TransparencyConfig } from "./bundle-keeper.js";
import type { PeerConfig } from "./peers.js";
import type { BucketConfig } from "./rate-limit.js";

export interface HostConfig {
  /** Node number in its fleet, from 1. */
  node: number;
  /** The client API's address. */
  listen: { host: string; port: number };
  /**
   * Where the other members' hosts connect (their own listener, not the client API). Required when
   * peers is not empty.
   */
  peerListen?: { host: string; port: number };
  /** This host's Ed25519 key (PKCS#8 PEM), which it proves to its peers. Required with peers. */
  hostKeyFile?: string;
  /** SQLite file for this HSM's sealed log. */
  storagePath: string;
  /** argv that starts the HSM process. */
  hsmCommand: string[];
  /** The other members' hosts: client URL, peer address and public host key of each. */
  peers: PeerConfig[];
  /** Interval between the HSM's ticks (default 50 ms). */
  tickMs?: number;
  /** Development only: a JSON file of injected faults (isolated nodes, latency). */
  faultsFile?: string;
  auth: { issuer: string; audience: string; publicKeyJwk: JWK };
  rateLimits: { perUser: BucketConfig; perAddress: BucketConfig };
  /** Where the fleet is published: the host hands its validation bundle out with every response. */
  transparency?: TransparencyConfig;
  /**
   * Where GET /metrics (Prometheus text) is served: a listener of its own, for the operator's
   * monitoring network only (say 127.0.0.1 or a management address), never the client API. None
   * when absent.
   */
  metricsListen?: { host: string; port: number };
  /** Browser origins (e.g. a web app) allowed to call the client API (CORS). */
  corsOrigins?: string[];
}

export const DEFAULT_RATE_LIMITS: HostConfig["rateLimits"] = {
  perUser: { capacity: 30, refillPerSecond: 1 },
  perAddress: { capacity: 600, refillPerSecond: 100 },
};

function fail(path: string, what: string): never {
  throw new Error(`host config ${path}: ${what}`);
}

export function loadHostConfig(path: string): HostConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    fail(path, (e as Error).message);
  }
  const c = raw as Partial<HostConfig>;
  if (typeof c.node !== "number" || c.node < 1) fail(path, "node must be a number from 1");
  if (typeof c.listen?.host !== "string" || typeof c.listen.port !== "number")
    fail(path, "listen.host and listen.port required");
  if (
    c.metricsListen !== undefined &&
    (typeof c.metricsListen?.host !== "string" || typeof c.metricsListen.port !== "number")
  )
    fail(path, "metricsListen needs host and port");
  if (typeof c.storagePath !== "string") fail(path, "storagePath required");
  if (!Array.isArray(c.hsmCommand) || c.hsmCommand.length === 0) fail(path, "hsmCommand required");
  if (!Array.isArray(c.peers)) fail(path, "peers required (an empty list for a fleet of one)");
  if (c.peers.length > 0) {
    if (typeof c.peerListen?.host !== "string" || typeof c.peerListen.port !== "number")
      fail(path, "peerListen.host and peerListen.port required with peers");
    if (typeof c.hostKeyFile !== "string") fail(path, "hostKeyFile required with peers");
  }
  for (const p of c.peers) {
    if (
      typeof p?.node !== "number" ||
      typeof p.url !== "string" ||
      typeof p.peerAddress?.host !== "string" ||
      typeof p.peerAddress.port !== "number" ||
      typeof p.hostKey !== "string" ||
      !/^[0-9a-f]{64}$/.test(p.hostKey)
    )
      fail(path, "each peer needs node, url, peerAddress {host, port} and hostKey (64 hex)");
  }
  if (
    typeof c.auth?.issuer !== "string" ||
    typeof c.auth.audience !== "string" ||
    typeof c.auth.publicKeyJwk !== "object"
  ) {
    fail(path, "auth.issuer, auth.audience and auth.publicKeyJwk required");
  }
  return { ...(c as HostConfig), rateLimits: c.rateLimits ?? DEFAULT_RATE_LIMITS };
}
