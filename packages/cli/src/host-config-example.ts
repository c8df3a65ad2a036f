/** The commented example config `bkv host init` writes (JSON with comments; docs/host-config.md). */
import { join } from "node:path";

export function hostConfigExample(node: number, adminKeySha256: string, dir: string): string {
  const at = (f: string) => JSON.stringify(join(dir, f));
  return `// Host agent config for node ${node} of a fleet (bkv host --config FILE). JSON with comments.
// Every field: docs/host-config.md. Checked at start; any problem stops the host with a CONFIG error.
{
  // This member's node number: its position in the fleet's genesis (1..N), the same in every config.
  "node": ${node},

  // The client API (HTTPS). Clients and the web app reach the vault here.
  "listen": { "host": "0.0.0.0", "port": 8443 },
  "tls": { "certFile": ${at("tls/host.crt")}, "keyFile": ${at("tls/host.key")} },

  // The only names this host answers to (the Host header). Any other is refused: DNS rebinding.
  "hostNames": ["vault-${node}.example.net"],

  // Reverse proxies whose X-Forwarded-For names the client (addresses or CIDR). Empty: none.
  "trustProxy": [],

  // The operator's listener: the genesis ceremony (bkv fleet create --hosts) and status.
  // Requests need the admin key (admin.key beside this file); only its SHA-256 is here.
  "admin": {
    "listen": { "host": "10.0.0.${node}", "port": 8444 },
    "keySha256": "${adminKeySha256}"
  },

  // Where the other members' hosts connect. Streams are authenticated by host keys
  // (bkv host key --out FILE prints the public key that goes into the other hosts' peers).
  "peerListen": { "host": "10.0.0.${node}", "port": 8445 },
  "hostKeyFile": ${at("host-key.pem")},

  // The other members: their client URL, peer address and public host key (64 hex).
  "peers": [
    // { "node": 2, "url": "https://vault-2.example.net:8443",
    //   "peerAddress": { "host": "10.0.0.2", "port": 8445 }, "hostKey": "<64 hex>" }
  ],

  // This data center's HSM: software (development) or pkcs11 (module and token recorded in its
  // folder when it was provisioned).
  "hsm": { "platform": "software", "dir": ${at("hsm")} },

  // The host's own storage of the HSM's sealed log (SQLite). Back it up; restoring it is safe.
  "storagePath": ${at("vault.sqlite")},

  // The issuer of users' bearer tokens (EdDSA JWTs): its public key only.
  "auth": {
    "issuer": "https://login.example.net",
    "audience": "bkv-vault",
    "publicKeyJwk": { "kty": "OKP", "crv": "Ed25519", "x": "<issuer's public key, base64url>" }
  },

  // Token buckets per user and per client address.
  "rateLimits": {
    "perUser": { "capacity": 30, "refillPerSecond": 1 },
    "perAddress": { "capacity": 600, "refillPerSecond": 100 }
  },

  // Browser origins allowed to call the client API (CORS).
  "corsOrigins": ["https://app.example.net"],

  // Where the fleet is published (the log's URL, namespace and epoch fixed at genesis).
  "transparency": { "log": "https://log.example.net", "namespace": "example-vault", "epoch": 1 }
}
`;
}
