/**
 * The host names a listener answers to. A browser page on another name that resolves to this host
 * (DNS rebinding) sends its own name as `Host`: such requests are refused (403) before any route
 * runs, so a page cannot reach the API, the admin listener or a development token minter through
 * the victim's browser.
 */
import { ErrorCode } from "@bkv/wire";
import type { FastifyReply, FastifyRequest } from "fastify";

const LOOPBACK = new Set(["127.0.0.1", "::1", "localhost", "[::1]"]);

/** The names a config's hostNames allow (default: the listen address, and localhost on loopback). */
export function allowedHostNames(hostNames: string[] | undefined, listenHost: string): Set<string> {
  const names = new Set((hostNames ?? [listenHost]).map((n) => n.toLowerCase()));
  if (hostNames === undefined && LOOPBACK.has(listenHost)) for (const n of LOOPBACK) names.add(n);
  return names;
}

/** The Host header's name without its port ("[::1]:8480" → "[::1]"), lowercased; null if absent. */
export function hostHeaderName(host: string | undefined): string | null {
  if (host === undefined || host === "") return null;
  const h = host.toLowerCase();
  if (h.startsWith("[")) {
    const end = h.indexOf("]");
    return end < 0 ? null : h.slice(0, end + 1);
  }
  const colon = h.lastIndexOf(":");
  return colon < 0 ? h : h.slice(0, colon);
}

/** An onRequest hook refusing any Host header not in names. */
export function hostNameGuard(names: Set<string>) {
  return async (req: FastifyRequest, reply: FastifyReply) => {
    const name = hostHeaderName(req.headers.host);
    if (name === null || !names.has(name)) {
      // And close the connection: a refused request's body (up to the body limit, or more on a
      // connection the client keeps writing to) is not read.
      return reply.code(403).header("connection", "close").send({
        code: ErrorCode.Forbidden,
        message: "this host does not answer to that Host name (hostNames)",
      });
    }
  };
}
