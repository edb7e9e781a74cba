//! Memory a long-lived process of dmgr (a keeper, a holder) gives back once it has
//! started, and the one buffer it reads into: each keeper idles for days, and hundreds
//! of them may be resident, so every page it keeps is counted hundreds of times.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;

const PAGE: usize = 4096;

/// Returns what the caller no longer needs to the kernel: the stack pages below the
/// caller's frame, free heap pages, and this process's mappings of dmgr's own code
/// and read-only data. The keeper allocates most of what it ever needs, and makes its
/// deepest calls (the parse of its file, the first spawn), while it starts, then idles
/// for days: without this, those pages stay resident in every keeper.
pub(crate) fn release_free_memory() {
    // First the stack, whose release reads /proc/self/maps into the heap: that
    // string is freed before the heap is trimmed, so its pages go back too.
    release_unused_stack();
    // SAFETY: malloc_trim(3) only walks glibc's own allocator state under its lock and
    // releases free pages; it has no preconditions.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::malloc_trim(0);
    }
    release_program_text();
}

/// What [`release_free_memory`] gives back but the heap: for a process whose heap
/// pages are still shared with its parent and siblings (a holder, which writes almost
/// nothing after its fork), where malloc_trim(3)'s writes to the free chunks would
/// copy more pages than it frees.
pub(crate) fn release_mappings() {
    release_unused_stack();
    release_program_text();
}

/// Discards the main thread's stack pages from a page below this function's frame
/// down: nothing lives below the stack pointer (past the ABI's 128-byte red zone;
/// signals are read from a signalfd, and std's handler has a stack of its own), and a
/// discarded page reads as zeros when the stack grows into it again.
#[inline(never)]
fn release_unused_stack() {
    let here = 0u8;
    let frame = std::ptr::addr_of!(here) as usize;
    let Some(low) = stack_start() else {
        return;
    };
    // A page of room below this frame's page for the madvise(2) wrapper's own frame,
    // which needs a few dozen bytes.
    let high = (frame & !(PAGE - 1)).saturating_sub(PAGE);
    if high <= low || frame < low {
        return;
    }
    // SAFETY: [low, high) is part of the main thread's stack mapping (`low` is its
    // start, and `high` lies below this frame), below every live frame: the callers'
    // and this one are above `high`, and madvise's own frame is within what is left
    // between (at least a page). No Rust value lives there, so dropping the pages (MADV_DONTNEED:
    // they read back as zeros) changes nothing the program can observe.
    unsafe {
        libc::madvise(low as *mut libc::c_void, high - low, libc::MADV_DONTNEED);
    }
}

/// The lowest address of the main thread's stack mapping (`[stack]` in
/// /proc/self/maps).
fn stack_start() -> Option<usize> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let line = maps.lines().find(|l| l.ends_with("[stack]"))?;
    usize::from_str_radix(line.split('-').next()?, 16).ok()
}

/// Unmaps from this process the pages of dmgr's executable that are never written
/// (its code, read-only data and unwind tables: the segments loaded without write
/// permission), which its start-up touched. They stay in the page cache, shared by
/// every dmgr process, and are mapped again, with a minor fault, when the code runs
/// again; meanwhile an idle keeper does not carry its share of about 2 MB of them
/// (about 20 KB of PSS at N = 100, and their page tables).
fn release_program_text() {
    for (start, end) in clean_program_segments() {
        // SAFETY: [start, end) is whole pages of one loaded segment of this program
        // that has no write permission (and lies in no writable segment's pages): file
        // pages that were never written, so MADV_DONTNEED only drops this process's
        // mappings of them, and each is read again from the file (the page cache) on
        // its next use. No memory the program can observe changes.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
        }
    }
}

/// The whole pages of the executable's loaded segments without write permission,
/// less any page that a writable segment (or the relocated, read-only-after-start
/// `GNU_RELRO` part) shares; none for a position-independent executable, whose load
/// bias this does not look up.
fn clean_program_segments() -> Vec<(usize, usize)> {
    // SAFETY: getauxval(3) reads the auxiliary vector the kernel gave the process; it
    // has no preconditions and returns 0 for an entry that is missing.
    let (phdr, phnum) = unsafe {
        (
            libc::getauxval(libc::AT_PHDR) as usize,
            libc::getauxval(libc::AT_PHNUM) as usize,
        )
    };
    if phdr == 0 || phnum == 0 || phnum > 64 {
        return Vec::new();
    }
    // SAFETY: AT_PHDR is the address of the program's headers, mapped for the life of
    // the process and never written after the kernel loaded them, and AT_PHNUM their
    // number.
    let headers = unsafe { std::slice::from_raw_parts(phdr as *const libc::Elf64_Phdr, phnum) };
    // A position-independent executable is loaded at a bias from its link addresses
    // (dmgr is linked at a fixed address: see build.rs).
    if headers
        .iter()
        .any(|h| h.p_type == libc::PT_PHDR && h.p_vaddr as usize != phdr)
    {
        return Vec::new();
    }
    let written: Vec<(usize, usize)> = headers
        .iter()
        .filter(|h| {
            (h.p_type == libc::PT_LOAD && h.p_flags & libc::PF_W != 0)
                || h.p_type == libc::PT_GNU_RELRO
                || h.p_type == libc::PT_TLS
                || h.p_type == libc::PT_DYNAMIC
        })
        .map(|h| {
            let start = h.p_vaddr as usize & !(PAGE - 1);
            let end = (h.p_vaddr as usize + h.p_memsz as usize).div_ceil(PAGE) * PAGE;
            (start, end)
        })
        .collect();
    headers
        .iter()
        .filter(|h| h.p_type == libc::PT_LOAD && h.p_flags & libc::PF_W == 0)
        .filter_map(|h| {
            let mut start = (h.p_vaddr as usize).div_ceil(PAGE) * PAGE;
            let mut end = (h.p_vaddr as usize + h.p_memsz as usize) & !(PAGE - 1);
            for &(w_start, w_end) in &written {
                if w_start < end && start < w_end {
                    // Keep clear of it: what lies below it, or else above it.
                    if w_start > start {
                        end = w_start;
                    } else {
                        start = w_end;
                    }
                }
            }
            (start < end).then_some((start, end))
        })
        .collect()
}

/// A read buffer in pages of its own, fresh from the kernel (an anonymous mapping):
/// a page costs memory only once the kernel writes into it. A buffer from the heap
/// would instead lie in pages that the keeper's start-up had already dirtied.
pub(crate) struct PageBuffer {
    mapped: Option<(NonNull<u8>, usize)>,
    /// Where the mapping failed: an ordinary buffer.
    fallback: Vec<u8>,
}

impl PageBuffer {
    /// A buffer of `len` bytes (rounded up to whole pages).
    pub(crate) fn new(len: usize) -> PageBuffer {
        let len = len.max(1).div_ceil(PAGE) * PAGE;
        // SAFETY: an anonymous private mapping at an address of the kernel's choice
        // touches no existing memory; the result is checked before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        match NonNull::new(ptr.cast::<u8>()).filter(|_| ptr != libc::MAP_FAILED) {
            Some(ptr) => PageBuffer {
                mapped: Some((ptr, len)),
                fallback: Vec::new(),
            },
            None => PageBuffer {
                mapped: None,
                fallback: Vec::with_capacity(len),
            },
        }
    }

    /// Reads once from `fd` into the buffer, and returns what was read.
    pub(crate) fn read(&mut self, fd: BorrowedFd<'_>) -> io::Result<&[u8]> {
        let Some((ptr, len)) = self.mapped else {
            return super::read_spare(fd, &mut self.fallback);
        };
        // SAFETY: read(2) writes at most `len` bytes at `ptr`, the mapping this value
        // owns, which `&mut self` holds exclusively.
        let n = unsafe { libc::read(fd.as_raw_fd(), ptr.as_ptr().cast(), len) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel wrote the first `n <= len` bytes of the mapping, which
        // lives as long as `self`.
        Ok(unsafe { std::slice::from_raw_parts(ptr.as_ptr(), n as usize) })
    }
}

impl Drop for PageBuffer {
    fn drop(&mut self) {
        if let Some((ptr, len)) = self.mapped.take() {
            // SAFETY: the mapping was made by `new` with this length, and no slice of
            // it outlives `&mut self`.
            unsafe {
                libc::munmap(ptr.as_ptr().cast(), len);
            }
        }
    }
}
