//! Allocator tuning for candle's CPU backend.
//!
//! Every candle CPU op allocates a fresh output buffer. glibc serves allocations above its
//! mmap threshold (128 KiB to 32 MiB, adaptive) with a new mapping and returns it to the
//! kernel on free, so each multi-MB activation of a training step is page-faulted and zeroed
//! by the kernel again. Measured on the 2-core development machine, d=512, batch 32: a
//! training step took 2.5 s with glibc's defaults and 1.4 s with large buffers kept in the
//! heap; eval-mode embedding, 0.175 s and 0.093 s per batch. The cost is that freed memory
//! stays with the process (its peak), not returned to the system.

/// Keeps freed large buffers in the process heap (glibc only; elsewhere a no-op). Call once,
/// at program start, before threads allocate. The `experiment` binary and the benches do.
pub fn keep_freed_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called before other threads
    // exist, and invalid values are rejected by returning 0, which we ignore.
    unsafe {
        const ONE_GIB: libc::c_int = 1 << 30;
        libc::mallopt(libc::M_MMAP_THRESHOLD, ONE_GIB);
        libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX);
        libc::mallopt(libc::M_TOP_PAD, 512 << 20);
    }
}
