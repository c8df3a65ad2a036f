/**
 * WHATWG TransformStream wrappers around the backup encryptor and decryptor, for browsers (and any
 * runtime with web streams): `file.stream().pipeThrough(backupEncryptStream(key))`. Backpressure is
 * the stream machinery's; memory stays at about one chunk per stage.
 */
import { type BackupDecryptOptions, type BackupDecryptor, createBackupDecryptor } from "./decryptor.js";
import { type BackupEncryptOptions, type BackupEncryptor, createBackupEncryptor } from "./encryptor.js";

interface Streaming {
  push(bytes: Uint8Array): Promise<Uint8Array[]>;
  finish(): Promise<Uint8Array[]>;
}

function transform<T extends Streaming>(make: () => Promise<T>): TransformStream<Uint8Array, Uint8Array> {
  let inner: T | undefined;
  const emit = (c: TransformStreamDefaultController<Uint8Array>, parts: Uint8Array[]) => {
    for (const p of parts) c.enqueue(p);
  };
  return new TransformStream<Uint8Array, Uint8Array>({
    async start() {
      inner = await make();
    },
    async transform(chunk, c) {
      emit(c, await inner!.push(chunk));
    },
    async flush(c) {
      emit(c, await inner!.finish());
    },
  });
}

/** Plaintext in, backup out. */
export function backupEncryptStream(
  key: Uint8Array,
  opts?: BackupEncryptOptions,
): TransformStream<Uint8Array, Uint8Array> {
  return transform<BackupEncryptor>(() => createBackupEncryptor(key, opts));
}

/**
 * Backup in, verified plaintext out. The stream errors with the decryptor's BkvError; plaintext
 * already passed downstream is only known complete once the stream closes without error.
 */
export function backupDecryptStream(
  key: Uint8Array,
  opts?: BackupDecryptOptions,
): TransformStream<Uint8Array, Uint8Array> {
  return transform<BackupDecryptor>(() => createBackupDecryptor(key, opts));
}
