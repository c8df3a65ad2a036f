/** Fastify options shared by the client and admin listeners: HTTPS from files, trusted proxies. */
import { readFileSync } from "node:fs";
import type { TlsFiles } from "./config.js";

export function listenerOptions(tls: TlsFiles | undefined, trustProxy: string[] | undefined) {
  return {
    // Without trusted proxies, the connection's address is the client's (X-Forwarded-For ignored).
    trustProxy: trustProxy === undefined || trustProxy.length === 0 ? false : trustProxy,
    ...(tls === undefined
      ? {}
      : {
          https: {
            cert: readFileSync(tls.certFile),
            key: readFileSync(tls.keyFile),
            minVersion: "TLSv1.2" as const,
          },
        }),
  };
}
