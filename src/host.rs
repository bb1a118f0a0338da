//! The machine a run ran on, as far as it decides the numbers: the CPU's model and vector
//! extensions (the matrix kernels pick their code path from them at run time, so CPUs that
//! differ here round differently and runs drift apart over training), and the thread count.

use serde::{Deserialize, Serialize};

/// The host of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Host {
    /// CPU model (`/proc/cpuinfo`'s `model name`; `None` where it cannot be read).
    pub cpu: Option<String>,
    /// Target architecture (`x86_64`, `aarch64`, ...).
    pub arch: String,
    /// The vector extensions detected at run time that the matrix kernels can use.
    pub vector_extensions: Vec<String>,
    /// Threads available to the process.
    pub threads: usize,
}

impl Host {
    /// This machine.
    pub fn detect() -> Self {
        Self {
            cpu: cpu_model(),
            arch: std::env::consts::ARCH.to_owned(),
            vector_extensions: vector_extensions(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
        .map(|(_, name)| name.trim().to_owned())
}

#[cfg(target_arch = "x86_64")]
fn vector_extensions() -> Vec<String> {
    let detected = [
        ("sse4.1", std::arch::is_x86_feature_detected!("sse4.1")),
        ("avx", std::arch::is_x86_feature_detected!("avx")),
        ("avx2", std::arch::is_x86_feature_detected!("avx2")),
        ("fma", std::arch::is_x86_feature_detected!("fma")),
        ("f16c", std::arch::is_x86_feature_detected!("f16c")),
        ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
    ];
    enabled(&detected)
}

#[cfg(target_arch = "aarch64")]
fn vector_extensions() -> Vec<String> {
    let detected = [
        ("neon", std::arch::is_aarch64_feature_detected!("neon")),
        ("fp16", std::arch::is_aarch64_feature_detected!("fp16")),
    ];
    enabled(&detected)
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn vector_extensions() -> Vec<String> {
    Vec::new()
}

/// The names of the detected extensions.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn enabled(detected: &[(&str, bool)]) -> Vec<String> {
    detected
        .iter()
        .filter(|(_, on)| *on)
        .map(|(name, _)| (*name).to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_names_its_architecture_and_threads() {
        let host = Host::detect();
        assert_eq!(host.arch, std::env::consts::ARCH);
        assert!(host.threads >= 1);
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        assert!(host.cpu.is_some(), "/proc/cpuinfo names the model");
    }
}
