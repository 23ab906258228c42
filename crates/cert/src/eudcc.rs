//! EU DCC 1.3.0 vaccination payload from the DDCC core data set (the logical model
//! produced by the IG map `QRespToVSCoreDataSet`).
//!
//! Code mapping (DDCC codes are ICD-11 MMS; EU value sets are SNOMED CT / EMA):
//! - `vp` from the vaccine type: RNA → 1119349007 (mRNA vaccine), protein subunit
//!   and virus-like particle → 1119305005 (antigen vaccine); every other COVID-19
//!   vaccine type → J07BX03 (the value set's generic "covid-19 vaccines").
//! - `mp` from the brand ([`BRAND_TO_MP`], per brand); when the brand is unknown,
//!   the IG ConceptMap `who-ddcc-map-icd11-eudcc-vaccines` where it has exactly one
//!   `equivalent` target for the vaccine type ([`VACCINE_TO_MP_EQUIVALENT`]);
//!   otherwise the brand code itself, unmapped (verifiers display unknown codes raw).
//! - `ma`: an explicit EU organisation code (`ORG-…`) from `maholder`/`manufacturer`,
//!   else the marketing-authorisation holder of the mapped product, else the raw
//!   `maholder` (or `manufacturer`) code.
//! - `co`: ISO 3166 alpha-3 → alpha-2.

use crate::country;
use crate::error::{CertError, Result};
use crate::icao9303;
use serde_json::{json, Map, Value};

pub const SCHEMA_VERSION: &str = "1.3.0";
/// SNOMED CT 840539006 "COVID-19": the only `tg` of a DDCC vaccination.
pub const TG_COVID19: &str = "840539006";

/// ICD-11 brand → EU `vaccine-medicinal-product`.
pub const BRAND_TO_MP: &[(&str, &str)] = &[
    ("XM8NQ0", "EU/1/20/1528"),   // Comirnaty
    ("XM3DT5", "EU/1/20/1507"),   // Spikevax (Moderna)
    ("XM4YL8", "EU/1/21/1529"),   // Vaxzevria (AstraZeneca)
    ("XM6QV1", "EU/1/20/1525"),   // Janssen
    ("XM97T2", "Covishield"),     // Covishield
    ("XM5ZJ4", "Sputnik-V"),      // Gam-Covid-Vac
    ("XM5QM6", "Sputnik-Light"),  // Sputnik Light
    ("XM1AG7", "Convidecia"),     // Convidecia
    ("XM7HT3", "CoronaVac"),      // CoronaVac
    ("XM8866", "BBIBP-CorV"),     // Sinopharm Beijing
    ("XM1AU2", "WIBP-CorV"),      // Sinopharm Wuhan
    ("XM1G90", "Covaxin"),        // Covaxin
    ("XM85P5", "CoviVac"),        // Covi-Vac
    ("XM9FQ7", "Hayat-Vax"),      // Hayat-Vax
    ("XM6SZ8", "EpiVacCorona"),   // EpiVacCorona
    ("XM3SK8", "EpiVacCorona-N"), // EpiVacCorona-N
    ("XM3PG0", "Soberana-02"),    // Soberana 02
    ("XM4EC8", "MVC-COV1901"),    // Medigen
];

/// ICD-11 vaccine type → EU product, only where the IG ConceptMap
/// `who-ddcc-map-icd11-eudcc-vaccines` says `equivalent` (one product per type).
pub const VACCINE_TO_MP_EQUIVALENT: &[(&str, &str)] =
    &[("XM0CX4", "EU/1/20/1525"), ("XM5JC5", "NVX-CoV2373")];

/// EU product → marketing-authorisation holder (EU `vaccine-mah-manf`).
pub const MP_TO_MA: &[(&str, &str)] = &[
    ("EU/1/20/1528", "ORG-100030215"), // BioNTech Manufacturing GmbH
    ("EU/1/20/1507", "ORG-100031184"), // Moderna Biotech Spain S.L.
    ("EU/1/21/1529", "ORG-100001699"), // AstraZeneca AB
    ("EU/1/20/1525", "ORG-100001417"), // Janssen-Cilag International
    ("NVX-CoV2373", "ORG-100032020"),  // Novavax CZ a.s.
    ("Covishield", "ORG-100001981"),   // Serum Institute of India
    ("Sputnik-V", "Gamaleya-Research-Institute"),
    ("Sputnik-Light", "Gamaleya-Research-Institute"),
    ("CoronaVac", "Sinovac-Biotech"),
    ("Covaxin", "Bharat-Biotech"),
];

fn vaccine_to_vp(code: &str) -> &'static str {
    match code {
        "XM0GQ8" => "1119349007",
        "XM5JC5" | "XM1J92" => "1119305005",
        _ => "J07BX03",
    }
}

fn lookup(table: &[(&str, &'static str)], key: &str) -> Option<&'static str> {
    table.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// Options the core data set cannot supply.
#[derive(Debug, Clone, Default)]
pub struct DccOptions {
    /// `v[0].is`: the issuing authority's name (max 80 chars). Defaults to the core
    /// data set's `certificate.issuer` display/identifier.
    pub issuer_name: Option<String>,
    /// Structured name when known (e.g. from Patient.name.family/given); otherwise
    /// the core data set's single `name` string is split at its last space.
    pub family: Option<String>,
    pub given: Option<String>,
    /// Opaque part of the UVCI; defaults to the certificate HCID.
    pub uvci_id: Option<String>,
    /// Append `#` + Luhn mod 38 check character to the UVCI.
    pub uvci_checksum: bool,
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str().map(str::trim).filter(|s| !s.is_empty())
}

fn missing(what: &str) -> CertError {
    CertError::InvalidInput(format!("core data set lacks {what}"))
}

/// The `vaccination` element: an object, or the first of an array (an EU DCC holds
/// exactly one vaccination).
fn vaccination(cds: &Value) -> Result<&Value> {
    match cds.get("vaccination") {
        Some(Value::Array(a)) => a.first().ok_or_else(|| missing("vaccination")),
        Some(v @ Value::Object(_)) => Ok(v),
        _ => Err(missing("vaccination")),
    }
}

fn positive_int(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_u64().filter(|n| *n >= 1),
        Value::String(s) => s.trim().parse().ok().filter(|n: &u64| *n >= 1),
        _ => None,
    }
}

/// The EU `dob`: `YYYY`, `YYYY-MM` or `YYYY-MM-DD` in 1900–2099, or empty when
/// unknown (a FHIR dateTime is cut to its date).
fn eu_dob(birth: &str) -> Result<String> {
    let d: String = birth.chars().take(10).collect();
    let b = d.as_bytes();
    let shape_ok = matches!(b.len(), 0 | 4 | 7 | 10)
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        })
        && (b.is_empty() || b.starts_with(b"19") || b.starts_with(b"20"));
    if shape_ok {
        Ok(d)
    } else {
        Err(CertError::InvalidInput(format!(
            "birthDate {birth:?} is not an EU DCC date of birth"
        )))
    }
}

/// `YYYY-MM-DD` from a FHIR date or dateTime.
fn date_only(s: &str) -> Option<String> {
    let d = s.get(..10)?;
    let b = d.as_bytes();
    let ok = b.iter().enumerate().all(|(i, c)| match i {
        4 | 7 => *c == b'-',
        _ => c.is_ascii_digit(),
    });
    ok.then(|| d.to_string())
}

fn truncate_chars(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// Split "Given Names Family" at the last whitespace, or at the last middle dot
/// (a foreign name written in Chinese or Japanese script: 奥卢斯·阿杰里乌斯).
fn split_name(full: &str) -> (Option<String>, Option<String>) {
    let full = full.trim();
    let at = |c: char| c.is_whitespace() || matches!(c, '·' | '・' | '‧');
    match full.rsplit_once(at) {
        Some((given, family)) => (
            Some(family.trim().to_string()),
            Some(given.trim().to_string()).filter(|s| !s.is_empty()),
        ),
        None if full.is_empty() => (None, None),
        None => (Some(full.to_string()), None),
    }
}

/// The person-name group `nam` with ICAO 9303 standardised forms (Han script as
/// Hanyu Pinyin). Fails when neither part transliterates (a script without a
/// table): the schema needs `fnt` or `gnt`, and an empty one would not let a border
/// officer match a passport.
pub fn person_name(family: Option<&str>, given: Option<&str>) -> Result<Value> {
    let mut nam = Map::new();
    if let Some(f) = family.filter(|s| !s.trim().is_empty()) {
        nam.insert("fn".into(), json!(truncate_chars(f.trim(), 80)));
        let t = icao9303::transliterate(f);
        if !t.is_empty() {
            nam.insert("fnt".into(), json!(t));
        }
    }
    if let Some(g) = given.filter(|s| !s.trim().is_empty()) {
        nam.insert("gn".into(), json!(truncate_chars(g.trim(), 80)));
        let t = icao9303::transliterate(g);
        if !t.is_empty() {
            nam.insert("gnt".into(), json!(t));
        }
    }
    if !nam.contains_key("fnt") && !nam.contains_key("gnt") {
        return Err(CertError::InvalidInput(
            "name has no ICAO 9303 transliteration (fnt/gnt)".into(),
        ));
    }
    Ok(Value::Object(nam))
}

const UVCI_CHARSET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/:";

/// Luhn mod N (N = 38) check character over the whole UVCI string, as the EU DCC
/// schema FAQ defines it (the prefix `URN:UVCI:` is included).
pub fn uvci_check_char(uvci: &str) -> Option<char> {
    let n = UVCI_CHARSET.len();
    let mut factor = 2;
    let mut sum = 0;
    for c in uvci.bytes().rev() {
        let cp = UVCI_CHARSET.iter().position(|x| *x == c)?;
        let addend = factor * cp;
        factor = if factor == 2 { 1 } else { 2 };
        sum += addend / n + addend % n;
    }
    Some(char::from(UVCI_CHARSET[(n - sum % n) % n]))
}

/// `URN:UVCI:01:<CC>:<ID>[#<check>]`. The opaque part keeps only `A–Z 0–9 /`
/// (upper-cased): the UVCI charset; an `urn:HCID:` prefix is dropped.
pub fn uvci(country_alpha2: &str, unique_id: &str, checksum: bool) -> Result<String> {
    let id = unique_id.trim();
    let id = id
        .get(..9)
        .filter(|p| p.eq_ignore_ascii_case("urn:hcid:"))
        .map_or(id, |_| &id[9..]);
    let opaque: String = id
        .to_ascii_uppercase()
        .chars()
        .filter(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '/')
        .collect();
    if opaque.is_empty() {
        return Err(CertError::InvalidInput(
            "UVCI unique identifier is empty".into(),
        ));
    }
    let mut out = format!(
        "URN:UVCI:01:{}:{opaque}",
        country_alpha2.to_ascii_uppercase()
    );
    if checksum {
        let c = uvci_check_char(&out).ok_or_else(|| {
            CertError::InvalidInput("UVCI has characters outside its charset".into())
        })?;
        out.push('#');
        out.push(c);
    }
    if out.len() > 80 {
        return Err(CertError::InvalidInput(
            "UVCI longer than 80 characters".into(),
        ));
    }
    Ok(out)
}

/// Build the EU DCC 1.3.0 payload (`ver`, `nam`, `dob`, `v[1]`).
pub fn from_core_data_set(cds: &Value, opts: &DccOptions) -> Result<Value> {
    let (family, given) = match (&opts.family, &opts.given) {
        (None, None) => split_name(str_at(cds, &["name"]).ok_or_else(|| missing("name"))?),
        (f, g) => (f.clone(), g.clone()),
    };
    let nam = person_name(family.as_deref(), given.as_deref())?;
    let dob = eu_dob(str_at(cds, &["birthDate"]).unwrap_or(""))?;

    let vac = vaccination(cds)?;
    let vaccine =
        str_at(vac, &["vaccine", "code"]).ok_or_else(|| missing("vaccination.vaccine"))?;
    let brand = str_at(vac, &["brand", "code"]);
    let mp = brand
        .and_then(|b| lookup(BRAND_TO_MP, b))
        .or_else(|| lookup(VACCINE_TO_MP_EQUIVALENT, vaccine))
        .map(str::to_string)
        .or_else(|| brand.map(str::to_string))
        .ok_or_else(|| missing("vaccination.brand"))?;
    let holder = str_at(vac, &["maholder", "code"]);
    let manufacturer = str_at(vac, &["manufacturer", "code"]);
    let explicit_org = [holder, manufacturer]
        .into_iter()
        .flatten()
        .find(|c| c.starts_with("ORG-"));
    let ma = explicit_org
        .map(str::to_string)
        .or_else(|| lookup(MP_TO_MA, &mp).map(str::to_string))
        .or_else(|| holder.or(manufacturer).map(str::to_string))
        .ok_or_else(|| missing("vaccination.maholder or manufacturer"))?;
    let dn = positive_int(vac.get("dose")).ok_or_else(|| missing("vaccination.dose"))?;
    // Without a series total the dose number is the best claim we can make (1/1 is
    // what issuers use for single-dose schedules).
    let sd = positive_int(vac.get("totalDoses")).unwrap_or(dn);
    let dt = str_at(vac, &["date"])
        .and_then(date_only)
        .ok_or_else(|| missing("vaccination.date (YYYY-MM-DD)"))?;
    let co_raw = str_at(vac, &["country", "code"]).ok_or_else(|| missing("vaccination.country"))?;
    let co = country::to_alpha2(co_raw)
        .map(str::to_string)
        .unwrap_or_else(|| co_raw.to_ascii_uppercase());
    let is = opts
        .issuer_name
        .as_deref()
        .or_else(|| str_at(cds, &["certificate", "issuer", "display"]))
        .or_else(|| str_at(cds, &["certificate", "issuer", "identifier", "value"]))
        .ok_or_else(|| missing("certificate.issuer"))?;
    let id_src = opts
        .uvci_id
        .as_deref()
        .or_else(|| str_at(cds, &["certificate", "hcid", "value"]))
        .ok_or_else(|| missing("certificate.hcid"))?;
    let ci = uvci(&co, id_src, opts.uvci_checksum)?;

    Ok(json!({
        "ver": SCHEMA_VERSION,
        "nam": nam,
        "dob": dob,
        "v": [{
            "tg": TG_COVID19,
            "vp": vaccine_to_vp(vaccine),
            "mp": mp,
            "ma": ma,
            "dn": dn,
            "sd": sd,
            "dt": dt,
            "co": co,
            "is": truncate_chars(is, 80),
            "ci": ci,
        }]
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uvci_checksum_matches_eu_schema_example() {
        // From the EU DCC schema examples (vaccination/standard cases).
        assert_eq!(
            uvci("NL", "DADFCC47C7334E45A906DB12FD859FB7", true).unwrap(),
            "URN:UVCI:01:NL:DADFCC47C7334E45A906DB12FD859FB7#1"
        );
        assert_eq!(
            uvci("us", "urn:HCID:bMlJ-kAt0", false).unwrap(),
            "URN:UVCI:01:US:BMLJKAT0"
        );
        assert!(uvci("US", "urn:HCID:--", false).is_err());
    }

    #[test]
    fn name_split_and_failure() {
        assert_eq!(
            split_name("Aulus  Agerius"),
            (Some("Agerius".into()), Some("Aulus".into()))
        );
        assert_eq!(split_name("Cher"), (Some("Cher".into()), None));
        assert_eq!(
            split_name("奥卢斯·阿杰里乌斯"),
            (Some("阿杰里乌斯".into()), Some("奥卢斯".into()))
        );
        let nam = person_name(Some("李"), Some("明")).unwrap();
        assert_eq!(
            (nam["fnt"].as_str(), nam["gnt"].as_str()),
            (Some("LI"), Some("MING"))
        );
        assert!(person_name(Some("สมชาย"), None).is_err());
    }

    #[test]
    fn dob_forms() {
        assert_eq!(eu_dob("1979-04-14").unwrap(), "1979-04-14");
        assert_eq!(eu_dob("1950").unwrap(), "1950");
        assert_eq!(eu_dob("1901-08").unwrap(), "1901-08");
        assert_eq!(eu_dob("2003-03-03T10:00:00Z").unwrap(), "2003-03-03");
        assert_eq!(eu_dob("").unwrap(), "");
        assert!(eu_dob("1850-01-01").is_err());
        assert!(eu_dob("２００３-03-03").is_err());
        assert!(eu_dob("03/03/2003").is_err());
    }

    #[test]
    fn missing_fields_are_errors_not_panics() {
        assert!(from_core_data_set(&json!({}), &DccOptions::default()).is_err());
        assert!(from_core_data_set(
            &json!({"name": "A B", "vaccination": []}),
            &DccOptions::default()
        )
        .is_err());
        assert!(from_core_data_set(&json!(null), &DccOptions::default()).is_err());
    }
}
