//! `sherd-testnet scenario NAME` and `scenario --all`: flows of sherd run on
//! real daemons, with a fault injected, checked, timed and reported.
//!
//! A [`Scenario`] is a name, a sentence and an async function that drives a
//! fresh [`Testnet`] through numbered steps, each run by [`Steps::step`]:
//! timed, bounded by [`STEP_LIMIT`], and recorded, with the counts the
//! scenario saw ([`Steps::set`]). The first failing step ends the scenario;
//! the report names it, its error, and the end of the log of the node the
//! error blames. Whatever the outcome, every daemon is stopped and the
//! directory deleted before the next scenario starts.
//!
//! The report is JSON on stdout with `--json` (a [`Report`], or with `--all`
//! an [`AllReport`]), in a file with `--report FILE`, and a readable summary
//! otherwise. Steps are narrated as they run: on stdout, or on stderr when
//! stdout carries the JSON.
//!
//! A new scenario is a module with a `pub(super) const SCENARIO` and a line
//! in [`ALL`]. Scenarios that need more of the daemon than its control API
//! (`partition`, `flood`, and `one-time`, `revoke`, `reshare`, which read
//! stored payloads to look for them on disk: `disk.rs`) start their daemons
//! with `--test-hooks`, which adds the test-only routes under `/v1/test/`.

mod byzantine_custodian;
mod common;
mod crash;
mod disk;
mod emergency;
mod flood;
mod gossip;
mod happy_path;
mod health_check;
mod lost_device;
mod offline_custodian;
mod one_time;
mod partition;
mod request_flood;
mod reshare;
mod revoke;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::pin::Pin;

use anyhow::Context as _;
use serde::Serialize;
use sherd_testnet::{HarnessError, Testnet, log_tail};
use tokio::time::{Duration, Instant};

use crate::flow::{Failure, STEP_LIMIT};
use crate::interrupted;

/// Lines of a daemon's log kept in a failure's report.
const LOG_LINES: usize = 20;

/// What a scenario's function returns: the scenario run to its end, or the
/// failure that ended it.
pub(crate) type ScenarioFuture<'a> = Pin<Box<dyn Future<Output = Result<(), Failure>> + 'a>>;

/// One scenario of the registry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scenario {
    /// Its name on the command line (`happy-path`).
    pub(crate) name: &'static str,
    /// What it does and checks, in a sentence.
    pub(crate) about: &'static str,
    /// Drives a fresh, empty testnet through the scenario's steps.
    pub(crate) run: for<'a> fn(&'a mut Testnet, &'a mut Steps) -> ScenarioFuture<'a>,
}

/// Every scenario, in the order `--all` runs them.
pub(crate) const ALL: &[Scenario] = &[
    happy_path::SCENARIO,
    lost_device::SCENARIO,
    offline_custodian::SCENARIO,
    byzantine_custodian::SCENARIO,
    crash::SCENARIO,
    emergency::VETO,
    emergency::RELEASE,
    one_time::SCENARIO,
    revoke::SCENARIO,
    reshare::SCENARIO,
    health_check::SCENARIO,
    request_flood::SCENARIO,
    partition::SCENARIO,
    flood::SCENARIO,
    gossip::SCENARIO,
];

/// `sherd-testnet scenario`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The scenario to run
    #[arg(
        value_parser = clap::builder::PossibleValuesParser::new(ALL.iter().map(|s| s.name)),
        required_unless_present_any = ["all", "list"],
        conflicts_with_all = ["all", "list"],
    )]
    name: Option<String>,
    /// Run every scenario, one after the other, each on a fresh testnet; exit 1 if any failed
    #[arg(long)]
    all: bool,
    /// List the scenarios and what each one checks
    #[arg(long, conflicts_with_all = ["json", "report"])]
    list: bool,
    /// Print the report as JSON on stdout (the steps are narrated on stderr)
    #[arg(long)]
    json: bool,
    /// Write the report as JSON to FILE as well
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
}

/// One step as reported.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StepReport {
    /// Its number, from 1.
    pub(crate) n: usize,
    /// What it does.
    pub(crate) name: String,
    /// How long it took, in milliseconds.
    pub(crate) ms: f64,
    /// Whether it passed.
    pub(crate) ok: bool,
    /// What it saw, when the scenario says (a crash's timing, say).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) note: Option<String>,
}

/// Why a scenario failed.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct FailureReport {
    /// The failing step's number; none if it failed outside any step
    /// (making the testnet, cleaning up).
    pub(crate) step: Option<usize>,
    /// The error, with its causes.
    pub(crate) error: String,
    /// The node the error blames, if any.
    pub(crate) node: Option<String>,
    /// The last lines of that node's log.
    pub(crate) log_tail: Vec<String>,
    /// Whether `error` holds the log tail already (a daemon that did not
    /// start says why with it), so the summary shows it once.
    #[serde(skip)]
    tail_in_error: bool,
}

/// The report of one scenario run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    /// The scenario's name.
    pub(crate) scenario: String,
    /// Whether every step passed and the testnet was cleaned up.
    pub(crate) ok: bool,
    /// The steps run, in order; the last one failed if `ok` is false.
    pub(crate) steps: Vec<StepReport>,
    /// What the scenario counted (acks, shards, restarts, ...).
    pub(crate) counts: BTreeMap<String, u64>,
    /// The whole run, cleaning up included, in milliseconds.
    pub(crate) total_ms: f64,
    /// The testnet's directory (deleted at the end).
    pub(crate) dir: Option<PathBuf>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) failure: Option<FailureReport>,
}

/// The report of `--all`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct AllReport {
    /// Whether every scenario passed.
    pub(crate) ok: bool,
    /// The whole run, in milliseconds.
    pub(crate) total_ms: f64,
    /// Each scenario's report, in the order they ran.
    pub(crate) scenarios: Vec<Report>,
}

/// Where the narration goes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Out {
    Stdout,
    Stderr,
}

impl Out {
    /// Writes `text`, flushed (a closed output does not stop the run: the
    /// daemons still have to be stopped).
    fn write(self, text: &str) {
        fn put(mut out: impl std::io::Write, text: &str) {
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        }
        match self {
            Self::Stdout => put(std::io::stdout().lock(), text),
            Self::Stderr => put(std::io::stderr().lock(), text),
        }
    }

    pub(crate) fn line(self, line: &str) {
        self.write(&format!("{line}\n"));
    }
}

/// The steps of one scenario run, as they happen: numbered, timed,
/// narrated, and what the scenario counted.
#[derive(Debug)]
pub(crate) struct Steps {
    out: Out,
    done: Vec<StepReport>,
    counts: BTreeMap<String, u64>,
    /// The step running now: its number, name and start.
    open: Option<(usize, String, Instant)>,
    /// The step that failed.
    failed: Option<usize>,
}

impl Steps {
    fn new(out: Out) -> Self {
        Self {
            out,
            done: Vec::new(),
            counts: BTreeMap::new(),
            open: None,
            failed: None,
        }
    }

    /// Runs the next step: `body` gets the step's deadline (its polls give
    /// up there, saying what they saw); past it and a short grace, the step
    /// fails whatever it was doing.
    pub(crate) async fn step<T>(
        &mut self,
        name: impl Into<String>,
        body: impl AsyncFnOnce(Instant) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        let name = name.into();
        let n = self.done.len() + 1;
        self.out.write(&format!("  [{n}] {name} ..."));
        let started = Instant::now();
        self.open = Some((n, name, started));
        let until = started + STEP_LIMIT;
        let result =
            match tokio::time::timeout_at(until + Duration::from_secs(5), body(until)).await {
                Ok(result) => result,
                Err(_) => Err(Failure::from(anyhow::anyhow!(
                    "the step did not finish within {STEP_LIMIT:?}"
                ))),
            };
        self.close(result.is_ok());
        result
    }

    /// Ends the open step, if any, as passed or failed.
    fn close(&mut self, ok: bool) {
        let Some((n, name, started)) = self.open.take() else {
            return;
        };
        let ms = millis(started.elapsed());
        self.out.line(&if ok {
            format!(" ok in {}", shown_ms(ms))
        } else {
            format!(" FAILED after {}", shown_ms(ms))
        });
        if !ok {
            self.failed = Some(n);
        }
        self.done.push(StepReport {
            n,
            name,
            ms,
            ok,
            note: None,
        });
    }

    /// Attaches `note` to the step that just ended, and shows it under it.
    pub(crate) fn note(&mut self, note: String) {
        self.out.line(&format!("      {note}"));
        if let Some(step) = self.done.last_mut() {
            step.note = Some(note);
        }
    }

    /// Records a count (replacing an earlier value under the same key).
    pub(crate) fn set(&mut self, key: &str, value: impl TryInto<u64>) {
        let value = value.try_into().unwrap_or(u64::MAX);
        self.counts.insert(key.to_owned(), value);
    }

    /// Adds to a count.
    pub(crate) fn add(&mut self, key: &str, value: u64) {
        *self.counts.entry(key.to_owned()).or_default() += value;
    }

    /// The report of `failure`, with the end of the blamed node's log (if
    /// there is a testnet), read now, before its files are deleted.
    fn failure_report(&self, net: Option<&Testnet>, failure: Failure) -> FailureReport {
        let tail_in_error = matches!(
            failure.error.downcast_ref::<HarnessError>(),
            Some(HarnessError::Start { .. })
        );
        let log_tail = net
            .zip(failure.node.as_deref())
            .map(|(net, node)| {
                log_tail(&net.log_of(node), LOG_LINES)
                    .lines()
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        FailureReport {
            step: self.failed,
            error: format!("{:#}", failure.error),
            node: failure.node,
            log_tail,
            tail_in_error,
        }
    }
}

/// `d` in milliseconds, to 0.1 ms.
pub(crate) fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

/// Milliseconds as a person reads them: `12.3 ms`, `4.56 s`.
pub(crate) fn shown_ms(ms: f64) -> String {
    if ms < 1000.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{:.2} s", ms / 1000.0)
    }
}

/// Runs `sherd-testnet scenario`.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    if args.list {
        let width = ALL.iter().map(|s| s.name.len()).max().unwrap_or(0);
        for s in ALL {
            crate::say(&format!("{:width$}  {}", s.name, s.about));
        }
        return Ok(());
    }
    let out = if args.json { Out::Stderr } else { Out::Stdout };
    let chosen: Vec<&Scenario> = if args.all {
        ALL.iter().collect()
    } else {
        ALL.iter()
            .filter(|s| args.name.as_deref() == Some(s.name))
            .collect()
    };
    let started = Instant::now();
    let mut reports = Vec::new();
    let count = chosen.len();
    for (i, scenario) in chosen.into_iter().enumerate() {
        let (report, stopped) = run_one(scenario, out).await;
        reports.push(report);
        if let Some(signal) = stopped {
            if i + 1 < count {
                out.line(&format!(
                    "{signal}: the {} remaining scenarios are not run",
                    count - i - 1
                ));
            }
            break;
        }
    }
    let all = AllReport {
        ok: reports.iter().all(|r| r.ok),
        total_ms: millis(started.elapsed()),
        scenarios: reports,
    };
    if args.all {
        summary_table(out, &all);
    }
    let json = if args.all {
        serde_json::to_string_pretty(&all)
    } else {
        match all.scenarios.first() {
            Some(one) => serde_json::to_string_pretty(one),
            None => Ok(String::new()),
        }
    }
    .context("cannot encode the report")?;
    if let Some(path) = &args.report {
        std::fs::write(path, format!("{json}\n"))
            .with_context(|| format!("cannot write the report to {}", path.display()))?;
    }
    if args.json {
        crate::say(&json);
    }
    let failed: Vec<&str> = all
        .scenarios
        .iter()
        .filter(|r| !r.ok)
        .map(|r| r.scenario.as_str())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "{} of {} scenario{} failed: {}",
            failed.len(),
            all.scenarios.len(),
            if all.scenarios.len() == 1 { "" } else { "s" },
            failed.join(", ")
        )
    }
}

/// Runs one scenario on a fresh testnet and cleans up after it, whatever
/// happened; also says whether Ctrl-C or SIGTERM stopped it.
async fn run_one(scenario: &Scenario, out: Out) -> (Report, Option<&'static str>) {
    out.line(&format!("scenario {}: {}", scenario.name, scenario.about));
    let (report, _, stopped) = run_fresh(
        scenario.name,
        out,
        async |net: &mut Testnet, s: &mut Steps| (scenario.run)(net, s).await,
    )
    .await;
    (report, stopped)
}

/// Runs `body` through its steps on a fresh testnet, reported as `name`,
/// narrated on `out`, and cleans up after it, whatever happened: every
/// daemon stopped, the directory deleted. Returns its report, what `body`
/// returned if it passed, and the signal (Ctrl-C, SIGTERM) that stopped it,
/// if one did. Scenarios and the bench's measurements both run this way.
pub(crate) async fn run_fresh<T>(
    name: &str,
    out: Out,
    body: impl AsyncFnOnce(&mut Testnet, &mut Steps) -> Result<T, Failure>,
) -> (Report, Option<T>, Option<&'static str>) {
    let started = Instant::now();
    let mut steps = Steps::new(out);
    let mut report = Report {
        scenario: name.to_owned(),
        ok: false,
        steps: Vec::new(),
        counts: BTreeMap::new(),
        total_ms: 0.0,
        dir: None,
        failure: None,
    };
    let mut net = match Testnet::new() {
        Ok(net) => net,
        Err(e) => {
            let failure = Failure::from(e);
            report.failure = Some(steps.failure_report(None, failure));
            report.total_ms = millis(started.elapsed());
            say_result(out, &report);
            return (report, None, None);
        }
    };
    report.dir = Some(net.root().to_owned());
    let (outcome, stopped) = tokio::select! {
        outcome = body(&mut net, &mut steps) => (outcome, None),
        signal = interrupted() => {
            let error = anyhow::anyhow!("interrupted by {signal}");
            (Err(Failure::from(error)), Some(signal))
        }
    };
    // A step cut short by a signal ends here, as failed.
    steps.close(false);
    let (made, mut failure) = match outcome {
        Ok(made) => (Some(made), None),
        Err(f) => (None, Some(steps.failure_report(Some(&net), f))),
    };
    if let Err(e) = net.close().await {
        let e = format!("cleaning up failed: {e}");
        match &mut failure {
            Some(f) => f.error.push_str(&format!("\nand then {e}")),
            None => {
                failure = Some(FailureReport {
                    step: None,
                    error: e,
                    node: None,
                    log_tail: Vec::new(),
                    tail_in_error: false,
                });
            }
        }
    }
    report.ok = failure.is_none();
    report.failure = failure;
    report.steps = steps.done;
    report.counts = steps.counts;
    report.total_ms = millis(started.elapsed());
    say_result(out, &report);
    let made = if report.ok { made } else { None };
    (report, made, stopped)
}

/// The end of one scenario: its counts and verdict, and why it failed.
fn say_result(out: Out, report: &Report) {
    if !report.counts.is_empty() {
        let counts: Vec<String> = report
            .counts
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        out.line(&format!("  counts: {}", counts.join(", ")));
    }
    let cleaned = match &report.dir {
        Some(dir) if report.failure.as_ref().is_none_or(|f| f.step.is_some()) => {
            format!("; every daemon stopped, {} deleted", dir.display())
        }
        _ => String::new(),
    };
    let Some(failure) = &report.failure else {
        out.line(&format!(
            "ok: {}, {} steps in {}{cleaned}",
            report.scenario,
            report.steps.len(),
            shown_ms(report.total_ms)
        ));
        return;
    };
    let at = match failure.step {
        Some(n) => {
            let name = report
                .steps
                .iter()
                .find(|s| s.n == n)
                .map_or("", |s| s.name.as_str());
            format!("step {n} ({name})")
        }
        None => "outside any step".into(),
    };
    out.line(&format!(
        "FAILED: {}, {at}: {}",
        report.scenario, failure.error
    ));
    if let Some(node) = &failure.node
        && !failure.tail_in_error
    {
        if failure.log_tail.is_empty() {
            out.line(&format!("({node}'s log is empty)"));
        } else {
            out.line(&format!(
                "--- last {LOG_LINES} lines of {node}'s log ---\n{}",
                failure.log_tail.join("\n")
            ));
        }
    }
    out.line(&format!(
        "  ({} in {}{cleaned})",
        report.scenario,
        shown_ms(report.total_ms)
    ));
}

/// `--all`'s closing table: one line per scenario.
fn summary_table(out: Out, all: &AllReport) {
    let width = all
        .scenarios
        .iter()
        .map(|r| r.scenario.len())
        .max()
        .unwrap_or(0)
        .max("scenario".len());
    out.line("");
    out.line(&format!(
        "{:width$}  {:6}  {:>5}  {:>9}",
        "scenario", "result", "steps", "time"
    ));
    for r in &all.scenarios {
        let (result, note) = match &r.failure {
            None => ("ok", String::new()),
            Some(f) => (
                "FAILED",
                match f.step {
                    Some(n) => format!("  at step {n}: {}", first_line(&f.error)),
                    None => format!("  {}", first_line(&f.error)),
                },
            ),
        };
        out.line(&format!(
            "{:width$}  {result:6}  {:>5}  {:>9}{note}",
            r.scenario,
            r.steps.len(),
            shown_ms(r.total_ms)
        ));
    }
    let passed = all.scenarios.iter().filter(|r| r.ok).count();
    let verdict = if all.ok { "ok" } else { "FAILED" };
    out.line(&format!(
        "{verdict}: {passed} of {} scenarios passed in {}",
        all.scenarios.len(),
        shown_ms(all.total_ms)
    ));
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}
