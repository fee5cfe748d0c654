//! Trial decryption: what an entry says to this node, if anything.
//!
//! Every boxed payload is tried with the node's X25519 key
//! ([`sherd_protocol::envelope::open`]); what opens is parsed strictly
//! ([`Content::parse`]). Pure and CPU-bound: the engine runs it on a blocking
//! thread for batches, never on the network loop or the store writer.
//!
//! What this module never does: keep or print the plaintext. The only thing
//! that leaves is the parsed [`Content`]; refusals carry our own words, never
//! the bytes that were refused.

use sherd_protocol::content::{Content, ContentError};
use sherd_protocol::entry::{PayloadKind, SignedHeader};
use sherd_protocol::envelope::{self, EnvelopeError};
use sherd_protocol::{EntryId, FeedId, X25519SecretKey};

/// What one entry says to us.
#[derive(Debug)]
pub(super) enum Opened {
    /// A public entry (nothing in this slice acts on `about` or `contact`),
    /// an erased payload, or an envelope that is not addressed to us.
    Nothing,
    /// An envelope addressed to us that does not open: its author made it wrong.
    BadEnvelope(EnvelopeError),
    /// An envelope that opened, holding content that does not parse.
    BadContent(String),
    /// Content addressed to us.
    Content(Box<Content>),
}

/// An entry with what it says to us.
#[derive(Debug)]
pub(super) struct Item {
    /// The feed it is in.
    pub(super) feed: FeedId,
    /// Its sequence number there.
    pub(super) seq: u64,
    /// Its id.
    pub(super) id: EntryId,
    /// What it says to us.
    pub(super) opened: Opened,
}

/// Opens one entry of `feed` by trial.
pub(super) fn open(
    secret: &X25519SecretKey,
    feed: FeedId,
    header: &SignedHeader,
    payload: Option<&[u8]>,
) -> Item {
    let h = header.header();
    let opened = match (h.payload_kind, payload) {
        (PayloadKind::Boxed, Some(payload)) => match envelope::open(secret, &feed, payload) {
            Ok(None) => Opened::Nothing,
            Err(e) => Opened::BadEnvelope(e),
            // The plaintext is dropped (and zeroized) at the end of this arm.
            Ok(Some(plaintext)) => match Content::parse(&plaintext) {
                Ok(content) => Opened::Content(Box::new(content)),
                Err(e) => Opened::BadContent(content_reason(&e)),
            },
        },
        (PayloadKind::Public, _) | (_, None) => Opened::Nothing,
    };
    Item {
        feed,
        seq: h.seq,
        id: header.id(),
        opened,
    }
}

/// Why content was refused, without echoing any of it: serde's messages can
/// quote the offending value, which came out of a private envelope.
fn content_reason(e: &ContentError) -> String {
    match e {
        ContentError::Json(_) => "not valid JSON".to_owned(),
        ContentError::NotAnObject => "not a JSON object".to_owned(),
        ContentError::UnknownType(_) => "unknown content type".to_owned(),
        ContentError::UnsupportedVersion { content_type, .. } => {
            format!("unsupported version of `{content_type}`")
        }
        // The field's name is the sender's text too.
        ContentError::Field { .. } => "a field is missing, unknown or out of range".to_owned(),
        _ => "invalid content".to_owned(),
    }
}
