//! `sherdctl`, the command line client of a sherd node. It talks only to the
//! daemon's control API (through `sherd-api`); it never links the store or
//! libp2p.
//!
//! The commands are built under issue 3; until then this binary states its
//! purpose and exits non-zero.

fn main() -> std::process::ExitCode {
    eprintln!(
        "sherdctl {}: the command line client is not built yet (see issue 3)",
        sherd_api::VERSION
    );
    std::process::ExitCode::FAILURE
}
