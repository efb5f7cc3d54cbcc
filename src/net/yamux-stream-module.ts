/**
 * Loads @chainsafe/libp2p-yamux's stream module, whose YamuxStream class the package does not
 * export (./yamux-window.ts patches it). Unbundled, the file beside the package's resolved
 * entry point is the very module libp2p uses (one URL, one module instance).
 *
 * Bundled, it would not be: the bundle holds its own copy of yamux, so a file-URL import would
 * load a second copy from node_modules and patch that one, silently changing nothing.
 * scripts/bundle.mjs therefore replaces this module in the bundle with a static import of the
 * same file as yamux's own `./stream.js` (one path, one bundled module): keep this module's
 * export a single async function with this name.
 */
export async function loadYamuxStreamModule(): Promise<unknown> {
  const entry = import.meta.resolve('@chainsafe/libp2p-yamux');
  return import(new URL('./stream.js', entry).href);
}
