//! The font every plot uses, embedded so plots render on any machine.
//!
//! DejaVu Sans (Bitstream Vera licence, `assets/fonts/DejaVuSans.LICENSE`) is
//! registered with plotters under the family names plots ask for.

use std::sync::Once;

use plotters::style::FontStyle;

static DEJAVU_SANS: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// Registers the embedded font for `sans-serif`, `serif`, `monospace` and
/// `DejaVu Sans`, all styles falling back to it. Idempotent and thread-safe.
pub fn register_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for family in ["sans-serif", "serif", "monospace", "DejaVu Sans"] {
            // The bytes are a valid font (checked by the test below); a failure
            // would only make text render as missing glyphs, never panic.
            let _ = plotters::style::register_font(family, FontStyle::Normal, DEJAVU_SANS);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn font_registers_and_lays_out_text() {
        register_fonts();
        register_fonts();
        use plotters::style::{FontDesc, FontFamily};
        let font = FontDesc::new(FontFamily::SansSerif, 20.0, FontStyle::Normal);
        let (w, h) = font.box_size("hit rate").unwrap();
        assert!(w > 40 && h > 5, "{w}x{h}");
    }
}
