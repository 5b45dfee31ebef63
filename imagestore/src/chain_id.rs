//! Chain IDs: the identity of "this layer applied on top of exactly these
//! layers", as containerd and the OCI image spec define it:
//! `chainID(L1) = diffID(L1)`, `chainID(Ln) = sha256(chainID(Ln-1) + " " + diffID(Ln))`
//! (digests in their `sha256:<hex>` string form). Unpacked layers are
//! stored once per chain ID, so two images that share a base share its
//! directory.

use crate::digest::Digest;

/// The chain ID of each prefix of `diff_ids` (base first): element `i` is
/// the chain ID of layers `0..=i`.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let next = match out.last() {
            None => diff_id.clone(),
            Some(parent) => Digest::of(format!("{parent} {diff_id}").as_bytes()),
        };
        out.push(next);
    }
    out
}
