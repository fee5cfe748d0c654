//! `sherd-testnet bench`: network-level figures of real daemons on
//! 127.0.0.1, set against DESIGN.md section 9 (BENCHMARKS.md keeps them).
//!
//! Each measurement runs on its own fresh testnet, through numbered, timed
//! steps (the scenarios' [`Steps`]), and every daemon is stopped and every
//! file deleted after it, whatever happened:
//!
//! - `idle-rss` ([`idle`]): resident memory of idle, connected daemons.
//! - `catchup` ([`catchup`]): a fresh node follows a feed of N entries and
//!   catches up (the feed is made with the `fill` test hook, not timed).
//! - `recovery` ([`recovery`]): an owner's recovery, t of n, from the last
//!   approval to the rebuilt secret.
//! - `gossip-50` ([`gossip`]): one entry's spread to 50 nodes.
//!
//! The figures are a table on stdout, or JSON ([`BenchReport`]) with
//! `--json` (the steps are then narrated on stderr) and in a file with
//! `--report`. Field names carry their unit (`_ms`, `_per_s`, `_kib`). A
//! failed measurement does not stop the others; the command then exits 1
//! and the report says which step failed and why.

mod catchup;
mod gossip;
mod idle;
mod machine;
mod recovery;
mod table;

use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::Context as _;
use serde::Serialize;
use sherd_api::test_hooks::MAX_FILL_COUNT;
use tokio::time::Instant;

use crate::scenario::{Out, Report, millis, run_fresh};

pub(crate) use recovery::RecoverySize;

/// One kind of measurement, as `--only` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Measure {
    /// Resident memory of idle daemons
    IdleRss,
    /// Two-node catch-up of a long feed
    Catchup,
    /// Recovery latency after the approvals
    Recovery,
    /// Propagation of one entry to 50 nodes
    #[value(name = "gossip-50")]
    Gossip50,
}

/// `sherd-testnet bench`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Print the figures as JSON on stdout (the steps are narrated on stderr)
    #[arg(long)]
    json: bool,
    /// Write the figures as JSON to FILE as well
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Run only these measurements [default: all of them]
    #[arg(long, value_enum, num_args = 1.., value_delimiter = ',', value_name = "NAME")]
    only: Vec<Measure>,
    /// Feed lengths the catch-up is measured at, comma-separated
    #[arg(
        long,
        value_delimiter = ',',
        default_values_t = [10_000u32, 100_000],
        value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_FILL_COUNT)),
        value_name = "N,..."
    )]
    catchup_sizes: Vec<u32>,
    /// Recoveries measured, as THRESHOLDofCUSTODIANS, comma-separated
    #[arg(
        long,
        value_delimiter = ',',
        default_values = ["3of5", "10of20"],
        value_parser = RecoverySize::parse,
        value_name = "TofN,..."
    )]
    recovery_sizes: Vec<RecoverySize>,
    /// Runs of each catch-up and recovery size (the median is the figure)
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=20))]
    runs: u8,
    /// Idle daemons whose memory is read
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=16))]
    idle_daemons: u16,
}

impl Args {
    fn runs(&self, measure: Measure) -> bool {
        self.only.is_empty() || self.only.contains(&measure)
    }
}

/// The figures of one `bench` run.
#[derive(Debug, Serialize)]
pub(crate) struct BenchReport {
    /// Whether every measurement asked for passed.
    pub(crate) ok: bool,
    /// Where it ran.
    pub(crate) machine: machine::Machine,
    /// When it started, in seconds since the Unix epoch.
    pub(crate) started_unix_s: u64,
    /// The whole run, in milliseconds.
    pub(crate) total_ms: f64,
    /// Idle daemons' memory, if measured.
    pub(crate) idle_rss: Option<idle::IdleRss>,
    /// Catch-up per feed length, shortest first.
    pub(crate) catchup: Vec<catchup::CatchUp>,
    /// Recovery latency per size, in the order asked.
    pub(crate) recovery: Vec<recovery::RecoveryLatency>,
    /// Propagation to 50 nodes, if measured.
    pub(crate) gossip_50: Option<gossip::Propagation>,
    /// The reports of the measurements that failed: the step, the error,
    /// the end of the blamed node's log.
    pub(crate) failed: Vec<Report>,
}

/// Runs `sherd-testnet bench`.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let out = if args.json { Out::Stderr } else { Out::Stdout };
    let started = Instant::now();
    let mut report = BenchReport {
        ok: true,
        machine: machine::Machine::here()?,
        started_unix_s: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        total_ms: 0.0,
        idle_rss: None,
        catchup: Vec::new(),
        recovery: Vec::new(),
        gossip_50: None,
        failed: Vec::new(),
    };
    let stopped = measure_all(&args, out, &mut report).await;
    report.total_ms = millis(started.elapsed());
    report.ok = report.failed.is_empty() && stopped.is_none();

    if !args.json {
        table::print(out, &report);
    }
    let json = serde_json::to_string_pretty(&report).context("cannot encode the report")?;
    if let Some(path) = &args.report {
        std::fs::write(path, format!("{json}\n"))
            .with_context(|| format!("cannot write the report to {}", path.display()))?;
    }
    if args.json {
        crate::say(&json);
    }
    if let Some(signal) = stopped {
        anyhow::bail!("interrupted by {signal}; the figures above are partial");
    }
    if report.failed.is_empty() {
        return Ok(());
    }
    let failed: Vec<&str> = report.failed.iter().map(|r| r.scenario.as_str()).collect();
    anyhow::bail!(
        "{} measurement(s) failed: {}",
        failed.len(),
        failed.join(", ")
    )
}

/// Runs each measurement asked for, each on a fresh testnet, quietest
/// first (idle memory before anything has loaded the machine); stops at a
/// signal and says which.
async fn measure_all(args: &Args, out: Out, report: &mut BenchReport) -> Option<&'static str> {
    if args.runs(Measure::IdleRss) {
        let daemons = usize::from(args.idle_daemons);
        out.line(&format!(
            "idle-rss: resident memory of {daemons} idle, connected daemons"
        ));
        let (run, made, stopped) = run_fresh("idle-rss", out, async |net, s| {
            idle::measure(net, s, daemons).await
        })
        .await;
        report.idle_rss = made;
        if let Some(signal) = keep(report, run, stopped) {
            return Some(signal);
        }
    }
    if args.runs(Measure::Catchup) {
        let mut sizes = args.catchup_sizes.clone();
        sizes.sort_unstable();
        sizes.dedup();
        out.line(&format!(
            "catchup: a fresh node follows a feed of {} entries and catches up",
            sizes
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
        let (run, made, stopped) = run_fresh("catchup", out, async |net, s| {
            catchup::measure(net, s, &sizes, args.runs).await
        })
        .await;
        report.catchup = made.unwrap_or_default();
        if let Some(signal) = keep(report, run, stopped) {
            return Some(signal);
        }
    }
    if args.runs(Measure::Recovery) {
        for size in &args.recovery_sizes {
            let name = format!("recovery-{size}");
            out.line(&format!(
                "{name}: an owner recovers a {} of {} backup; from the last approval to the \
                 rebuilt secret",
                size.threshold, size.custodians
            ));
            let (run, made, stopped) = run_fresh(&name, out, async |net, s| {
                recovery::measure(net, s, *size, args.runs).await
            })
            .await;
            report.recovery.extend(made);
            if let Some(signal) = keep(report, run, stopped) {
                return Some(signal);
            }
        }
    }
    if args.runs(Measure::Gossip50) {
        out.line("gossip-50: one entry's spread to 50 nodes over a sparse mesh");
        let (run, made, stopped) = run_fresh("gossip-50", out, async |net, s| {
            gossip::measure(net, s).await
        })
        .await;
        report.gossip_50 = made;
        if let Some(signal) = keep(report, run, stopped) {
            return Some(signal);
        }
    }
    None
}

/// Keeps the report of a measurement that failed; passes on the signal
/// that stopped it, if one did.
fn keep(
    report: &mut BenchReport,
    run: Report,
    stopped: Option<&'static str>,
) -> Option<&'static str> {
    if !run.ok {
        report.failed.push(run);
    }
    stopped
}

/// The times of the runs of one measurement, and their spread.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Runs {
    /// Each run, in the order run.
    pub(crate) runs_ms: Vec<f64>,
    /// Over the runs.
    #[serde(flatten)]
    pub(crate) spread: Spread,
}

impl Runs {
    /// The runs `runs_ms`, with their spread.
    pub(crate) fn of(runs_ms: Vec<f64>) -> Self {
        Self {
            spread: Spread::of(&runs_ms),
            runs_ms,
        }
    }
}

/// Figures over the runs of one measurement.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct Spread {
    /// The median (of an even number of runs, the mean of the middle two).
    pub(crate) median_ms: f64,
    /// The fastest run.
    pub(crate) min_ms: f64,
    /// The slowest run.
    pub(crate) max_ms: f64,
}

impl Spread {
    /// The spread of `runs_ms`; all zero if there are none.
    pub(crate) fn of(runs_ms: &[f64]) -> Self {
        let mut sorted = runs_ms.to_vec();
        sorted.sort_unstable_by(f64::total_cmp);
        let n = sorted.len();
        let median_ms = match n {
            0 => 0.0,
            _ if n % 2 == 1 => sorted[n / 2],
            _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        };
        Self {
            median_ms,
            min_ms: sorted.first().copied().unwrap_or(0.0),
            max_ms: sorted.last().copied().unwrap_or(0.0),
        }
    }
}

/// The median of some counts (of an even number, the lower middle one:
/// a count that was seen).
pub(crate) fn median_count(values: &[u64]) -> u64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted
        .get(sorted.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::{Spread, median_count};

    #[test]
    fn medians_of_odd_even_and_empty_runs() {
        assert_eq!(
            Spread::of(&[3.0, 1.0, 2.0]),
            Spread {
                median_ms: 2.0,
                min_ms: 1.0,
                max_ms: 3.0
            }
        );
        assert_eq!(Spread::of(&[4.0, 1.0, 2.0, 3.0]).median_ms, 2.5);
        assert_eq!(Spread::of(&[]).max_ms, 0.0);
        assert_eq!(median_count(&[5, 1, 9]), 5);
        assert_eq!(median_count(&[4, 1, 2, 3]), 2);
        assert_eq!(median_count(&[]), 0);
    }
}
