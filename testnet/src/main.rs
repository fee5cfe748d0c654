//! `sherd-testnet`: real `sherdd` processes on 127.0.0.1, for trying sherd
//! by hand, and (issue 4) the demo, fault-injection scenarios and benches.
//! It depends on `sherd-api` only, never on the daemon's internals.
//!
//! - `sherd-testnet demo` tells the whole story with seven daemons: a 3-of-5
//!   backup, a lost device, a recovery onto a new identity (`demo.rs`).
//! - `sherd-testnet scenario NAME` (or `--all`) runs fault-injection
//!   scenarios, each on a fresh testnet, checks what must hold, and reports
//!   every step with its time, as text or JSON (`scenario/`).
//! - `sherd-testnet bench` measures network-level figures (catch-up,
//!   recovery latency, propagation, idle memory) as a table or JSON
//!   (`bench/`).
//! - `sherd-testnet up --nodes N` starts N daemons, connects and befriends
//!   them all, prints the `sherdctl` line for each, and runs until Ctrl-C,
//!   then stops them all and removes their data.
//! - With `--keep`, either leaves its daemons running after it exits, and
//!   records them (`kept.rs`); `sherd-testnet down` stops them.
//!
//! Exit status: 0 on success, 1 on any failure (the message says which step
//! and why).

mod bench;
mod demo;
mod flow;
mod gossip50;
mod kept;
mod mesh;
mod scenario;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args as ClapArgs, Parser, Subcommand};
use sherd_testnet::{Detached, Testnet};

use crate::kept::StateFile;

/// Real sherd daemons on this machine, on 127.0.0.1 only.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Back up a secret 3-of-5, lose the owner's device, recover it on a new identity
    ///
    /// Seven real daemons on 127.0.0.1, each with its own temporary data
    /// dir: an owner, five custodians (c1..c5) and a spare machine for the
    /// owner's new identity. Each step is told as it happens, with its time.
    /// Exits 0 when the new identity has the exact secret back; otherwise 1,
    /// with the failing step and the end of the relevant daemon's log. Leaves
    /// no process and no file behind, unless --keep.
    Demo {
        /// Leave the daemons running at the end (after a failed step too) and print how to reach them; `sherd-testnet down` stops them
        #[arg(long)]
        keep: bool,
        #[command(flatten)]
        state: StateArg,
    },
    /// Run a scenario (or --all of them) with assertions, and report each step's time
    ///
    /// Each scenario runs real daemons on 127.0.0.1 in a fresh temporary
    /// directory, drives a flow through their control APIs (injecting a
    /// fault: a custodian offline, one that tampers with its shard, crashes
    /// with SIGKILL), checks what must hold, and reports every step with its
    /// time and the counts it saw. A failure names the step, the error and
    /// the end of the relevant daemon's log. Exits 0 when every scenario run
    /// passed, else 1. Leaves no process and no file behind.
    Scenario(scenario::Args),
    /// Measure network-level figures: catch-up, recovery latency, propagation, idle memory
    ///
    /// Each measurement runs real daemons on 127.0.0.1 in a fresh temporary
    /// directory: two-node catch-up of a long feed (seeded through the
    /// daemon's test hooks, not timed), an owner's recovery from the last
    /// approval to the rebuilt secret, one entry's spread to 50 nodes, and
    /// the resident memory of idle daemons. Prints a table, or JSON with
    /// --json; figures from a release build (`cargo build --release --bins`)
    /// are the ones to compare with DESIGN.md section 9. Exits 0 when every
    /// measurement passed, else 1. Leaves no process and no file behind.
    Bench(bench::Args),
    /// Start N connected daemons and keep them running until Ctrl-C
    Up {
        /// How many daemons (1 to 64)
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=64))]
        nodes: u16,
        /// Exit at once and leave the daemons running (`sherd-testnet down` stops them)
        #[arg(long)]
        keep: bool,
        #[command(flatten)]
        state: StateArg,
    },
    /// Stop the daemons left running by `demo --keep` or `up --keep`, and delete their data
    Down {
        #[command(flatten)]
        state: StateArg,
    },
}

#[derive(Debug, ClapArgs)]
struct StateArg {
    /// Where kept networks are recorded [default: $XDG_RUNTIME_DIR/sherd-testnet/kept.json, else /tmp/sherd-testnet-UID/kept.json]
    #[arg(long = "state", env = "SHERD_TESTNET_STATE", value_name = "FILE")]
    path: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sherd-testnet: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sherd-testnet: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Demo { keep, state } => demo::run(keep, StateFile::new(state.path)?).await,
        Command::Scenario(args) => scenario::run(args).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Up { nodes, keep, state } => up(nodes, keep, StateFile::new(state.path)?).await,
        Command::Down { state } => StateFile::new(state.path)?.down().await,
    }
}

/// One line on standard output. A closed output does not stop the program:
/// the daemons still have to be stopped and their files removed.
pub(crate) fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Waits for Ctrl-C or SIGTERM and says which; never returns if neither can
/// be watched.
pub(crate) async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return std::future::pending().await;
    };
    tokio::select! {
        Ok(()) = tokio::signal::ctrl_c() => "Ctrl-C",
        Some(()) = term.recv() => "SIGTERM",
        else => std::future::pending().await,
    }
}

/// Leaves `net` running, records it in `state` and says how to reach it.
pub(crate) fn keep(net: Testnet, state: &StateFile) -> anyhow::Result<()> {
    let detached = net.detach();
    state.record(detached.clone()).with_context(|| {
        format!(
            "the daemons run on, but could not be recorded; stop them by pid and delete {}",
            detached.root.display()
        )
    })?;
    print_kept(&detached, state);
    Ok(())
}

fn print_kept(detached: &Detached, state: &StateFile) {
    say(&format!(
        "kept running, recorded in {}; `{}` stops them and deletes {}",
        state.path().display(),
        state.down_command(),
        detached.root.display()
    ));
    let width = detached
        .nodes
        .iter()
        .map(|n| n.name.len())
        .max()
        .unwrap_or(0);
    for node in &detached.nodes {
        say(&format!(
            "  {:width$}  {}  pid {:<7}  {} status",
            node.name,
            node.feed_id,
            node.pid,
            node.sherdctl_line()
        ));
    }
    say(
        "  (any sherdctl command in place of `status`: peers, contacts list, backup list, shards, requests, audit, events --follow)",
    );
}

async fn up(nodes: u16, keep_running: bool, state: StateFile) -> anyhow::Result<()> {
    let mut net = Testnet::new()?;
    let names: Vec<String> = (1..=nodes).map(|i| format!("node{i}")).collect();
    let wired = tokio::select! {
        wired = wire(&mut net, &names) => wired,
        signal = interrupted() => Err(anyhow::anyhow!("interrupted by {signal}")),
    };
    if let Err(e) = wired {
        if let Err(closing) = net.close().await {
            return Err(e.context(format!("and cleaning up failed: {closing}")));
        }
        return Err(e);
    }
    say(&format!(
        "{nodes} daemon{} on 127.0.0.1, connected and befriended; data in {}",
        if nodes == 1 { "" } else { "s" },
        net.root().display()
    ));
    if keep_running {
        return keep(net, &state);
    }
    for d in net.daemons() {
        say(&format!(
            "  {:<8} {}  {}",
            d.name(),
            d.feed_id(),
            d.sherdctl_line()
        ));
    }
    say("Ctrl-C stops them all.");
    let signal = interrupted().await;
    let root = net.root().to_owned();
    for name in &names {
        net.stop(name).await?;
    }
    net.close().await?;
    say(&format!(
        "{signal}: stopped them all, deleted {}",
        root.display()
    ));
    Ok(())
}

/// Starts `names`, and connects and befriends every pair.
pub(crate) async fn wire(net: &mut Testnet, names: &[String]) -> anyhow::Result<()> {
    for name in names {
        net.start(name)
            .await
            .with_context(|| format!("starting {name}"))?;
    }
    for (i, a) in names.iter().enumerate() {
        for b in names.iter().skip(i + 1) {
            net.connect(b, a).await?;
            net.befriend(a, b).await?;
        }
    }
    Ok(())
}
