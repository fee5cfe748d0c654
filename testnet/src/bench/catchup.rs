//! `catchup`: two-node catch-up through real processes. The source node
//! (`--test-hooks`) has its own feed filled to N entries with
//! `POST /v1/test/fill` (timed apart: seeding is not catch-up); then a fresh
//! follower starts, follows the source (adds it as a contact), dials it,
//! and the clock runs from the follow until the follower's store holds the
//! source's head, polled every [`flow::POLL`] through its control API. Each
//! run has its own fresh follower, removed after it; one source serves
//! every size, filled further between sizes.
//!
//! Precision: a run ends at the answer of the first poll that saw the
//! head; the head arrived after the previous poll was sent. The widest such
//! window of the runs is reported as `precision_ms`.

use std::time::Duration;

use serde::Serialize;
use sherd_testnet::Testnet;
use tokio::time::Instant;

use super::Runs;
use crate::flow::{self, Failure, On as _, STEP_LIMIT};
use crate::scenario::{Steps, millis};

/// The node whose feed is caught up with.
const SOURCE: &str = "source";
/// Entries one fill request appends at most: each request then takes
/// about a second, and the narration shows progress.
const FILL_CHUNK: u32 = 10_000;

/// The catch-up of one feed length.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CatchUp {
    /// Entries of the source's feed: what the follower fetched.
    pub(crate) entries: u64,
    /// Time to seed the source's feed up to this length from the previous
    /// size's (through the fill hook); not part of the catch-up.
    pub(crate) seed_ms: f64,
    /// Entries appended by that seeding.
    pub(crate) seeded_entries: u64,
    /// Each run, from the follow to the follower holding the head.
    #[serde(flatten)]
    pub(crate) runs: Runs,
    /// `entries` over the median time.
    pub(crate) entries_per_s: f64,
    /// How often the follower was polled.
    pub(crate) poll_every_ms: f64,
    /// The widest window in which a run's end lay (see the module's doc).
    pub(crate) precision_ms: f64,
    /// The source's resident memory after the runs.
    pub(crate) source_rss_kib: u64,
    /// The last follower's resident memory right after its catch-up.
    pub(crate) follower_rss_kib: u64,
}

/// Measures the catch-up at each of `sizes` (ascending), `runs` times each.
pub(super) async fn measure(
    net: &mut Testnet,
    s: &mut Steps,
    sizes: &[u32],
    runs: u8,
) -> Result<Vec<CatchUp>, Failure> {
    s.step(
        format!("start the source node ({SOURCE}) with --test-hooks"),
        async |_| {
            net.start_with(SOURCE, &["--test-hooks"]).await?;
            Ok(())
        },
    )
    .await?;
    let source_feed = net.node(SOURCE)?.feed_id().to_owned();
    let mut head = 0u64;
    let mut followers = 0usize;
    let mut figures = Vec::new();
    for &size in sizes {
        let target = u64::from(size);
        let seeded_entries = target.saturating_sub(head);
        let seed_started = Instant::now();
        head = s
            .step(
                format!("fill the source's feed to {size} entries (+{seeded_entries}; not timed)"),
                async |_| fill(net, head, target).await,
            )
            .await?;
        let seed_ms = millis(seed_started.elapsed());

        let mut runs_ms = Vec::new();
        let mut precision = Duration::ZERO;
        let mut follower_rss_kib = 0;
        for run in 1..=runs {
            followers += 1;
            let follower = format!("follower{followers}");
            let (took, window, rss) = s
                .step(
                    format!(
                        "run {run}: {follower} starts fresh, follows the source, dials it and \
                         catches up {head} entries"
                    ),
                    async |until| {
                        net.start(&follower).await?;
                        let (took, window) =
                            catch_up(net, &follower, &source_feed, head, until).await?;
                        let rss = net.node(&follower)?.rss_kib()?;
                        // Gone before the next run: the source serves one
                        // follower at a time.
                        net.remove(&follower).await?;
                        Ok((took, window, rss))
                    },
                )
                .await?;
            s.note(format!(
                "{:.1} ms ({:.0} entries/s), to within {:.1} ms",
                millis(took),
                head as f64 / took.as_secs_f64().max(f64::EPSILON),
                millis(window)
            ));
            runs_ms.push(millis(took));
            precision = precision.max(window);
            follower_rss_kib = rss;
        }
        let timed = Runs::of(runs_ms);
        let median_s = timed.spread.median_ms / 1000.0;
        figures.push(CatchUp {
            entries: head,
            seed_ms,
            seeded_entries,
            entries_per_s: (head as f64 / median_s.max(f64::EPSILON)).round(),
            runs: timed,
            poll_every_ms: millis(flow::POLL),
            precision_ms: millis(precision),
            source_rss_kib: net.node(SOURCE)?.rss_kib()?,
            follower_rss_kib,
        });
    }
    s.set("followers", followers);
    s.set("entries", head);
    Ok(figures)
}

/// Fills the source's feed from `head` up to `target` entries, in requests
/// of [`FILL_CHUNK`]; returns the new head, checked.
async fn fill(net: &Testnet, head: u64, target: u64) -> Result<u64, Failure> {
    // A large fill takes longer than the client's default patience.
    let client = net.node(SOURCE)?.client().clone().with_timeout(STEP_LIMIT);
    let mut now = head;
    while now < target {
        let count = u32::try_from(target - now)
            .unwrap_or(u32::MAX)
            .min(FILL_CHUNK);
        let report = client.test_fill(count).await.on(SOURCE)?;
        if report.appended != count || report.head_seq != now + u64::from(count) {
            return Err(Failure::on(
                SOURCE,
                format!(
                    "asked to append {count} entries after seq {now}, it appended {} and its \
                     head is at seq {}",
                    report.appended, report.head_seq
                ),
            ));
        }
        now = report.head_seq;
    }
    Ok(now)
}

/// `follower` follows the source's `feed` and dials the source; returns how
/// long until it held seq `head`, and the window its end lay in.
async fn catch_up(
    net: &Testnet,
    follower: &str,
    feed: &str,
    head: u64,
    until: Instant,
) -> Result<(Duration, Duration), Failure> {
    let client = net.node(follower)?.client();
    let followed = Instant::now();
    client.add_contact(feed, SOURCE, false).await.on(follower)?;
    net.connect(follower, SOURCE).await?;
    let mut last_sent = followed;
    loop {
        let sent = Instant::now();
        let held = flow::height(client, feed).await.on(follower)?;
        let answered = Instant::now();
        if held >= head {
            return Ok((answered - followed, answered - last_sent));
        }
        if answered >= until {
            return Err(Failure::on(
                follower,
                format!(
                    "{follower} holds {held} of the source's {head} entries {} s after \
                     following it",
                    followed.elapsed().as_secs()
                ),
            ));
        }
        last_sent = sent;
        tokio::time::sleep(flow::POLL).await;
    }
}
