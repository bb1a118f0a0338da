//! Where the model runs: `cpu` or `cuda:N` (candle's CUDA backend, behind the `cuda` cargo
//! feature). Audio decoding, features and augmentation always run on the host and feed the
//! device through the trainer's bounded prefetch queue.

use std::fmt;
use std::str::FromStr;

use candle_core::Device;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A device named in a spec or on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// The host CPU (the fused CPU ops are used there).
    #[default]
    Cpu,
    /// CUDA device with this ordinal.
    Cuda(usize),
}

impl DeviceSpec {
    /// Whether this is the CPU (the default, left out of resolved specs and their hashes).
    pub fn is_cpu(&self) -> bool {
        *self == DeviceSpec::Cpu
    }

    /// Why this binary cannot use the device, if it cannot.
    pub fn unsupported(&self) -> Option<String> {
        match self {
            DeviceSpec::Cuda(_) if !cfg!(feature = "cuda") => Some(format!(
                "{self}: this binary was built without CUDA; rebuild with `cargo build --release --features cuda` on a machine with the CUDA toolkit"
            )),
            _ => None,
        }
    }

    /// Opens the device.
    pub fn open(&self) -> crate::Result<Device> {
        if let Some(why) = self.unsupported() {
            return Err(crate::Error::Invalid(why));
        }
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(ordinal) => Device::new_cuda(*ordinal).map_err(|e| {
                crate::Error::Invalid(format!(
                    "{self}: cannot open the GPU ({e}); check `nvidia-smi` and the ordinal"
                ))
            }),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl FromStr for DeviceSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{s}` is not a device: write `cpu`, `cuda` or `cuda:N`");
        match s {
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceSpec::Cuda)
                .ok_or_else(bad),
        }
    }
}

impl Serialize for DeviceSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DeviceSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prints_and_refuses_cuda_without_the_feature() {
        assert_eq!("cpu".parse(), Ok(DeviceSpec::Cpu));
        assert_eq!("cuda".parse(), Ok(DeviceSpec::Cuda(0)));
        assert_eq!(
            "cuda:3".parse::<DeviceSpec>().unwrap().to_string(),
            "cuda:3"
        );
        assert!("gpu".parse::<DeviceSpec>().is_err());
        assert!("cuda:x".parse::<DeviceSpec>().is_err());
        assert!(DeviceSpec::Cpu.open().unwrap().is_cpu());
        assert_eq!(
            DeviceSpec::Cuda(0).unsupported().is_some(),
            !cfg!(feature = "cuda")
        );
    }
}
