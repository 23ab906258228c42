//! `IPSToCoreDataSetVS` on the IG's IPS example: the map starts from `ips.entry
//! first` being a Composition, but that file's first entry is a Patient, so the
//! documented result is only the Bundle with the copied id (conformance README,
//! examples-extra).

mod transform_support;

use fml::exec::transform;
use serde_json::json;
use transform_support::*;

#[test]
fn ips_example_gives_documented_result() {
    let Some(conf) = conformance_dir() else {
        return;
    };
    let reg = ig_registry(&conf);
    let term = terminology(&conf, "terminology");
    let input = read_json(
        &conf.join("ddcc-ig/examples-extra/Bundle-IPS-Immunization-Example-Bundle-01.json"),
    );
    let out = transform(
        "http://smart.who.int/ddcc/StructureMap/IPSToCoreDataSetVS",
        &input,
        &reg,
        &term,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let expected = json!({"resourceType": "Bundle", "id": "IPS-Immunization-Example-Bundle-01"});
    let mut d = Vec::new();
    diff(&expected, &out, "$", &mut d);
    for x in &d {
        println!("DIFF {x}");
    }
    println!("{} of 1 passed", usize::from(d.is_empty()));
    assert!(d.is_empty());
}
