//! ISO 3166-1 alpha-3 ⇄ alpha-2. DDCC records countries in alpha-3 (`urn:iso:std:iso:3166`
//! codes such as `USA`); the EU DCC wants alpha-2 "where possible".

/// (alpha-3, alpha-2) for every officially assigned ISO 3166-1 code, then the
/// user-assigned XA..XS / XXA..XXS pairs the WHO trust network gives its virtual test
/// participants (so test deployments never claim a real country).
const TABLE: &str = "\
AFG AF ALA AX ALB AL DZA DZ ASM AS AND AD AGO AO AIA AI ATA AQ ATG AG ARG AR ARM AM ABW AW \
AUS AU AUT AT AZE AZ BHS BS BHR BH BGD BD BRB BB BLR BY BEL BE BLZ BZ BEN BJ BMU BM BTN BT \
BOL BO BES BQ BIH BA BWA BW BVT BV BRA BR IOT IO BRN BN BGR BG BFA BF BDI BI CPV CV KHM KH \
CMR CM CAN CA CYM KY CAF CF TCD TD CHL CL CHN CN CXR CX CCK CC COL CO COM KM COG CG COD CD \
COK CK CRI CR CIV CI HRV HR CUB CU CUW CW CYP CY CZE CZ DNK DK DJI DJ DMA DM DOM DO ECU EC \
EGY EG SLV SV GNQ GQ ERI ER EST EE SWZ SZ ETH ET FLK FK FRO FO FJI FJ FIN FI FRA FR GUF GF \
PYF PF ATF TF GAB GA GMB GM GEO GE DEU DE GHA GH GIB GI GRC GR GRL GL GRD GD GLP GP GUM GU \
GTM GT GGY GG GIN GN GNB GW GUY GY HTI HT HMD HM VAT VA HND HN HKG HK HUN HU ISL IS IND IN \
IDN ID IRN IR IRQ IQ IRL IE IMN IM ISR IL ITA IT JAM JM JPN JP JEY JE JOR JO KAZ KZ KEN KE \
KIR KI PRK KP KOR KR KWT KW KGZ KG LAO LA LVA LV LBN LB LSO LS LBR LR LBY LY LIE LI LTU LT \
LUX LU MAC MO MDG MG MWI MW MYS MY MDV MV MLI ML MLT MT MHL MH MTQ MQ MRT MR MUS MU MYT YT \
MEX MX FSM FM MDA MD MCO MC MNG MN MNE ME MSR MS MAR MA MOZ MZ MMR MM NAM NA NRU NR NPL NP \
NLD NL NCL NC NZL NZ NIC NI NER NE NGA NG NIU NU NFK NF MKD MK MNP MP NOR NO OMN OM PAK PK \
PLW PW PSE PS PAN PA PNG PG PRY PY PER PE PHL PH PCN PN POL PL PRT PT PRI PR QAT QA REU RE \
ROU RO RUS RU RWA RW BLM BL SHN SH KNA KN LCA LC MAF MF SPM PM VCT VC WSM WS SMR SM STP ST \
SAU SA SEN SN SRB RS SYC SC SLE SL SGP SG SXM SX SVK SK SVN SI SLB SB SOM SO ZAF ZA SGS GS \
SSD SS ESP ES LKA LK SDN SD SUR SR SJM SJ SWE SE CHE CH SYR SY TWN TW TJK TJ TZA TZ THA TH \
TLS TL TGO TG TKL TK TON TO TTO TT TUN TN TUR TR TKM TM TCA TC TUV TV UGA UG UKR UA ARE AE \
GBR GB USA US UMI UM URY UY UZB UZ VUT VU VEN VE VNM VN VGB VG VIR VI WLF WF ESH EH YEM YE \
ZMB ZM ZWE ZW \
XXA XA XXB XB XXC XC XXD XD XXE XE XXF XF XXG XG XXH XH XXI XI XXJ XJ XXK XK XXL XL \
XXM XM XXN XN XXO XO XXP XP XXQ XQ XXR XR XXS XS";

fn pairs() -> impl Iterator<Item = (&'static str, &'static str)> {
    let mut it = TABLE.split_ascii_whitespace();
    std::iter::from_fn(move || Some((it.next()?, it.next()?)))
}

/// alpha-2 for an alpha-3 (or an alpha-2 passed through). `None` when unknown.
pub fn to_alpha2(code: &str) -> Option<&'static str> {
    let code = code.trim().to_ascii_uppercase();
    match code.len() {
        2 => pairs().find(|(_, a2)| *a2 == code).map(|(_, a2)| a2),
        3 => pairs().find(|(a3, _)| *a3 == code).map(|(_, a2)| a2),
        _ => None,
    }
}

/// alpha-3 for an alpha-2 (or an alpha-3 passed through). `None` when unknown.
pub fn to_alpha3(code: &str) -> Option<&'static str> {
    let code = code.trim().to_ascii_uppercase();
    match code.len() {
        2 => pairs().find(|(_, a2)| *a2 == code).map(|(a3, _)| a3),
        3 => pairs().find(|(a3, _)| *a3 == code).map(|(a3, _)| a3),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_well_formed_and_unique() {
        let all: Vec<_> = pairs().collect();
        assert_eq!(
            all.len(),
            249 + 19,
            "249 officially assigned codes and 19 WHO test pairs"
        );
        let mut a3: Vec<_> = all.iter().map(|p| p.0).collect();
        let mut a2: Vec<_> = all.iter().map(|p| p.1).collect();
        a3.sort();
        a3.dedup();
        a2.sort();
        a2.dedup();
        assert_eq!((a3.len(), a2.len()), (249 + 19, 249 + 19));
        assert!(all.iter().all(|(x, y)| x.len() == 3 && y.len() == 2));
    }

    #[test]
    fn conversions() {
        assert_eq!(to_alpha2("USA"), Some("US"));
        assert_eq!(to_alpha2("deu"), Some("DE"));
        assert_eq!(to_alpha2("RUS"), Some("RU"));
        assert_eq!(to_alpha2("NL"), Some("NL"));
        assert_eq!(to_alpha3("NL"), Some("NLD"));
        assert_eq!(to_alpha2("XXX"), None);
        assert_eq!(to_alpha2("XXA"), Some("XA"));
        assert_eq!(to_alpha3("XS"), Some("XXS"));
        assert_eq!(to_alpha2(""), None);
    }
}
