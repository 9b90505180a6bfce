//! The data set splits: the shared vocabulary's [`Split`], so the data set,
//! the run's evaluations and the log name a split the same way. Its
//! [`Split::file_stem`] (`train`, `val`, `test`) names the split's file, and
//! is what the data set's digest and manifest hash and count.

pub use events::Split;
