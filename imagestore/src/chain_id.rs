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

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Digest {
        s.parse().expect("digest")
    }

    /// Expected values computed independently with coreutils:
    /// `printf '%s %s' "$parent" "$diff" | sha256sum`.
    #[test]
    fn matches_independently_computed_values() {
        let a = d("sha256:589f0d58b9053a4ff7329b8fdb4f9dd120e29354c086ad0b3b10733f6cfd6de3");
        let b = d("sha256:55fea2a37a9fc5963f1beccd0d162b856e6bd05ca07cdd3726847846ab740f0d");
        let c = d("sha256:e6c65c655ca8172ab7a2b634dab3220a45472dd6571b6efd956ccc05e229a201");
        let chains = chain_ids(&[a.clone(), b, c]);
        assert_eq!(
            chains,
            vec![
                a,
                d("sha256:267c5fd16af60e52927fabf0a36a31f3b5a2069347f7f00c7bd7f93f6ebc01f4"),
                d("sha256:82c0ed5f6c15be9b9180a8c04b9f2c676d74af6db13c711f5bb47a0fa43b56df"),
            ]
        );
        assert!(chain_ids(&[]).is_empty());
    }
}
