//! berth's image store: gets images onto the node and turns them into
//! container root filesystems.
//!
//! - [`ImageStore::pull`] fetches an image from a registry (anonymous or
//!   basic auth, by tag or digest, OCI or Docker schema2, index → platform),
//!   verifying every byte, and unpacks its layers;
//! - [`ImageStore::import_oci_layout`], [`ImageStore::import_oci_archive`]
//!   and [`ImageStore::import_docker_archive`] do the same from an OCI
//!   layout (directory or tar) or a `docker save` archive;
//! - [`ImageStore::prepare_rootfs`] assembles a container's rootfs
//!   (overlayfs, or an explicit plain-copy fallback) and
//!   [`ImageStore::remove_rootfs`] takes it down;
//! - [`ImageStore::remove_image`] + [`ImageStore::gc`] free what no image
//!   or container holds;
//! - [`ImageStore::verify`] checks the store (fsck).
//!
//! Blobs are content-addressed and stored once; unpacked layers are stored
//! once per chain ID and shared by every image that has them. See the
//! module docs of [`store`] (layout), [`blob_store`] (verified ingest),
//! [`metadata`] (why redb), [`layer_unpack`] (hostile tars) and
//! [`registry`] (the pull pipeline).

pub mod blob_store;
pub mod chain_id;
pub mod compression;
pub mod digest;
pub mod docker_archive;
pub mod error;
pub mod gc;
pub mod inflight;
pub mod layer_unpack;
pub mod leases;
pub mod manifest;
pub mod metadata;
pub mod mount_api;
pub mod oci_layout;
pub mod platform;
pub mod progress;
pub mod reference;
pub mod registry;
pub mod snapshot;
pub mod store;
pub mod verify;
pub mod whiteouts;

pub use digest::Digest;
pub use error::{Result, StoreError};
pub use gc::GcReport;
pub use metadata::{ContainerRecord, ImageRecord, LayerRecord};
pub use platform::Platform;
pub use progress::{LayerProgress, LayerState, ProgressSink};
pub use reference::ImageRef;
pub use registry::{Credentials, PullOptions, PullReport};
pub use snapshot::{Rootfs, RootfsMode};
pub use store::{ImageStore, StoreOptions, StoreStats};
pub use verify::VerifyReport;
