//! Prefix hit rate of a single LRU cache as a function of its capacity, for
//! every capacity in one O(n log n) pass ([`mattson`]), with CSV and plot
//! output. See [`mattson`] for the exact semantics.

pub mod fenwick;
pub mod marks;
pub mod mattson;
pub mod model;
pub mod output;
pub mod plot;

pub use mattson::{CurveBuilder, HitRateCurve};

use crate::trace::{TraceError, TraceRequest};

/// The curve of a request stream with blocks of `block_size` tokens.
pub fn curve_of<I>(requests: I, block_size: u32) -> Result<HitRateCurve, TraceError>
where
    I: IntoIterator<Item = Result<TraceRequest, TraceError>>,
{
    let mut builder = CurveBuilder::new(block_size);
    let mut keys = Vec::new();
    for r in requests {
        let r = r?;
        r.prompt
            .block_keys_into(block_size, r.cache_salt.as_deref(), &mut keys);
        builder.push(&keys, r.prompt.n_tokens());
    }
    Ok(builder.finish())
}
