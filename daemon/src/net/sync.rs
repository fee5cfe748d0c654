//! The catch-up sync protocol, `/sherd/sync/1`, over libp2p request-response.
//!
//! Two exchanges. *Heights*: "here are the feeds I follow and how far I
//! have each"; the answer gives the responder's heights for those of them it
//! holds. *Entries*: "send me feed F from seq S, at most N"; the answer is the
//! run of entries in order (signed header, then the payload unless erased),
//! cut at `MAX_ENTRIES_PER_RESPONSE` entries or `MAX_RESPONSE_BYTES`. A node
//! offline for any length of time asks again until it reaches the height it
//! was told, so it gets every entry, in bounded batches.
//!
//! Framing: every message is a u32 big-endian length then that many bytes; the
//! first byte is the message tag. Readers refuse anything over the caps before
//! allocating, so a peer cannot make us buffer more than one capped message.
//! PROTOCOL.md, "Sync", has the byte layout.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use sherd_protocol::entry::{MAX_PAYLOAD_LEN, SIGNED_HEADER_LEN};

/// The protocol name.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/sherd/sync/1");
/// The most feeds one heights exchange names.
pub const MAX_FEEDS_PER_REQUEST: usize = 4096;
/// The most entries one response carries.
pub const MAX_ENTRIES_PER_RESPONSE: usize = 2048;
/// The most bytes one response carries (one entry may always exceed the
/// soft budget so that a run never stalls; the hard cap still holds).
pub const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;
/// Bytes of a request at most: heights of the most feeds.
const MAX_REQUEST_BYTES: usize = 1 + 2 + MAX_FEEDS_PER_REQUEST * 40;
/// Hard cap on a response frame: the soft budget plus one largest entry.
const MAX_RESPONSE_FRAME: usize = MAX_RESPONSE_BYTES + SIGNED_HEADER_LEN + 5 + MAX_PAYLOAD_LEN;

const TAG_HEIGHTS: u8 = 1;
const TAG_ENTRIES: u8 = 2;

/// A feed and a sequence number (its height).
pub type Height = ([u8; 32], u64);

/// A sync request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncRequest {
    /// The feeds the requester follows, with its heights.
    Heights(Vec<Height>),
    /// Entries of `feed` from `from_seq`, at most `max`.
    Entries {
        /// The feed's author key.
        feed: [u8; 32],
        /// The first seq wanted.
        from_seq: u64,
        /// How many at most.
        max: u16,
    },
}

/// One entry in a response: the 182-byte signed header and the payload, if held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireEntry {
    /// The signed header bytes.
    pub header: Vec<u8>,
    /// The payload, unless erased.
    pub payload: Option<Vec<u8>>,
}

/// A sync response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncResponse {
    /// The responder's heights for the feeds asked about that it holds.
    Heights(Vec<Height>),
    /// A run of entries in order.
    Entries(Vec<WireEntry>),
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("sync: {what}"))
}

fn put_heights(out: &mut Vec<u8>, heights: &[Height]) -> io::Result<()> {
    let n = u16::try_from(heights.len())
        .ok()
        .filter(|&n| usize::from(n) <= MAX_FEEDS_PER_REQUEST)
        .ok_or_else(|| invalid("too many feeds"))?;
    out.extend_from_slice(&n.to_be_bytes());
    for (feed, seq) in heights {
        out.extend_from_slice(feed);
        out.extend_from_slice(&seq.to_be_bytes());
    }
    Ok(())
}

/// A cursor that turns running out of bytes into an `InvalidData` error.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> io::Result<&'a [u8]> {
        if n > self.0.len() {
            return Err(invalid("message cut short"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        self.take(N)?
            .try_into()
            .map_err(|_| invalid("message cut short"))
    }
    fn u8(&mut self) -> io::Result<u8> {
        self.array::<1>().map(|[b]| b)
    }
    fn u16(&mut self) -> io::Result<u16> {
        self.array().map(u16::from_be_bytes)
    }
    fn u32(&mut self) -> io::Result<u32> {
        self.array().map(u32::from_be_bytes)
    }
    fn u64(&mut self) -> io::Result<u64> {
        self.array().map(u64::from_be_bytes)
    }
    fn end(&self) -> io::Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(invalid("trailing bytes"))
        }
    }
}

fn get_heights(c: &mut Cursor<'_>) -> io::Result<Vec<Height>> {
    let n = usize::from(c.u16()?);
    if n > MAX_FEEDS_PER_REQUEST {
        return Err(invalid("too many feeds"));
    }
    (0..n).map(|_| Ok((c.array()?, c.u64()?))).collect()
}

impl SyncRequest {
    /// The bytes of the message (without the length prefix).
    pub fn encode(&self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        match self {
            Self::Heights(h) => {
                out.push(TAG_HEIGHTS);
                put_heights(&mut out, h)?;
            }
            Self::Entries {
                feed,
                from_seq,
                max,
            } => {
                out.push(TAG_ENTRIES);
                out.extend_from_slice(feed);
                out.extend_from_slice(&from_seq.to_be_bytes());
                out.extend_from_slice(&max.to_be_bytes());
            }
        }
        Ok(out)
    }

    /// Reads a message.
    pub fn decode(bytes: &[u8]) -> io::Result<Self> {
        let mut c = Cursor(bytes);
        let msg = match c.u8()? {
            TAG_HEIGHTS => Self::Heights(get_heights(&mut c)?),
            TAG_ENTRIES => Self::Entries {
                feed: c.array()?,
                from_seq: c.u64()?,
                max: c.u16()?,
            },
            _ => return Err(invalid("unknown request")),
        };
        c.end()?;
        Ok(msg)
    }
}

impl SyncResponse {
    /// The bytes of the message (without the length prefix).
    pub fn encode(&self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        match self {
            Self::Heights(h) => {
                out.push(TAG_HEIGHTS);
                put_heights(&mut out, h)?;
            }
            Self::Entries(entries) => {
                out.push(TAG_ENTRIES);
                let n = u16::try_from(entries.len())
                    .ok()
                    .filter(|&n| usize::from(n) <= MAX_ENTRIES_PER_RESPONSE)
                    .ok_or_else(|| invalid("too many entries"))?;
                out.extend_from_slice(&n.to_be_bytes());
                for e in entries {
                    if e.header.len() != SIGNED_HEADER_LEN {
                        return Err(invalid("bad header length"));
                    }
                    out.extend_from_slice(&e.header);
                    match &e.payload {
                        Some(p) if p.len() <= MAX_PAYLOAD_LEN => {
                            out.push(1);
                            let len =
                                u32::try_from(p.len()).map_err(|_| invalid("payload too large"))?;
                            out.extend_from_slice(&len.to_be_bytes());
                            out.extend_from_slice(p);
                        }
                        Some(_) => return Err(invalid("payload too large")),
                        None => out.push(0),
                    }
                }
            }
        }
        Ok(out)
    }

    /// Reads a message.
    pub fn decode(bytes: &[u8]) -> io::Result<Self> {
        let mut c = Cursor(bytes);
        let msg = match c.u8()? {
            TAG_HEIGHTS => Self::Heights(get_heights(&mut c)?),
            TAG_ENTRIES => {
                let n = usize::from(c.u16()?);
                if n > MAX_ENTRIES_PER_RESPONSE {
                    return Err(invalid("too many entries"));
                }
                let mut entries = Vec::with_capacity(n);
                for _ in 0..n {
                    let header = c.take(SIGNED_HEADER_LEN)?.to_vec();
                    let payload = match c.u8()? {
                        0 => None,
                        1 => {
                            let len = c.u32()? as usize;
                            if len > MAX_PAYLOAD_LEN {
                                return Err(invalid("payload too large"));
                            }
                            Some(c.take(len)?.to_vec())
                        }
                        _ => return Err(invalid("bad payload flag")),
                    };
                    entries.push(WireEntry { header, payload });
                }
                Self::Entries(entries)
            }
            _ => return Err(invalid("unknown response")),
        };
        c.end()?;
        Ok(msg)
    }
}

async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T, cap: usize) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > cap {
        return Err(invalid("message over the size cap"));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn write_frame<T: AsyncWrite + Unpin + Send>(io: &mut T, body: &[u8]) -> io::Result<()> {
    let len = u32::try_from(body.len()).map_err(|_| invalid("message too large"))?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(body).await?;
    io.close().await
}

/// The request-response codec of `/sherd/sync/1`.
#[derive(Debug, Clone, Default)]
pub struct SyncCodec;

impl libp2p::request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = SyncRequest;
    type Response = SyncResponse;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<SyncRequest> {
        SyncRequest::decode(&read_frame(io, MAX_REQUEST_BYTES).await?)
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<SyncResponse> {
        SyncResponse::decode(&read_frame(io, MAX_RESPONSE_FRAME).await?)
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: SyncRequest,
    ) -> io::Result<()> {
        write_frame(io, &req.encode()?).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: SyncResponse,
    ) -> io::Result<()> {
        write_frame(io, &res.encode()?).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn messages_round_trip() {
        let reqs = [
            SyncRequest::Heights(vec![([1; 32], 5), ([2; 32], 0)]),
            SyncRequest::Entries {
                feed: [3; 32],
                from_seq: 7,
                max: 1000,
            },
        ];
        for r in reqs {
            assert_eq!(SyncRequest::decode(&r.encode().unwrap()).unwrap(), r);
        }
        let resps = [
            SyncResponse::Heights(vec![([1; 32], 9)]),
            SyncResponse::Entries(vec![
                WireEntry {
                    header: vec![0; 182],
                    payload: Some(b"{}".to_vec()),
                },
                WireEntry {
                    header: vec![1; 182],
                    payload: None,
                },
            ]),
        ];
        for r in resps {
            assert_eq!(SyncResponse::decode(&r.encode().unwrap()).unwrap(), r);
        }
    }

    #[test]
    fn oversized_and_malformed_messages_are_refused() {
        let too_many = SyncRequest::Heights(vec![([0; 32], 0); MAX_FEEDS_PER_REQUEST + 1]);
        assert!(too_many.encode().is_err());
        let mut bytes = SyncRequest::Entries {
            feed: [3; 32],
            from_seq: 7,
            max: 1,
        }
        .encode()
        .unwrap();
        bytes.push(0);
        assert!(SyncRequest::decode(&bytes).is_err(), "trailing bytes");
        let mut big = vec![TAG_ENTRIES, 0, 1];
        big.extend_from_slice(&[0; 182]);
        big.push(1);
        big.extend_from_slice(&(MAX_PAYLOAD_LEN as u32 + 1).to_be_bytes());
        assert!(SyncResponse::decode(&big).is_err(), "payload over the cap");
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = SyncRequest::decode(&bytes);
            let _ = SyncResponse::decode(&bytes);
        }
    }
}
