//! The Okabe–Ito colour-blind-safe palette, reordered so the first colours
//! have the most contrast on white; series past the eighth reuse the colours
//! with a dashed line.

use plotters::style::RGBColor;

/// Okabe & Ito (2008): blue, vermillion, bluish green, reddish purple,
/// orange, sky blue, black, yellow.
pub const OKABE_ITO: [RGBColor; 8] = [
    RGBColor(0x00, 0x72, 0xB2),
    RGBColor(0xD5, 0x5E, 0x00),
    RGBColor(0x00, 0x9E, 0x73),
    RGBColor(0xCC, 0x79, 0xA7),
    RGBColor(0xE6, 0x9F, 0x00),
    RGBColor(0x56, 0xB4, 0xE9),
    RGBColor(0x00, 0x00, 0x00),
    RGBColor(0xF0, 0xE4, 0x42),
];

/// The colour of series `idx`.
pub fn color(idx: usize) -> RGBColor {
    OKABE_ITO[idx % OKABE_ITO.len()]
}

/// Whether series `idx` is drawn dashed (its colour is already taken).
pub fn is_dashed(idx: usize) -> bool {
    (idx / OKABE_ITO.len()) % 2 == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_cycle_and_repeats_are_dashed() {
        assert_eq!(color(0), color(8));
        assert_ne!(color(0), color(1));
        assert!(!is_dashed(7) && is_dashed(8) && !is_dashed(16));
    }
}
