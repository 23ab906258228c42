//! A printable certificate as a minimal hand-written PDF 1.4: one Helvetica font,
//! text lines, and each QR symbol as a 1-bit DeviceGray image XObject (one pixel
//! per module, scaled by the page matrix so it stays sharp at any zoom).
//!
//! Text uses the standard Helvetica font with WinAnsiEncoding, so it needs no
//! embedded font; characters outside WinAnsi (Cyrillic, Arabic, Han…) are printed
//! through the ICAO 9303 transliteration, or `?` when none exists. The machine
//! readable content is in the QR codes, which carry the original script.

use crate::error::{CertError, Result};
use crate::qr::QrMatrix;
use serde_json::Value;
use std::io::Write;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PdfDose {
    pub vaccine: String,
    pub brand: Option<String>,
    pub date: String,
    pub dose: Option<u64>,
    pub total_doses: Option<u64>,
    pub country: Option<String>,
    pub centre: Option<String>,
    pub lot: Option<String>,
}

#[derive(Debug, Clone)]
pub struct PdfQr {
    pub label: String,
    pub matrix: QrMatrix,
}

#[derive(Debug, Clone, Default)]
pub struct PdfCertificate {
    pub title: String,
    pub name: String,
    pub birth_date: Option<String>,
    pub identifier: Option<String>,
    pub hcid: Option<String>,
    pub doses: Vec<PdfDose>,
    pub qrs: Vec<PdfQr>,
}

fn code_text(v: &Value, key: &str) -> Option<String> {
    let c = v.get(key)?;
    c.get("display")
        .or_else(|| c.get("code"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn text_at(v: &Value, path: &[&str]) -> Option<String> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    match cur {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl PdfDose {
    /// A dose as a DDCC document records it (an `Immunization` of either IG edition),
    /// for listing the doses of earlier certificates in the holder's folder.
    pub fn from_immunization(imm: &Value) -> Option<PdfDose> {
        if imm.get("resourceType").and_then(Value::as_str) != Some("Immunization") {
            return None;
        }
        let coding_text = |c: &Value| {
            c.get("display")
                .or_else(|| c.get("code"))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let ext = |suffixes: &[&str]| {
            imm.get("extension")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|e| {
                    e.get("url")
                        .and_then(Value::as_str)
                        .is_some_and(|u| suffixes.iter().any(|s| u.ends_with(s)))
                })
        };
        let protocol = imm.pointer("/protocolApplied/0");
        let positive = |name: &str| protocol.and_then(|p| p.get(name)).and_then(Value::as_u64);
        Some(PdfDose {
            vaccine: imm.pointer("/vaccineCode/coding/0").and_then(coding_text)?,
            brand: ext(&["/DDCCEventBrand", "/DDCCVaccineBrand"])
                .and_then(|e| e.get("valueCoding"))
                .and_then(coding_text),
            date: imm
                .get("occurrenceDateTime")
                .and_then(Value::as_str)?
                .to_string(),
            dose: positive("doseNumberPositiveInt"),
            total_doses: positive("seriesDosesPositiveInt"),
            country: ext(&["/DDCCCountryOfEvent", "/DDCCCountryOfVaccination"])
                .and_then(|e| e.get("valueCode"))
                .and_then(Value::as_str)
                .map(str::to_string),
            centre: imm
                .pointer("/location/display")
                .and_then(Value::as_str)
                .map(str::to_string),
            lot: imm
                .get("lotNumber")
                .and_then(Value::as_str)
                .map(str::to_string),
        })
    }
}

impl PdfCertificate {
    /// Gather the patient and every dose of a folder (one core data set per
    /// vaccination event; the first supplies the patient).
    pub fn from_core_data_sets(cds: &[Value], qrs: Vec<PdfQr>) -> Result<Self> {
        let first = cds
            .first()
            .ok_or_else(|| CertError::InvalidInput("no core data set".into()))?;
        let mut doses = Vec::new();
        for c in cds {
            let vacs: Vec<&Value> = match c.get("vaccination") {
                Some(Value::Array(a)) => a.iter().collect(),
                Some(v @ Value::Object(_)) => vec![v],
                _ => vec![],
            };
            for v in vacs {
                doses.push(PdfDose {
                    vaccine: code_text(v, "vaccine").unwrap_or_default(),
                    brand: code_text(v, "brand"),
                    date: text_at(v, &["date"]).unwrap_or_default(),
                    dose: v.get("dose").and_then(Value::as_u64),
                    total_doses: v.get("totalDoses").and_then(Value::as_u64),
                    country: code_text(v, "country"),
                    centre: text_at(v, &["centre"]),
                    lot: text_at(v, &["lot"]),
                });
            }
        }
        Ok(PdfCertificate {
            title: "Digital Documentation of COVID-19 Certificate (DDCC:VS)".into(),
            name: text_at(first, &["name"]).unwrap_or_default(),
            birth_date: text_at(first, &["birthDate"]),
            identifier: text_at(first, &["identifier", "value"]),
            hcid: text_at(first, &["certificate", "hcid", "value"]),
            doses,
            qrs,
        })
    }
}

/// Encode for a WinAnsi literal string, escaping PDF delimiters.
fn pdf_text(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + 2);
    out.push(b'(');
    for c in s.chars() {
        let mut push = |b: u8| match b {
            b'(' | b')' | b'\\' => {
                out.push(b'\\');
                out.push(b);
            }
            _ => out.push(b),
        };
        let code = c as u32;
        if (0x20..0x7f).contains(&code) || (0xa0..=0xff).contains(&code) {
            // Latin-1 printable range coincides with WinAnsi.
            push(code as u8);
        } else if c.is_whitespace() {
            push(b' ');
        } else {
            let t = crate::icao9303::transliterate(&c.to_string());
            if t.is_empty() {
                push(b'?');
            } else {
                for b in t.bytes() {
                    push(b);
                }
            }
        }
    }
    out.push(b')');
    out
}

struct Page {
    content: Vec<u8>,
    images: Vec<usize>, // indices into qrs
}

const PAGE_W: f32 = 595.0;
const PAGE_H: f32 = 842.0;
const MARGIN: f32 = 50.0;
const QR_SIZE: f32 = 230.0;

fn text_line(content: &mut Vec<u8>, x: f32, y: f32, size: f32, s: &str) {
    let _ = write!(content, "BT /F1 {size} Tf {x} {y} Td ");
    content.extend_from_slice(&pdf_text(s));
    content.extend_from_slice(b" Tj ET\n");
}

fn layout(cert: &PdfCertificate) -> Vec<Page> {
    let mut pages = vec![Page {
        content: Vec::new(),
        images: Vec::new(),
    }];
    let mut y = PAGE_H - MARGIN - 10.0;
    {
        let c = &mut pages[0].content;
        text_line(c, MARGIN, y, 16.0, &cert.title);
        y -= 30.0;
        text_line(c, MARGIN, y, 12.0, &format!("Name: {}", cert.name));
        y -= 18.0;
        if let Some(b) = &cert.birth_date {
            text_line(c, MARGIN, y, 12.0, &format!("Date of birth: {b}"));
            y -= 18.0;
        }
        if let Some(i) = &cert.identifier {
            text_line(c, MARGIN, y, 12.0, &format!("Identifier: {i}"));
            y -= 18.0;
        }
        if let Some(h) = &cert.hcid {
            text_line(c, MARGIN, y, 12.0, &format!("Health certificate ID: {h}"));
            y -= 18.0;
        }
        y -= 10.0;
    }
    for d in &cert.doses {
        if y < MARGIN + 40.0 {
            pages.push(Page {
                content: Vec::new(),
                images: Vec::new(),
            });
            y = PAGE_H - MARGIN;
        }
        let Some(page) = pages.last_mut() else { break };
        let dose = match (d.dose, d.total_doses) {
            (Some(n), Some(t)) => format!("Dose {n} of {t}"),
            (Some(n), None) => format!("Dose {n}"),
            _ => "Dose".into(),
        };
        let vaccine = match &d.brand {
            Some(b) => format!("{} ({b})", d.vaccine),
            None => d.vaccine.clone(),
        };
        text_line(
            &mut page.content,
            MARGIN,
            y,
            12.0,
            &format!("{dose}: {vaccine}, {}", d.date),
        );
        y -= 15.0;
        let mut detail = Vec::new();
        if let Some(c) = &d.country {
            detail.push(format!("Country: {c}"));
        }
        if let Some(c) = &d.centre {
            detail.push(format!("Centre: {c}"));
        }
        if let Some(l) = &d.lot {
            detail.push(format!("Lot: {l}"));
        }
        text_line(
            &mut page.content,
            MARGIN + 15.0,
            y,
            10.0,
            &detail.join("   "),
        );
        y -= 22.0;
    }
    // QR codes two per row.
    for (i, _) in cert.qrs.iter().enumerate() {
        let col = i % 2;
        if col == 0 {
            y -= QR_SIZE + 20.0;
            if y < MARGIN {
                pages.push(Page {
                    content: Vec::new(),
                    images: Vec::new(),
                });
                y = PAGE_H - MARGIN - QR_SIZE - 20.0;
            }
        }
        let x = MARGIN + col as f32 * (QR_SIZE + 35.0);
        let Some(page) = pages.last_mut() else { break };
        let _ = writeln!(
            page.content,
            "q {QR_SIZE} 0 0 {QR_SIZE} {x} {} cm /Im{i} Do Q",
            y + 15.0
        );
        text_line(&mut page.content, x, y, 10.0, &cert.qrs[i].label);
        page.images.push(i);
    }
    pages
}

/// 1 bit per module, rows padded to bytes, quiet zone of 4 modules, 0 = black.
fn image_bits(m: &QrMatrix) -> (usize, Vec<u8>) {
    let quiet = 4;
    let dim = m.size + 2 * quiet;
    let row_bytes = dim.div_ceil(8);
    let mut data = vec![0xffu8; row_bytes * dim];
    for y in 0..m.size {
        for x in 0..m.size {
            if m.is_dark(x, y) {
                let (row, col) = (y + quiet, x + quiet);
                data[row * row_bytes + col / 8] &= !(0x80 >> (col % 8));
            }
        }
    }
    (dim, data)
}

/// Render the certificate to PDF bytes.
pub fn render(cert: &PdfCertificate) -> Result<Vec<u8>> {
    let pages = layout(cert);
    // Object numbering: 1 catalog, 2 pages, 3 font, then per page (page, content),
    // then one per image.
    let n_pages = pages.len();
    let page_obj = |p: usize| 4 + 2 * p;
    let image_obj = |i: usize| 4 + 2 * n_pages + i;
    let mut objects: Vec<Vec<u8>> = Vec::new();
    objects.push(b"<< /Type /Catalog /Pages 2 0 R >>".to_vec());
    let kids: Vec<String> = (0..n_pages)
        .map(|p| format!("{} 0 R", page_obj(p)))
        .collect();
    objects.push(
        format!(
            "<< /Type /Pages /Kids [{}] /Count {n_pages} >>",
            kids.join(" ")
        )
        .into_bytes(),
    );
    objects.push(
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
            .to_vec(),
    );
    for (p, page) in pages.iter().enumerate() {
        let xobjects: String = page
            .images
            .iter()
            .map(|i| format!("/Im{i} {} 0 R ", image_obj(*i)))
            .collect();
        objects.push(
            format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {PAGE_W} {PAGE_H}] /Resources << /Font << /F1 3 0 R >> /XObject << {xobjects}>> >> /Contents {} 0 R >>",
                page_obj(p) + 1
            )
            .into_bytes(),
        );
        let mut stream = format!("<< /Length {} >>\nstream\n", page.content.len()).into_bytes();
        stream.extend_from_slice(&page.content);
        stream.extend_from_slice(b"\nendstream");
        objects.push(stream);
    }
    for qr in &cert.qrs {
        let (dim, bits) = image_bits(&qr.matrix);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        let compressed = z
            .write_all(&bits)
            .and_then(|_| z.finish())
            .map_err(|e| CertError::Encoding(format!("PDF image: {e}")))?;
        let mut obj = format!(
            "<< /Type /XObject /Subtype /Image /Width {dim} /Height {dim} /ColorSpace /DeviceGray /BitsPerComponent 1 /Filter /FlateDecode /Length {} >>\nstream\n",
            compressed.len()
        )
        .into_bytes();
        obj.extend_from_slice(&compressed);
        obj.extend_from_slice(b"\nendstream");
        objects.push(obj);
    }

    // A binary comment line tells transfer tools the file is not text.
    let mut out = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::with_capacity(objects.len());
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for off in offsets {
        out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doses_from_immunizations_of_both_editions() {
        let imm = serde_json::json!({
            "resourceType": "Immunization",
            "extension": [
                {"url": "http://worldhealthorganization.github.io/ddcc/StructureDefinition/DDCCVaccineBrand", "valueCoding": {"code": "TEST"}},
                {"url": "http://smart.who.int/ddcc/StructureDefinition/DDCCCountryOfEvent", "valueCode": "CHE"}
            ],
            "vaccineCode": {"coding": [{"system": "http://id.who.int/icd11/mms", "code": "XM0GQ8"}]},
            "occurrenceDateTime": "2021-05-06",
            "lotNumber": "ER8732",
            "location": {"display": "Vaccination Site"},
            "protocolApplied": [{"doseNumberPositiveInt": 2, "seriesDosesPositiveInt": 2}]
        });
        let d = PdfDose::from_immunization(&imm).unwrap();
        assert_eq!(
            (
                d.vaccine.as_str(),
                d.brand.as_deref(),
                d.date.as_str(),
                d.dose,
                d.total_doses
            ),
            ("XM0GQ8", Some("TEST"), "2021-05-06", Some(2), Some(2))
        );
        assert_eq!(
            (d.country.as_deref(), d.centre.as_deref(), d.lot.as_deref()),
            (Some("CHE"), Some("Vaccination Site"), Some("ER8732"))
        );
        assert!(
            PdfDose::from_immunization(&serde_json::json!({"resourceType": "Patient"})).is_none()
        );
    }

    #[test]
    fn text_is_escaped_and_non_latin_is_transliterated() {
        assert_eq!(pdf_text("a(b)c\\"), b"(a\\(b\\)c\\\\)".to_vec());
        assert_eq!(pdf_text("Jos\u{e9}"), b"(Jos\xe9)".to_vec());
        assert_eq!(pdf_text("Авл"), b"(AVL)".to_vec());
        assert_eq!(pdf_text("李"), b"(LI)".to_vec());
        assert_eq!(pdf_text("สม"), b"(??)".to_vec());
    }

    #[test]
    fn xref_offsets_point_at_objects() {
        let m = crate::qr::matrix("HELLO", crate::qr::QrMode::Alphanumeric).unwrap();
        let cert = PdfCertificate {
            title: "T".into(),
            name: "N".into(),
            qrs: vec![PdfQr {
                label: "who".into(),
                matrix: m,
            }],
            ..Default::default()
        };
        let pdf = render(&cert).unwrap();
        let text = String::from_utf8_lossy(&pdf);
        let xref_at: usize = text
            .rsplit("startxref\n")
            .next()
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(pdf[xref_at..].starts_with(b"xref"));
        let entries: Vec<usize> = text[xref_at..]
            .lines()
            .skip(3)
            .take_while(|l| l.ends_with(" n "))
            .map(|l| l[..10].parse().unwrap())
            .collect();
        for (i, off) in entries.iter().enumerate() {
            assert!(pdf[*off..].starts_with(format!("{} 0 obj", i + 1).as_bytes()));
        }
    }
}
