/**
 * The environment a ckv process starts another node process with (the demo's nodes, the test
 * and bench harness's): the caller's, without NODE_EXTRA_CA_CERTS and with ckv's malloc
 * settings, as bin/ckv.js's launcher line starts ckv itself.
 *
 * NODE_EXTRA_CA_CERTS: Node reads that variable's file before any JavaScript runs (Node 20
 * then initializes OpenSSL and parses the whole CA bundle: ~36 ms of every start here,
 * docs/measurements.md); ckv makes no TLS connections, so the certificates are never used.
 *
 * GLIBC_TUNABLES (glibc reads it when the process starts; other C libraries ignore it, and so
 * does a glibc that lacks a tunable): unless the caller set it, `mallocTunables`. On the VMs
 * ckv is measured on (Firecracker) a first touch of an anonymous 4 KiB page costs ~11 us
 * (a fault the host serves), so memory a process frees to the kernel and then touches again is
 * paid for twice. glibc's defaults do that often in a node: they trim the heap's top once
 * 128 KiB is free, give large blocks their own mappings (unmapped on free), and give every
 * thread (libuv's pool, V8's compiler and GC workers) its own arena. A restarted node catching
 * up on 10k writes had ~16,500 page faults by the end; with these ~13,500, and the catch-up
 * ~10 % sooner (docs/measurements.md, 2026-12-06 (8)). The cost: memory freed after a burst
 * stays in the process (up to `top_pad` at the heap's top, blocks under `mmap_threshold`
 * in the heap) instead of going back to the system.
 *
 * `hugetlb=1` asks the kernel for transparent huge pages (madvise MADV_HUGEPAGE) on the memory
 * malloc gets from it, where the kernel's THP mode is `madvise` (Debian's and this VM's; with
 * `always` it changes nothing, with `never` it does nothing): a first touch then maps 2 MiB in
 * one fault instead of 512. The same restart had ~7,700 faults instead of ~12,900 and caught up
 * ~10 % sooner again; a node's resident memory grew by ~2-4 MiB (2026-12-06 (9)). The cost: a
 * touch zeroes 2 MiB at once, and where free memory is fragmented the kernel may compact it
 * first (THP's `defrag` setting decides).
 */

/**
 * glibc malloc settings, as GLIBC_TUNABLES: keep up to 1 GiB free at the heap's top before
 * trimming (default 128 KiB); blocks under 32 MiB (the default's ceiling when it adapts) come
 * from the heap, not their own mapping; grow the heap 64 MiB at a time (address space: pages
 * are only paid for when touched); at most 2 arenas (default 8 per core), so threads reuse
 * each other's freed memory; transparent huge pages for what malloc maps (default off). Keep
 * in step with bin/ckv.js's launcher line (a unit test checks).
 */
export const mallocTunables = 'glibc.malloc.trim_threshold=1073741824:glibc.malloc.mmap_threshold=33554432:glibc.malloc.top_pad=67108864:glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1';

export function ckvChildEnv(env: NodeJS.ProcessEnv = process.env, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const { NODE_EXTRA_CA_CERTS: _unused, ...rest } = env;
  return { GLIBC_TUNABLES: mallocTunables, ...rest, ...extra };
}
