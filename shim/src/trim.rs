//! Keeping an idle shim's resident set small.
//!
//! Most of a fresh shim's RSS is not its own memory: it is file pages of the binary and
//! of libc mapped by the kernel's fault-around (up to 64 KiB around every page fault),
//! most of which an idle shim never touches again. When the shim has been quiet for a
//! while (the events thread's idle tick), [`release_clean_file_pages`] drops the page
//! table entries of every *non-writable, file-backed mapping that holds no anonymous
//! (copy-on-write) page*: nothing private can be lost (those pages are exactly the
//! file's, still in the page cache), and code that runs again simply faults its pages
//! back in.

use std::fs::File;
use std::io::{BufRead, BufReader};

/// Drops the clean, read-only file pages (see the module doc).
pub fn release_clean_file_pages() {
    let Ok(f) = File::open("/proc/self/smaps") else {
        return;
    };
    let mut candidate: Option<(usize, usize)> = None;
    let mut targets = Vec::new();
    for line in BufReader::new(f).lines().map_while(Result::ok) {
        let mut parts = line.split_whitespace();
        let first = parts.next().unwrap_or("");
        if let Some((start, end)) = first.split_once('-') {
            if let (Ok(start), Ok(end)) = (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            ) {
                let perms = parts.next().unwrap_or("");
                let _offset = parts.next();
                let _dev = parts.next();
                let inode = parts.next().unwrap_or("0");
                let path = parts.next().unwrap_or("");
                candidate = (perms.len() == 4
                    && !perms.contains('w')
                    && inode != "0"
                    && path.starts_with('/'))
                .then_some((start, end));
                continue;
            }
        }
        if first == "Anonymous:" {
            let anon: u64 = parts.next().and_then(|v| v.parse().ok()).unwrap_or(1);
            if let Some(range) = candidate.take() {
                if anon == 0 {
                    targets.push(range);
                }
            }
        }
    }
    for (start, end) in targets {
        // SAFETY: [start, end) is a whole mapping of this process that is not writable,
        // is backed by a file and holds no anonymous page (per smaps, and a non-writable
        // mapping cannot gain one): MADV_DONTNEED only unmaps page-cache pages that are
        // faulted back in, unchanged, on the next access. No Rust reference points into
        // it as owned memory; code and read-only data stay valid addresses.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
        }
    }
}
