//! Export of a [`RuntimeSnapshot`](crate::RuntimeSnapshot): Prometheus text exposition
//! (no dependency) and JSON (with the `serde` feature).

mod prometheus;

#[cfg(feature = "serde")]
mod json;
