//! Writes sherd's test vectors.
//!
//! ```text
//! cargo run -p sherd-protocol --example vectors -- protocol/tests/vectors
//! ```
//!
//! Every file is regenerated from fixed seeds, byte-identical on every run;
//! `.json` files in the directory that the generator no longer makes are
//! removed. `cargo test -p sherd-protocol --test vectors` fails until the
//! files on disk match the code.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[path = "../tests/vectors_gen/mod.rs"]
mod vectors_gen;

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            json_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
    Ok(())
}

fn run(dir: &Path) -> std::io::Result<()> {
    let files = vectors_gen::generate();
    let mut written = BTreeSet::new();
    let mut changed = 0;
    for (rel, contents) in &files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if std::fs::read(&path).ok().as_deref() != Some(contents.as_bytes()) {
            std::fs::write(&path, contents)?;
            println!("wrote   {}", path.display());
            changed += 1;
        }
        written.insert(path);
    }
    let mut existing = Vec::new();
    json_files(dir, &mut existing)?;
    for stale in existing.into_iter().filter(|p| !written.contains(p)) {
        std::fs::remove_file(&stale)?;
        println!("removed {}", stale.display());
        changed += 1;
    }
    println!(
        "{} vector files in {}, {changed} changed",
        files.len(),
        dir.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir] = args.as_slice() else {
        eprintln!("usage: {}", vectors_gen::REGENERATE);
        return ExitCode::from(2);
    };
    match run(Path::new(dir)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
