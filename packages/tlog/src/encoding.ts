/** The C2SP text encodings live in @bkv/wire (tlog-encoding.ts) so the HSM core can read checkpoints. */
export { fromBase64, isSize, parseDecimal, toBase64 } from "@bkv/wire";
