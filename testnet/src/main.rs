//! `sherd-testnet`: real `sherdd` processes on 127.0.0.1, for trying sherd
//! by hand, and (issue 4) the demo, fault-injection scenarios and benches.
//! It depends on `sherd-api` only, never on the daemon's internals.
//!
//! Today: `sherd-testnet up --nodes N` starts N daemons, connects and
//! befriends them all, prints the `sherdctl` line for each, and runs until
//! Ctrl-C, then stops them all and removes their data.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use sherd_testnet::Testnet;

/// Real sherd daemons on this machine, on 127.0.0.1 only.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start N connected daemons and keep them running until Ctrl-C.
    Up {
        /// How many daemons (1 to 64).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=64))]
        nodes: u16,
    },
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
        Command::Up { nodes } => up(nodes).await,
    }
}

async fn up(nodes: u16) -> anyhow::Result<()> {
    let mut net = Testnet::new()?;
    let names: Vec<String> = (1..=nodes).map(|i| format!("node{i}")).collect();
    for name in &names {
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
    println!(
        "{nodes} daemons on 127.0.0.1, connected and befriended; data in {}",
        net.root().display()
    );
    for d in net.daemons() {
        println!("  {:<8} {}  {}", d.name(), d.feed_id(), d.sherdctl_line());
    }
    println!("Ctrl-C stops them all.");
    tokio::signal::ctrl_c()
        .await
        .context("cannot watch Ctrl-C")?;
    for name in &names {
        net.stop(name).await?;
    }
    Ok(())
}
