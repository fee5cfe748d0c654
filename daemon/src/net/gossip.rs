//! Live push of new entries over gossipsub: one topic per feed, the message a
//! whole entry (signed header then payload), the message id its entry id, so
//! the same entry arriving from many peers is recognised at once.

use libp2p::gossipsub::{IdentTopic, Message, MessageId};
use sherd_protocol::FeedId;
use sherd_protocol::entry::{SIGNED_HEADER_LEN, SignedHeader};

use crate::store::IncomingEntry;

/// The topic on which `feed`'s new entries are pushed.
pub fn topic(feed: &FeedId) -> IdentTopic {
    IdentTopic::new(format!("sherd/feed/1/{feed}"))
}

/// The gossipsub message of an entry.
pub fn encode(header: &SignedHeader, payload: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(SIGNED_HEADER_LEN + payload.map_or(0, <[u8]>::len));
    out.extend_from_slice(header.as_bytes());
    if let Some(p) = payload {
        out.extend_from_slice(p);
    }
    out
}

/// Reads a gossipsub message as an entry. An entry sent without its payload
/// (erased at the sender) arrives with `payload: None`.
pub fn decode(data: &[u8]) -> Option<IncomingEntry> {
    let (header, payload) = data.split_at_checked(SIGNED_HEADER_LEN)?;
    let header = SignedHeader::decode(header).ok()?;
    Some(IncomingEntry {
        header,
        payload: (!payload.is_empty()).then(|| payload.to_vec()),
    })
}

/// The message id: the entry id, or (for data that is not an entry, which
/// validation will reject) a distinct id derived from the bytes.
pub fn message_id(message: &Message) -> MessageId {
    match data_entry_id(&message.data) {
        Some(id) => MessageId::from(id.to_vec()),
        None => {
            // Not an entry: an id that cannot collide with a 32-byte entry id.
            let mut id = b"not-an-entry:".to_vec();
            id.extend_from_slice(&message.data.len().to_be_bytes());
            id.extend(message.data.iter().take(64));
            MessageId::from(id)
        }
    }
}

fn data_entry_id(data: &[u8]) -> Option<[u8; 32]> {
    let header = data.get(..SIGNED_HEADER_LEN)?;
    SignedHeader::decode(header).ok().map(|h| h.id().0)
}
