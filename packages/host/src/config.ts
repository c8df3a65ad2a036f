/**
 * The host agent's configuration file: JSON, with `//` and `/* *\/` comments allowed (what
 * `bkv host init` writes). Everything is checked at load, and every problem is a BkvError CONFIG
 * naming the file and the field: a missing file, an unknown field, a peer listed twice, a
 * certificate whose key is not the one given. Ports are checked when the host binds them
 * (`listen-check.ts`, PORT_IN_USE) before the HSM starts. Every field is described in
 * docs/host-config.md.
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { BkvError, ErrorCode } from "@bkv/wire";
import type { JWK } from "jose";
import type { TransparencyConfig } from "./bundle-keeper.js";
import type { PeerConfig } from "./peers.js";
import type { BucketConfig } from "./rate-limit.js";

export interface ListenAddress {
  host: string;
  port: number;
}

/** A certificate chain and its private key (PEM files): the listener serves HTTPS with them. */
export interface TlsFiles {
  certFile: string;
  keyFile: string;
}

/** The operator's listener: the genesis ceremony and status, for the admin key's holder only. */
export interface AdminConfig {
  listen: ListenAddress;
  /** SHA-256 (hex) of the admin key; the key itself stays with the operator (`bkv host init`). */
  keySha256: string;
  /** HTTPS for the admin listener (default: the client listener's tls). */
  tls?: TlsFiles;
}

/** Which HSM this host runs: the platform and its folder (PKCS#11: module and token are provisioned there). */
export interface HsmConfig {
  platform: "software" | "pkcs11";
  /** The HSM's folder (HSM_DIR): its keys or token, NVRAM, attestation and trusted vendor roots. */
  dir: string;
  /** The measured core the HSM process loads (default: the build's build/hsm-core.js). */
  core?: string;
}

export interface HostConfig {
  /** Node number in its fleet, from 1. */
  node: number;
  /** The client API's address. */
  listen: ListenAddress;
  /** HTTPS for the client API; without it the API speaks plain HTTP (development on loopback only). */
  tls?: TlsFiles;
  /** The operator's listener (ceremony, status). Without it the host takes no ceremony over the network. */
  admin?: AdminConfig;
  /**
   * The host names (`Host` header, without port) the client and admin listeners answer to; any
   * other is refused (DNS rebinding). Default: listen.host (and localhost for a loopback address).
   */
  hostNames?: string[];
  /**
   * Proxies whose X-Forwarded-For names the client's address (for rate limits): addresses or CIDR
   * ranges. Default: none (the connection's address counts).
   */
  trustProxy?: string[];
  /**
   * Where the other members' hosts connect (their own listener, not the client API). Required when
   * peers is not empty.
   */
  peerListen?: ListenAddress;
  /** This host's Ed25519 key (PKCS#8 PEM), which it proves to its peers. Required with peers. */
  hostKeyFile?: string;
  /** SQLite file for this HSM's sealed log. */
  storagePath: string;
  /** The HSM this host runs (or hsmCommand, the argv that starts it; one of the two). */
  hsm?: HsmConfig;
  /** argv that starts the HSM process (what `hsm` turns into). */
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
  metricsListen?: ListenAddress;
  /** Browser origins (e.g. a web app) allowed to call the client API (CORS). */
  corsOrigins?: string[];
}

/** What a config file holds: hsmCommand may be left to `hsm`. */
export type HostConfigFile = Omit<HostConfig, "hsmCommand"> & { hsmCommand?: string[] };

export const DEFAULT_RATE_LIMITS: HostConfig["rateLimits"] = {
  perUser: { capacity: 30, refillPerSecond: 1 },
  perAddress: { capacity: 600, refillPerSecond: 100 },
};

const TOP_FIELDS = [
  "node",
  "listen",
  "tls",
  "admin",
  "hostNames",
  "trustProxy",
  "peerListen",
  "metricsListen",
  "hostKeyFile",
  "storagePath",
  "hsm",
  "hsmCommand",
  "peers",
  "tickMs",
  "faultsFile",
  "auth",
  "rateLimits",
  "transparency",
  "corsOrigins",
];

/** Remove `//` and `/* *\/` comments outside strings (JSON with comments). */
export function stripJsonComments(text: string): string {
  let out = "";
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      out += text.slice(i, j + 1);
      i = j + 1;
    } else if (c === "/" && text[i + 1] === "/") {
      while (i < text.length && text[i] !== "\n") i++;
    } else if (c === "/" && text[i + 1] === "*") {
      const end = text.indexOf("*/", i + 2);
      i = end < 0 ? text.length : end + 2;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

class Checker {
  constructor(private readonly path: string) {}

  fail(what: string): never {
    throw new BkvError(ErrorCode.Config, `host config ${this.path}: ${what}`);
  }

  object(v: unknown, name: string): Record<string, unknown> {
    if (typeof v !== "object" || v === null || Array.isArray(v)) this.fail(`${name} must be an object`);
    return v as Record<string, unknown>;
  }

  only(o: Record<string, unknown>, name: string, fields: string[]): void {
    for (const k of Object.keys(o))
      if (!fields.includes(k))
        this.fail(`unknown field ${name === "" ? k : `${name}.${k}`} (known: ${fields.join(", ")})`);
  }

  string(v: unknown, name: string): string {
    if (typeof v !== "string" || v === "") this.fail(`${name} must be a non-empty string`);
    return v;
  }

  int(v: unknown, name: string, min: number, max: number): number {
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max)
      this.fail(`${name} must be a whole number from ${min} to ${max}`);
    return v;
  }

  strings(v: unknown, name: string): string[] {
    if (!Array.isArray(v) || v.some((x) => typeof x !== "string" || x === ""))
      this.fail(`${name} must be a list of non-empty strings`);
    return v as string[];
  }

  address(v: unknown, name: string): ListenAddress {
    const o = this.object(v, name);
    this.only(o, name, ["host", "port"]);
    return { host: this.string(o.host, `${name}.host`), port: this.int(o.port, `${name}.port`, 0, 65535) };
  }

  file(v: unknown, name: string): string {
    const f = this.string(v, name);
    if (!existsSync(f)) this.fail(`${name}: no such file ${f}`);
    return f;
  }

  /** A certificate and its key: both readable, and the key the certificate's. */
  tls(v: unknown, name: string): TlsFiles {
    const o = this.object(v, name);
    this.only(o, name, ["certFile", "keyFile"]);
    const certFile = this.file(o.certFile, `${name}.certFile`);
    const keyFile = this.file(o.keyFile, `${name}.keyFile`);
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(readFileSync(certFile));
    } catch (e) {
      this.fail(`${name}.certFile ${certFile} is not a PEM certificate: ${(e as Error).message}`);
    }
    let key: ReturnType<typeof createPrivateKey>;
    try {
      key = createPrivateKey(readFileSync(keyFile));
    } catch (e) {
      this.fail(`${name}.keyFile ${keyFile} is not a PEM private key: ${(e as Error).message}`);
    }
    if (!cert.checkPrivateKey(key))
      this.fail(`${name}.keyFile ${keyFile} is not the key of the certificate in ${certFile}`);
    return { certFile, keyFile };
  }

  bucket(v: unknown, name: string): BucketConfig {
    const o = this.object(v, name);
    this.only(o, name, ["capacity", "refillPerSecond"]);
    if (typeof o.capacity !== "number" || !(o.capacity > 0)) this.fail(`${name}.capacity must be above 0`);
    if (typeof o.refillPerSecond !== "number" || !(o.refillPerSecond > 0))
      this.fail(`${name}.refillPerSecond must be above 0`);
    return { capacity: o.capacity, refillPerSecond: o.refillPerSecond };
  }
}

const LOOPBACK = new Set(["127.0.0.1", "::1", "localhost"]);

/**
 * Check a parsed config (what a file holds). `path` names it in errors. Files named in it must
 * exist; a certificate must match its key; nodes and peer addresses must be distinct.
 */
export function checkHostConfig(raw: unknown, path: string): HostConfigFile {
  const k = new Checker(path);
  const c = k.object(raw, "the config");
  k.only(c, "", TOP_FIELDS);
  const node = k.int(c.node, "node", 1, 9);
  const listen = k.address(c.listen, "listen");
  const out: HostConfigFile = {
    node,
    listen,
    storagePath: k.string(c.storagePath, "storagePath"),
    peers: [],
    auth: { issuer: "", audience: "", publicKeyJwk: {} },
    rateLimits: DEFAULT_RATE_LIMITS,
  };
  if (c.tls !== undefined) out.tls = k.tls(c.tls, "tls");
  if (c.admin !== undefined) {
    const a = k.object(c.admin, "admin");
    k.only(a, "admin", ["listen", "keySha256", "tls"]);
    const keySha256 = k.string(a.keySha256, "admin.keySha256");
    if (!/^[0-9a-f]{64}$/.test(keySha256))
      k.fail("admin.keySha256 must be the SHA-256 of the admin key (64 lowercase hex)");
    out.admin = { listen: k.address(a.listen, "admin.listen"), keySha256 };
    if (a.tls !== undefined) out.admin.tls = k.tls(a.tls, "admin.tls");
  }
  if (c.hostNames !== undefined) out.hostNames = k.strings(c.hostNames, "hostNames");
  else if (!LOOPBACK.has(listen.host))
    k.fail(
      `hostNames is required when listen.host is ${listen.host}: the names clients use to reach this host (others are refused)`,
    );
  if (c.trustProxy !== undefined) out.trustProxy = k.strings(c.trustProxy, "trustProxy");
  if (c.hsm !== undefined) {
    const h = k.object(c.hsm, "hsm");
    k.only(h, "hsm", ["platform", "dir", "core"]);
    const platform = h.platform as string;
    if (platform !== "software" && platform !== "pkcs11") k.fail("hsm.platform must be software or pkcs11");
    out.hsm = {
      platform: platform as HsmConfig["platform"],
      dir: k.string(h.dir, "hsm.dir"),
      ...(h.core === undefined ? {} : { core: k.file(h.core, "hsm.core") }),
    };
  }
  if (c.hsmCommand !== undefined) {
    const cmd = k.strings(c.hsmCommand, "hsmCommand");
    if (cmd.length === 0) k.fail("hsmCommand must not be empty");
    out.hsmCommand = cmd;
  }
  if ((out.hsm === undefined) === (out.hsmCommand === undefined))
    k.fail("give exactly one of hsm {platform, dir} and hsmCommand");
  if (!Array.isArray(c.peers)) k.fail("peers required (an empty list for a fleet of one)");
  const nodes = new Set<number>([node]);
  const addresses = new Set<string>();
  const keys = new Set<string>();
  for (const [i, p] of (c.peers as unknown[]).entries()) {
    const name = `peers[${i}]`;
    const o = k.object(p, name);
    k.only(o, name, ["node", "url", "peerAddress", "hostKey"]);
    const pn = k.int(o.node, `${name}.node`, 1, 9);
    if (nodes.has(pn))
      k.fail(pn === node ? `${name} is this host's own node ${node}` : `node ${pn} is listed twice in peers`);
    nodes.add(pn);
    const url = k.string(o.url, `${name}.url`);
    if (!/^https?:\/\/[^/]+\/?$/.test(url)) k.fail(`${name}.url must be http(s)://host:port, got ${url}`);
    const peerAddress = k.address(o.peerAddress, `${name}.peerAddress`);
    const at = `${peerAddress.host}:${peerAddress.port}`;
    if (addresses.has(at)) k.fail(`peer address ${at} is listed twice in peers`);
    addresses.add(at);
    const hostKey = k.string(o.hostKey, `${name}.hostKey`);
    if (!/^[0-9a-f]{64}$/.test(hostKey)) k.fail(`${name}.hostKey must be 64 lowercase hex (bkv host key)`);
    if (keys.has(hostKey)) k.fail(`host key ${hostKey} is listed twice in peers`);
    keys.add(hostKey);
    out.peers.push({ node: pn, url, peerAddress, hostKey });
  }
  if (c.peerListen !== undefined) out.peerListen = k.address(c.peerListen, "peerListen");
  if (c.metricsListen !== undefined) out.metricsListen = k.address(c.metricsListen, "metricsListen");
  if (c.hostKeyFile !== undefined) out.hostKeyFile = k.file(c.hostKeyFile, "hostKeyFile");
  if (out.peers.length > 0) {
    if (out.peerListen === undefined) k.fail("peerListen {host, port} is required with peers");
    if (out.hostKeyFile === undefined) k.fail("hostKeyFile is required with peers (bkv host key)");
  }
  if (c.tickMs !== undefined) out.tickMs = k.int(c.tickMs, "tickMs", 1, 10_000);
  if (c.faultsFile !== undefined) out.faultsFile = k.string(c.faultsFile, "faultsFile");
  const auth = k.object(c.auth, "auth");
  k.only(auth, "auth", ["issuer", "audience", "publicKeyJwk"]);
  const jwk = k.object(auth.publicKeyJwk, "auth.publicKeyJwk");
  if (jwk.d !== undefined) k.fail("auth.publicKeyJwk is a private key: give the issuer's public key only");
  out.auth = {
    issuer: k.string(auth.issuer, "auth.issuer"),
    audience: k.string(auth.audience, "auth.audience"),
    publicKeyJwk: jwk as JWK,
  };
  if (c.rateLimits !== undefined) {
    const r = k.object(c.rateLimits, "rateLimits");
    k.only(r, "rateLimits", ["perUser", "perAddress"]);
    out.rateLimits = {
      perUser: k.bucket(r.perUser, "rateLimits.perUser"),
      perAddress: k.bucket(r.perAddress, "rateLimits.perAddress"),
    };
  }
  if (c.transparency !== undefined) {
    const t = k.object(c.transparency, "transparency");
    k.only(t, "transparency", ["log", "namespace", "epoch", "releases", "refreshMs"]);
    out.transparency = {
      log: k.string(t.log, "transparency.log"),
      namespace: k.string(t.namespace, "transparency.namespace"),
      epoch: k.int(t.epoch, "transparency.epoch", 0, 0xffffffff),
      ...(t.releases === undefined ? {} : { releases: k.string(t.releases, "transparency.releases") }),
      ...(t.refreshMs === undefined
        ? {}
        : { refreshMs: k.int(t.refreshMs, "transparency.refreshMs", 100, 86_400_000) }),
    };
  }
  if (c.corsOrigins !== undefined) out.corsOrigins = k.strings(c.corsOrigins, "corsOrigins");
  return out;
}

/** Read and check a config file; hsmCommand stays unset when the file names an `hsm`. */
export function readHostConfigFile(path: string): HostConfigFile {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    const missing = (e as NodeJS.ErrnoException).code === "ENOENT";
    throw new BkvError(
      ErrorCode.Config,
      missing
        ? `host config ${path}: no such file (bkv host init --out ${path} writes an example)`
        : `host config ${path}: ${(e as Error).message}`,
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(stripJsonComments(text));
  } catch (e) {
    throw new BkvError(ErrorCode.Config, `host config ${path}: not JSON: ${(e as Error).message}`);
  }
  return checkHostConfig(raw, path);
}

/** Read a config that names its HSM by hsmCommand (tests, older configs). */
export function loadHostConfig(path: string): HostConfig {
  const c = readHostConfigFile(path);
  if (c.hsmCommand === undefined)
    throw new BkvError(ErrorCode.Config, `host config ${path}: the HSM is named by hsm; resolve it first`);
  return c as HostConfig;
}
