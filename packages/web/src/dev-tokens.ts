/**
 * Development bearer tokens: EdDSA JWTs minted with the development token key, exactly as
 * `bkv dev token` mints them (subject = user, the configured issuer and audience, one hour), so
 * the hosts accept them too. Development only: anyone who can reach the web server gets a token
 * for any user.
 */
import { readFileSync } from "node:fs";
import { importJWK, type JWK, jwtVerify, SignJWT } from "jose";

export const TOKEN_TTL_SECONDS = 3600;

export interface DevTokens {
  mint(user: string, ttlSeconds?: number): Promise<string>;
  /** The token's subject, or null when the header holds no valid token. */
  verify(authorization: string | undefined): Promise<string | null>;
}

export async function devTokens(keyPath: string, issuer: string, audience: string): Promise<DevTokens> {
  let jwk: JWK;
  try {
    jwk = JSON.parse(readFileSync(keyPath, "utf8")) as JWK;
  } catch (e) {
    throw new Error(`cannot read the development token key ${keyPath}: ${(e as Error).message}`);
  }
  if (jwk.kty !== "OKP" || jwk.crv !== "Ed25519" || typeof jwk.d !== "string")
    throw new Error(`${keyPath} is not an Ed25519 private key (JWK)`);
  const privateKey = await importJWK(jwk, "EdDSA");
  const { d: _d, ...pub } = jwk;
  const publicKey = await importJWK(pub, "EdDSA");
  return {
    mint: (user, ttlSeconds = TOKEN_TTL_SECONDS) =>
      new SignJWT({})
        .setProtectedHeader({ alg: "EdDSA" })
        .setSubject(user)
        .setIssuer(issuer)
        .setAudience(audience)
        .setIssuedAt()
        .setExpirationTime(`${ttlSeconds}s`)
        .sign(privateKey),
    async verify(authorization) {
      if (authorization === undefined || !authorization.startsWith("Bearer ")) return null;
      try {
        const { payload } = await jwtVerify(authorization.slice(7), publicKey, {
          issuer,
          audience,
          algorithms: ["EdDSA"],
          requiredClaims: ["sub", "exp"],
        });
        return payload.sub ?? null;
      } catch {
        return null;
      }
    },
  };
}
