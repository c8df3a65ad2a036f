/**
 * Backup keys and the backup file format: the browser-safe core (WebCrypto by default; Node callers
 * pass nodeChunkCipher from @bkv/client/node for speed).
 */
export {
  type ChunkCipher,
  type ChunkCipherFactory,
  GCM_NONCE_SIZE,
  GCM_TAG_SIZE,
  type MaybePromise,
  webCryptoCipher,
} from "./cipher.js";
export { type BackupDecryptOptions, type BackupDecryptor, createBackupDecryptor } from "./decryptor.js";
export { type BackupEncryptOptions, type BackupEncryptor, createBackupEncryptor } from "./encryptor.js";
export {
  BACKUP_HEADER_SIZE,
  BACKUP_MAGIC,
  BACKUP_VERSION,
  type BackupHeader,
  backupSize,
  DEFAULT_CHUNK_SIZE,
  decodeHeader as decodeBackupHeader,
  HeaderOffset as BackupHeaderOffset,
  MAX_CHUNK_SIZE,
  MIN_CHUNK_SIZE,
} from "./format.js";
export {
  BACKUP_KEY_SIZE,
  backupKeyId,
  formatBackupKey,
  generateBackupKey,
  KEY_ID_SIZE,
  parseBackupKey,
} from "./key.js";
export { decryptBytes, encryptBytes } from "./one-shot.js";
export { backupDecryptStream, backupEncryptStream } from "./web-streams.js";
