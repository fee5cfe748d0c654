//! `sherdctl`, the command line client of a sherd node. It talks only to the
//! daemon's control API (through `sherd-api`); it never links the store or
//! libp2p, and never holds state of its own.
//!
//! This file decides the exit status and prints errors, one line each
//! (`sherdctl: <message>`; for an unreachable daemon the line says how to
//! start it). `cli.rs` has the clap types, `commands.rs` does the work,
//! `output.rs` renders text or `--json`.
//!
//! Exit status (stable, also shown by `--help`):
//!
//! | status | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | the daemon refused the request (a 4xx answer: bad input, unknown contact, conflict), or `recover` found the secret already handed over |
//! | 2 | usage error: clap's, or no data dir to find the socket in |
//! | 3 | the daemon is unreachable (not running at the socket) |
//! | 4 | anything else: the daemon failed (5xx), an unexpected answer, a timeout (`recover --timeout` too), a failed recovery, a failed write |
//!
//! A closed stdout (`sherdctl events --follow | head`) ends the program
//! quietly with status 0.

mod cli;
mod commands;
mod output;

use std::process::ExitCode;

use clap::Parser;
use sherd_api::ClientError;

use crate::cli::Cli;
use crate::commands::{Refused, UsageError};

const REFUSED: u8 = 1;
const USAGE: u8 = 2;
const UNREACHABLE: u8 = 3;
const FAILED: u8 = 4;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version are "errors" to clap, printed to stdout.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("sherdctl: cannot start the async runtime: {e}");
            return ExitCode::from(FAILED);
        }
    };
    match runtime.block_on(commands::run(&cli.global, cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => report(&err),
    }
}

/// Prints `err` on one line and picks the exit status.
fn report(err: &anyhow::Error) -> ExitCode {
    if let Some(io) = err.downcast_ref::<std::io::Error>()
        && io.kind() == std::io::ErrorKind::BrokenPipe
    {
        return ExitCode::SUCCESS;
    }
    if let Some(client) = err.downcast_ref::<ClientError>() {
        // A client error's message is complete (the unreachable one carries
        // its cause and the hint), so the chain is not repeated.
        eprintln!("sherdctl: {client}");
        return ExitCode::from(match client {
            ClientError::Unreachable { .. } => UNREACHABLE,
            e if e.is_refusal() => REFUSED,
            _ => FAILED,
        });
    }
    eprintln!("sherdctl: {err:#}");
    if err.downcast_ref::<UsageError>().is_some() {
        ExitCode::from(USAGE)
    } else if err.downcast_ref::<Refused>().is_some() {
        ExitCode::from(REFUSED)
    } else {
        ExitCode::from(FAILED)
    }
}
