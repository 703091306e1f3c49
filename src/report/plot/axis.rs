//! Axes: range, linear or log scale, tick positions at 1-2-5 steps, and tick
//! labels whose decimals follow the tick step (so labels never repeat).

/// How values map to the axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// Linear.
    Linear,
    /// Base-10 logarithmic (values ≤ 0 are not drawn).
    Log10,
}

/// How tick labels print.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Plain number.
    Number,
    /// A fraction shown as a percentage (0.25 → `25%`).
    Percent,
    /// A count: ticks at whole numbers only.
    Count,
}

/// One axis of a panel.
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    /// Description with unit, e.g. `TTFT (ms)`.
    pub label: String,
    /// Lower end, data units.
    pub lo: f64,
    /// Upper end, data units.
    pub hi: f64,
    /// Scale.
    pub scale: Scale,
    /// Tick label format.
    pub format: Format,
    /// Category names at 0, 1, …, when the axis is categorical (then ticks
    /// sit on the whole numbers and print these names).
    pub categories: Vec<String>,
    /// Explicit tick positions, data units (empty: 1-2-5 steps).
    pub ticks_at: Vec<f64>,
}

/// Ticks aimed for along an axis.
const TARGET_TICKS: f64 = 7.0;

impl Axis {
    /// A linear axis over `lo..hi` (widened if empty or inverted).
    pub fn linear(label: &str, lo: f64, hi: f64) -> Axis {
        let (lo, hi) = sane_range(lo, hi);
        Axis {
            label: label.into(),
            lo,
            hi,
            scale: Scale::Linear,
            format: Format::Number,
            categories: Vec::new(),
            ticks_at: Vec::new(),
        }
    }

    /// A categorical axis: `names[i]` at `i`, with half a slot of margin.
    pub fn categorical(label: &str, names: Vec<String>) -> Axis {
        let n = names.len().max(1) as f64;
        Axis {
            categories: names,
            ..Axis::linear(label, -0.5, n - 0.5)
        }
    }

    /// A log axis over `lo..hi` (both > 0).
    pub fn log(label: &str, lo: f64, hi: f64) -> Axis {
        let lo = if lo > 0.0 { lo } else { 1e-3 };
        let hi = if hi > lo { hi } else { lo * 10.0 };
        Axis {
            label: label.into(),
            lo,
            hi,
            scale: Scale::Log10,
            format: Format::Number,
            categories: Vec::new(),
            ticks_at: Vec::new(),
        }
    }

    /// A linear axis from 0 (or the smallest value, if negative) to the
    /// largest of `values` rounded up to a tick, at least `min_hi`.
    pub fn from_zero(label: &str, values: impl IntoIterator<Item = f64>, min_hi: f64) -> Axis {
        let (lo, hi) = finite_bounds(values).unwrap_or((0.0, min_hi));
        let hi = hi.max(min_hi);
        let step = nice_step((hi - lo.min(0.0)) / TARGET_TICKS);
        Axis::linear(label, lo.min(0.0), (hi / step).ceil() * step)
    }

    /// An axis spanning `values` with 3% padding; log when they are all
    /// positive and span more than `log_ratio` (the label then says so).
    pub fn spanning(label: &str, values: impl IntoIterator<Item = f64>, log_ratio: f64) -> Axis {
        let Some((lo, hi)) = finite_bounds(values) else {
            return Axis::linear(label, 0.0, 1.0);
        };
        if lo > 0.0 && hi / lo > log_ratio {
            let pad = (hi / lo).powf(0.03);
            return Axis::log(&format!("{label}, log scale"), lo / pad, hi * pad);
        }
        let pad = ((hi - lo) * 0.03).max(hi.abs() * 1e-3).max(1e-9);
        let lo = if lo >= 0.0 {
            (lo - pad).max(0.0)
        } else {
            lo - pad
        };
        Axis::linear(label, lo, hi + pad)
    }

    /// Puts the ticks at `values` (e.g. a sweep's parameter values) when
    /// there are at most 12 and no two sit closer than 1/25 of the axis, so
    /// their labels cannot collide; otherwise keeps the automatic ticks.
    pub fn with_ticks_at(mut self, mut values: Vec<f64>) -> Axis {
        values.retain(|v| self.to_draw(*v).is_some());
        values.sort_by(f64::total_cmp);
        values.dedup();
        let (lo, hi) = self.draw_range();
        let min_gap = (hi - lo) / 25.0;
        let drawn: Vec<f64> = values.iter().filter_map(|&v| self.to_draw(v)).collect();
        let spaced = drawn.windows(2).all(|w| w[1] - w[0] >= min_gap);
        if !values.is_empty() && values.len() <= 12 && spaced {
            self.ticks_at = values;
        }
        self
    }

    /// Sets the tick label format.
    pub fn with_format(mut self, format: Format) -> Axis {
        self.format = format;
        self
    }

    /// `v` in drawing coordinates (log10 for log axes); None when not drawable.
    pub fn to_draw(&self, v: f64) -> Option<f64> {
        match self.scale {
            Scale::Linear => v.is_finite().then_some(v),
            Scale::Log10 => (v > 0.0 && v.is_finite()).then(|| v.log10()),
        }
    }

    /// The axis range in drawing coordinates.
    pub fn draw_range(&self) -> (f64, f64) {
        match self.scale {
            Scale::Linear => (self.lo, self.hi),
            Scale::Log10 => (self.lo.log10(), self.hi.log10()),
        }
    }

    /// Tick positions in drawing coordinates, inside the range.
    pub fn ticks(&self) -> Vec<f64> {
        if !self.categories.is_empty() {
            return (0..self.categories.len()).map(|i| i as f64).collect();
        }
        if !self.ticks_at.is_empty() {
            return self
                .ticks_at
                .iter()
                .filter_map(|&v| self.to_draw(v))
                .collect();
        }
        match self.scale {
            Scale::Linear => {
                let step = self.step();
                let first = (self.lo / step - 1e-9).ceil() as i64;
                let last = (self.hi / step + 1e-9).floor() as i64;
                (first..=last).map(|k| k as f64 * step).collect()
            }
            Scale::Log10 => {
                let (lo, hi) = self.draw_range();
                let decades = hi - lo;
                let mults: &[f64] = if decades <= 1.2 {
                    &[1.0, 2.0, 3.0, 5.0]
                } else if decades <= 3.5 {
                    &[1.0, 2.0, 5.0]
                } else {
                    &[1.0]
                };
                let mut out = Vec::new();
                for e in (lo.floor() as i32)..=(hi.ceil() as i32) {
                    for m in mults {
                        let d = f64::from(e) + m.log10();
                        if d >= lo - 1e-9 && d <= hi + 1e-9 {
                            out.push(d);
                        }
                    }
                }
                out
            }
        }
    }

    /// The label of the tick at drawing coordinate `d`.
    pub fn tick_label(&self, d: f64) -> String {
        if !self.categories.is_empty() {
            let i = d.round();
            return if i >= 0.0 {
                self.categories.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            };
        }
        match self.scale {
            Scale::Log10 => {
                let v = 10f64.powf(d);
                let decimals = if v >= 1.0 {
                    0
                } else {
                    (-v.log10().floor()) as usize
                };
                trim_neg_zero(format!("{v:.decimals$}"))
            }
            Scale::Linear if !self.ticks_at.is_empty() => {
                let v = format!("{d:.6}");
                let v = v.trim_end_matches('0').trim_end_matches('.').to_string();
                match self.format {
                    Format::Percent => format!("{}%", trim_neg_zero(format!("{:.1}", d * 100.0))),
                    _ => trim_neg_zero(v),
                }
            }
            Scale::Linear => {
                let step = self.step();
                match self.format {
                    Format::Percent => {
                        let decimals = decimals_for(step * 100.0);
                        format!("{}%", trim_neg_zero(format!("{:.decimals$}", d * 100.0)))
                    }
                    Format::Number | Format::Count => {
                        let decimals = decimals_for(step);
                        trim_neg_zero(format!("{d:.decimals$}"))
                    }
                }
            }
        }
    }

    fn step(&self) -> f64 {
        let s = nice_step((self.hi - self.lo) / TARGET_TICKS);
        match self.format {
            Format::Count => s.max(1.0),
            _ => s,
        }
    }
}

/// The 1-2-5 × 10^k step nearest above `raw`.
pub fn nice_step(raw: f64) -> f64 {
    if !(raw > 0.0) || !raw.is_finite() {
        return 1.0;
    }
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let m = if norm <= 1.0 + 1e-9 {
        1.0
    } else if norm <= 2.0 + 1e-9 {
        2.0
    } else if norm <= 5.0 + 1e-9 {
        5.0
    } else {
        10.0
    };
    m * mag
}

fn decimals_for(step: f64) -> usize {
    if step >= 1.0 {
        0
    } else {
        (-(step.log10() + 1e-9).floor()).max(0.0) as usize
    }
}

fn trim_neg_zero(s: String) -> String {
    if s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.') {
        s[1..].to_string()
    } else {
        s
    }
}

fn finite_bounds(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((f64::min(lo, v), f64::max(hi, v))),
        })
}

fn sane_range(lo: f64, hi: f64) -> (f64, f64) {
    let lo = if lo.is_finite() { lo } else { 0.0 };
    let hi = if hi.is_finite() { hi } else { lo + 1.0 };
    if hi > lo {
        (lo, hi)
    } else {
        (lo, lo + lo.abs().max(1.0) * 0.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step(0.7), 1.0);
        assert_eq!(nice_step(1.3), 2.0);
        assert_eq!(nice_step(3.0), 5.0);
        assert_eq!(nice_step(7.0), 10.0);
        assert!((nice_step(0.013) - 0.02).abs() < 1e-12);
    }

    #[test]
    fn linear_ticks_and_labels() {
        let a = Axis::linear("t", 0.0, 37.0);
        let t = a.ticks();
        assert_eq!(t, vec![0.0, 10.0, 20.0, 30.0]);
        assert_eq!(a.tick_label(10.0), "10");
        let p = Axis::linear("p", 0.0, 0.007).with_format(Format::Percent);
        assert_eq!(p.tick_label(p.ticks()[1]), "0.1%");
        let c = Axis::linear("n", 0.0, 2.0).with_format(Format::Count);
        assert_eq!(c.ticks(), vec![0.0, 1.0, 2.0]);
    }

    #[test]
    fn from_zero_rounds_up_to_a_tick() {
        let a = Axis::from_zero("x", [3.0, 37.2], 1.0);
        assert_eq!((a.lo, a.hi), (0.0, 40.0));
        let b = Axis::from_zero("x", [], 1.0);
        assert_eq!((b.lo, b.hi), (0.0, 1.0));
    }

    #[test]
    fn spanning_switches_to_log_on_wide_data() {
        let a = Axis::spanning("TTFT (ms)", [1.0, 5000.0], 50.0);
        assert_eq!(a.scale, Scale::Log10);
        assert!(a.label.ends_with("log scale"));
        let labels: Vec<String> = a.ticks().iter().map(|&d| a.tick_label(d)).collect();
        assert!(labels.contains(&"10".to_string()) && labels.contains(&"1000".to_string()));
        assert_eq!(a.to_draw(-1.0), None);
        let e = Axis::linear("pods", 0.5, 8.5).with_ticks_at(vec![1.0, 2.0, 4.0, 8.0, 2.0]);
        assert_eq!(e.ticks(), vec![1.0, 2.0, 4.0, 8.0]);
        assert_eq!(e.tick_label(4.0), "4");
        let crowded = Axis::linear("n", 0.0, 64.0).with_ticks_at(vec![1.0, 2.0, 64.0]);
        assert!(crowded.ticks_at.is_empty(), "1 and 2 would collide");
        let b = Axis::spanning("TPOT (ms)", [7.6, 7.9], 50.0);
        assert_eq!(b.scale, Scale::Linear);
        assert!(b.lo < 7.6 && b.hi > 7.9);
    }
}
