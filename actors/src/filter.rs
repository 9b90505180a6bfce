//! The filter of the E-step. The rule itself lives in [`events::filter`],
//! shared with replay's verifier; this module re-exports it for the
//! coordinator, which calls [`decide`] directly (it is a sort per input, no
//! actor needed).

pub use events::filter::{decide, FilterError, FilterRule, Scored, Verdict, FIRST_RANK};
