/**
 * How sealed requests reach the vault: JSON over HTTP to a host agent (POST /v1/vault, GET
 * /v1/bundle). Only the transport's failures are mapped here; everything inside the sealed response
 * is the HSM's word, and the validation bundle is checked by the client (bundle/).
 *
 * A host's unsealed error is never a verdict on the PIN or the record, whatever code its body
 * claims (the operator runs the hosts and can answer `{code: "WRONG_PIN"}` itself): it becomes
 * UNAVAILABLE, FORBIDDEN, RATE_LIMITED, MALFORMED or HOST_ERROR, with a message that says which
 * host said what. Only the sealed response says WRONG_PIN, NO_RECORD or how many guesses remain.
 */
import {
  BkvError,
  type BundleJson,
  CHECKPOINT_SIZE_HEADER,
  ErrorCode,
  fromBase64Url,
  toBase64Url,
} from "@bkv/wire";

/** The vault's answer: the sealed response and, from a published fleet, its validation bundle. */
export interface VaultReply {
  response: Uint8Array;
  bundle?: BundleJson;
}

export interface VaultTransport {
  /** seenSize: the largest checkpoint the client has seen, so the bundle can prove consistency with it. */
  send(envelope: Uint8Array, seenSize?: number): Promise<VaultReply>;
  /** The fleet's validation bundle, fetched before anything depending on the PIN is sent. */
  bundle?(seenSize?: number): Promise<BundleJson>;
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

/** Printable text from a host (it may hold anything): no control characters, at most 200 characters. */
function quote(v: unknown): string {
  const text = typeof v === "string" ? v : "";
  // biome-ignore lint/suspicious/noControlCharactersInRegex: removing them is the point
  const clean = text.replace(/[\u0000-\u001f\u007f-\u009f]/g, " ").trim();
  return clean.length > 200 ? `${clean.slice(0, 200)}…` : clean;
}

/** What a host said in an error answer, for a message: `the host at URL said "…" (HTTP 400, CODE)`. */
function hostMessage(base: string, status: number, body: unknown): string {
  const o = (typeof body === "object" && body !== null ? body : {}) as { code?: unknown; message?: unknown };
  const claimed = quote(o.code);
  const said = quote(o.message);
  return `the host at ${base} said${said === "" ? "" : ` "${said}"`} (HTTP ${status}${claimed === "" ? "" : `, ${claimed}`})`;
}

/**
 * A host's unsealed error answer to a vault request, as a transport error. The code its body claims
 * is reported in the message only: a host cannot say WRONG_PIN, NO_RECORD or REPLAY (the HSM seals
 * those), so anything but the transport's own cases is HOST_ERROR.
 */
export function hostError(base: string, status: number, body: unknown): BkvError {
  const message = hostMessage(base, status, body);
  if (status === 401 || status === 403) return new BkvError(ErrorCode.Forbidden, message);
  if (status === 429) return new BkvError(ErrorCode.RateLimited, message);
  if (status >= 500) return new BkvError(ErrorCode.Unavailable, message);
  const code = (body as { code?: unknown } | null)?.code;
  if (status === 400 && code === ErrorCode.Malformed) return new BkvError(ErrorCode.Malformed, message);
  return new BkvError(
    ErrorCode.HostError,
    `${message}; a host's word is no verdict on the PIN or the record: only the HSM's sealed answer is`,
  );
}

/**
 * The error after every host of a fleet failed as unavailable: with several hosts, how many answered
 * at all, so that "2 of 5 reachable" reads as what it is (no majority) rather than as the last
 * host's trouble.
 */
function allFailed(total: number, unreachable: number, last: BkvError): BkvError {
  if (total === 1) return last;
  const reachable = total - unreachable;
  const majority = Math.floor(total / 2) + 1;
  const head =
    reachable < majority
      ? `no majority: ${reachable} of ${total} nodes reachable`
      : `no node could serve: ${reachable} of ${total} nodes reachable`;
  return new BkvError(ErrorCode.Unavailable, `${head} (last: ${last.message})`, { cause: last });
}

export function httpTransport(opts: HttpTransportOptions): VaultTransport {
  const doFetch = opts.fetch ?? globalThis.fetch.bind(globalThis);
  const bases = (Array.isArray(opts.url) ? opts.url : [opts.url]).map((u) => u.replace(/\/+$/, ""));
  if (bases.length === 0) throw new BkvError(ErrorCode.Invalid, "no vault URL");
  let preferred = 0;
  let leaderHint = -1;
  /** Errors of hosts that did not answer at all (no HTTP response). */
  const unreachable = new WeakSet<BkvError>();
  const unreachableAt = (base: string, e: unknown): BkvError => {
    const err = new BkvError(ErrorCode.Unavailable, `vault unreachable at ${base}`, { cause: e });
    unreachable.add(err);
    return err;
  };
  const sendTo = async (base: string, envelope: Uint8Array, seenSize?: number): Promise<VaultReply> => {
    const token = typeof opts.token === "string" ? opts.token : await opts.token();
    let res: Response;
    try {
      const headers: Record<string, string> = {
        "content-type": "application/json",
        authorization: `Bearer ${token}`,
      };
      if (seenSize !== undefined) headers[CHECKPOINT_SIZE_HEADER] = String(seenSize);
      res = await doFetch(`${base}/v1/vault`, {
        method: "POST",
        headers,
        body: JSON.stringify({ request: toBase64Url(envelope) }),
      });
    } catch (e) {
      throw unreachableAt(base, e);
    }
    let body: { response?: unknown; bundle?: unknown };
    try {
      body = ((await res.json()) ?? {}) as typeof body;
    } catch (e) {
      throw new BkvError(
        ErrorCode.Unavailable,
        `the host at ${base} answered HTTP ${res.status} without JSON`,
        {
          cause: e,
        },
      );
    }
    // Hosts of a fleet name the leader's host: prefer it next time (one hop less), if we know it.
    const hint = res.headers.get("x-bkv-leader");
    if (hint !== null) {
      const i = bases.indexOf(hint.replace(/\/+$/, ""));
      if (i >= 0) leaderHint = i;
    }
    if (res.ok && typeof body.response === "string") {
      const reply: VaultReply = { response: fromBase64Url(body.response) };
      if (typeof body.bundle === "object" && body.bundle !== null) reply.bundle = body.bundle as BundleJson;
      return reply;
    }
    if (res.ok)
      throw new BkvError(ErrorCode.Malformed, `the host at ${base} answered without a sealed response`);
    throw hostError(base, res.status, body);
  };
  const bundleFrom = async (base: string, seenSize?: number): Promise<BundleJson> => {
    let res: Response;
    try {
      res = await doFetch(`${base}/v1/bundle${seenSize === undefined ? "" : `?from=${seenSize}`}`);
    } catch (e) {
      throw unreachableAt(base, e);
    }
    let body: unknown;
    try {
      body = await res.json();
    } catch (e) {
      throw new BkvError(
        ErrorCode.Unavailable,
        `the host at ${base} answered HTTP ${res.status} without JSON`,
        {
          cause: e,
        },
      );
    }
    if (res.ok) return body as BundleJson;
    // Nothing depending on the PIN has been sent: any refusal but "not published" tries another host.
    const said = hostMessage(base, res.status, body);
    throw new BkvError(res.status === 404 ? ErrorCode.BundleMissing : ErrorCode.Unavailable, said);
  };
  return {
    async bundle(seenSize) {
      let last: BkvError | undefined;
      let down = 0;
      for (let k = 0; k < bases.length; k++) {
        try {
          return await bundleFrom(bases[(preferred + k) % bases.length]!, seenSize);
        } catch (e) {
          if (!(e instanceof BkvError) || e.code !== ErrorCode.Unavailable) throw e;
          if (unreachable.has(e)) down++;
          last = e;
        }
      }
      throw allFailed(bases.length, down, last!);
    },
    async send(envelope, seenSize) {
      let last: BkvError | undefined;
      let down = 0;
      for (let k = 0; k < bases.length; k++) {
        const i = (preferred + k) % bases.length;
        try {
          const r = await sendTo(bases[i]!, envelope, seenSize);
          preferred = leaderHint >= 0 ? leaderHint : i;
          leaderHint = -1;
          return r;
        } catch (e) {
          // Another host can take the same sealed request: only unavailability moves on.
          if (!(e instanceof BkvError) || e.code !== ErrorCode.Unavailable) throw e;
          if (unreachable.has(e)) down++;
          last = e;
        }
      }
      throw allFailed(bases.length, down, last!);
    },
  };
}
