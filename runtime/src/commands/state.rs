//! `state`: the runtime-spec state JSON (plus runc's extra `rootfs`, `created`, `owner`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::container_id::ContainerId;
use crate::error::Error;
use crate::state::{ContainerState, StateRoot, Status};

/// The JSON shape of `state` (and of each `list --format json` entry).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StateView {
    /// Runtime-spec version of the config.
    pub oci_version: String,
    /// Container id.
    pub id: String,
    /// Init's host pid (0 once stopped, like runc).
    pub pid: i32,
    /// Status.
    pub status: Status,
    /// Bundle path.
    pub bundle: PathBuf,
    /// Rootfs path.
    pub rootfs: PathBuf,
    /// Creation time.
    pub created: String,
    /// Owner user name.
    pub owner: String,
    /// Annotations.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The user name for `uid` (`#uid` if unknown, the way `ls` falls back).
pub fn owner_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map_or_else(|| format!("#{uid}"), |u| u.name)
}

impl StateView {
    /// Builds the view with the live status.
    pub fn new(root: &StateRoot, st: &ContainerState) -> Self {
        let status = root.status(st);
        Self {
            oci_version: st.oci_version.clone(),
            id: st.id.clone(),
            pid: if matches!(status, Status::Stopped) {
                0
            } else {
                st.init_pid
            },
            status,
            bundle: st.bundle.clone(),
            rootfs: st.rootfs.clone(),
            created: st.created.clone(),
            owner: owner_name(st.owner_uid),
            annotations: st.annotations.clone(),
        }
    }
}

/// Prints the state of `id`.
pub fn run(ctx: &Context, id: &str) -> Result<(), Error> {
    let id = ContainerId::parse(id)?;
    let st = ctx.root.load(&id)?;
    let view = StateView::new(&ctx.root, &st);
    let json = serde_json::to_string_pretty(&view).expect("state view serialises");
    println!("{json}");
    Ok(())
}

use super::Context;
