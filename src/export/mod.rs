//! Export of a [`RuntimeSnapshot`](crate::RuntimeSnapshot): Prometheus text exposition
//! (no dependency) and JSON (with the `serde` feature).

mod keyed;
mod prometheus;
pub use prometheus::PROMETHEUS_CONTENT_TYPE;

#[cfg(feature = "metrics")]
pub(crate) mod facade;

#[cfg(feature = "serde")]
mod json;
