//! Integration tests of berth-imagestore against real components: the
//! fixture OCI layouts, overlayfs, and Debian's docker-registry seeded by
//! skopeo. One test binary (modules below) to keep link time down.

mod common;
mod fault_proxy;

mod blobs;
mod faults;
mod gc;
mod import_unpack;
mod malicious;
mod pull;
mod rootfs;
