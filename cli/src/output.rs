//! How answers are shown: short aligned text for people, or JSON (`--json`)
//! for scripts, always on stdout. Rendering only: nothing here talks to the
//! daemon, and errors are printed by `main.rs`, not here.

use std::collections::{HashMap, HashSet};
use std::io::{self, Write};
use std::path::Path;

use serde::Serialize;
use sherd_api::{
    AuditRecord, Backup, Contact, Event, HeldShard, Peer, RecoveredSecret, Recovery,
    RecoveryRequest, Status,
};

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
        writeln!(
            self.out,
            "added {}  {}{}",
            contact.name,
            contact.feed,
            auto_approve_mark(contact)
        )
    }

    pub(crate) fn contacts(&mut self, contacts: &[Contact]) -> io::Result<()> {
        if self.json {
            return self.json_line(&contacts);
        }
        let name_width = width(contacts.iter().map(|c| c.name.as_str()));
        for contact in contacts {
            writeln!(
                self.out,
                "{:name_width$}  {}{}",
                contact.name,
                contact.feed,
                auto_approve_mark(contact)
            )?;
        }
        Ok(())
    }

    pub(crate) fn auto_approve(&mut self, contact: &Contact) -> io::Result<()> {
        if self.json {
            return self.json_line(contact);
        }
        let what = if contact.auto_approve {
            "approved without asking"
        } else {
            "left for `sherdctl approve` or `deny`"
        };
        writeln!(
            self.out,
            "recovery requests from {} ({}) are {what}",
            contact.name, contact.feed
        )
    }

    /// The answer to `request-recovery`: what was asked of whom, and what to
    /// do next.
    pub(crate) fn recovery_requested(
        &mut self,
        request: &RecoveryRequest,
        names: &Names,
    ) -> io::Result<()> {
        if self.json {
            return self.json_line(request);
        }
        let mut rows: Vec<(&str, String)> = vec![
            ("request", request.id.clone()),
            ("kind", request.kind.clone()),
            ("backup", request.backup.clone()),
        ];
        let lost_device = request.kind == "lost_device";
        if lost_device {
            let owner = request.owner_name.as_deref().unwrap_or("-");
            rows.push(("owner", format!("{owner}  {}", request.owner)));
            rows.push(("to", request.recipient.clone()));
        }
        let name_width = width(request.custodians.iter().map(|c| names.name(c)));
        if request.custodians.is_empty() {
            rows.push(("asked", "-".into()));
        }
        for (i, custodian) in request.custodians.iter().enumerate() {
            let line = format!("{:name_width$}  {custodian}", names.name(custodian));
            rows.push((if i == 0 { "asked" } else { "" }, line));
        }
        let next = if lost_device {
            let (id, to) = (&request.id, &request.recipient);
            vec![
                if request.released.is_some() {
                    format!("your own shard was forwarded to {to};")
                } else {
                    format!("your own shard is to be forwarded to {to};")
                },
                format!("ask the co-custodians to run `sherdctl approve {id}`"),
                format!("(or `sherdctl forward {id} --to {to}`, which checks the new identity);"),
                format!(
                    "the owner, on the new identity, runs `sherdctl recover {}`",
                    request.backup
                ),
            ]
        } else {
            vec![format!(
                "run `sherdctl recover {}` to wait for the shards",
                request.backup
            )]
        };
        for (i, line) in next.into_iter().enumerate() {
            rows.push((if i == 0 { "next" } else { "" }, line));
        }
        let key_width = width(rows.iter().map(|(key, _)| *key));
        for (key, value) in rows {
            writeln!(self.out, "{key:key_width$}  {value}")?;
        }
        Ok(())
    }

    /// Recovery requests as a table, with a header; `now_ms` dates the
    /// expiries.
    pub(crate) fn requests(&mut self, requests: &[RecoveryRequest], now_ms: u64) -> io::Result<()> {
        if self.json {
            return self.json_line(&requests);
        }
        if requests.is_empty() {
            return Ok(());
        }
        let mut table = vec![
            [
                "id",
                "kind",
                "role",
                "backup",
                "requester",
                "state",
                "expires",
            ]
            .map(String::from),
        ];
        for r in requests {
            table.push([
                r.id.clone(),
                r.kind.clone(),
                r.role.clone(),
                short(&r.backup).to_owned(),
                r.requester_name
                    .clone()
                    .unwrap_or_else(|| r.requester.clone()),
                r.state.clone(),
                relative(r.expires_ms, now_ms),
            ]);
        }
        let widths: Vec<usize> = (0..7)
            .map(|column| width(table.iter().map(|row| row[column].as_str())))
            .collect();
        for row in &table {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, &w)| format!("{cell:w$}"))
                .collect();
            writeln!(self.out, "{}", cells.join("  ").trim_end())?;
        }
        Ok(())
    }

    /// The answer to `approve`, `forward` or `deny`.
    pub(crate) fn decided(
        &mut self,
        decision: Decision,
        request: &RecoveryRequest,
    ) -> io::Result<()> {
        if self.json {
            return self.json_line(request);
        }
        let id = &request.id;
        match decision {
            Decision::Approved | Decision::Forwarded => {
                let verb = if decision == Decision::Approved {
                    "approved"
                } else {
                    "forwarded"
                };
                if request.released.is_some() {
                    writeln!(
                        self.out,
                        "{verb} {id}: our shard of backup {} went to {}",
                        request.backup,
                        who(request, &request.recipient)
                    )
                } else {
                    writeln!(self.out, "{verb} {id}: {}", request.state)
                }
            }
            Decision::Denied => {
                write!(
                    self.out,
                    "denied {id} from {}",
                    who(request, &request.requester)
                )?;
                match &request.reason {
                    Some(reason) => writeln!(self.out, ": {}", clean(reason)),
                    None => writeln!(self.out),
                }
            }
        }
    }

    /// The recovered secret on stdout: its raw bytes, or with `--json` the
    /// wire form (`backup`, `label`, `secret` in base64).
    pub(crate) fn secret(&mut self, secret: &RecoveredSecret, bytes: &[u8]) -> io::Result<()> {
        if self.json {
            self.json_line(secret)?;
        } else {
            self.out.write_all(bytes)?;
        }
        self.out.flush()
    }

    /// The note that the secret was written to `path`.
    pub(crate) fn secret_written(
        &mut self,
        secret: &RecoveredSecret,
        path: &Path,
    ) -> io::Result<()> {
        if self.json {
            return self.json_line(&serde_json::json!({
                "backup": secret.backup,
                "label": secret.label,
                "output": path.display().to_string(),
            }));
        }
        writeln!(
            self.out,
            "wrote the secret {:?} of backup {} to {} (mode 0600); the daemon has forgotten it",
            secret.label,
            secret.backup,
            path.display()
        )
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

/// Which decision `decided` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    Approved,
    Forwarded,
    Denied,
}

/// Contact names by feed id.
#[derive(Debug, Default)]
pub(crate) struct Names(pub(crate) HashMap<String, String>);

impl Names {
    /// The contact name of `feed`, or `-`.
    fn name(&self, feed: &str) -> &str {
        self.0.get(feed).map_or("-", String::as_str)
    }

    /// The contact name of `feed`, or the feed itself.
    fn or_feed<'a>(&'a self, feed: &'a str) -> &'a str {
        self.0.get(feed).map_or(feed, String::as_str)
    }
}

/// What `recover` has told so far about a recovery, so that it tells only
/// what changes: the count of shards, each refused shard, each denial.
#[derive(Debug, Default)]
pub(crate) struct RecoveryProgress {
    current: String,
    rejected: HashSet<(String, String)>,
    denied: HashSet<String>,
}

impl RecoveryProgress {
    /// The lines to print for `recovery`, given what was printed before.
    pub(crate) fn news(&mut self, recovery: &Recovery, names: &Names) -> Vec<String> {
        let mut news = Vec::new();
        for shard in &recovery.rejected {
            if self
                .rejected
                .insert((shard.custodian.clone(), shard.entry.clone()))
            {
                news.push(format!(
                    "refused a shard from {}: {}",
                    names.or_feed(&shard.custodian),
                    clean(&shard.reason)
                ));
            }
        }
        for denial in &recovery.denied {
            if self.denied.insert(denial.custodian.clone()) {
                news.push(denied_line(denial, names));
            }
        }
        if recovery.state == "collecting" {
            let line = shards_line(recovery);
            if line != self.current {
                self.current.clone_from(&line);
                news.push(line);
            }
        }
        news
    }

    /// The last count of shards told, for a message that gives up waiting.
    pub(crate) fn current(&self) -> &str {
        if self.current.is_empty() {
            "no shard counted yet"
        } else {
            &self.current
        }
    }

    /// Why a `failed` recovery failed, as far as the recovery tells: the
    /// denials and refused shards, and where to read more.
    pub(crate) fn failure(&self, recovery: &Recovery, names: &Names) -> String {
        let mut parts: Vec<String> = recovery.reason.iter().map(|r| clean(r)).collect();
        parts.push(match recovery.threshold {
            Some(threshold) => format!("{} of {threshold} shards in", recovery.shards),
            None => format!("{} in", plural(recovery.shards, "shard")),
        });
        parts.extend(recovery.denied.iter().map(|d| denied_line(d, names)));
        parts.extend(recovery.rejected.iter().map(|shard| {
            format!(
                "refused a shard from {}: {}",
                names.or_feed(&shard.custodian),
                clean(&shard.reason)
            )
        }));
        format!(
            "the recovery of {} failed ({}); `sherdctl audit` has the details",
            recovery.backup,
            parts.join("; ")
        )
    }
}

fn shards_line(recovery: &Recovery) -> String {
    match recovery.threshold {
        Some(threshold) => format!("waiting for shards: {} of {threshold}", recovery.shards),
        None => format!(
            "{} in, threshold not known yet",
            plural(recovery.shards, "shard")
        ),
    }
}

fn denied_line(denial: &sherd_api::Denial, names: &Names) -> String {
    let who = names.or_feed(&denial.custodian);
    match &denial.reason {
        Some(reason) => format!("{who} denied the request: {}", clean(reason)),
        None => format!("{who} denied the request (no reason given)"),
    }
}

/// `n thing` or `n things`.
fn plural(n: usize, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

fn auto_approve_mark(contact: &Contact) -> &'static str {
    if contact.auto_approve {
        "  auto-approve"
    } else {
        ""
    }
}

/// The contact name a request carries for `feed` (its owner's or its
/// requester's), or the feed itself.
fn who<'a>(request: &'a RecoveryRequest, feed: &'a str) -> &'a str {
    let name = if feed == request.owner {
        request.owner_name.as_deref()
    } else if feed == request.requester {
        request.requester_name.as_deref()
    } else {
        None
    };
    name.unwrap_or(feed)
}

/// The first 12 characters of an id, enough to tell backups apart in a table.
fn short(id: &str) -> &str {
    id.char_indices().nth(12).map_or(id, |(end, _)| &id[..end])
}

/// `at_ms` from `now_ms`, as `in 2d 3h` or `5m ago`.
fn relative(at_ms: u64, now_ms: u64) -> String {
    fn span(ms: u64) -> String {
        let s = ms / 1000;
        let (days, hours, minutes) = (s / 86_400, s / 3600 % 24, s / 60 % 60);
        if days > 0 {
            format!("{days}d {hours}h")
        } else if hours > 0 {
            format!("{hours}h {minutes}m")
        } else if minutes > 0 {
            format!("{minutes}m")
        } else {
            format!("{s}s")
        }
    }
    if at_ms >= now_ms {
        format!("in {}", span(at_ms - now_ms))
    } else {
        format!("{} ago", span(now_ms - at_ms))
    }
}

/// Text that came from another node, with control characters escaped so
/// that it cannot move the cursor or recolour the terminal.
fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
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
                auto_approve: false,
            },
            Contact {
                feed: "12D3KooWB".into(),
                name: "bérénice".into(),
                auto_approve: true,
            },
        ];
        assert_eq!(
            render(false, |p| p.contacts(&contacts)),
            "al        12D3KooWA\nbérénice  12D3KooWB  auto-approve\n"
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

    const OWN: &str = "12D3KooWOwn";
    const NEW: &str = "12D3KooWNew";

    fn request(kind: &str, role: &str) -> RecoveryRequest {
        RecoveryRequest {
            id: "0123456789abcdef0123456789abcdef".into(),
            kind: kind.into(),
            role: role.into(),
            backup: "ab".repeat(32),
            owner: OWN.into(),
            owner_name: None,
            requester: OWN.into(),
            requester_name: None,
            recipient: OWN.into(),
            custodians: vec!["12D3KooWA".into(), "12D3KooWB".into()],
            received_ms: 1_000,
            expires_ms: 1_000 + 7 * 86_400_000,
            state: "open".into(),
            released: None,
            reason: None,
        }
    }

    fn names() -> Names {
        Names(HashMap::from([
            ("12D3KooWA".to_owned(), "alice".to_owned()),
            (OWN.to_owned(), "olga".to_owned()),
        ]))
    }

    #[test]
    fn an_owner_request_says_to_run_recover() {
        let backup = "ab".repeat(32);
        assert_eq!(
            render(false, |p| p
                .recovery_requested(&request("owner", "requester"), &names())),
            format!(
                "\
request  0123456789abcdef0123456789abcdef
kind     owner
backup   {backup}
asked    alice  12D3KooWA
         -      12D3KooWB
next     run `sherdctl recover {backup}` to wait for the shards
"
            )
        );
        let json = render(true, |p| {
            p.recovery_requested(&request("owner", "requester"), &names())
        });
        let back: RecoveryRequest = serde_json::from_str(&json).unwrap();
        assert_eq!(back, request("owner", "requester"));
    }

    #[test]
    fn a_lost_device_request_says_who_does_what_next() {
        let backup = "ab".repeat(32);
        let mut lost = request("lost_device", "requester");
        lost.owner_name = Some("olga".into());
        lost.requester = "12D3KooWA".into();
        lost.recipient = NEW.into();
        lost.released = Some("e".into());
        let id = &lost.id;
        assert_eq!(
            render(false, |p| p.recovery_requested(&lost, &names())),
            format!(
                "\
request  {id}
kind     lost_device
backup   {backup}
owner    olga  12D3KooWOwn
to       12D3KooWNew
asked    alice  12D3KooWA
         -      12D3KooWB
next     your own shard was forwarded to 12D3KooWNew;
         ask the co-custodians to run `sherdctl approve {id}`
         (or `sherdctl forward {id} --to 12D3KooWNew`, which checks the new identity);
         the owner, on the new identity, runs `sherdctl recover {backup}`
"
            )
        );
    }

    #[test]
    fn requests_as_a_table() {
        let mut asked = request("lost_device", "custodian");
        asked.requester = "12D3KooWA".into();
        asked.requester_name = Some("alice".into());
        asked.state = "pending".into();
        let mut mine = request("owner", "requester");
        mine.expires_ms = 1_000;
        let now = 1_000 + 3_600_000 + 60_000;
        assert_eq!(
            render(false, |p| p.requests(&[asked.clone(), mine.clone()], now)),
            "\
id                                kind         role       backup        requester    state    expires
0123456789abcdef0123456789abcdef  lost_device  custodian  abababababab  alice        pending  in 6d 22h
0123456789abcdef0123456789abcdef  owner        requester  abababababab  12D3KooWOwn  open     1h 1m ago
"
        );
        assert_eq!(render(false, |p| p.requests(&[], now)), "");
        assert_eq!(render(true, |p| p.requests(&[], now)), "[]\n");
    }

    #[test]
    fn decisions() {
        let mut released = request("lost_device", "custodian");
        released.recipient = NEW.into();
        released.released = Some("e".into());
        released.state = "released".into();
        let backup = "ab".repeat(32);
        let id = &released.id;
        assert_eq!(
            render(false, |p| p.decided(Decision::Forwarded, &released)),
            format!("forwarded {id}: our shard of backup {backup} went to 12D3KooWNew\n")
        );
        let mut owner = request("owner", "custodian");
        owner.owner_name = Some("olga".into());
        owner.released = Some("e".into());
        assert_eq!(
            render(false, |p| p.decided(Decision::Approved, &owner)),
            format!("approved {id}: our shard of backup {backup} went to olga\n")
        );
        owner.released = None;
        owner.state = "pending".into();
        assert_eq!(
            render(false, |p| p.decided(Decision::Approved, &owner)),
            format!("approved {id}: pending\n")
        );
        owner.state = "denied".into();
        owner.requester_name = Some("olga".into());
        assert_eq!(
            render(false, |p| p.decided(Decision::Denied, &owner)),
            format!("denied {id} from olga\n")
        );
        owner.reason = Some("call me\x1b[2J".into());
        assert_eq!(
            render(false, |p| p.decided(Decision::Denied, &owner)),
            format!("denied {id} from olga: call me\\u{{1b}}[2J\n")
        );
        let json = render(true, |p| p.decided(Decision::Denied, &owner));
        assert_eq!(
            serde_json::from_str::<RecoveryRequest>(&json).unwrap(),
            owner
        );
    }

    #[test]
    fn auto_approve_answers() {
        let mut contact = Contact {
            feed: "12D3KooWA".into(),
            name: "alice".into(),
            auto_approve: true,
        };
        assert_eq!(
            render(false, |p| p.auto_approve(&contact)),
            "recovery requests from alice (12D3KooWA) are approved without asking\n"
        );
        assert_eq!(
            render(false, |p| p.contact_added(&contact)),
            "added alice  12D3KooWA  auto-approve\n"
        );
        contact.auto_approve = false;
        assert_eq!(
            render(false, |p| p.auto_approve(&contact)),
            "recovery requests from alice (12D3KooWA) are left for `sherdctl approve` or `deny`\n"
        );
        assert_eq!(
            render(true, |p| p.auto_approve(&contact)),
            "{\"feed\":\"12D3KooWA\",\"name\":\"alice\",\"auto_approve\":false}\n"
        );
    }

    fn secret() -> RecoveredSecret {
        RecoveredSecret {
            backup: "b1".into(),
            label: "wallet seed".into(),
            secret: zeroize::Zeroizing::new("bXkgc2VlZA==".into()),
        }
    }

    #[test]
    fn the_secret_raw_or_as_json() {
        let mut out = Vec::new();
        Printer::new(&mut out, false)
            .secret(&secret(), b"my seed")
            .unwrap();
        assert_eq!(out, b"my seed");
        assert_eq!(
            render(true, |p| p.secret(&secret(), b"my seed")),
            "{\"backup\":\"b1\",\"label\":\"wallet seed\",\"secret\":\"bXkgc2VlZA==\"}\n"
        );
        let path = Path::new("/tmp/s");
        assert_eq!(
            render(false, |p| p.secret_written(&secret(), path)),
            "wrote the secret \"wallet seed\" of backup b1 to /tmp/s (mode 0600); \
             the daemon has forgotten it\n"
        );
        assert_eq!(
            render(true, |p| p.secret_written(&secret(), path)),
            "{\"backup\":\"b1\",\"label\":\"wallet seed\",\"output\":\"/tmp/s\"}\n"
        );
    }

    fn collecting(shards: usize, threshold: Option<u8>) -> Recovery {
        Recovery {
            backup: "b1".into(),
            owner: OWN.into(),
            kind: "lost_device".into(),
            shards,
            threshold,
            state: "collecting".into(),
            requests: vec!["r".into()],
            rejected: vec![],
            denied: vec![],
            reason: None,
        }
    }

    #[test]
    fn recovery_progress_tells_only_what_changes() {
        let names = names();
        let mut progress = RecoveryProgress::default();
        assert_eq!(progress.current(), "no shard counted yet");
        let mut r = collecting(0, None);
        assert_eq!(
            progress.news(&r, &names),
            ["0 shards in, threshold not known yet"]
        );
        assert!(progress.news(&r, &names).is_empty());
        r = collecting(1, None);
        assert_eq!(
            progress.news(&r, &names),
            ["1 shard in, threshold not known yet"]
        );
        r = collecting(1, Some(3));
        r.rejected.push(sherd_api::RejectedShard {
            custodian: "12D3KooWA".into(),
            entry: "e1".into(),
            reason: "bad signature".into(),
        });
        r.denied.push(sherd_api::Denial {
            custodian: "12D3KooWB".into(),
            reason: None,
        });
        assert_eq!(
            progress.news(&r, &names),
            [
                "refused a shard from alice: bad signature",
                "12D3KooWB denied the request (no reason given)",
                "waiting for shards: 1 of 3",
            ]
        );
        assert!(progress.news(&r, &names).is_empty());
        assert_eq!(progress.current(), "waiting for shards: 1 of 3");
        r.shards = 2;
        r.denied.push(sherd_api::Denial {
            custodian: OWN.into(),
            reason: Some("not now".into()),
        });
        assert_eq!(
            progress.news(&r, &names),
            [
                "olga denied the request: not now",
                "waiting for shards: 2 of 3"
            ]
        );
        // Once complete, the count is not repeated: the secret is next.
        r.state = "complete".into();
        r.shards = 3;
        assert!(progress.news(&r, &names).is_empty());
        r.state = "failed".into();
        assert_eq!(
            progress.failure(&r, &names),
            "the recovery of b1 failed (3 of 3 shards in; \
             12D3KooWB denied the request (no reason given); \
             olga denied the request: not now; \
             refused a shard from alice: bad signature); `sherdctl audit` has the details"
        );
    }

    #[test]
    fn helpers() {
        assert_eq!(short(&"ab".repeat(32)), "abababababab");
        assert_eq!(short("abc"), "abc");
        assert_eq!(relative(61_000, 1_000), "in 1m");
        assert_eq!(relative(1_000, 1_000), "in 0s");
        assert_eq!(relative(0, 59_999), "59s ago");
        assert_eq!(relative(2 * 86_400_000 + 3_600_000, 0), "in 2d 1h");
        assert_eq!(clean("a\tb\u{7}é"), "a\\tb\\u{7}é");
        assert_eq!(plural(1, "shard"), "1 shard");
        assert_eq!(plural(2, "shard"), "2 shards");
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
