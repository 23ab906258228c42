//! Input builders shared by the fuzz target (`fuzz/`) and the stable mutation smoke
//! test: they wrap arbitrary bytes in the outer layers of an encoding, so mutations
//! reach the inner layers (CBOR/COSE, DEFLATE, JSON) instead of dying at base45.
//! Not part of the verification API.

use std::io::Write;

use base64::Engine as _;

/// The layer that `bytes` stands for, chosen by `selector % 8`:
/// 0 the whole text; 1 `HC1:` + base45(bytes) (zlib layer); 2 `HC1:` +
/// base45(zlib(bytes)) (COSE/CBOR layers); 3 `shc:/` digits of bytes (numeric
/// layer); 4 an SHC JWS with bytes as its header JSON; 5 an SHC JWS with bytes as the
/// inflated payload; 6 an SHC JWS with bytes as the raw (compressed) payload; 7 an
/// ICAO seal text.
pub fn wrap(selector: u8, bytes: &[u8]) -> String {
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let header = b64(br#"{"alg":"ES256","zip":"DEF","kid":"k"}"#);
    let sig = b64(&[0u8; 64]);
    match selector % 8 {
        0 | 7 => String::from_utf8_lossy(bytes).into_owned(),
        1 => format!("HC1:{}", base45::encode(bytes)),
        2 => format!("HC1:{}", base45::encode(zlib(bytes))),
        3 => {
            let digits: String = bytes
                .iter()
                .flat_map(|b| {
                    let v = b % 100;
                    [char::from(b'0' + v / 10), char::from(b'0' + v % 10)]
                })
                .collect();
            format!("shc:/{digits}")
        }
        4 => shc(&format!("{}.{}.{sig}", b64(bytes), b64(&deflate(b"{}")))),
        5 => shc(&format!("{header}.{}.{sig}", b64(&deflate(bytes)))),
        _ => shc(&format!("{header}.{}.{sig}", b64(bytes))),
    }
}

fn shc(jws: &str) -> String {
    let mut out = String::from("shc:/");
    for b in jws.bytes() {
        let v = b.saturating_sub(45);
        out.push(char::from(b'0' + (v / 10) % 10));
        out.push(char::from(b'0' + v % 10));
    }
    out
}

/// zlib, as `HC1:` carries it.
pub fn zlib(bytes: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    // Writing into a Vec cannot fail.
    let _ = z.write_all(bytes);
    z.finish().unwrap_or_default()
}

/// Raw DEFLATE, as an SHC payload carries it.
pub fn deflate(bytes: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = z.write_all(bytes);
    z.finish().unwrap_or_default()
}
