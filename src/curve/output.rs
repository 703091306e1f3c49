//! Curve CSV: which capacities to report and the table itself.

use std::io::Write;

use super::mattson::HitRateCurve;
use super::model::CapacityMark;

/// One CSV row.
#[derive(Clone, Debug, PartialEq)]
pub struct CurvePoint {
    /// Capacity in blocks.
    pub capacity_blocks: u64,
    /// Capacity in tokens (blocks · block_size).
    pub capacity_tokens: u64,
    /// Capacity in GiB, when KV bytes per token are known.
    pub capacity_gib: Option<f64>,
    /// Block-weighted hit rate.
    pub hit_rate_blocks: f64,
    /// Token-weighted hit rate.
    pub hit_rate_tokens: f64,
}

/// About `n_points` capacities log-spaced from 1 block to the saturation
/// capacity (where the hit rate reaches its infinite-cache value), plus 0,
/// the saturation capacity and every mark; sorted, deduplicated. `n_points`
/// is taken as at least 2 and at most one per whole capacity in `1..=top`
/// (more could only repeat them, at any memory cost the caller asked for).
pub fn capacity_grid(curve: &HitRateCurve, n_points: usize, marks: &[CapacityMark]) -> Vec<u64> {
    let top = curve.saturation_blocks().max(1);
    let mut caps = vec![0, top];
    let n = n_points.clamp(2, usize::try_from(top).unwrap_or(usize::MAX).max(2));
    for i in 0..n {
        let x = (top as f64).powf(i as f64 / (n - 1) as f64);
        caps.push(x.round() as u64);
    }
    caps.extend(marks.iter().map(|m| m.n_blocks));
    caps.sort_unstable();
    caps.dedup();
    caps
}

/// The curve at `capacities`.
pub fn curve_points(
    curve: &HitRateCurve,
    capacities: &[u64],
    kv_bytes_per_token: Option<u64>,
) -> Vec<CurvePoint> {
    capacities
        .iter()
        .map(|&c| {
            let tokens = c * curve.block_size as u64;
            CurvePoint {
                capacity_blocks: c,
                capacity_tokens: tokens,
                capacity_gib: kv_bytes_per_token
                    .map(|b| (tokens as f64 * b as f64) / (1u64 << 30) as f64),
                hit_rate_blocks: curve.hit_rate_blocks(c),
                hit_rate_tokens: curve.hit_rate_tokens(c),
            }
        })
        .collect()
}

/// Writes `capacity_blocks,capacity_tokens,capacity_gib,hit_rate_blocks,hit_rate_tokens`
/// (`capacity_gib` empty when unknown).
pub fn write_csv(points: &[CurvePoint], out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "capacity_blocks,capacity_tokens,capacity_gib,hit_rate_blocks,hit_rate_tokens"
    )?;
    for p in points {
        let gib = p
            .capacity_gib
            .map(|g| format!("{g:.6}"))
            .unwrap_or_default();
        writeln!(
            out,
            "{},{},{},{:.6},{:.6}",
            p.capacity_blocks, p.capacity_tokens, gib, p.hit_rate_blocks, p.hit_rate_tokens
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::curve::mattson::CurveBuilder;

    #[test]
    fn grid_and_csv() {
        let mut b = CurveBuilder::new(16);
        b.push(&[1, 2, 3], 50);
        b.push(&[1, 2, 4], 48);
        let c = b.finish();
        let caps = capacity_grid(
            &c,
            5,
            &[CapacityMark {
                label: "x".into(),
                n_blocks: 7,
            }],
        );
        assert_eq!(caps, vec![0, 1, 2, 7]);
        // Asking for far more points than capacities costs nothing extra.
        assert_eq!(capacity_grid(&c, 4_000_000_000, &[]), vec![0, 1, 2]);
        let pts = curve_points(&c, &caps, Some(32_768));
        let mut out = Vec::new();
        write_csv(&pts, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "capacity_blocks,capacity_tokens,capacity_gib,hit_rate_blocks,hit_rate_tokens"
        );
        // C = 1: block 1 hits (distance 1); C = 2: both. 6 blocks, 98 tokens.
        assert_eq!(lines[2], "1,16,0.000488,0.166667,0.163265");
        assert_eq!(lines[3], "2,32,0.000977,0.333333,0.326531");
    }
}
