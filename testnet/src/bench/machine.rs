//! Where a bench ran: what makes its figures comparable or not.

use std::path::Path;

use serde::Serialize;

/// The machine and the build a bench ran on.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Machine {
    /// The CPUs this process may use (`available_parallelism`).
    pub(crate) cores: usize,
    /// The CPU, as `/proc/cpuinfo` names it (`model name`).
    pub(crate) cpu_model: Option<String>,
    /// The kernel release (`uname -r`).
    pub(crate) kernel: Option<String>,
    /// The `sherdd` binary the daemons ran.
    pub(crate) sherdd: String,
    /// Its Cargo profile, from its path: `release`, `debug` or `unknown`.
    pub(crate) sherdd_profile: &'static str,
    /// The profile `sherd-testnet` itself was built with.
    pub(crate) testnet_profile: &'static str,
}

impl Machine {
    /// This machine, and the `sherdd` the testnet would run.
    pub(crate) fn here() -> Result<Self, sherd_testnet::HarnessError> {
        let sherdd = sherd_testnet::sherdd_path()?;
        Ok(Self {
            cores: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            cpu_model: std::fs::read_to_string("/proc/cpuinfo")
                .ok()
                .and_then(|info| cpu_model(&info)),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .ok()
                .map(|r| r.trim().to_owned()),
            sherdd_profile: profile_of(&sherdd),
            sherdd: sherdd.display().to_string(),
            testnet_profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
        })
    }

    /// One line for people: `2 cores, Intel(R) Xeon(R), kernel 6.1, sherdd release build`.
    pub(crate) fn summary(&self) -> String {
        format!(
            "{} core{}, {}, kernel {}, sherdd {} build",
            self.cores,
            if self.cores == 1 { "" } else { "s" },
            self.cpu_model.as_deref().unwrap_or("unknown CPU"),
            self.kernel.as_deref().unwrap_or("unknown"),
            self.sherdd_profile
        )
    }
}

/// The first `model name` of a `/proc/cpuinfo`.
fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim().to_owned())
    })
}

/// The Cargo profile a binary under `target/` was built with, from the
/// directory it sits in (`target/release/sherdd`, `target/debug/sherdd`).
fn profile_of(binary: &Path) -> &'static str {
    match binary.parent().and_then(Path::file_name) {
        Some(dir) if dir == "release" => "release",
        Some(dir) if dir == "debug" => "debug",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{cpu_model, profile_of};

    #[test]
    fn the_profile_comes_from_the_binary_directory() {
        assert_eq!(profile_of(Path::new("/w/target/release/sherdd")), "release");
        assert_eq!(profile_of(Path::new("/w/target/debug/sherdd")), "debug");
        assert_eq!(profile_of(Path::new("/usr/bin/sherdd")), "unknown");
        assert_eq!(profile_of(Path::new("sherdd")), "unknown");
    }

    #[test]
    fn the_cpu_model_is_the_first_model_name() {
        let info = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel\t\t: 207\n\
                    model name\t: Intel(R) Xeon(R) Processor\nprocessor\t: 1\n\
                    model name\t: Other\n";
        assert_eq!(
            cpu_model(info).as_deref(),
            Some("Intel(R) Xeon(R) Processor")
        );
        assert_eq!(cpu_model("processor : 0\n"), None);
    }
}
