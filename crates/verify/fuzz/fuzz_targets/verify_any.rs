//! The decoder chain of every encoding must answer any input with a verdict — never
//! panic, never loop, never allocate without bound. The first byte picks the layer
//! the rest stands for (see `ddcc_verify::fuzzing::wrap`).
#![no_main]

use std::sync::OnceLock;

use ddcc_verify::{verify_any, TrustList};
use libfuzzer_sys::fuzz_target;

fn trust() -> &'static TrustList {
    static TRUST: OnceLock<TrustList> = OnceLock::new();
    TRUST.get_or_init(|| {
        let mut t = TrustList::new();
        // A fixed P-256 JWK, so SHC inputs with its kid reach signature checking.
        let jwks = serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]});
        let _ = t.add_jwks(None, &jwks);
        t
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let text = ddcc_verify::fuzzing::wrap(selector, rest);
    let v = verify_any(&text, trust(), 1_700_000_000);
    // A verdict without a reason would be a bug: invalid means at least one issue.
    assert_eq!(v.valid, v.issues.is_empty());
});
