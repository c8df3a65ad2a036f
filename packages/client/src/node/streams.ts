/**
 * Node stream.Transform wrappers around the backup encryptor and decryptor (node:crypto by
 * default), for pipeline(): `pipeline(src, createEncryptStream(key), dst)`. Transform handles
 * backpressure; memory stays at about one chunk plus the streams' buffers.
 */
import { Transform } from "node:stream";
import {
  type BackupDecryptOptions,
  type BackupEncryptOptions,
  createBackupDecryptor,
  createBackupEncryptor,
} from "../backup/index.js";
import { nodeChunkCipher } from "./cipher.js";

interface Streaming {
  push(bytes: Uint8Array): Promise<Uint8Array[]>;
  finish(): Promise<Uint8Array[]>;
}

function transform(make: () => Promise<Streaming>): Transform {
  let inner: Streaming | undefined;
  return new Transform({
    construct(callback) {
      make().then((s) => {
        inner = s;
        callback();
      }, callback);
    },
    transform(chunk: Buffer, _encoding, callback) {
      inner!.push(chunk).then((parts) => {
        for (const p of parts) this.push(p);
        callback();
      }, callback);
    },
    flush(callback) {
      inner!.finish().then((parts) => {
        for (const p of parts) this.push(p);
        callback();
      }, callback);
    },
  });
}

/** Plaintext in, backup out. */
export function createEncryptStream(key: Uint8Array, opts: BackupEncryptOptions = {}): Transform {
  return transform(() => createBackupEncryptor(key, { cipher: nodeChunkCipher, ...opts }));
}

/**
 * Backup in, verified plaintext out; the stream errors with the decryptor's BkvError. Data already
 * passed on is only known to be the whole backup once the stream ends without error.
 */
export function createDecryptStream(key: Uint8Array, opts: BackupDecryptOptions = {}): Transform {
  return transform(() => createBackupDecryptor(key, { cipher: nodeChunkCipher, ...opts }));
}
