/**
 * Bearer-token authentication: JWTs signed by the configured issuer (EdDSA / Ed25519). The token's
 * subject is the user; a user may act only on their own record. Tokens are for the host's
 * authorization and rate limits only: the HSM trusts nothing but OPAQUE.
 */

import { BkvError, ErrorCode } from "@bkv/wire";
import { importJWK, type JWK, jwtVerify } from "jose";

export interface TokenIssuerConfig {
  /** Issuer's public key as a JWK (OKP / Ed25519). */
  publicKeyJwk: JWK;
  issuer: string;
  audience: string;
}

const CACHE_MAX = 10_000;

export class TokenVerifier {
  private key: Promise<CryptoKey | Uint8Array>;
  /** Tokens already verified, with their subject and expiry (ms): a signature check per token, not per request. */
  private cache = new Map<string, { sub: string; exp: number }>();

  constructor(private readonly cfg: TokenIssuerConfig) {
    if (cfg.publicKeyJwk.d !== undefined) throw new Error("token issuer key must be a public key");
    this.key = importJWK(cfg.publicKeyJwk, "EdDSA");
  }

  /** Returns the user id (the token's subject). Throws BkvError FORBIDDEN. */
  async verify(authorization: string | undefined): Promise<string> {
    if (authorization === undefined || !authorization.startsWith("Bearer ")) {
      throw new BkvError(ErrorCode.Forbidden, "missing bearer token");
    }
    const token = authorization.slice(7);
    const hit = this.cache.get(token);
    if (hit !== undefined && hit.exp > Date.now()) return hit.sub;
    try {
      const { payload } = await jwtVerify(token, await this.key, {
        issuer: this.cfg.issuer,
        audience: this.cfg.audience,
        algorithms: ["EdDSA"],
        requiredClaims: ["sub", "exp"],
      });
      // Full: forget the oldest token (it only costs one more signature check), never all of them.
      if (this.cache.size >= CACHE_MAX) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(token, { sub: payload.sub!, exp: payload.exp! * 1000 });
      return payload.sub!;
    } catch (e) {
      throw new BkvError(ErrorCode.Forbidden, "invalid or expired token", { cause: e });
    }
  }
}
