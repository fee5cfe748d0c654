//! The plaintext of a backup: secret, label and metadata packed together and
//! padded, so that the ciphertext's length says little about the secret's.
//!
//! ```text
//! version u8 (1) | label_len u16 | label | metadata_len u16 | metadata
//!   | secret_len u32 | secret | zero bytes up to padded_len(total)
//! ```
//!
//! All integers big-endian. The padding is Padmé (Nikitin et al., "Reducing
//! Metadata Leakage from Encrypted Files and Communication with PURBs", 2019)
//! over a floor of 256 bytes: at most 12% overhead, and the padded length
//! reveals O(log log n) bits of the real one.

use std::fmt;

use zeroize::Zeroizing;

use crate::bytes::Reader;

/// The packing format this code reads and writes.
pub const PACKING_VERSION: u8 = 1;
/// The largest secret, in bytes.
pub const MAX_SECRET_LEN: usize = 16 * 1024;
/// The largest label, in bytes.
pub const MAX_LABEL_LEN: usize = crate::content::MAX_LABEL_LEN;
/// The largest metadata, in bytes.
pub const MAX_METADATA_LEN: usize = 1024;
/// The smallest padded plaintext.
pub const MIN_PADDED_LEN: usize = 256;

/// Why a secret could not be packed, or a recovered plaintext unpacked.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The secret is empty or over 16 KiB.
    #[error("secret must be 1 to {MAX_SECRET_LEN} bytes, got {0}")]
    SecretSize(usize),
    /// The label is empty, over 256 bytes, or has control characters.
    #[error("label must be 1 to {MAX_LABEL_LEN} bytes of text without control characters")]
    Label,
    /// The metadata is over 1 KiB.
    #[error("metadata must be at most {MAX_METADATA_LEN} bytes, got {0}")]
    MetadataSize(usize),
    /// A recovered plaintext is not a valid packing (only a broken or
    /// malicious owner can produce one: it decrypted under the backup's key).
    #[error("recovered plaintext is malformed")]
    Malformed,
}

/// A secret with its label and metadata. Zeroized on drop, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretMaterial {
    /// The secret bytes.
    pub secret: Zeroizing<Vec<u8>>,
    /// What the secret is, in the owner's words.
    pub label: String,
    /// Optional application data stored with the secret.
    pub metadata: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for SecretMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretMaterial")
            .field(
                "secret",
                &format_args!("<{} bytes redacted>", self.secret.len()),
            )
            .field("label", &self.label)
            .field("metadata", &format_args!("<{} bytes>", self.metadata.len()))
            .finish()
    }
}

/// The padded length for `len` bytes of packed plaintext.
pub const fn padded_len(len: usize) -> usize {
    let len = if len < MIN_PADDED_LEN {
        MIN_PADDED_LEN
    } else {
        len
    };
    // Padmé: keep the top floor(log2(e)) + 1 bits of len, where e = floor(log2(len)).
    let e = usize::BITS - 1 - len.leading_zeros();
    let s = u32::BITS - e.leading_zeros();
    let mask = (1usize << (e - s)) - 1;
    // Lengths this close to usize::MAX are refused long before (secrets are
    // at most 16 KiB); returning `len` keeps the function total and panic-free.
    match len.checked_add(mask) {
        Some(rounded) => rounded & !mask,
        None => len,
    }
}

impl SecretMaterial {
    /// Checks the limits: secret 1 byte to 16 KiB, label 1 to 256 bytes of
    /// text, metadata up to 1 KiB.
    pub fn check(&self) -> Result<(), SecretError> {
        if self.secret.is_empty() || self.secret.len() > MAX_SECRET_LEN {
            return Err(SecretError::SecretSize(self.secret.len()));
        }
        if self.label.is_empty()
            || self.label.len() > MAX_LABEL_LEN
            || self.label.chars().any(char::is_control)
        {
            return Err(SecretError::Label);
        }
        if self.metadata.len() > MAX_METADATA_LEN {
            return Err(SecretError::MetadataSize(self.metadata.len()));
        }
        Ok(())
    }

    /// The packed and padded plaintext.
    pub(crate) fn pack(&self) -> Result<Zeroizing<Vec<u8>>, SecretError> {
        self.check()?;
        // The limits above make these conversions infallible.
        let label_len = u16::try_from(self.label.len()).map_err(|_| SecretError::Label)?;
        let meta_len = u16::try_from(self.metadata.len())
            .map_err(|_| SecretError::MetadataSize(self.metadata.len()))?;
        let secret_len = u32::try_from(self.secret.len())
            .map_err(|_| SecretError::SecretSize(self.secret.len()))?;
        let len = 1 + 2 + self.label.len() + 2 + self.metadata.len() + 4 + self.secret.len();
        let mut out = Zeroizing::new(Vec::with_capacity(padded_len(len)));
        out.push(PACKING_VERSION);
        out.extend_from_slice(&label_len.to_be_bytes());
        out.extend_from_slice(self.label.as_bytes());
        out.extend_from_slice(&meta_len.to_be_bytes());
        out.extend_from_slice(&self.metadata);
        out.extend_from_slice(&secret_len.to_be_bytes());
        out.extend_from_slice(&self.secret);
        out.resize(padded_len(len), 0);
        Ok(out)
    }

    /// Reads a packed plaintext, refusing anything that `pack` would not write.
    pub(crate) fn unpack(bytes: &[u8]) -> Result<Self, SecretError> {
        let mut r = Reader::new(bytes);
        if r.u8() != Some(PACKING_VERSION) {
            return Err(SecretError::Malformed);
        }
        let label_len = r.u16().ok_or(SecretError::Malformed)?;
        let label = r.take(label_len.into()).ok_or(SecretError::Malformed)?;
        let meta_len = r.u16().ok_or(SecretError::Malformed)?;
        let metadata = r.take(meta_len.into()).ok_or(SecretError::Malformed)?;
        let secret_len = r.u32().ok_or(SecretError::Malformed)?;
        let secret = r
            .take(usize::try_from(secret_len).map_err(|_| SecretError::Malformed)?)
            .ok_or(SecretError::Malformed)?;
        let used = bytes.len() - r.remaining();
        if bytes.len() != padded_len(used) || r.rest().iter().any(|&b| b != 0) {
            return Err(SecretError::Malformed);
        }
        let material = Self {
            secret: Zeroizing::new(secret.to_vec()),
            label: String::from_utf8(label.to_vec()).map_err(|_| SecretError::Malformed)?,
            metadata: Zeroizing::new(metadata.to_vec()),
        };
        material.check().map_err(|_| SecretError::Malformed)?;
        Ok(material)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn material(secret: &[u8], label: &str) -> SecretMaterial {
        SecretMaterial {
            secret: Zeroizing::new(secret.to_vec()),
            label: label.to_owned(),
            metadata: Zeroizing::new(Vec::new()),
        }
    }

    #[test]
    fn padme_values() {
        assert_eq!(padded_len(1), 256);
        assert_eq!(padded_len(256), 256);
        assert_eq!(padded_len(257), 272);
        assert_eq!(padded_len(1000), 1024);
        assert_eq!(padded_len(17673), 18432);
        assert_eq!(padded_len(usize::MAX), usize::MAX, "no overflow at the top");
        for n in 1..40_000 {
            let p = padded_len(n);
            assert!(
                p >= n && p <= (n.max(256) * 112).div_ceil(100),
                "{n} -> {p}"
            );
        }
    }

    #[test]
    fn pack_unpack_round_trip() {
        let m = SecretMaterial {
            metadata: Zeroizing::new(b"{\"app\":\"x\"}".to_vec()),
            ..material(b"correct horse battery staple", "wallet seed")
        };
        let packed = m.pack().unwrap();
        assert_eq!(packed.len(), 256);
        assert_eq!(SecretMaterial::unpack(&packed).unwrap(), m);
        let mut bad = packed.to_vec();
        bad[255] = 1;
        assert_eq!(SecretMaterial::unpack(&bad), Err(SecretError::Malformed));
        assert_eq!(
            SecretMaterial::unpack(&packed[..200]),
            Err(SecretError::Malformed)
        );
    }

    #[test]
    fn limits() {
        assert_eq!(material(b"", "l").check(), Err(SecretError::SecretSize(0)));
        assert_eq!(
            material(&[1; MAX_SECRET_LEN + 1], "l").check(),
            Err(SecretError::SecretSize(MAX_SECRET_LEN + 1))
        );
        assert!(
            material(&[1; MAX_SECRET_LEN], &"l".repeat(256))
                .check()
                .is_ok()
        );
        assert_eq!(
            material(b"s", &"l".repeat(257)).check(),
            Err(SecretError::Label)
        );
        assert_eq!(material(b"s", "").check(), Err(SecretError::Label));
        assert_eq!(material(b"s", "a\nb").check(), Err(SecretError::Label));
        assert!(!format!("{:?}", material(b"hunter2", "l")).contains("hunter2"));
    }
}
