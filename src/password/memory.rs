//! Argon2's working memory (19 MiB at the default parameters), mapped from the kernel for a
//! hashing thread and given back whole when no hash is waiting.
//!
//! Why not a `Vec`: glibc serves a freed block of this size again from its heap rather than
//! returning it, so memory freed after a burst of logins stayed in the process (300-480 MB once).
//! An anonymous mapping is returned by `munmap`, always. Asking for transparent huge pages
//! makes mapping it again cheap: 3-5 ms of page faults per hash instead of 10.

use std::io;
use std::ptr::NonNull;

use argon2::Block;

/// Huge pages are this size on x86-64 and aarch64: aligning to it lets the kernel use them.
const HUGE_PAGE: usize = 2 << 20;

/// `count` argon2 blocks in their own anonymous mapping, zeroed by the kernel.
pub(super) struct HashMemory {
    mapping: NonNull<libc::c_void>,
    mapping_len: usize,
    blocks: NonNull<Block>,
    count: usize,
}

// SAFETY: the mapping is owned by this value alone, like a `Box<[Block]>`.
unsafe impl Send for HashMemory {}

impl HashMemory {
    pub(super) fn map(count: usize) -> io::Result<HashMemory> {
        let too_large = || io::Error::new(io::ErrorKind::InvalidInput, "argon2 memory too large");
        let len = count
            .checked_mul(size_of::<Block>())
            .ok_or_else(too_large)?;
        // Room to start the blocks on a huge-page boundary.
        let mapping_len = len.checked_add(HUGE_PAGE).ok_or_else(too_large)?;
        // SAFETY: a fresh private anonymous mapping; no existing memory is touched.
        let mapping = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                mapping_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if mapping == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mapping = NonNull::new(mapping).expect("mmap never maps address 0 here");
        let offset = mapping.as_ptr().align_offset(HUGE_PAGE);
        // SAFETY: offset < HUGE_PAGE, so the blocks lie inside the mapping.
        let start = unsafe { mapping.byte_add(offset) };
        advise_huge_pages(start, len);
        Ok(HashMemory {
            mapping,
            mapping_len,
            blocks: start.cast(),
            count,
        })
    }

    pub(super) fn blocks(&mut self) -> &mut [Block] {
        // SAFETY: `count` blocks, aligned (to 2 MiB), zero-initialised by the kernel (all-zero
        // is a valid `Block`), and borrowed mutably through `&mut self` only.
        unsafe { std::slice::from_raw_parts_mut(self.blocks.as_ptr(), self.count) }
    }
}

impl Drop for HashMemory {
    fn drop(&mut self) {
        // SAFETY: exactly the mapping `map` made; no borrow of it outlives `self`.
        unsafe { libc::munmap(self.mapping.as_ptr(), self.mapping_len) };
    }
}

#[cfg(target_os = "linux")]
fn advise_huge_pages(start: NonNull<libc::c_void>, len: usize) {
    // Only advice: where transparent huge pages are off, ordinary pages are used.
    // SAFETY: the range lies inside a mapping this process owns.
    unsafe { libc::madvise(start.as_ptr(), len, libc::MADV_HUGEPAGE) };
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_start: NonNull<libc::c_void>, _len: usize) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_zeroed_aligned_and_writable() {
        let mut memory = HashMemory::map(1024).unwrap();
        let blocks = memory.blocks();
        assert_eq!(blocks.len(), 1024);
        assert_eq!(blocks.as_ptr().align_offset(HUGE_PAGE), 0);
        assert!(
            blocks
                .iter()
                .all(|block| block.as_ref().iter().all(|&w| w == 0))
        );
        blocks[1023].as_mut().fill(u64::MAX);
        assert_eq!(blocks[1023].as_ref()[127], u64::MAX);
    }
}
