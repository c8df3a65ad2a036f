/**
 * The layout of a local development vault folder (`bkv dev --dir DIR`):
 *   DIR/dev.json              where the running fleet's nodes and services listen, their process ids
 *   DIR/fleet.json            the fleet made by the genesis ceremony (id, keys, measurement, members)
 *   DIR/evidence.bin          the fleet's deployment evidence; DIR/artifact.bin its published artifact
 *   DIR/vendor-root.{key,pub} the test vendor root that attests the HSMs (development only)
 *   DIR/faults.json           injected faults read by the hosts: isolated nodes, latency
 *   DIR/trust.json            what clients pin: log key, witness keys and threshold, namespace,
 *                             vendor root (a test root, allowed), measurement, max guess limit
 *   DIR/transparency.json     the same and the log's URL (for bkv monitor)
 *   DIR/log/, DIR/witness-<i>/  the transparency log's and the witnesses' keys and databases
 *   DIR/dev-token-key.jwk     Ed25519 key that mints development bearer tokens (never for production)
 *   DIR/node-<i>/hsm/         HSM-private files: identity and seal keys, NVRAM (or a SoftHSM2 token)
 *   DIR/node-<i>/host/        host storage (SQLite), host config and log, the host key (host-key.pem)
 *                             that it proves to the other hosts on their peer ports
 */
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseTrustPins, type TrustPins } from "@bkv/client";
import { devTokens } from "@bkv/web";
import { BkvError, ErrorCode } from "@bkv/wire";
import { exportJWK, generateKeyPair, type JWK } from "jose";

export const DEV_ISSUER = "bkv-dev";
export const DEV_AUDIENCE = "bkv-vault";

export const devPaths = (dir: string) => {
  const d = resolve(dir);
  return {
    dir: d,
    devJson: join(d, "dev.json"),
    fleetJson: join(d, "fleet.json"),
    faultsJson: join(d, "faults.json"),
    trustJson: join(d, "trust.json"),
    tokenKey: join(d, "dev-token-key.jwk"),
    vendorRootKey: join(d, "vendor-root.key"),
    vendorRootPub: join(d, "vendor-root.pub"),
    evidence: join(d, "evidence.bin"),
    hsmDir: (i: number) => join(d, `node-${i}`, "hsm"),
    hostDir: (i: number) => join(d, `node-${i}`, "host"),
    hostKey: (i: number) => join(d, `node-${i}`, "host", "host-key.pem"),
  };
};

export interface DevNode {
  node: number;
  url: string;
  /** Where the host listens for the other hosts' peer streams (host:port). */
  peer?: string;
  /** Where the host serves GET /metrics (its base URL). */
  metrics?: string;
  /** The host agent's process id, or null while the node is stopped. */
  hostPid: number | null;
  hsmPid: number | null;
  config: string;
}

export interface DevInfo {
  vault: string;
  dir: string;
  pid: number;
  nodes: DevNode[];
  /** The log's and witnesses' process ids. */
  servicePids?: number[];
}

/** trust.json: what a client of this deployment pins (the fleet's keys come in bundles). */
export type TrustSettings = TrustPins;

export async function newTokenKey(): Promise<JWK> {
  const { privateKey } = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
  return exportJWK(privateKey);
}

export function publicJwk(jwk: JWK): JWK {
  const { d: _d, ...pub } = jwk;
  return pub;
}

export async function mintDevToken(dir: string, user: string, ttlSeconds = 3600): Promise<string> {
  return (await devTokens(devPaths(dir).tokenKey, DEV_ISSUER, DEV_AUDIENCE)).mint(user, ttlSeconds);
}

function readJson<T>(path: string, what: string): T {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as T;
  } catch (e) {
    throw new BkvError(ErrorCode.Unavailable, `cannot read ${what} (${path}): is 'bkv dev' running there?`, {
      cause: e,
    });
  }
}

export function readDevInfo(dir: string): DevInfo {
  return readJson<DevInfo>(devPaths(dir).devJson, "the local vault's address");
}

export function readTrust(path: string): TrustPins {
  return parseTrustPins(readJson<unknown>(path, "trust settings"));
}

export function writeDevInfo(dir: string, info: DevInfo): void {
  const p = devPaths(dir).devJson;
  writeFileSync(`${p}.tmp`, `${JSON.stringify(info, null, 2)}\n`);
  renameSync(`${p}.tmp`, p);
}
