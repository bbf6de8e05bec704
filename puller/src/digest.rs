//! Content digests: what the puller computes itself (the sha256 of a blob, the chainIDs of a
//! layer stack), shared by the registry client, the cache and the pull.

use sha2::{Digest as _, Sha256};

/// The `sha256:<hex>` digest of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// The chainIDs of a layer stack given its diffIDs, bottom first (OCI image-spec:
/// ChainID(L0) = DiffID(L0), ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))).
pub fn chain_ids<S: AsRef<str>>(diff_ids: &[S]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let id = match out.last() {
            None => d.as_ref().to_string(),
            Some(below) => sha256_digest(format!("{below} {}", d.as_ref()).as_bytes()),
        };
        out.push(id);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_image_spec() {
        let (d0, d1, d2) = (
            sha256_digest(b"0"),
            sha256_digest(b"1"),
            sha256_digest(b"2"),
        );
        let ids = chain_ids(&[&d0, &d1, &d2]);
        assert_eq!(ids[0], d0, "a base layer's chainID is its diffID");
        assert_eq!(ids[1], sha256_digest(format!("{d0} {d1}").as_bytes()));
        assert_eq!(ids[2], sha256_digest(format!("{} {d2}", ids[1]).as_bytes()));
        // The same diff on another base is another layer.
        assert_ne!(chain_ids(&[&d2, &d1])[1], ids[1]);
        assert!(chain_ids::<&str>(&[]).is_empty());
    }
}
