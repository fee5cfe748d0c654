//! `sherd-testnet demo`: the whole story of sherd with seven real daemons on
//! 127.0.0.1, told step by step.
//!
//! An owner backs up a secret 3-of-5 with five custodians (c1..c5), then
//! loses its device: its node and key are deleted. The owner starts over on
//! a spare machine with a new identity; c1, who has checked with the owner
//! that the new identity is theirs, starts a lost-device recovery toward it;
//! c2 and c3 approve; the new identity rebuilds the exact secret.
//!
//! Most steps use the control API; the four a person would type run the
//! real `sherdctl`, and the narration shows their exact command line. Each
//! step waits by polling, within [`STEP_LIMIT`], never by sleeping a fixed
//! time. Whatever happens, the daemons are stopped and the temporary
//! directory deleted at the end, unless `--keep` asks to leave them running.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use sherd_api::RecoveryRequest;
use sherd_testnet::{HarnessError, Testnet, log_tail};
use tokio::time::Instant;

use crate::flow::{self, Failure, On as _, STEP_LIMIT, hex, sherdctl};
use crate::kept::StateFile;
use crate::{interrupted, say};

/// Lines of a daemon's log shown when a step fails.
const LOG_LINES: usize = 20;

const OWNER: &str = "owner";
const CUSTODIANS: [&str; 5] = ["c1", "c2", "c3", "c4", "c5"];
const NEW: &str = "new";
/// Shards needed to recover.
const THRESHOLD: u8 = 3;
/// Bytes of the demo's secret.
const SECRET_LEN: usize = 32;
/// Steps of the story, for the `[k/9]` counter.
const STEPS: usize = 9;

/// Runs the demo; `Err` names the failing step and carries the log tail.
pub(crate) async fn run(keep: bool, state: StateFile) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut net = Testnet::new()?;
    say(&format!(
        "sherd-testnet demo: {} real sherdd daemons on 127.0.0.1, data in {}",
        CUSTODIANS.len() + 2,
        net.root().display()
    ));
    let mut story = Story::default();
    let (outcome, stopped_by_signal) = tokio::select! {
        outcome = scenario(&mut net, &mut story) => (outcome, false),
        signal = interrupted() => {
            let error = anyhow::anyhow!("interrupted by {signal}");
            (Err(Failure { node: None, error }), true)
        }
    };
    story.close_line("interrupted");

    let report = match outcome {
        Ok(()) => None,
        Err(failure) => Some(story.report(&net, failure)),
    };
    // Kept even after a failed step (that network is the one to look at),
    // but not after Ctrl-C: the user wants it all gone.
    // A failure here comes on top of the step's, which must not be lost.
    let and_then = |e: anyhow::Error| match &report {
        Some(report) => anyhow::anyhow!("{report}\nand then: {e:#}"),
        None => e,
    };
    if keep && !stopped_by_signal {
        crate::keep(net, &state).map_err(and_then)?;
    } else {
        let root = net.root().to_owned();
        net.close()
            .await
            .map_err(|e| and_then(anyhow::Error::new(e).context("cleaning up failed")))?;
        say(&format!(
            "cleaned up: every daemon stopped, {} deleted",
            root.display()
        ));
    }
    let total = started.elapsed().as_secs_f64();
    match report {
        None => {
            say(&format!(
                "ok: the owner's new identity has the secret back, byte for byte ({STEPS} steps in {total:.2} s)"
            ));
            Ok(())
        }
        Some(report) => Err(anyhow::anyhow!("{report}")),
    }
}

/// The story itself: every step, in order.
async fn scenario(net: &mut Testnet, story: &mut Story) -> Result<(), Failure> {
    let until = story.begin("starting the owner's node and five custodians' nodes, c1..c5");
    story
        .end(until, async {
            for name in std::iter::once(OWNER).chain(CUSTODIANS) {
                net.start(name).await?;
            }
            Ok(Done::new(
                (),
                format!("{} daemons up", CUSTODIANS.len() + 1),
            ))
        })
        .await?;

    let until = story.begin("the owner and each custodian connect and become contacts");
    let feeds = story
        .end(until, async {
            flow::befriend_owner(net, OWNER, &CUSTODIANS).await?;
            let feeds = flow::feeds(net, &CUSTODIANS)?;
            Ok(Done::new(feeds, format!("{} pairs", CUSTODIANS.len())))
        })
        .await?;

    let until = story.begin(&format!(
        "the owner backs up a {SECRET_LEN}-byte secret {THRESHOLD}-of-{} with c1..c5",
        CUSTODIANS.len()
    ));
    let (secret, backup) = story
        .end(until, async {
            // A demo secret, shown on screen: no point zeroizing it.
            let secret = flow::random_secret(SECRET_LEN)?;
            let made =
                flow::create_backup(net, OWNER, "demo secret", THRESHOLD, &feeds, &secret).await?;
            let shown = flow::wait_for_acks(net, until, OWNER, &made.id, CUSTODIANS.len()).await?;
            let acks = flow::acked(&shown);
            let note = format!("secret  {}  (random, made for this demo)", hex(&secret));
            Ok(Done::new((secret, made.id.clone()), format!("{acks} acks"))
                .note(note)
                .note(format!("backup  {}", made.id)))
        })
        .await?;

    let until = story.begin("the owner loses their device: its node and key are deleted");
    let old = story
        .end(until, async {
            let old = net.node(OWNER)?.feed_id().to_owned();
            net.remove(OWNER).await?;
            Ok(Done::new(old, "gone"))
        })
        .await?;

    let until = story.begin("the owner gets a spare machine: a new node, with a new identity");
    let new = story
        .end(until, async {
            net.start(NEW).await?;
            // The custodians reach each other and the new node; the owner
            // has told c1 (in person) their new identity, and follows c1.
            for c in &CUSTODIANS[1..] {
                net.connect(c, CUSTODIANS[0]).await?;
            }
            for c in CUSTODIANS {
                net.connect(NEW, c).await?;
            }
            let c1 = net.node(CUSTODIANS[0])?.feed_id().to_owned();
            let new = net.node(NEW)?;
            new.client()
                .add_contact(&c1, CUSTODIANS[0], false)
                .await
                .on(NEW)?;
            let new = new.feed_id().to_owned();
            Ok(Done::new(new.clone(), "up and connected")
                .note(format!("old identity  {old}  (lost)"))
                .note(format!("new identity  {new}")))
        })
        .await?;

    let until =
        story.begin("c1, who checked the new identity with the owner in person, starts a recovery");
    let request = story
        .end(until, async {
            let line = sherdctl(
                net,
                "c1",
                &["request-recovery", "--owner", &old, "--to", &new],
            )
            .await?;
            let asked = net.node("c1")?.client().requests().await.on("c1")?;
            let request = asked
                .into_iter()
                .find(|r| {
                    r.role == "requester"
                        && r.kind == "lost_device"
                        && r.owner == old
                        && r.recipient == new
                })
                .ok_or_else(|| Failure {
                    node: Some("c1".into()),
                    error: anyhow::anyhow!("c1 lists no lost-device request for {old}"),
                })?;
            let others = request.custodians.len().saturating_sub(1);
            let summary = if request.state == "released" {
                format!("c1's shard sent, {others} others asked")
            } else {
                format!("{others} others asked")
            };
            Ok(Done::new(request, summary).note(format!("$ {line}")))
        })
        .await?;

    let until = story.begin("c2 approves the request: its shard goes to the new identity");
    story
        .end(until, async {
            approve(net, until, "c2", &request, &["approve", &request.id]).await
        })
        .await?;

    let until = story.begin("c3 approves too, only toward the new identity it checked");
    story
        .end(until, async {
            let args = ["forward", &request.id, "--to", &new];
            approve(net, until, "c3", &request, &args).await
        })
        .await?;

    let until = story.begin(&format!(
        "the new identity gathers {THRESHOLD} of the {} shards and rebuilds the secret",
        CUSTODIANS.len()
    ));
    story
        .end(until, async {
            let file = net.root().join("recovered-secret");
            let path = file.to_string_lossy().into_owned();
            let limit = STEP_LIMIT.as_secs().to_string();
            let line = sherdctl(
                net,
                NEW,
                &["recover", &backup, "--output", &path, "--timeout", &limit],
            )
            .await?;
            let recovered = std::fs::read(&file)
                .map_err(|e| anyhow::anyhow!("cannot read {path}: {e}"))
                .on(NEW)?;
            flow::same_secret(NEW, &secret, &recovered)?;
            let mode = std::fs::metadata(&file)
                .map_err(|e| anyhow::anyhow!("cannot read {path}: {e}"))
                .on(NEW)?
                .permissions()
                .mode()
                & 0o777;
            if mode & 0o077 != 0 {
                return Err(Failure {
                    node: Some(NEW.into()),
                    error: anyhow::anyhow!(
                        "sherdctl wrote the secret with mode {mode:04o}, not 0600"
                    ),
                });
            }
            let recovery = net.node(NEW)?.client().recovery(&backup).await.on(NEW)?;
            Ok(
                Done::new((), format!("{} shards in, secret rebuilt", recovery.shards))
                    .note(format!("$ {line}"))
                    .note(format!(
                        "recovered  {}  (in a file of mode {mode:04o})",
                        hex(&recovered)
                    ))
                    .note(format!(
                        "the same {} bytes as the owner's secret, byte for byte",
                        recovered.len()
                    )),
            )
        })
        .await?;
    Ok(())
}

/// A co-custodian waits for the request to reach it, then approves with
/// `sherdctl ARGS`; its shard must then be released.
async fn approve(
    net: &Testnet,
    until: Instant,
    name: &str,
    request: &RecoveryRequest,
    args: &[&str],
) -> Result<Done<()>, Failure> {
    flow::wait_for_pending(net, until, name, &request.id).await?;
    let line = sherdctl(net, name, args).await?;
    let client = net.node(name)?.client();
    match flow::as_custodian(client, name, &request.id).await? {
        Some(r) if r.state == "released" => {
            Ok(Done::new((), format!("{name}'s shard released")).note(format!("$ {line}")))
        }
        other => Err(Failure {
            node: Some(name.into()),
            error: anyhow::anyhow!(
                "after `{line}`, the request is {}, not released",
                other.map_or("gone".into(), |r| r.state)
            ),
        }),
    }
}

/// What a step did: its value, a few words for its line, and lines to show
/// under it.
struct Done<T> {
    value: T,
    summary: String,
    notes: Vec<String>,
}

impl<T> Done<T> {
    fn new(value: T, summary: impl Into<String>) -> Self {
        Self {
            value,
            summary: summary.into(),
            notes: Vec::new(),
        }
    }

    fn note(mut self, line: String) -> Self {
        self.notes.push(line);
        self
    }
}

/// The narration: `[k/9] what happens ... result in 0.41 s`.
#[derive(Debug, Default)]
struct Story {
    step: usize,
    title: String,
    started: Option<Instant>,
    /// A step's line is printed and waits for its result.
    open: bool,
}

impl Story {
    /// Starts the next step's line; returns its deadline.
    fn begin(&mut self, title: &str) -> Instant {
        self.step += 1;
        debug_assert!(self.step <= STEPS, "STEPS counts every step");
        self.title = title.to_owned();
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "[{}/{STEPS}] {title} ...", self.step);
        let _ = out.flush();
        self.open = true;
        let now = Instant::now();
        self.started = Some(now);
        now + STEP_LIMIT
    }

    fn elapsed(&self) -> f64 {
        self.started.map_or(0.0, |s| s.elapsed().as_secs_f64())
    }

    /// Runs the step and ends its line with the result and the time taken.
    async fn end<T>(
        &mut self,
        until: Instant,
        step: impl Future<Output = Result<Done<T>, Failure>>,
    ) -> Result<T, Failure> {
        // Polls give up at `until` with a precise message; this bound is for
        // anything else that hangs.
        let result = match tokio::time::timeout_at(until + Duration::from_secs(5), step).await {
            Ok(result) => result,
            Err(_) => Err(Failure {
                node: None,
                error: anyhow::anyhow!("the step did not finish within {STEP_LIMIT:?}"),
            }),
        };
        match result {
            Ok(done) => {
                self.close_line(&format!("{} in {:.2} s", done.summary, self.elapsed()));
                for note in &done.notes {
                    say(&format!("      {note}"));
                }
                Ok(done.value)
            }
            Err(failure) => {
                self.close_line(&format!("FAILED after {:.2} s", self.elapsed()));
                Err(failure)
            }
        }
    }

    /// Ends the open step line, if any, with `result`.
    fn close_line(&mut self, result: &str) {
        if std::mem::take(&mut self.open) {
            say(&format!(" {result}"));
        }
    }

    /// The error report of a failed step: which, why, and the end of the
    /// relevant daemon's log (read now, before the files are deleted).
    fn report(&self, net: &Testnet, failure: Failure) -> String {
        let mut report = if self.step == 0 {
            format!("{:#}", failure.error)
        } else {
            format!(
                "step {}/{STEPS} failed ({}): {:#}",
                self.step, self.title, failure.error
            )
        };
        // A daemon that did not start has its log tail in the error already.
        let has_tail = matches!(
            failure.error.downcast_ref::<HarnessError>(),
            Some(HarnessError::Start { .. })
        );
        if let Some(node) = failure.node.filter(|_| !has_tail) {
            let log = net.log_of(&node);
            let tail = log_tail(&log, LOG_LINES);
            if tail.is_empty() {
                report.push_str(&format!("\n({node}'s log is empty)"));
            } else {
                report.push_str(&format!(
                    "\n--- last {LOG_LINES} lines of {node}'s log ---\n{tail}"
                ));
            }
        }
        report
    }
}
