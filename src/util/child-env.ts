/**
 * The environment a ckv process starts another node process with (the demo's nodes): the
 * caller's, without NODE_EXTRA_CA_CERTS, as bin/ckv.js's launcher line starts ckv itself.
 * Node reads that variable's file before any JavaScript runs (Node 20 then initializes
 * OpenSSL and parses the whole CA bundle: ~36 ms of every start here, docs/measurements.md);
 * ckv makes no TLS connections, so the certificates are never used.
 */
export function ckvChildEnv(env: NodeJS.ProcessEnv = process.env, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const { NODE_EXTRA_CA_CERTS: _unused, ...rest } = env;
  return { ...rest, ...extra };
}
