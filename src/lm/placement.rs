//! Where a model runs and in which precision: the `device` and `dtype` of
//! `[model]` in a run configuration, and of `--device`/`--dtype` on the
//! commands that load a model.
//!
//! The names follow the serving engines' (`vllm serve --dtype auto|bfloat16|
//! float32`, `--device`): `auto` picks what is fast on the machine at hand.
//! Inference only: training keeps f32 master weights whatever `dtype` says.
//!
//! The precision a sample was drawn in is logged with it
//! ([`events::Precision`]); `replay --resample` runs that precision, not the
//! configuration's `auto`, so a sample regenerates on the kernels that drew
//! it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The `device` setting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceChoice {
    /// The CPU (libtorch's CPU kernels).
    #[default]
    Cpu,
    /// The first CUDA GPU; refused when libtorch sees none.
    Cuda,
    /// CUDA when libtorch sees a GPU, else the CPU.
    Auto,
}

/// The `dtype` setting: the precision of inference (sampling, evaluation,
/// judging, reasoning generation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum DtypeChoice {
    /// bf16 where it is fast (a GPU; a CPU with AVX512-BF16 or AMX-BF16,
    /// see [`cpu_has_fast_bf16`]), else f32.
    #[default]
    Auto,
    /// 32-bit floats.
    F32,
    /// bfloat16 weights, activations and KV cache (logits stay f32).
    Bf16,
}

/// The error of a device that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceUnavailable;

impl fmt::Display for DeviceUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "device \"cuda\": libtorch sees no CUDA GPU (a CPU build of libtorch, no driver, or no GPU; \
             `./scripts/setup.sh --cuda` fetches the CUDA build)",
        )
    }
}

impl std::error::Error for DeviceUnavailable {}

impl DeviceChoice {
    /// The torch device.
    ///
    /// # Errors
    /// [`DeviceUnavailable`] for `cuda` when libtorch sees no GPU.
    pub fn resolve(self) -> Result<tch::Device, DeviceUnavailable> {
        match self {
            DeviceChoice::Cpu => Ok(tch::Device::Cpu),
            DeviceChoice::Cuda if tch::Cuda::is_available() => Ok(tch::Device::Cuda(0)),
            DeviceChoice::Cuda => Err(DeviceUnavailable),
            DeviceChoice::Auto => Ok(tch::Device::cuda_if_available()),
        }
    }
}

impl DtypeChoice {
    /// The precision on `device`: `auto` is bf16 on a GPU and on a CPU
    /// with native bf16 dot products, f32 elsewhere.
    pub fn resolve(self, device: tch::Device) -> events::Precision {
        match self {
            DtypeChoice::F32 => events::Precision::F32,
            DtypeChoice::Bf16 => events::Precision::Bf16,
            DtypeChoice::Auto if device.is_cuda() || cpu_has_fast_bf16() => events::Precision::Bf16,
            DtypeChoice::Auto => events::Precision::F32,
        }
    }
}

macro_rules! names {
    ($t:ty, $what:literal, $($v:ident = $s:literal),+) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(match self { $(<$t>::$v => $s),+ })
            }
        }
        impl FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($s => Ok(<$t>::$v),)+
                    _ => Err(format!(concat!("unknown ", $what, " {:?} (expected one of: {})"), s, [$($s),+].join(", "))),
                }
            }
        }
    };
}
names!(DeviceChoice, "device", Cpu = "cpu", Cuda = "cuda", Auto = "auto");
names!(DtypeChoice, "dtype", Auto = "auto", F32 = "f32", Bf16 = "bf16");

/// Whether this CPU multiplies bf16 natively: AVX512-BF16 (`vdpbf16ps`)
/// or AMX-BF16 tiles, the instructions libtorch's oneDNN bf16 GEMMs use
/// (PyTorch `mkldnn_bf16_device_check`). Without them bf16 matrix products
/// are converted back and forth and run slower than f32.
pub fn cpu_has_fast_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512bf16") {
            return true;
        }
        // AMX is not in std's detection list; the kernel lists it.
        std::fs::read_to_string("/proc/cpuinfo")
            .map(|s| s.lines().any(|l| l.starts_with("flags") && l.split_whitespace().any(|f| f == "amx_bf16")))
            .unwrap_or(false)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_accepted_ones() {
        for d in [DeviceChoice::Cpu, DeviceChoice::Cuda, DeviceChoice::Auto] {
            assert_eq!(d.to_string().parse::<DeviceChoice>().unwrap(), d);
        }
        for d in [DtypeChoice::Auto, DtypeChoice::F32, DtypeChoice::Bf16] {
            assert_eq!(d.to_string().parse::<DtypeChoice>().unwrap(), d);
        }
        let err = "fp16".parse::<DtypeChoice>().unwrap_err();
        assert!(err.contains("\"fp16\"") && err.contains("auto, f32, bf16"), "{err}");
    }

    #[test]
    fn explicit_dtypes_win_and_auto_follows_the_cpu() {
        assert_eq!(DtypeChoice::F32.resolve(tch::Device::Cpu), events::Precision::F32);
        assert_eq!(DtypeChoice::Bf16.resolve(tch::Device::Cpu), events::Precision::Bf16);
        let auto = DtypeChoice::Auto.resolve(tch::Device::Cpu);
        assert_eq!(auto == events::Precision::Bf16, cpu_has_fast_bf16());
        assert_eq!(DtypeChoice::Auto.resolve(tch::Device::Cuda(0)), events::Precision::Bf16);
    }

    #[test]
    fn cpu_is_always_there_and_cuda_is_refused_without_a_gpu() {
        assert_eq!(DeviceChoice::Cpu.resolve().unwrap(), tch::Device::Cpu);
        if !tch::Cuda::is_available() {
            let err = DeviceChoice::Cuda.resolve().unwrap_err().to_string();
            assert!(err.contains("setup.sh --cuda"), "{err}");
            assert_eq!(DeviceChoice::Auto.resolve().unwrap(), tch::Device::Cpu);
        }
    }
}
