//! A reader of the Server-Sent Events wire format (the WHATWG "event stream"
//! syntax), enough for `GET /v1/events`: `event:` and `data:` fields, comment
//! lines, any of the three line endings, lines split across reads. It never
//! interprets the data: that is the client's job.

use std::collections::VecDeque;

/// A line longer than this is refused rather than buffered without end.
const MAX_LINE_BYTES: usize = 1024 * 1024;

/// One dispatched event: its type (`None` for the default, "message") and
/// its data lines joined with `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseMessage {
    pub(crate) event: Option<String>,
    pub(crate) data: String,
}

/// Bytes in, [`SseMessage`]s out.
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    line: Vec<u8>,
    /// The previous chunk ended in `\r`: a `\n` starting this one ends nothing.
    skip_lf: bool,
    event: Option<String>,
    data: Option<String>,
    ready: VecDeque<SseMessage>,
}

impl SseParser {
    /// Reads more of the stream. Fails on a line that is not UTF-8 or is
    /// longer than 1 MiB.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Result<(), String> {
        for &byte in bytes {
            if std::mem::take(&mut self.skip_lf) && byte == b'\n' {
                continue;
            }
            match byte {
                b'\n' | b'\r' => {
                    self.skip_lf = byte == b'\r';
                    let line = std::mem::take(&mut self.line);
                    let line = String::from_utf8(line)
                        .map_err(|_| "the event stream is not UTF-8".to_string())?;
                    self.line_done(&line);
                }
                _ if self.line.len() >= MAX_LINE_BYTES => {
                    return Err("an event stream line is longer than 1 MiB".into());
                }
                _ => self.line.push(byte),
            }
        }
        Ok(())
    }

    /// The next complete event, if any.
    pub(crate) fn pop(&mut self) -> Option<SseMessage> {
        self.ready.pop_front()
    }

    fn line_done(&mut self, line: &str) {
        if line.is_empty() {
            let event = self.event.take();
            if let Some(data) = self.data.take() {
                self.ready.push_back(SseMessage { event, data });
            }
            return;
        }
        if line.starts_with(':') {
            return; // a comment: the daemon's keep-alives
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            _ => {} // id, retry and unknown fields mean nothing to us
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(parser: &mut SseParser) -> Vec<SseMessage> {
        std::iter::from_fn(|| parser.pop()).collect()
    }

    fn msg(event: Option<&str>, data: &str) -> SseMessage {
        SseMessage {
            event: event.map(str::to_owned),
            data: data.to_owned(),
        }
    }

    #[test]
    fn events_comments_and_multi_line_data() {
        let mut p = SseParser::default();
        p.push(b": keep-alive\n\ndata: {\"a\":1}\n\nevent: lagged\ndata: x\ndata:y\n\n")
            .unwrap();
        assert_eq!(
            all(&mut p),
            vec![msg(None, "{\"a\":1}"), msg(Some("lagged"), "x\ny")]
        );
    }

    #[test]
    fn every_line_ending_and_any_split() {
        let stream = b"data: one\r\n\r\ndata: two\r\rdata: three\n\n";
        for split in 0..stream.len() {
            let mut p = SseParser::default();
            p.push(&stream[..split]).unwrap();
            p.push(&stream[split..]).unwrap();
            assert_eq!(
                all(&mut p),
                vec![msg(None, "one"), msg(None, "two"), msg(None, "three")],
                "split at {split}"
            );
        }
    }

    #[test]
    fn an_event_without_data_is_not_dispatched() {
        let mut p = SseParser::default();
        p.push(b"event: lagged\n\ndata: z\n\n").unwrap();
        assert_eq!(all(&mut p), vec![msg(None, "z")]);
    }

    #[test]
    fn an_unfinished_event_waits() {
        let mut p = SseParser::default();
        p.push(b"data: half").unwrap();
        assert_eq!(p.pop(), None);
        p.push(b"\n\n").unwrap();
        assert_eq!(p.pop(), Some(msg(None, "half")));
    }

    #[test]
    fn bad_bytes_are_refused() {
        assert!(SseParser::default().push(b"data: \xff\n").is_err());
        let long = vec![b'a'; MAX_LINE_BYTES + 1];
        assert!(SseParser::default().push(&long).is_err());
    }
}
