/**
 * Noise over a connection that writes each encrypted message with one socket write.
 *
 * @chainsafe/libp2p-noise (17.0.0) frames every encrypted message as a list of two buffers,
 * its 2-byte length and the ciphertext, and sends that list to the connection below it; the
 * TCP connection (@libp2p/tcp) writes each buffer of a list with its own `socket.write`. With
 * TCP_NODELAY (libp2p sets it) each message therefore cost two write syscalls and left as two
 * segments: the peer woke for the 2 length bytes, read them, and woke again for the rest.
 * strace of a writer publishing one put to two peers:
 *
 *     write(24, "\0\267", 2) = 2
 *     write(24, "\274\220o\343!...", 183) = 183
 *     write(25, "\0\267", 2) = 2
 *     write(25, "\"dS\231\fpc...", 183) = 183
 *
 * and each reader: `read(24, "\0W", 65536) = 2`, then `read(24, ..., 65536) = 87`. Every
 * gossip message, sync frame, yamux window update and ping paid this, on both sides.
 *
 * `joinedWritesNoise()` is noise() whose connection's `send` first joins a list into one
 * buffer (Uint8ArrayList.subarray: no copy when the list holds one buffer, one copy of the
 * ciphertext otherwise, at most 64 KiB a noise message; cheap next to its encryption), so a
 * message is one write and one segment. The handshake goes through the same `send`. Only the
 * connection noise is handed is touched, and only through its public `send`. With a cluster
 * key, pnet sits between noise and TCP and already joins the list (its XOR stream takes one
 * buffer), so there it changes nothing.
 */
import { noise } from '@chainsafe/libp2p-noise';
import type { ConnectionEncrypter, MessageStream } from '@libp2p/interface';
import { noiseCrypto } from './noise-crypto.js';

type NoiseFactory = ReturnType<typeof noise>;
type NoiseComponents = Parameters<NoiseFactory>[0];

/** What `send` takes: a buffer or a list of them (the interface's own uint8arraylist type). */
type SendData = Parameters<MessageStream['send']>[0];

const joined = Symbol.for('ckv.noise.joinedWrites');

/**
 * noise() with node:crypto's key derivation (./noise-crypto.ts), writing each message with one
 * socket write (see the top comment).
 */
export function joinedWritesNoise(): (components: NoiseComponents) => ConnectionEncrypter {
  const factory = noise({ crypto: noiseCrypto });
  return (components) => {
    const encrypter = factory(components);
    const secureInbound = encrypter.secureInbound.bind(encrypter);
    const secureOutbound = encrypter.secureOutbound.bind(encrypter);
    encrypter.secureInbound = (connection, options) => secureInbound(joinWrites(connection), options);
    encrypter.secureOutbound = (connection, options) => secureOutbound(joinWrites(connection), options);
    return encrypter;
  };
}

/** Makes `connection.send` join a list of buffers into one before sending it. Idempotent. */
export function joinWrites<T extends MessageStream>(connection: T): T {
  const marked = connection as T & { [joined]?: true };
  if (marked[joined]) return connection;
  const send = connection.send;
  connection.send = (data: SendData): boolean => send.call(connection, data instanceof Uint8Array ? data : data.subarray());
  marked[joined] = true;
  return connection;
}
