/** The transparency-log library's typed errors live in @bkv/wire (tlog-errors.ts) so the HSM core can read logs too. */
export { ensure, isTlogError, TlogError, TlogErrorCode } from "@bkv/wire";
