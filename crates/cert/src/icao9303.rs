//! ICAO Doc 9303 Part 3 §6 name transliteration for machine-readable zones, as the
//! EU DCC requires for `fnt`/`gnt`: upper-case A–Z, `<` as the only separator.
//!
//! Latin letters with diacritics use the Doc 9303 recommended transliteration
//! (Ä→AE, Ö→OE, Ü→UE, ß→SS, Å→AA, Æ→AE, Ø→OE, Þ→TH, Ĳ→IJ, Œ→OE; other diacritics
//! drop to the base letter). Cyrillic uses the Doc 9303 Cyrillic table. Arabic uses
//! the Doc 9303 reversible table (emphatic and ambiguous letters get an `X` prefix);
//! short-vowel marks are not written in names and are dropped. Scripts without a
//! Doc 9303 table (Han, Greek, …) produce nothing; callers decide what to do then.

/// Maximum length of `fnt`/`gnt` in the EU DCC schema.
pub const MAX_LEN: usize = 80;

const LATIN: &[(&str, &str)] = &[
    ("ÀÁÂÃĀĂĄǍǺȀȂȦẠẢẤẦẨẪẬẮẰẲẴẶ", "A"),
    ("ÇĆĈĊČ", "C"),
    ("ĎĐÐ", "D"),
    ("ÈÉÊËĒĔĖĘĚȄȆẸẺẼẾỀỂỄỆ", "E"),
    ("ĜĞĠĢǦ", "G"),
    ("ĤĦ", "H"),
    ("ÌÍÎÏĨĪĬĮİǏȈȊỈỊ", "I"),
    ("Ĵ", "J"),
    ("ĶǨ", "K"),
    ("ĹĻĽĿŁ", "L"),
    ("ÑŃŅŇŊ", "N"),
    ("ÒÓÔÕŌŎŐƠǑȌȎỌỎỐỒỔỖỘỚỜỞỠỢ", "O"),
    ("ŔŖŘ", "R"),
    ("ŚŜŞŠȘ", "S"),
    ("ŢŤŦȚ", "T"),
    ("ÙÚÛŨŪŬŮŰŲƯǓǕǗǙǛỤỦỨỪỬỮỰ", "U"),
    ("Ŵ", "W"),
    ("ÝŶŸỲỴỶỸ", "Y"),
    ("ŹŻŽ", "Z"),
    ("Ä", "AE"),
    ("Å", "AA"),
    ("Æ", "AE"),
    ("Ö", "OE"),
    ("Ø", "OE"),
    ("Œ", "OE"),
    ("Ü", "UE"),
    ("Þ", "TH"),
    ("Ĳ", "IJ"),
];

const CYRILLIC: &[(char, &str)] = &[
    ('А', "A"),
    ('Б', "B"),
    ('В', "V"),
    ('Г', "G"),
    ('Ґ', "G"),
    ('Д', "D"),
    ('Ѓ', "G"),
    ('Ђ', "D"),
    ('Є', "IE"),
    ('Е', "E"),
    ('Ё', "E"),
    ('Ж', "ZH"),
    ('З', "Z"),
    ('Ѕ', "DZ"),
    ('И', "I"),
    ('І', "I"),
    ('Ї', "I"),
    ('Й', "I"),
    ('Ј', "J"),
    ('К', "K"),
    ('Ќ', "K"),
    ('Л', "L"),
    ('Љ', "LJ"),
    ('М', "M"),
    ('Н', "N"),
    ('Њ', "NJ"),
    ('О', "O"),
    ('П', "P"),
    ('Р', "R"),
    ('С', "S"),
    ('Т', "T"),
    ('Ћ', "C"),
    ('У', "U"),
    ('Ў', "U"),
    ('Ф', "F"),
    ('Х', "KH"),
    ('Ц', "TS"),
    ('Ч', "CH"),
    ('Џ', "DZ"),
    ('Ш', "SH"),
    ('Щ', "SHCH"),
    ('Ъ', "IE"),
    ('Ы', "Y"),
    ('Ь', ""),
    ('Э', "E"),
    ('Ю', "IU"),
    ('Я', "IA"),
];

const ARABIC: &[(char, &str)] = &[
    ('ء', "XE"),
    ('آ', "XAA"),
    ('أ', "XAE"),
    ('ؤ', "U"),
    ('إ', "I"),
    ('ئ', "XI"),
    ('ا', "A"),
    ('ب', "B"),
    ('ة', "XTA"),
    ('ت', "T"),
    ('ث', "XTH"),
    ('ج', "J"),
    ('ح', "XH"),
    ('خ', "XKH"),
    ('د', "D"),
    ('ذ', "XDH"),
    ('ر', "R"),
    ('ز', "Z"),
    ('س', "S"),
    ('ش', "XSH"),
    ('ص', "XSS"),
    ('ض', "XDZ"),
    ('ط', "XTT"),
    ('ظ', "XZZ"),
    ('ع', "E"),
    ('غ', "G"),
    ('ف', "F"),
    ('ق', "Q"),
    ('ك', "K"),
    ('ل', "L"),
    ('م', "M"),
    ('ن', "N"),
    ('ه', "H"),
    ('و', "W"),
    ('ى', "XAY"),
    ('ي', "Y"),
    // Persian and Urdu additions.
    ('پ', "XP"),
    ('چ', "XCH"),
    ('ژ', "XZH"),
    ('گ', "XG"),
    ('ک', "XKK"),
    ('ی', "XYA"),
];

fn map_char(c: char, out: &mut String) {
    if c.is_ascii_uppercase() {
        out.push(c);
        return;
    }
    if let Some((_, t)) = LATIN.iter().find(|(set, _)| set.contains(c)) {
        out.push_str(t);
    } else if let Some((_, t)) = CYRILLIC.iter().find(|(k, _)| *k == c) {
        out.push_str(t);
    } else if let Some((_, t)) = ARABIC.iter().find(|(k, _)| *k == c) {
        out.push_str(t);
    } else if let Some(p) = pinyin::ToPinyin::to_pinyin(&c) {
        // Doc 9303 gives no table for Han script; PRC passports write the MRZ name in
        // Hanyu Pinyin without tones, syllables of one name part run together.
        out.push_str(&p.plain().to_ascii_uppercase());
    } else if c.is_whitespace() || is_name_separator(c) {
        out.push('<');
    }
    // Apostrophes, dots and unsupported scripts are dropped (Doc 9303: punctuation
    // is omitted, e.g. d'Artagnan → DARTAGNAN).
}

/// Characters that separate name parts: hyphens, commas, and the middle dots that
/// Chinese and Japanese use between the parts of a foreign name (奥卢斯·阿杰里乌斯).
pub fn is_name_separator(c: char) -> bool {
    matches!(
        c,
        '-' | '‐' | '‑' | '–' | ',' | '<' | '·' | '・' | '‧' | '•'
    )
}

/// Transliterate a name part into the MRZ alphabet.
pub fn transliterate(name: &str) -> String {
    let mut raw = String::with_capacity(name.len());
    for c in name.chars() {
        for u in c.to_uppercase() {
            map_char(u, &mut raw);
        }
    }
    // Collapse separator runs and trim them at the ends.
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if c == '<' && (out.is_empty() || out.ends_with('<')) {
            continue;
        }
        out.push(c);
    }
    // Every character is ASCII here, so byte truncation is char-safe.
    out.truncate(MAX_LEN);
    while out.ends_with('<') {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::transliterate as t;

    #[test]
    fn han_script_as_pinyin() {
        assert_eq!(t("王小明"), "WANGXIAOMING");
        assert_eq!(t("奥卢斯·阿杰里乌斯"), "AOLUSI<AJIELIWUSI");
    }

    #[test]
    fn latin_rules() {
        assert_eq!(t("Jiřina-Maria Alena"), "JIRINA<MARIA<ALENA");
        assert_eq!(t("d'Červenková Panklová"), "DCERVENKOVA<PANKLOVA");
        assert_eq!(t("Müller"), "MUELLER");
        assert_eq!(t("Größe"), "GROESSE");
        assert_eq!(t("Åsa Ærø"), "AASA<AEROE");
        assert_eq!(t("Þórunn"), "THORUNN");
        assert_eq!(t("Ĳsselmeer Œuvre"), "IJSSELMEER<OEUVRE");
        assert_eq!(t("  van  der - Berg "), "VAN<DER<BERG");
        assert_eq!(t("Łukasz Żółć"), "LUKASZ<ZOLC");
    }

    #[test]
    fn cyrillic_and_arabic() {
        assert_eq!(t("Авл Агерий"), "AVL<AGERII");
        assert_eq!(t("Щукин Юрьевич"), "SHCHUKIN<IUREVICH");
        assert_eq!(t("محمد"), "MXHMD");
        assert_eq!(t("สมชาย"), "", "Thai has no table: dropped, not guessed");
    }

    #[test]
    fn length_and_alphabet() {
        let long = "Ä".repeat(100);
        let out = t(&long);
        assert_eq!(out.len(), super::MAX_LEN);
        // A separator at the cut is not left dangling.
        assert_eq!(t(&format!("{} B", "A".repeat(79))), "A".repeat(79));
        assert!(out.chars().all(|c| c.is_ascii_uppercase() || c == '<'));
    }
}
