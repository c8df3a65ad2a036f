/**
 * Message sizes of OPAQUE (RFC 9807) with ristretto255 and SHA-512 (Nn = Nseed = 32, Npk = Nsk = Noe = 32,
 * Nh = Nm = Nx = 64). Every OPAQUE message that crosses a trust boundary is checked against these.
 */
export const OpaqueSize = {
  /** blinded_message */
  registrationRequest: 32,
  /** evaluated_message + server_public_key */
  registrationResponse: 64,
  /** client_public_key + masking_key + envelope (nonce + auth_tag) */
  registrationRecord: 32 + 64 + 32 + 64,
  /** KE1: credential_request (blinded_message) + client_nonce + client_public_keyshare */
  ke1: 32 + 32 + 32,
  /** KE2: evaluated_message + masking_nonce + masked_response + server_nonce + server_keyshare + server_mac */
  ke2: 32 + 32 + (32 + 32 + 64) + 32 + 32 + 64,
  /** KE3: client_mac */
  ke3: 64,
} as const;
