//! Argon2's working memory (19 MiB at the default parameters), mapped from the kernel for a
//! hashing thread and given back whole when no hash is waiting.
//!
//! Why not a `Vec`: glibc serves a freed block of this size again from its heap rather than
//! returning it, so memory freed after a burst of logins stayed in the process (300-480 MB once).
//! An anonymous mapping (memmap2's `map_anon`: one `mmap`, one `munmap` on drop) is returned,
//! always. Asking for transparent huge pages makes mapping it again cheap: 3-5 ms of page
//! faults per hash instead of 10.

use std::io;

use argon2::Block;
use memmap2::{MmapMut, MmapOptions};

/// Huge pages are this size on x86-64 and aarch64: aligning to it lets the kernel use them.
const HUGE_PAGE: usize = 2 << 20;

/// `count` argon2 blocks in their own anonymous mapping, zeroed by the kernel.
pub(super) struct HashMemory {
    mapping: MmapMut,
    /// Where the blocks start in `mapping`: its first huge-page boundary.
    offset: usize,
    count: usize,
}

impl HashMemory {
    pub(super) fn map(count: usize) -> io::Result<HashMemory> {
        let too_large = || io::Error::new(io::ErrorKind::InvalidInput, "argon2 memory too large");
        let len = count
            .checked_mul(size_of::<Block>())
            .ok_or_else(too_large)?;
        // Room to start the blocks on a huge-page boundary.
        let mapping_len = len.checked_add(HUGE_PAGE).ok_or_else(too_large)?;
        let mapping = MmapOptions::new().len(mapping_len).map_anon()?;
        let offset = mapping.as_ptr().align_offset(HUGE_PAGE);
        advise_huge_pages(&mapping, offset, len);
        Ok(HashMemory {
            mapping,
            offset,
            count,
        })
    }

    pub(super) fn blocks(&mut self) -> &mut [Block] {
        let bytes = &mut self.mapping[self.offset..];
        debug_assert!(bytes.len() >= self.count * size_of::<Block>());
        // SAFETY: the bytes from `offset` hold `count` blocks (`map` mapped `HUGE_PAGE` more than
        // their size, and `offset < HUGE_PAGE`); they are aligned (to 2 MiB, more than `Block`
        // needs), zero-initialised by the kernel (all-zero is a valid `Block`), and borrowed
        // mutably through `&mut self` only.
        unsafe { std::slice::from_raw_parts_mut(bytes.as_mut_ptr().cast::<Block>(), self.count) }
    }
}

#[cfg(target_os = "linux")]
fn advise_huge_pages(mapping: &MmapMut, offset: usize, len: usize) {
    // Only advice: where transparent huge pages are off, ordinary pages are used.
    let _ = mapping.advise_range(memmap2::Advice::HugePage, offset, len);
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_mapping: &MmapMut, _offset: usize, _len: usize) {}

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
