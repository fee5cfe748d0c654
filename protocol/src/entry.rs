//! Feed entries: a fixed-size binary header, signed by its author, with the
//! payload kept apart so that it can be erased while the chain still verifies.
//!
//! ```text
//! offset size  field
//!      0    1  format version (1)
//!      1   32  author: ed25519 public key
//!     33    8  seq: u64 big-endian, from 1
//!     41   32  backlink: id of entry seq-1; 32 zero bytes when seq = 1
//!     73    8  timestamp: u64 big-endian, ms since the Unix epoch (advisory)
//!     81    1  payload kind: 0 public JSON, 1 boxed envelope
//!     82    4  payload length: u32 big-endian, at most 65536
//!     86   32  payload hash: SHA-256 of the payload
//!    118   64  ed25519 signature over SIGNATURE_DOMAIN || header[0..118]
//! ```
//!
//! The entry id is SHA-256 of those 182 bytes. The signature covers the exact
//! header bytes, never a re-serialisation.

use crate::bytes::Reader;
use crate::identity::Keypair;
use crate::ids::{EntryId, sha256};

/// The only header format this code reads and writes.
pub const FORMAT_VERSION: u8 = 1;
/// Bytes of the unsigned header.
pub const HEADER_LEN: usize = 118;
/// Bytes of an ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
/// Bytes of a signed header: header then signature.
pub const SIGNED_HEADER_LEN: usize = HEADER_LEN + SIGNATURE_LEN;
/// The largest payload an entry may carry.
pub const MAX_PAYLOAD_LEN: usize = 64 * 1024;
/// Prefixed to the header bytes before signing, so an entry signature can
/// never be mistaken for a signature over anything else.
pub const SIGNATURE_DOMAIN: &[u8] = b"sherd/entry/v1\0";

/// What an entry's payload holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayloadKind {
    /// Public content: UTF-8 JSON anyone can read.
    Public,
    /// Private content: a multi-recipient envelope.
    Boxed,
}

impl PayloadKind {
    fn to_byte(self) -> u8 {
        match self {
            Self::Public => 0,
            Self::Boxed => 1,
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(Self::Public),
            1 => Some(Self::Boxed),
            _ => None,
        }
    }
}

/// Why the bytes of a signed header could not be read.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The signed header is not exactly 182 bytes.
    #[error("signed header must be {SIGNED_HEADER_LEN} bytes, got {0}")]
    Length(usize),
    /// The format version is not one this code knows.
    #[error("unknown entry format version {0}")]
    UnknownVersion(u8),
    /// The payload kind byte is neither 0 (public) nor 1 (boxed).
    #[error("unknown payload kind {0}")]
    UnknownPayloadKind(u8),
    /// The sequence number is 0; feeds count from 1.
    #[error("sequence number must start at 1")]
    ZeroSeq,
    /// Entry 1 has a backlink, or a later entry has none.
    #[error("backlink must be zero exactly for entry 1")]
    Backlink,
    /// The declared payload length is over the 64 KiB cap.
    #[error("payload of {0} bytes is over the {MAX_PAYLOAD_LEN}-byte cap")]
    Oversize(u32),
}

/// The fields of an entry header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The author's ed25519 public key (checked against the feed on validation).
    pub author: [u8; 32],
    /// Position in the author's feed, from 1.
    pub seq: u64,
    /// The id of entry `seq - 1`; `None` for entry 1.
    pub backlink: Option<EntryId>,
    /// When the author says it wrote the entry, in ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// What the payload holds.
    pub payload_kind: PayloadKind,
    /// The payload's length in bytes.
    pub payload_len: u32,
    /// SHA-256 of the payload.
    pub payload_hash: [u8; 32],
}

impl Header {
    /// The exact bytes that are signed (without the domain prefix).
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        let mut w = out.as_mut_slice();
        let mut put = |bytes: &[u8]| {
            let (head, tail) = std::mem::take(&mut w).split_at_mut(bytes.len());
            head.copy_from_slice(bytes);
            w = tail;
        };
        put(&[FORMAT_VERSION]);
        put(&self.author);
        put(&self.seq.to_be_bytes());
        put(self.backlink.map_or([0u8; 32], |id| id.0).as_slice());
        put(&self.timestamp_ms.to_be_bytes());
        put(&[self.payload_kind.to_byte()]);
        put(&self.payload_len.to_be_bytes());
        put(&self.payload_hash);
        out
    }
}

/// A header with its signature, as it travels and is stored: 182 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeader {
    header: Header,
    bytes: [u8; SIGNED_HEADER_LEN],
    id: EntryId,
}

impl SignedHeader {
    /// Reads a signed header. Checks the form only; the signature and the
    /// place in the feed are checked by [`crate::feed::Feed`].
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let bytes: [u8; SIGNED_HEADER_LEN] = bytes
            .try_into()
            .map_err(|_| DecodeError::Length(bytes.len()))?;
        let header = decode_header(&bytes)?;
        Ok(Self {
            header,
            id: EntryId(sha256(&[&bytes])),
            bytes,
        })
    }

    /// Writes and signs the entry that follows `previous` in `author`'s feed.
    pub fn sign_next(
        author: &Keypair,
        previous: Option<&SignedHeader>,
        timestamp_ms: u64,
        payload_kind: PayloadKind,
        payload: &[u8],
    ) -> Result<Self, DecodeError> {
        let payload_len = u32::try_from(payload.len())
            .ok()
            .filter(|&n| n as usize <= MAX_PAYLOAD_LEN)
            .ok_or(DecodeError::Oversize(
                u32::try_from(payload.len()).unwrap_or(u32::MAX),
            ))?;
        let header = Header {
            author: *author.feed_id().as_bytes(),
            seq: previous.map_or(1, |p| p.header.seq.saturating_add(1)),
            backlink: previous.map(|p| p.id),
            timestamp_ms,
            payload_kind,
            payload_len,
            payload_hash: sha256(&[payload]),
        };
        let encoded = header.encode();
        let signature = author.sign(&signing_message(&encoded));
        let mut bytes = [0u8; SIGNED_HEADER_LEN];
        let (h, s) = bytes.split_at_mut(HEADER_LEN);
        h.copy_from_slice(&encoded);
        s.copy_from_slice(&signature);
        Ok(Self {
            header,
            id: EntryId(sha256(&[&bytes])),
            bytes,
        })
    }

    /// The decoded header fields.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The entry id.
    pub fn id(&self) -> EntryId {
        self.id
    }

    /// The 182 bytes: header then signature.
    pub fn as_bytes(&self) -> &[u8; SIGNED_HEADER_LEN] {
        &self.bytes
    }

    /// The 118 header bytes.
    pub fn header_bytes(&self) -> &[u8] {
        self.bytes.split_at(HEADER_LEN).0
    }

    /// The 64 signature bytes.
    pub fn signature(&self) -> [u8; SIGNATURE_LEN] {
        let mut sig = [0u8; SIGNATURE_LEN];
        sig.copy_from_slice(self.bytes.split_at(HEADER_LEN).1);
        sig
    }

    /// The message the signature covers: the domain, then the header bytes.
    pub fn signed_message(&self) -> [u8; SIGNATURE_DOMAIN.len() + HEADER_LEN] {
        let mut msg = [0u8; SIGNATURE_DOMAIN.len() + HEADER_LEN];
        let (d, h) = msg.split_at_mut(SIGNATURE_DOMAIN.len());
        d.copy_from_slice(SIGNATURE_DOMAIN);
        h.copy_from_slice(self.header_bytes());
        msg
    }
}

fn signing_message(header: &[u8; HEADER_LEN]) -> Vec<u8> {
    [SIGNATURE_DOMAIN, header.as_slice()].concat()
}

fn decode_header(bytes: &[u8; SIGNED_HEADER_LEN]) -> Result<Header, DecodeError> {
    // Every read below is within the 182 bytes we hold; the fallbacks can
    // never be taken but keep this free of panics by construction.
    let short = DecodeError::Length(bytes.len());
    let mut r = Reader::new(bytes);
    let version = r.u8().ok_or(short.clone())?;
    if version != FORMAT_VERSION {
        return Err(DecodeError::UnknownVersion(version));
    }
    let author = r.array::<32>().ok_or(short.clone())?;
    let seq = r.u64().ok_or(short.clone())?;
    let backlink = r.array::<32>().ok_or(short.clone())?;
    let timestamp_ms = r.u64().ok_or(short.clone())?;
    let kind = r.u8().ok_or(short.clone())?;
    let payload_len = r.u32().ok_or(short.clone())?;
    let payload_hash = r.array::<32>().ok_or(short)?;

    let payload_kind = PayloadKind::from_byte(kind).ok_or(DecodeError::UnknownPayloadKind(kind))?;
    if seq == 0 {
        return Err(DecodeError::ZeroSeq);
    }
    let backlink = match (seq, backlink == [0u8; 32]) {
        (1, true) => None,
        (1, false) | (_, true) => return Err(DecodeError::Backlink),
        (_, false) => Some(EntryId(backlink)),
    };
    if payload_len as usize > MAX_PAYLOAD_LEN {
        return Err(DecodeError::Oversize(payload_len));
    }
    Ok(Header {
        author,
        seq,
        backlink,
        timestamp_ms,
        payload_kind,
        payload_len,
        payload_hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip() {
        let kp = Keypair::from_seed(&[1; 32]);
        let first = SignedHeader::sign_next(&kp, None, 1_000, PayloadKind::Public, b"{}").unwrap();
        let second =
            SignedHeader::sign_next(&kp, Some(&first), 2_000, PayloadKind::Boxed, b"xyz").unwrap();
        assert_eq!(second.header().seq, 2);
        assert_eq!(second.header().backlink, Some(first.id()));
        let decoded = SignedHeader::decode(second.as_bytes()).unwrap();
        assert_eq!(decoded, second);
        assert_eq!(decoded.header().encode().as_slice(), second.header_bytes());
    }

    #[test]
    fn malformed_headers_are_refused() {
        let kp = Keypair::from_seed(&[1; 32]);
        let e = SignedHeader::sign_next(&kp, None, 1, PayloadKind::Public, b"{}").unwrap();
        let mut b = *e.as_bytes();
        assert_eq!(
            SignedHeader::decode(&b[..181]),
            Err(DecodeError::Length(181))
        );
        b[0] = 2;
        assert_eq!(
            SignedHeader::decode(&b),
            Err(DecodeError::UnknownVersion(2))
        );
        let mut b = *e.as_bytes();
        b[81] = 7;
        assert_eq!(
            SignedHeader::decode(&b),
            Err(DecodeError::UnknownPayloadKind(7))
        );
        let mut b = *e.as_bytes();
        b[33..41].copy_from_slice(&0u64.to_be_bytes());
        assert_eq!(SignedHeader::decode(&b), Err(DecodeError::ZeroSeq));
        let mut b = *e.as_bytes();
        b[41] = 1;
        assert_eq!(SignedHeader::decode(&b), Err(DecodeError::Backlink));
        let mut b = *e.as_bytes();
        b[82..86].copy_from_slice(&65537u32.to_be_bytes());
        assert_eq!(SignedHeader::decode(&b), Err(DecodeError::Oversize(65537)));
        assert!(SignedHeader::sign_next(&kp, None, 1, PayloadKind::Public, &[0; 65537]).is_err());
    }
}
