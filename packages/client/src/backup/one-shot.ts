/** Whole-buffer encryption and decryption of backups, for small data held in memory. */
import { concatBytes } from "@bkv/wire";
import { type BackupDecryptOptions, createBackupDecryptor } from "./decryptor.js";
import { type BackupEncryptOptions, createBackupEncryptor } from "./encryptor.js";

export async function encryptBytes(
  key: Uint8Array,
  plaintext: Uint8Array,
  opts?: BackupEncryptOptions,
): Promise<Uint8Array> {
  const enc = await createBackupEncryptor(key, opts);
  const parts = await enc.push(plaintext);
  parts.push(...(await enc.finish()));
  return concatBytes(...parts);
}

/** Throws the decryptor's BkvError (WRONG_KEY, TRUNCATED, AUTHENTICATION, MALFORMED). */
export async function decryptBytes(
  key: Uint8Array,
  backup: Uint8Array,
  opts?: BackupDecryptOptions,
): Promise<Uint8Array> {
  const dec = await createBackupDecryptor(key, opts);
  const parts = await dec.push(backup);
  parts.push(...(await dec.finish()));
  return concatBytes(...parts);
}
