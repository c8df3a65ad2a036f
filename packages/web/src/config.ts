/**
 * The web server's configuration file (written by `bkv dev`): where the vault's hosts are, what the
 * page pins, and the development token key. Checked on load: it comes from a file.
 */
import { readFileSync } from "node:fs";
import { parseTrustPins, type TrustPins } from "@bkv/client";

export interface WebConfig {
  /** Base URLs of the fleet's host agents (the page sends vault requests there directly). */
  hosts: string[];
  /** What the page pins: the log's key, the witnesses' keys and threshold, the namespace. */
  pins: TrustPins;
  /** Path of the Ed25519 JWK that mints development bearer tokens (private: development only). */
  tokenKey: string;
  /** Issuer and audience of the development tokens (the hosts check the same). */
  issuer: string;
  audience: string;
  /** The WebAuthn relying party's display name for passkeys. */
  rpName: string;
}

function fail(why: string): never {
  throw new Error(`web config: ${why}`);
}

const nonEmpty = (v: unknown): v is string => typeof v === "string" && v.length > 0;

/** Validate a parsed config; hosts must be http(s) base URLs (no path, query or credentials). */
export function parseWebConfig(v: unknown): WebConfig {
  if (typeof v !== "object" || v === null || Array.isArray(v)) fail("expected a JSON object");
  const o = v as Record<string, unknown>;
  if (!Array.isArray(o.hosts) || o.hosts.length === 0) fail("hosts must be a non-empty list of URLs");
  const hosts = o.hosts.map((h) => {
    let u: URL;
    try {
      u = new URL(String(h));
    } catch {
      fail(`host ${JSON.stringify(h)} is not a URL`);
    }
    if (u.protocol !== "http:" && u.protocol !== "https:") fail(`host ${u.href} is not http(s)`);
    if (u.username !== "" || u.password !== "" || u.search !== "" || u.hash !== "" || u.pathname !== "/")
      fail(`host ${u.href} must be a bare origin such as http://127.0.0.1:8480`);
    return u.origin;
  });
  let pins: TrustPins;
  try {
    pins = parseTrustPins(o.pins);
  } catch (e) {
    fail(`pins: ${(e as Error).message}`);
  }
  if (!nonEmpty(o.tokenKey)) fail("tokenKey must be the path of the development token key");
  if (!nonEmpty(o.issuer)) fail("issuer must be a non-empty string");
  if (!nonEmpty(o.audience)) fail("audience must be a non-empty string");
  if (!nonEmpty(o.rpName)) fail("rpName must be a non-empty string");
  return { hosts, pins, tokenKey: o.tokenKey, issuer: o.issuer, audience: o.audience, rpName: o.rpName };
}

export function loadWebConfig(path: string): WebConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new Error(`web config: cannot read ${path}: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    fail(`${path} is not JSON`);
  }
  return parseWebConfig(json);
}
