//! How answers are shown: short aligned text for people, or JSON (`--json`)
//! for scripts, always on stdout. Rendering only: nothing here talks to the
//! daemon, and errors are printed by `main.rs`, not here.

use std::io::{self, Write};

use serde::Serialize;
use sherd_api::{AuditRecord, Backup, Contact, Event, HeldShard, Peer, Status};

/// Writes answers to `out`, as text or as JSON.
pub(crate) struct Printer<W> {
    out: W,
    json: bool,
}

impl<W: Write> Printer<W> {
    pub(crate) fn new(out: W, json: bool) -> Self {
        Self { out, json }
    }

    /// True when printing JSON.
    pub(crate) fn is_json(&self) -> bool {
        self.json
    }

    pub(crate) fn id(&mut self, feed_id: &str) -> io::Result<()> {
        if self.json {
            return self.json_line(&serde_json::json!({ "feed_id": feed_id }));
        }
        writeln!(self.out, "{feed_id}")
    }

    pub(crate) fn status(&mut self, status: &Status) -> io::Result<()> {
        if self.json {
            return self.json_line(status);
        }
        let mut rows: Vec<(&str, String)> = vec![
            ("feed", status.feed_id.clone()),
            ("version", status.version.clone()),
        ];
        if status.listen.is_empty() {
            rows.push(("listen", "-".into()));
        }
        for (i, addr) in status.listen.iter().enumerate() {
            rows.push((if i == 0 { "listen" } else { "" }, addr.clone()));
        }
        rows.push(("peers", status.peers.to_string()));
        let feed_width = width(status.feeds.iter().map(|f| f.feed.as_str()));
        let seq_width = width(status.feeds.iter().map(|f| f.seq.to_string()));
        if status.feeds.is_empty() {
            rows.push(("feeds", "-".into()));
        }
        for (i, feed) in status.feeds.iter().enumerate() {
            let name = match &feed.name {
                Some(name) => name.as_str(),
                None if feed.feed == status.feed_id => "(this node)",
                None => "-",
            };
            let line = format!(
                "{:feed_width$}  seq {:>seq_width$}  {name}",
                feed.feed, feed.seq
            );
            rows.push((if i == 0 { "feeds" } else { "" }, line));
        }
        let key_width = width(rows.iter().map(|(key, _)| *key));
        for (key, value) in rows {
            writeln!(self.out, "{key:key_width$}  {value}")?;
        }
        Ok(())
    }

    pub(crate) fn peers(&mut self, peers: &[Peer]) -> io::Result<()> {
        if self.json {
            return self.json_line(&peers);
        }
        for peer in peers {
            writeln!(self.out, "{}", peer.peer_id)?;
        }
        Ok(())
    }

    pub(crate) fn connected(&mut self, addr: &str) -> io::Result<()> {
        if self.json {
            return self.json_line(&serde_json::json!({ "connected": addr }));
        }
        writeln!(self.out, "connected to {addr}")
    }

    pub(crate) fn contact_added(&mut self, contact: &Contact) -> io::Result<()> {
        if self.json {
            return self.json_line(contact);
        }
        writeln!(self.out, "added {}  {}", contact.name, contact.feed)
    }

    pub(crate) fn contacts(&mut self, contacts: &[Contact]) -> io::Result<()> {
        if self.json {
            return self.json_line(&contacts);
        }
        let name_width = width(contacts.iter().map(|c| c.name.as_str()));
        for contact in contacts {
            writeln!(self.out, "{:name_width$}  {}", contact.name, contact.feed)?;
        }
        Ok(())
    }

    pub(crate) fn contact_removed(&mut self, feed: &str) -> io::Result<()> {
        if self.json {
            return self.json_line(&serde_json::json!({ "removed": feed }));
        }
        writeln!(self.out, "removed {feed}")
    }

    pub(crate) fn audit(&mut self, records: &[AuditRecord]) -> io::Result<()> {
        if self.json {
            return self.json_line(&records);
        }
        let seq_width = width(records.iter().map(|r| r.seq.to_string()));
        for record in records {
            writeln!(self.out, "{:>seq_width$}  {}", record.seq, record.record)?;
        }
        Ok(())
    }

    pub(crate) fn backup(&mut self, backup: &Backup) -> io::Result<()> {
        if self.json {
            return self.json_line(backup);
        }
        let acked = backup.custodians.iter().filter(|c| c.acked).count();
        writeln!(self.out, "backup    {}", backup.id)?;
        writeln!(self.out, "label     {}", backup.label)?;
        writeln!(
            self.out,
            "recovery  any {} of {} custodians; {acked} of {} acknowledged",
            backup.threshold,
            backup.custodians.len(),
            backup.custodians.len()
        )?;
        let name_width = width(
            backup
                .custodians
                .iter()
                .map(|c| c.name.as_deref().unwrap_or("-")),
        );
        for c in &backup.custodians {
            let state = if c.acked {
                "acknowledged"
            } else {
                "waiting for ack"
            };
            writeln!(
                self.out,
                "  {:name_width$}  {}  {state}",
                c.name.as_deref().unwrap_or("-"),
                c.feed
            )?;
        }
        Ok(())
    }

    pub(crate) fn backups(&mut self, backups: &[Backup]) -> io::Result<()> {
        if self.json {
            return self.json_line(&backups);
        }
        for b in backups {
            let acked = b.custodians.iter().filter(|c| c.acked).count();
            writeln!(
                self.out,
                "{}  {} of {}  acks {acked}/{}  {}",
                b.id,
                b.threshold,
                b.custodians.len(),
                b.custodians.len(),
                b.label
            )?;
        }
        Ok(())
    }

    pub(crate) fn shards(&mut self, shards: &[HeldShard]) -> io::Result<()> {
        if self.json {
            return self.json_line(&shards);
        }
        for s in shards {
            writeln!(
                self.out,
                "{}  owner {} {}",
                s.backup,
                s.owner_name.as_deref().unwrap_or("-"),
                s.owner
            )?;
        }
        Ok(())
    }

    /// One event, on one line, flushed at once (the stream is read live).
    pub(crate) fn event(&mut self, event: &Event) -> io::Result<()> {
        if self.json {
            self.json_line(event)?;
        } else {
            // The wire form is the one place that knows each event's name and
            // fields, so the text is derived from it: `name  key=value ...`.
            let value = serde_json::to_value(event).map_err(io::Error::other)?;
            let mut fields = value.as_object().cloned().unwrap_or_default();
            let name = match fields.remove("event") {
                Some(serde_json::Value::String(name)) => name,
                _ => "event".to_owned(),
            };
            let fields: Vec<String> = fields
                .iter()
                .map(|(key, value)| match value {
                    serde_json::Value::String(s) => format!("{key}={s}"),
                    other => format!("{key}={other}"),
                })
                .collect();
            writeln!(self.out, "{name:17}  {}", fields.join(" "))?;
        }
        self.out.flush()
    }

    /// The note that events were missed: a JSON line for scripts; nothing in
    /// text mode, where the caller says it on stderr.
    pub(crate) fn lagged(&mut self, missed: u64) -> io::Result<()> {
        if self.json {
            self.json_line(&serde_json::json!({ "event": "lagged", "missed": missed }))?;
            self.out.flush()?;
        }
        Ok(())
    }

    fn json_line(&mut self, value: &impl Serialize) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, value).map_err(io::Error::other)?;
        writeln!(self.out)
    }
}

/// The widest of `items`, in characters.
fn width<S: AsRef<str>>(items: impl Iterator<Item = S>) -> usize {
    items.map(|s| s.as_ref().chars().count()).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use sherd_api::FeedStatus;

    use super::*;

    fn render(
        json: bool,
        print: impl FnOnce(&mut Printer<&mut Vec<u8>>) -> io::Result<()>,
    ) -> String {
        let mut out = Vec::new();
        print(&mut Printer::new(&mut out, json)).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn status() -> Status {
        Status {
            feed_id: "12D3KooWOwn".into(),
            version: "0.1.0".into(),
            listen: vec!["/ip4/127.0.0.1/tcp/4001".into(), "/ip6/::1/tcp/4001".into()],
            peers: 2,
            feeds: vec![
                FeedStatus {
                    feed: "12D3KooWOwn".into(),
                    name: None,
                    seq: 7,
                },
                FeedStatus {
                    feed: "12D3KooWAliceFeed".into(),
                    name: Some("alice".into()),
                    seq: 1234,
                },
            ],
        }
    }

    #[test]
    fn status_as_text() {
        assert_eq!(
            render(false, |p| p.status(&status())),
            "\
feed     12D3KooWOwn
version  0.1.0
listen   /ip4/127.0.0.1/tcp/4001
         /ip6/::1/tcp/4001
peers    2
feeds    12D3KooWOwn        seq    7  (this node)
         12D3KooWAliceFeed  seq 1234  alice
"
        );
    }

    #[test]
    fn status_as_json_is_the_wire_form() {
        let text = render(true, |p| p.status(&status()));
        let back: Status = serde_json::from_str(&text).unwrap();
        assert_eq!(back, status());
        assert!(text.ends_with("}\n"));
    }

    #[test]
    fn contacts_align_on_the_longest_name() {
        let contacts = [
            Contact {
                feed: "12D3KooWA".into(),
                name: "al".into(),
            },
            Contact {
                feed: "12D3KooWB".into(),
                name: "bérénice".into(),
            },
        ];
        assert_eq!(
            render(false, |p| p.contacts(&contacts)),
            "al        12D3KooWA\nbérénice  12D3KooWB\n"
        );
        assert_eq!(render(false, |p| p.contacts(&[])), "");
        assert_eq!(render(true, |p| p.contacts(&[])), "[]\n");
    }

    #[test]
    fn events_as_text_and_json() {
        let event = Event::EntryStored {
            feed: "12D3KooWA".into(),
            seq: 3,
        };
        assert_eq!(
            render(false, |p| p.event(&event)),
            "entry_stored       feed=12D3KooWA seq=3\n"
        );
        assert_eq!(
            render(true, |p| p.event(&event)),
            "{\"event\":\"entry_stored\",\"feed\":\"12D3KooWA\",\"seq\":3}\n"
        );
        assert_eq!(render(false, |p| p.lagged(4)), "");
        assert_eq!(
            render(true, |p| p.lagged(4)),
            "{\"event\":\"lagged\",\"missed\":4}\n"
        );
    }

    #[test]
    fn audit_records_one_per_line() {
        let records = [
            AuditRecord {
                seq: 9,
                record: serde_json::json!({ "result": "refused" }),
            },
            AuditRecord {
                seq: 10,
                record: serde_json::json!({ "result": "ok" }),
            },
        ];
        assert_eq!(
            render(false, |p| p.audit(&records)),
            " 9  {\"result\":\"refused\"}\n10  {\"result\":\"ok\"}\n"
        );
    }

    #[test]
    fn small_answers() {
        assert_eq!(render(false, |p| p.id("12D3KooWA")), "12D3KooWA\n");
        assert_eq!(
            render(true, |p| p.id("12D3KooWA")),
            "{\"feed_id\":\"12D3KooWA\"}\n"
        );
        assert_eq!(
            render(false, |p| p.connected("/ip4/1.2.3.4/tcp/1")),
            "connected to /ip4/1.2.3.4/tcp/1\n"
        );
        assert_eq!(
            render(true, |p| p.contact_removed("12D3KooWA")),
            "{\"removed\":\"12D3KooWA\"}\n"
        );
    }
}
