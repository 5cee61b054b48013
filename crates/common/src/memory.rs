//! How the C library's allocator keeps freed memory.
//!
//! glibc hands freed memory at the top of a heap back to the kernel once it passes 128 KiB,
//! and the next allocation faults it back in, page by page, zeroed. The producer frees a
//! whole page of users at once (megabytes at 5 000 users per page) and allocates the next
//! page's right after, so it paid those faults on every page: 15–26 % of the bench's CPU
//! was the kernel's, and more the less free memory the machine had. Keeping what was freed
//! for the next page took the producer from 8–13 µs to 5.5–7.2 µs of CPU per user
//! (docs/benchmarks.md, "Producer CPU per user"); its peak RSS did not grow, since the
//! same pages are reused.

/// Freed memory (up to 64 MiB) stays with the process for its next allocations.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn keep_freed_memory() {
    // SAFETY: mallopt only sets allocator parameters; the arguments are valid for it
    // (the mmap threshold at most half of glibc's 64 MiB heap size on 64-bit).
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
    }
}

/// Other allocators keep their own policy.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn keep_freed_memory() {}
