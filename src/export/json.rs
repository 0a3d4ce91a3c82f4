//! JSON output of a snapshot through serde (feature `serde`).
//!
//! Durations are serde's default form, `{"secs": u64, "nanos": u32}`, so a snapshot
//! round-trips exactly.

use crate::metrics::RuntimeSnapshot;

#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl RuntimeSnapshot {
    /// The snapshot as pretty-printed JSON. Requires the `serde` feature.
    pub fn to_json(&self) -> String {
        // Serializing plain data with string keys into a String cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Parses a snapshot written by [`to_json`](RuntimeSnapshot::to_json). Requires the
    /// `serde` feature.
    ///
    /// # Errors
    ///
    /// The JSON error if `json` is not a snapshot.
    pub fn from_json(json: &str) -> Result<RuntimeSnapshot, serde_json::Error> {
        serde_json::from_str(json)
    }
}
