//! QR symbols at error-correction level Q, rendered as 1-bit PNG or SVG.
//!
//! Encoder choice (measured, see `benches/issue.rs` and the crate notes): `fast_qr`
//! builds a version-15 HC1 symbol in ~0.9 ms against ~6 ms for `qrcode`, so
//! single-segment payloads (HC1 in alphanumeric mode, anything else in byte mode)
//! go through `fast_qr`. A SMART Health Card needs two segments — `shc:/` in byte
//! mode followed by the digits in numeric mode — which `fast_qr` cannot express,
//! so that one uses `qrcode`'s segment API.

use crate::error::{CertError, Result};

/// How the payload is put into the symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QrMode {
    /// Whole payload in alphanumeric mode (HC1: base45 is the QR alphanumeric set).
    Alphanumeric,
    /// Whole payload in numeric mode.
    Numeric,
    /// Whole payload in byte mode (ICAO VDS-NC JSON, anything else).
    Byte,
    /// `shc:/` in byte mode, then the digits in numeric mode (SMART Health Cards).
    ShcNumeric,
}

impl QrMode {
    /// The natural mode for a payload we issue.
    pub fn for_payload(text: &str) -> QrMode {
        if text.starts_with("shc:/") {
            QrMode::ShcNumeric
        } else if text.bytes().all(is_alphanumeric) {
            QrMode::Alphanumeric
        } else {
            QrMode::Byte
        }
    }
}

fn is_alphanumeric(b: u8) -> bool {
    b.is_ascii_digit() || b.is_ascii_uppercase() || b" $%*+-./:".contains(&b)
}

/// A QR module matrix (row-major, `true` = dark), without quiet zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrMatrix {
    pub size: usize,
    pub version: usize,
    pub dark: Vec<bool>,
}

impl QrMatrix {
    pub fn is_dark(&self, x: usize, y: usize) -> bool {
        self.dark.get(y * self.size + x).copied().unwrap_or(false)
    }
}

/// Build the module matrix for `text` at level Q.
pub fn matrix(text: &str, mode: QrMode) -> Result<QrMatrix> {
    let check = |ok: bool, what: &str| {
        if ok {
            Ok(())
        } else {
            Err(CertError::InvalidInput(format!(
                "payload is not valid for QR {what} mode"
            )))
        }
    };
    match mode {
        QrMode::ShcNumeric => {
            let digits = text.strip_prefix("shc:/").ok_or_else(|| {
                CertError::InvalidInput("SHC payload must start with shc:/".into())
            })?;
            check(digits.bytes().all(|b| b.is_ascii_digit()), "numeric")?;
            shc_matrix(digits.as_bytes())
        }
        QrMode::Alphanumeric => {
            check(text.bytes().all(is_alphanumeric), "alphanumeric")?;
            fast_matrix(text, fast_qr::Mode::Alphanumeric)
        }
        QrMode::Numeric => {
            check(text.bytes().all(|b| b.is_ascii_digit()), "numeric")?;
            fast_matrix(text, fast_qr::Mode::Numeric)
        }
        QrMode::Byte => fast_matrix(text, fast_qr::Mode::Byte),
    }
}

fn fast_matrix(text: &str, mode: fast_qr::Mode) -> Result<QrMatrix> {
    let qr = fast_qr::QRBuilder::new(text.as_bytes())
        .ecl(fast_qr::ECL::Q)
        .mode(mode)
        .build()
        .map_err(|_| CertError::QrTooLarge(format!("{} characters at level Q", text.len())))?;
    let size = qr.size;
    let dark = qr.data[..size * size].iter().map(|m| m.value()).collect();
    Ok(QrMatrix {
        size,
        version: (size - 17) / 4,
        dark,
    })
}

fn shc_matrix(digits: &[u8]) -> Result<QrMatrix> {
    use qrcode::bits::Bits;
    use qrcode::canvas::{Canvas, MaskPattern};
    use qrcode::{EcLevel, Version};
    const MASKS: [MaskPattern; 8] = [
        MaskPattern::Checkerboard,
        MaskPattern::HorizontalLines,
        MaskPattern::VerticalLines,
        MaskPattern::DiagonalLines,
        MaskPattern::LargeCheckerboard,
        MaskPattern::Fields,
        MaskPattern::Diamonds,
        MaskPattern::Meadow,
    ];
    for v in 1..=40 {
        let version = Version::Normal(v);
        // Skip versions that cannot hold the data before building any bits:
        // mode indicators, character-count fields (width by version class),
        // 8 bits per prefix byte, 10 bits per 3 digits (4/7 for the remainder).
        let (cc_byte, cc_num) = match v {
            1..=9 => (8, 10),
            10..=26 => (16, 12),
            _ => (16, 14),
        };
        let numeric_bits = digits.len() / 3 * 10 + [0, 4, 7][digits.len() % 3];
        let needed = 4 + cc_byte + 8 * 5 + 4 + cc_num + numeric_bits;
        let capacity = Bits::new(version).max_len(EcLevel::Q).unwrap_or(0);
        if needed > capacity {
            continue;
        }
        let mut bits = Bits::new(version);
        let fits = bits.push_byte_data(b"shc:/").is_ok()
            && bits.push_numeric_data(digits).is_ok()
            && bits.push_terminator(EcLevel::Q).is_ok();
        if !fits {
            continue;
        }
        // Same steps as `QrCode::with_bits`, except the mask choice: qrcode's
        // penalty scoring is the bulk of its run time, so the eight candidates
        // are scored here on a flat bitmap (ISO/IEC 18004 §7.8.3 rules).
        let (data, ec) = qrcode::ec::construct_codewords(&bits.into_bytes(), version, EcLevel::Q)
            .map_err(|e| CertError::Encoding(format!("QR: {e}")))?;
        let mut canvas = Canvas::new(version, EcLevel::Q);
        canvas.draw_all_functional_patterns();
        canvas.draw_data(&data, &ec);
        let size = version.width() as usize;
        let mut best: Option<(u32, Vec<bool>)> = None;
        for mask in MASKS {
            let mut c = canvas.clone();
            c.apply_mask(mask);
            let dark: Vec<bool> = c
                .into_colors()
                .into_iter()
                .map(|c| c == qrcode::Color::Dark)
                .collect();
            let score = penalty(&dark, size);
            if best.as_ref().is_none_or(|(b, _)| score < *b) {
                best = Some((score, dark));
            }
        }
        let (_, dark) = best.ok_or_else(|| CertError::Encoding("no QR mask".into()))?;
        return Ok(QrMatrix {
            size,
            version: v as usize,
            dark,
        });
    }
    Err(CertError::QrTooLarge(format!(
        "SHC with {} digits at level Q",
        digits.len()
    )))
}

/// ISO/IEC 18004 mask penalty: runs of five or more, 2×2 blocks, finder-like
/// 1:1:3:1:1 patterns with four light modules, and dark/light balance.
fn penalty(dark: &[bool], n: usize) -> u32 {
    let at = |x: usize, y: usize| dark[y * n + x];
    let mut score = 0u32;
    // Rules 1 and 3 share one walk per row and column; rule 3 keeps the last 11
    // modules as bits and compares them with both finder-like patterns.
    const FINDER_A: u16 = 0b101_1101_0000;
    const FINDER_B: u16 = 0b000_0101_1101;
    for horizontal in [true, false] {
        for i in 0..n {
            let cell = |j: usize| if horizontal { at(j, i) } else { at(i, j) };
            let mut run = 0;
            let mut prev = None;
            let mut window: u16 = 0;
            for j in 0..n {
                let c = cell(j);
                if Some(c) == prev {
                    run += 1;
                } else {
                    if run >= 5 {
                        score += 3 + (run - 5);
                    }
                    run = 1;
                    prev = Some(c);
                }
                window = ((window << 1) | u16::from(c)) & 0x7ff;
                if j >= 10 && (window == FINDER_A || window == FINDER_B) {
                    score += 40;
                }
            }
            if run >= 5 {
                score += 3 + (run - 5);
            }
        }
    }
    // Rule 2: 2×2 blocks of one colour.
    for y in 0..n.saturating_sub(1) {
        for x in 0..n.saturating_sub(1) {
            let c = at(x, y);
            if at(x + 1, y) == c && at(x, y + 1) == c && at(x + 1, y + 1) == c {
                score += 3;
            }
        }
    }
    // Rule 4: 10 points per 5 % away from half dark.
    let total = (n * n) as u32;
    let dark_count = dark.iter().filter(|d| **d).count() as u32;
    let percent = dark_count * 100 / total.max(1);
    score + percent.abs_diff(50) / 5 * 10
}

/// Rendering parameters: pixels per module and quiet-zone width in modules (the
/// QR standard asks for 4).
#[derive(Debug, Clone, Copy)]
pub struct Render {
    pub scale: u32,
    pub quiet: u32,
}

impl Default for Render {
    fn default() -> Self {
        Render { scale: 4, quiet: 4 }
    }
}

/// 1-bit greyscale PNG (0 = black): 8 pixels per byte keeps the image small and
/// the encode cheap.
pub fn png_matrix(m: &QrMatrix, r: Render) -> Result<Vec<u8>> {
    // Clamped so a configuration typo cannot ask for a gigapixel image.
    let scale = r.scale.clamp(1, 32) as usize;
    let quiet = r.quiet.min(16) as usize;
    let px = (m.size + 2 * quiet) * scale;
    let row_bytes = px.div_ceil(8);
    let mut data = vec![0xffu8; row_bytes * px];
    for y in 0..m.size {
        for x in 0..m.size {
            if !m.is_dark(x, y) {
                continue;
            }
            for dy in 0..scale {
                let row = (y + quiet) * scale + dy;
                for dx in 0..scale {
                    let col = (x + quiet) * scale + dx;
                    data[row * row_bytes + col / 8] &= !(0x80 >> (col % 8));
                }
            }
        }
    }
    let mut out = Vec::with_capacity(data.len() / 4 + 128);
    {
        let px32 = u32::try_from(px).map_err(|_| CertError::Encoding("image too large".into()))?;
        let mut enc = png::Encoder::new(&mut out, px32, px32);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::One);
        enc.set_compression(png::Compression::Fast);
        let mut w = enc
            .write_header()
            .map_err(|e| CertError::Encoding(format!("PNG: {e}")))?;
        w.write_image_data(&data)
            .map_err(|e| CertError::Encoding(format!("PNG: {e}")))?;
    }
    Ok(out)
}

/// SVG with one path of unit squares (module units; scales without blur).
pub fn svg_matrix(m: &QrMatrix, r: Render) -> String {
    let quiet = r.quiet.min(16) as usize;
    let dim = m.size + 2 * quiet;
    let px = dim * r.scale.clamp(1, 32) as usize;
    let mut path = String::with_capacity(m.size * m.size * 4);
    for y in 0..m.size {
        let mut x = 0;
        while x < m.size {
            if m.is_dark(x, y) {
                let start = x;
                while x < m.size && m.is_dark(x, y) {
                    x += 1;
                }
                path.push_str(&format!(
                    "M{} {}h{}v1h-{}z",
                    start + quiet,
                    y + quiet,
                    x - start,
                    x - start
                ));
            } else {
                x += 1;
            }
        }
    }
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"{px}\" height=\"{px}\" viewBox=\"0 0 {dim} {dim}\" shape-rendering=\"crispEdges\"><rect width=\"{dim}\" height=\"{dim}\" fill=\"#fff\"/><path fill=\"#000\" d=\"{path}\"/></svg>"
    )
}

/// PNG of `text` at level Q with default rendering.
pub fn png(text: &str, mode: QrMode) -> Result<Vec<u8>> {
    png_matrix(&matrix(text, mode)?, Render::default())
}

/// SVG of `text` at level Q with default rendering.
pub fn svg(text: &str, mode: QrMode) -> Result<String> {
    Ok(svg_matrix(&matrix(text, mode)?, Render::default()))
}

/// PNG and SVG of one payload from a single matrix build (the matrix is the
/// expensive part, so callers wanting both should use this).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrImages {
    pub png: Vec<u8>,
    pub svg: String,
    pub version: usize,
}

pub fn images(text: &str, mode: QrMode) -> Result<QrImages> {
    let m = matrix(text, mode)?;
    Ok(QrImages {
        png: png_matrix(&m, Render::default())?,
        svg: svg_matrix(&m, Render::default()),
        version: m.version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_chosen_and_checked() {
        assert_eq!(
            QrMode::for_payload("HC1:6BF+70790T9WJWG.FKY*4GO0"),
            QrMode::Alphanumeric
        );
        assert_eq!(QrMode::for_payload("shc:/5676"), QrMode::ShcNumeric);
        assert_eq!(QrMode::for_payload("{\"data\":1}"), QrMode::Byte);
        assert!(matrix("hc1:lower", QrMode::Alphanumeric).is_err());
        assert!(matrix("shc:/12a", QrMode::ShcNumeric).is_err());
        assert!(matrix("12", QrMode::ShcNumeric).is_err());
    }

    #[test]
    fn alphanumeric_is_denser_than_byte() {
        let text = format!("HC1:{}", "6BF+70790T9WJWG.FKY*4GO0".repeat(12));
        let a = matrix(&text, QrMode::Alphanumeric).unwrap();
        let b = matrix(&text, QrMode::Byte).unwrap();
        assert!(a.version < b.version, "{} vs {}", a.version, b.version);
    }

    #[test]
    fn png_is_one_bit_greyscale_with_quiet_zone() {
        let m = matrix("HELLO", QrMode::Alphanumeric).unwrap();
        let bytes = png_matrix(&m, Render { scale: 3, quiet: 4 }).unwrap();
        let decoder = png::Decoder::new(&bytes[..]);
        let mut reader = decoder.read_info().unwrap();
        let info = reader.info().clone();
        assert_eq!(info.bit_depth, png::BitDepth::One);
        assert_eq!(info.color_type, png::ColorType::Grayscale);
        assert_eq!(info.width as usize, (m.size + 8) * 3);
        let mut buf = vec![0; reader.output_buffer_size()];
        reader.next_frame(&mut buf).unwrap();
        // Top-left finder pattern starts dark right after the quiet zone.
        let row_bytes = (info.width as usize).div_ceil(8);
        let bit = |x: usize, y: usize| buf[y * row_bytes + x / 8] & (0x80 >> (x % 8)) == 0;
        assert!(!bit(0, 0));
        assert!(bit(12, 12));
    }

    #[test]
    fn images_match_single_renders() {
        let i = images("HC1:ABC", QrMode::Alphanumeric).unwrap();
        assert_eq!(i.png, png("HC1:ABC", QrMode::Alphanumeric).unwrap());
        assert_eq!(i.svg, svg("HC1:ABC", QrMode::Alphanumeric).unwrap());
        assert_eq!(i.version, 1);
    }

    #[test]
    fn penalty_rules() {
        // All light 21×21: 21 runs of 21 per direction (3+16 each), 400 blocks,
        // 50 % off balance.
        let light = vec![false; 21 * 21];
        assert_eq!(penalty(&light, 21), 2 * 21 * 19 + 400 * 3 + 100);
        // A checkerboard has no runs, blocks or finder patterns and is balanced.
        let checker: Vec<bool> = (0..21 * 21).map(|i| (i % 21 + i / 21) % 2 == 0).collect();
        assert_eq!(penalty(&checker, 21), 0);
        // One finder-like 1:1:3:1:1 run with four light modules in row 0.
        let mut m = checker.clone();
        let pattern = [1, 0, 1, 1, 1, 0, 1, 0, 0, 0, 0];
        for (x, p) in pattern.iter().enumerate() {
            m[x] = *p == 1;
        }
        let base: u32 = {
            let mut rows_only = m.clone();
            rows_only[..11].copy_from_slice(&checker[..11]);
            penalty(&rows_only, 21)
        };
        assert!(penalty(&m, 21) >= base + 40);
    }

    #[test]
    fn shc_uses_two_segments() {
        let digits = "56762909524320603460292437404460".repeat(20);
        let m = matrix(&format!("shc:/{digits}"), QrMode::ShcNumeric).unwrap();
        let as_bytes = matrix(&format!("shc:/{digits}"), QrMode::Byte).unwrap();
        assert!(m.version < as_bytes.version);
        let svg = svg_matrix(&m, Render::default());
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }
}
