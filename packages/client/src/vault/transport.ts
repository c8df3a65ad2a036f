/**
 * How sealed requests reach the vault: JSON over HTTP to a host agent (POST /v1/vault). Only the
 * transport's failures are mapped here; everything inside the sealed response is the HSM's word.
 */
import { BkvError, ErrorCode, fromBase64Url, toBase64Url } from "@bkv/wire";

export interface VaultTransport {
  send(envelope: Uint8Array): Promise<Uint8Array>;
}

export interface HttpTransportOptions {
  /**
   * Base URL of a host agent, e.g. http://127.0.0.1:8480, or the URLs of several hosts of one fleet:
   * a request that finds a host unreachable or unavailable is sent to the next one.
   */
  url: string | string[];
  /** Bearer token for the user; a function is called for every request (to refresh). */
  token: string | (() => string | Promise<string>);
  fetch?: typeof globalThis.fetch;
}

export function httpTransport(opts: HttpTransportOptions): VaultTransport {
  const doFetch = opts.fetch ?? globalThis.fetch.bind(globalThis);
  const bases = (Array.isArray(opts.url) ? opts.url : [opts.url]).map((u) => u.replace(/\/+$/, ""));
  if (bases.length === 0) throw new BkvError(ErrorCode.Invalid, "no vault URL");
  let preferred = 0;
  let leaderHint = -1;
  const sendTo = async (base: string, envelope: Uint8Array): Promise<Uint8Array> => {
    const token = typeof opts.token === "string" ? opts.token : await opts.token();
    let res: Response;
    try {
      res = await doFetch(`${base}/v1/vault`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
        body: JSON.stringify({ request: toBase64Url(envelope) }),
      });
    } catch (e) {
      throw new BkvError(ErrorCode.Unavailable, `vault unreachable at ${base}`, { cause: e });
    }
    let body: { response?: unknown; code?: unknown; message?: unknown };
    try {
      body = (await res.json()) as typeof body;
    } catch (e) {
      throw new BkvError(ErrorCode.Unavailable, `vault answered HTTP ${res.status} without JSON`, {
        cause: e,
      });
    }
    // Hosts of a fleet name the leader's host: prefer it next time (one hop less), if we know it.
    const hint = res.headers.get("x-bkv-leader");
    if (hint !== null) {
      const i = bases.indexOf(hint.replace(/\/+$/, ""));
      if (i >= 0) leaderHint = i;
    }
    if (res.ok && typeof body.response === "string") return fromBase64Url(body.response);
    const message = typeof body.message === "string" ? body.message : `HTTP ${res.status}`;
    if (res.status === 401 || res.status === 403) throw new BkvError(ErrorCode.Forbidden, message);
    if (res.status === 429) throw new BkvError(ErrorCode.RateLimited, message);
    if (res.status >= 500) throw new BkvError(ErrorCode.Unavailable, message);
    const code = Object.values(ErrorCode).find((c) => c === body.code) ?? ErrorCode.Invalid;
    throw new BkvError(code, message);
  };
  return {
    async send(envelope) {
      let last: unknown;
      for (let k = 0; k < bases.length; k++) {
        const i = (preferred + k) % bases.length;
        try {
          const r = await sendTo(bases[i]!, envelope);
          preferred = leaderHint >= 0 ? leaderHint : i;
          leaderHint = -1;
          return r;
        } catch (e) {
          // Another host can take the same sealed request: only unavailability moves on.
          if (!(e instanceof BkvError) || e.code !== ErrorCode.Unavailable) throw e;
          last = e;
        }
      }
      throw last;
    },
  };
}
