//! Executor semantics on small hand-written StructureMaps (no corpus needed): each
//! case states the FML it stands for, the input, and the exact output or error.

use fml::exec::{
    transform, transform_with, LocalTerminology, MapRegistry, NoTerminology, TransformError,
    TransformOptions,
};
use serde_json::{json, Value};

const LM: &str = "http://example.org/StructureDefinition/LM";

/// A logical model `LM` with a string, a repeating backbone and a choice.
fn logical_model() -> Value {
    json!({
        "resourceType": "StructureDefinition",
        "url": LM, "type": LM, "kind": "logical",
        "snapshot": {"element": [
            {"path": "LM"},
            {"path": "LM.name", "type": [{"code": "string"}], "max": "1"},
            {"path": "LM.count", "type": [{"code": "integer"}], "max": "1"},
            {"path": "LM.part", "type": [{"code": "BackboneElement"}], "max": "*"},
            {"path": "LM.part.code", "type": [{"code": "Coding"}], "max": "1"},
            {"path": "LM.value[x]", "type": [{"code": "integer"}, {"code": "string"}], "max": "1"}
        ]}
    })
}

fn src(ctx: &str, element: Option<&str>, var: Option<&str>) -> Value {
    let mut s = json!({"context": ctx});
    if let Some(e) = element {
        s["element"] = json!(e);
    }
    if let Some(v) = var {
        s["variable"] = json!(v);
    }
    s
}

fn copy(ctx: &str, element: &str, param: Value) -> Value {
    json!({"context": ctx, "contextType": "variable", "element": element,
           "transform": "copy", "parameter": [param]})
}

fn map(url: &str, groups: Value) -> Value {
    json!({
        "resourceType": "StructureMap", "url": url, "name": "T", "status": "draft",
        "structure": [
            {"url": "http://hl7.org/fhir/StructureDefinition/Patient", "mode": "source", "alias": "Pat"},
            {"url": LM, "mode": "target", "alias": "LM"}
        ],
        "group": groups
    })
}

fn registry(maps: &[Value]) -> MapRegistry {
    let mut reg = MapRegistry::new();
    reg.add_structure_definition(&logical_model())
        .expect("model");
    for m in maps {
        reg.add_map(m).expect("map compiles");
    }
    reg
}

fn group(name: &str, rules: Value) -> Value {
    json!({"name": name, "typeMode": "none", "input": [
        {"name": "src", "type": "Pat", "mode": "source"},
        {"name": "tgt", "type": "LM", "mode": "target"}], "rule": rules})
}

fn patient() -> Value {
    json!({"resourceType": "Patient", "id": "p1",
        "name": [{"family": "Doe", "given": ["Jo", "Ann"]}, {"family": "Roe"}],
        "multipleBirthInteger": 2, "birthDate": "2000-01-02"})
}

#[test]
fn copy_list_modes_and_logical_model_resource_type() {
    // src.name first as n -> tgt.name = n.family   (via nested rule)
    // src.name last as n then { n.family as f -> tgt.part as p, p.code = c('http://s', f) }
    let m = map(
        "http://t/1",
        json!([group(
            "G",
            json!([
                {"name": "first", "source": [{"context": "src", "element": "name", "variable": "n", "listMode": "first"}],
                 "rule": [{"name": "fam", "source": [src("n", Some("family"), Some("f"))],
                           "target": [copy("tgt", "name", json!({"valueId": "f"}))]}]},
                {"name": "last", "source": [{"context": "src", "element": "name", "variable": "n", "listMode": "last"}],
                 "rule": [{"name": "code", "source": [src("n", Some("family"), Some("f"))],
                           "target": [
                             {"context": "tgt", "contextType": "variable", "element": "part", "variable": "p"},
                             {"context": "p", "contextType": "variable", "element": "code", "transform": "c",
                              "parameter": [{"valueString": "http://s"}, {"valueId": "f"}]}]}]},
                {"name": "choice", "source": [src("src", Some("multipleBirth"), Some("mb"))],
                 "target": [copy("tgt", "value", json!({"valueId": "mb"}))]}
            ])
        )]),
    );
    let reg = registry(&[m]);
    let out = transform("http://t/1", &patient(), &reg, &NoTerminology).expect("ok");
    assert_eq!(
        out,
        json!({"resourceType": "LM", "name": "Doe",
               "part": [{"code": {"system": "http://s", "code": "Roe"}}],
               "valueInteger": 2})
    );
    // resourceType comes first
    assert_eq!(
        out.as_object()
            .and_then(|o| o.keys().next())
            .map(String::as_str),
        Some("resourceType")
    );
}

#[test]
fn where_sees_enclosing_variables_and_not_its_own() {
    // src.name as n where n.family = 'Doe'   -- `n` is not bound yet: path on the item -> false
    // src.name as n where family = 'Doe'     -- path on the item -> true for the first name
    let m = map(
        "http://t/2",
        json!([group(
            "G",
            json!([
                {"name": "own", "source": [{"context": "src", "element": "name", "variable": "n",
                                             "condition": "n.family = 'Doe'"}],
                 "target": [copy("tgt", "name", json!({"valueString": "own-var"}))]},
                {"name": "path", "source": [{"context": "src", "element": "name", "variable": "n",
                                              "condition": "family = 'Roe'"}],
                 "rule": [{"name": "set", "source": [src("n", Some("family"), Some("f"))],
                           "target": [copy("tgt", "name", json!({"valueId": "f"}))]}]},
                {"name": "outer", "source": [src("src", Some("name"), Some("n"))],
                 "rule": [{"name": "inner", "source": [{"context": "n", "element": "given", "variable": "g",
                                                         "condition": "n.family = 'Doe'", "listMode": "not_first"}],
                           "target": [
                             {"context": "tgt", "contextType": "variable", "element": "part", "variable": "p"},
                             {"context": "p", "contextType": "variable", "element": "code", "transform": "c",
                              "parameter": [{"valueString": "http://g"}, {"valueId": "g"}]}]}]}
            ])
        )]),
    );
    let reg = registry(&[m]);
    let out = transform("http://t/2", &patient(), &reg, &NoTerminology).expect("ok");
    assert_eq!(
        out,
        json!({"resourceType": "LM", "name": "Roe",
               "part": [{"code": {"system": "http://g", "code": "Ann"}}]})
    );
}

#[test]
fn unknown_target_element_names_map_group_rule() {
    let m = map(
        "http://t/3",
        json!([group(
            "G",
            json!([
                {"name": "bad rule", "source": [src("src", Some("id"), Some("i"))],
                 "target": [copy("tgt", "nonsense", json!({"valueId": "i"}))]}
            ])
        )]),
    );
    let reg = registry(&[m]);
    let err = transform("http://t/3", &patient(), &reg, &NoTerminology).expect_err("must fail");
    match &err {
        TransformError::Rule {
            map,
            group,
            rule,
            cause,
        } => {
            assert_eq!(map, "http://t/3");
            assert_eq!(group, "G");
            assert_eq!(rule, "bad rule");
            assert!(
                cause.contains("nonsense") && cause.contains("LM"),
                "{cause}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("bad rule"));
}

#[test]
fn recursion_is_bounded() {
    // group G(src, tgt) { src then G(src, tgt) }
    let m = map(
        "http://t/4",
        json!([group(
            "G",
            json!([
                {"name": "again", "source": [src("src", None, None)],
                 "dependent": [{"name": "G", "variable": ["src", "tgt"]}]}
            ])
        )]),
    );
    let reg = registry(&[m]);
    let err = transform("http://t/4", &patient(), &reg, &NoTerminology).expect_err("must fail");
    assert!(matches!(err, TransformError::TooDeep { .. }), "{err:?}");
}

#[test]
fn dependent_groups_imports_extends_and_default_type_group() {
    // lib: group Base(src, tgt) { src.id as i -> tgt.name = i }
    //      group Lib(src, tgt) extends Base { src.birthDate as b -> tgt.part as p then Part(b, p) }
    //      group Part(source b, target p) { b -> p.code = c('http://d', b) }
    //      group Name(source n : HumanName, target s : string) <<types>> ...
    let lib = json!({
        "resourceType": "StructureMap", "url": "http://t/lib", "name": "Lib", "status": "draft",
        "group": [
            {"name": "Base", "typeMode": "none", "input": [
                {"name": "src", "mode": "source"}, {"name": "tgt", "mode": "target"}],
             "rule": [{"name": "id", "source": [src("src", Some("id"), Some("i"))],
                       "target": [copy("tgt", "name", json!({"valueId": "i"}))]}]},
            {"name": "Lib", "extends": "Base", "typeMode": "none", "input": [
                {"name": "src", "mode": "source"}, {"name": "tgt", "mode": "target"}],
             "rule": [{"name": "part", "source": [src("src", Some("birthDate"), Some("b"))],
                       "target": [{"context": "tgt", "contextType": "variable", "element": "part", "variable": "p"}],
                       "dependent": [{"name": "Part", "variable": ["b", "p"]}]}]},
            {"name": "Part", "typeMode": "none", "input": [
                {"name": "b", "mode": "source"}, {"name": "p", "mode": "target"}],
             "rule": [{"name": "code", "source": [src("b", None, None)],
                       "target": [{"context": "p", "contextType": "variable", "element": "code",
                                   "transform": "c", "parameter": [{"valueString": "http://d"}, {"valueId": "b"}]}]}]},
            {"name": "CodingFromCoding", "typeMode": "types", "input": [
                {"name": "s", "type": "Coding", "mode": "source"}, {"name": "t", "type": "Coding", "mode": "target"}],
             "rule": [{"name": "code", "source": [src("s", Some("code"), Some("c"))],
                       "target": [copy("t", "code", json!({"valueId": "c"}))]}]}
        ]
    });
    // main: src then Lib(src, tgt); src.contact... ; default type group for Coding -> Coding
    let main = json!({
        "resourceType": "StructureMap", "url": "http://t/main", "name": "Main", "status": "draft",
        "structure": [{"url": LM, "mode": "target", "alias": "LM"}],
        "import": ["http://t/*"],
        "group": [{"name": "M", "typeMode": "none", "input": [
                {"name": "src", "mode": "source"}, {"name": "tgt", "type": "LM", "mode": "target"}],
            "rule": [
                {"name": "lib", "source": [src("src", None, None)],
                 "dependent": [{"name": "Lib", "variable": ["src", "tgt"]}]},
                {"name": "typed", "source": [src("src", Some("maritalStatus"), Some("ms"))],
                 "rule": [{"name": "coding", "source": [src("ms", Some("coding"), Some("vvv"))],
                           "target": [{"context": "tgt", "contextType": "variable", "element": "part", "variable": "p"}],
                           "rule": [{"name": "auto", "source": [{"context": "vvv", "variable": "s"}],
                                     "target": [{"context": "p", "contextType": "variable", "element": "code",
                                                 "variable": "t", "transform": "create"}]}]}]}
            ]}]
    });
    let reg = registry(&[lib, main]);
    let mut p = patient();
    p["maritalStatus"] =
        json!({"coding": [{"system": "http://m", "code": "M", "display": "Married"}]});
    let out = transform("http://t/main", &p, &reg, &NoTerminology).expect("ok");
    assert_eq!(
        out,
        json!({"resourceType": "LM", "name": "p1", "part": [
            {"code": {"system": "http://d", "code": "2000-01-02"}},
            {"code": {"code": "M"}}
        ]})
    );
}

#[test]
fn transforms_evaluate_translate_uuid_append() {
    let mut term = LocalTerminology::new();
    term.add_resource(&json!({"resourceType": "ConceptMap", "url": "http://cm",
        "group": [{"source": "http://s", "target": "http://t",
                   "element": [{"code": "a", "target": [{"code": "A", "equivalence": "equivalent"}]}]}]}));
    let t = |el: &str, tr: &str, params: Value| json!({"context": "tgt", "contextType": "variable", "element": el, "transform": tr, "parameter": params});
    let m = map(
        "http://t/5",
        json!([group(
            "G",
            json!([
                {"name": "n", "source": [src("src", None, None)],
                 "target": [t("name", "append", json!([{"valueString": "x-"}, {"valueString": "y"}]))]},
                {"name": "count", "source": [src("src", Some("multipleBirth"), Some("mb"))],
                 "target": [t("count", "evaluate", json!([{"valueId": "mb"}, {"valueString": "$this + 40"}]))]},
                {"name": "tr", "source": [src("src", None, None)],
                 "target": [
                    {"transform": "c", "variable": "code", "parameter": [{"valueString": "http://s"}, {"valueString": "a"}]},
                    {"context": "tgt", "contextType": "variable", "element": "part", "variable": "p"},
                    {"context": "p", "contextType": "variable", "element": "code", "transform": "translate",
                     "parameter": [{"valueId": "code"}, {"valueString": "http://cm"}, {"valueString": "Coding"}]}]},
                {"name": "uuid", "source": [src("src", None, None)],
                 "target": [t("value", "uuid", json!([]))]}
            ])
        )]),
    );
    let reg = registry(&[m]);
    let opts = TransformOptions {
        uuid: Some(Box::new(|| "u-1".to_string())),
        now: None,
    };
    let out = transform_with("http://t/5", &patient(), &reg, &term, &opts).expect("ok");
    assert_eq!(
        out,
        json!({"resourceType": "LM", "name": "x-y", "count": 42,
               "part": [{"code": {"system": "http://t", "code": "A"}}],
               "valueId": "u-1"})
    );
}

#[test]
fn errors_never_panic() {
    // unknown map, a map without groups, a dependent to a missing group, an unknown variable
    let reg = registry(&[
        json!({"resourceType": "StructureMap", "url": "http://t/empty", "name": "E", "status": "draft"}),
        map(
            "http://t/6",
            json!([group(
                "G",
                json!([
            {"name": "dep", "source": [src("src", None, None)],
             "dependent": [{"name": "Missing", "variable": ["src", "tgt"]}]}])
            )]),
        ),
        map(
            "http://t/7",
            json!([group(
                "G",
                json!([
            {"name": "var", "source": [src("nope", None, None)]}])
            )]),
        ),
    ]);
    assert!(matches!(
        transform("http://t/none", &patient(), &reg, &NoTerminology),
        Err(TransformError::UnknownMap(_))
    ));
    assert!(matches!(
        transform("http://t/empty", &patient(), &reg, &NoTerminology),
        Err(TransformError::Setup { .. })
    ));
    let e = transform("http://t/6", &patient(), &reg, &NoTerminology).expect_err("missing group");
    assert!(e.to_string().contains("Missing"), "{e}");
    let e = transform("http://t/7", &patient(), &reg, &NoTerminology).expect_err("unknown var");
    assert!(e.to_string().contains("nope"), "{e}");
    // Bad input shapes: scalars and arrays as the source.
    for bad in [
        json!(null),
        json!(42),
        json!([1, 2]),
        json!({"resourceType": 7}),
    ] {
        let _ = transform("http://t/6", &bad, &reg, &NoTerminology);
    }
}

#[test]
fn compile_reports_fhirpath_errors_with_location() {
    let m = map(
        "http://t/8",
        json!([group(
            "G",
            json!([
                {"name": "broken", "source": [{"context": "src", "condition": "name.where("}]}
            ])
        )]),
    );
    let mut reg = MapRegistry::new();
    let err = reg.add_map(&m).expect_err("bad FHIRPath");
    let text = err.to_string();
    assert!(
        text.contains("http://t/8") && text.contains("broken"),
        "{text}"
    );
}

#[test]
fn deeply_nested_rules_do_not_overflow() {
    // 1 000 nested rules (a hostile or broken map) compile to an error, not a crash.
    // (Built and dropped on a thread with room for serde_json's recursive drop.)
    let result = std::thread::Builder::new()
        .stack_size(16 << 20)
        .spawn(|| {
            let mut rule = json!({"name": "leaf", "source": [{"context": "src"}]});
            for i in 0..1_000 {
                rule = json!({"name": format!("r{i}"), "source": [{"context": "src"}], "rule": [rule]});
            }
            let m = map("http://t/9", json!([group("G", json!([rule]))]));
            let mut reg = MapRegistry::new();
            reg.add_map(&m).map(|_| ()).map_err(|e| e.to_string())
        })
        .expect("thread")
        .join()
        .expect("no panic");
    let err = result.expect_err("too deep");
    assert!(err.contains("nested too deeply"), "{err}");
}

#[test]
fn transforms_into_r4_target_qty_id_cc_truncate_cast_reference() {
    let t = |ctx: &str, el: &str, tr: &str, params: Value| json!({"context": ctx, "contextType": "variable", "element": el, "transform": tr, "parameter": params});
    let m = json!({
        "resourceType": "StructureMap", "url": "http://t/obs", "name": "Obs", "status": "draft",
        "group": [{"name": "G", "typeMode": "none", "input": [
            {"name": "src", "mode": "source"}, {"name": "tgt", "type": "Observation", "mode": "target"}],
          "rule": [{"name": "all", "source": [src("src", None, None)], "target": [
            t("tgt", "status", "truncate", json!([{"valueString": "finalXYZ"}, {"valueInteger": 5}])),
            t("tgt", "identifier", "id", json!([{"valueString": "http://sys"}, {"valueString": "v1"}])),
            t("tgt", "code", "cc", json!([{"valueString": "http://loinc.org"}, {"valueString": "1234-5"}])),
            t("tgt", "value", "qty", json!([{"valueString": "5.4 'mg'"}])),
            {"context": "tgt", "contextType": "variable", "element": "subject", "variable": "s"},
            t("s", "reference", "reference", json!([{"valueId": "src"}])),
            {"context": "tgt", "contextType": "variable", "element": "component", "variable": "c"},
            t("c", "value", "cast", json!([{"valueString": "7"}, {"valueString": "integer"}]))
          ]}]}]
    });
    let reg = registry(&[m]);
    let out = transform("http://t/obs", &patient(), &reg, &NoTerminology).expect("ok");
    assert_eq!(
        out,
        json!({"resourceType": "Observation", "status": "final",
               "identifier": [{"system": "http://sys", "value": "v1"}],
               "code": {"coding": [{"system": "http://loinc.org", "code": "1234-5"}]},
               "valueQuantity": {"value": 5.4, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"},
               "subject": {"reference": "Patient/p1"},
               "component": [{"valueInteger": 7}]})
    );
}

#[test]
fn primitive_into_complex_element_is_an_error() {
    // src.id as i -> tgt.part = i   (part is a BackboneElement)
    let m = map(
        "http://t/10",
        json!([group(
            "G",
            json!([
                {"name": "prim", "source": [src("src", Some("id"), Some("i"))],
                 "target": [copy("tgt", "part", json!({"valueId": "i"}))]}
            ])
        )]),
    );
    let reg = registry(&[m]);
    let err = transform("http://t/10", &patient(), &reg, &NoTerminology).expect_err("must fail");
    assert!(
        err.to_string().contains("cannot set it to the primitive"),
        "{err}"
    );
}

#[test]
fn created_objects_are_shared_between_assignments() {
    // src -> create('Coding') as c, tgt.part as p1, p1.code = c,
    //        tgt.part as p2, p2.code = c, c.code = 'x'
    let m = map(
        "http://t/11",
        json!([group(
            "G",
            json!([
                {"name": "share", "source": [src("src", None, None)], "target": [
                    {"transform": "create", "variable": "c", "parameter": [{"valueString": "Coding"}]},
                    {"context": "tgt", "contextType": "variable", "element": "part", "variable": "p1"},
                    copy("p1", "code", json!({"valueId": "c"})),
                    {"context": "tgt", "contextType": "variable", "element": "part", "variable": "p2"},
                    copy("p2", "code", json!({"valueId": "c"})),
                    copy("c", "code", json!({"valueString": "x"}))
                ]}
            ])
        )]),
    );
    let reg = registry(&[m]);
    let out = transform("http://t/11", &patient(), &reg, &NoTerminology).expect("ok");
    assert_eq!(
        out,
        json!({"resourceType": "LM", "part": [{"code": {"code": "x"}}, {"code": {"code": "x"}}]})
    );
}

#[test]
fn date_op_adds_calendar_durations() {
    // src -> tgt.birthDate = dateOp('2021-01-01', '+', '30 days')
    let m = json!({
        "resourceType": "StructureMap", "url": "http://t/12", "name": "D", "status": "draft",
        "group": [{"name": "G", "typeMode": "none", "input": [
            {"name": "src", "mode": "source"}, {"name": "tgt", "type": "Patient", "mode": "target"}],
          "rule": [{"name": "d", "source": [src("src", None, None)], "target": [
            {"context": "tgt", "contextType": "variable", "element": "birthDate", "transform": "dateOp",
             "parameter": [{"valueString": "2021-01-01"}, {"valueString": "+"}, {"valueString": "30 days"}]}
          ]}]}]
    });
    let reg = registry(&[m]);
    let out = transform("http://t/12", &patient(), &reg, &NoTerminology).expect("ok");
    assert_eq!(
        out,
        json!({"resourceType": "Patient", "birthDate": "2021-01-31"})
    );
}

#[test]
fn share_list_mode_reuses_one_element() {
    // src.name as n -> tgt.part as p share part, p.code = c('http://s', n.family)
    let m = map(
        "http://t/13",
        json!([group(
            "G",
            json!([
                {"name": "names", "source": [src("src", Some("name"), Some("n"))],
                 "rule": [{"name": "fam", "source": [src("n", Some("family"), Some("f"))], "target": [
                    {"context": "tgt", "contextType": "variable", "element": "part", "variable": "p",
                     "listMode": ["share"], "listRuleId": "part"},
                    {"context": "p", "contextType": "variable", "element": "code", "transform": "c",
                     "parameter": [{"valueString": "http://s"}, {"valueId": "f"}]}]}]}
            ])
        )]),
    );
    let reg = registry(&[m]);
    let out = transform("http://t/13", &patient(), &reg, &NoTerminology).expect("ok");
    // One shared part; its single-valued code holds the last family name.
    assert_eq!(
        out,
        json!({"resourceType": "LM", "part": [{"code": {"system": "http://s", "code": "Roe"}}]})
    );
}
