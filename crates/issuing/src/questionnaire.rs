//! Checks a QuestionnaireResponse against its Questionnaire before anything is mapped
//! or signed: required items answered, answers of the item's type, coded answers in
//! the item's `answerValueSet`/`answerOption`, no items the Questionnaire lacks, and
//! real calendar dates. Every finding names the item's `linkId`, so an EMR can show
//! its user which field to fix.

use fhir_validator::questionnaire::{answer_types, items_of, QItem};
use serde_json::Value;
use terminology::Terminology;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueCode {
    /// A required item has no answer.
    Required,
    /// The answer's type or format is wrong.
    Value,
    /// A coded answer outside the allowed codes.
    CodeInvalid,
    /// An item the Questionnaire does not define, or answers where one is allowed.
    Structure,
}

impl IssueCode {
    /// The FHIR `issue-type` code.
    pub fn as_fhir(self) -> &'static str {
        match self {
            IssueCode::Required => "required",
            IssueCode::Value => "value",
            IssueCode::CodeInvalid => "code-invalid",
            IssueCode::Structure => "structure",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AnswerIssue {
    pub link_id: Option<String>,
    /// FHIRPath location in the QuestionnaireResponse.
    pub location: String,
    pub code: IssueCode,
    pub message: String,
}

/// Statuses of a response that can be certified: anything else is still being edited.
const FINAL_STATUSES: [&str; 2] = ["completed", "amended"];

/// Value sets accepted for an item in addition to its `answerValueSet`, by linkId: the
/// corrections a deployment makes where a published Questionnaire's binding is wrong
/// (see `fhir-profiles/issuing.json`).
pub type AlsoAccepted = std::collections::HashMap<String, Vec<String>>;

pub fn check(
    questionnaire: &Value,
    response: &Value,
    terminology: &Terminology,
    also_accepted: &AlsoAccepted,
) -> Vec<AnswerIssue> {
    let ctx = Ctx {
        t: terminology,
        also: also_accepted,
    };
    let mut issues = Vec::new();
    let status = response.get("status").and_then(Value::as_str).unwrap_or("");
    if !FINAL_STATUSES.contains(&status) {
        issues.push(AnswerIssue {
            link_id: None,
            location: "QuestionnaireResponse.status".into(),
            code: IssueCode::Value,
            message: format!(
                "status must be 'completed' or 'amended' to issue a certificate, got '{status}'"
            ),
        });
    }
    let q_items = items_of(questionnaire);
    let r_items = response
        .get("item")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    check_level(
        &q_items,
        r_items,
        "QuestionnaireResponse",
        &ctx,
        &mut issues,
        0,
    );
    issues
}

struct Ctx<'a> {
    t: &'a Terminology,
    also: &'a AlsoAccepted,
}

/// Questionnaires nest groups a few levels at most; deeper input is hostile.
const MAX_DEPTH: usize = 32;

fn check_level(
    q_items: &[QItem],
    r_items: &[Value],
    path: &str,
    t: &Ctx,
    issues: &mut Vec<AnswerIssue>,
    depth: usize,
) {
    if depth > MAX_DEPTH {
        issues.push(AnswerIssue {
            link_id: None,
            location: path.to_string(),
            code: IssueCode::Structure,
            message: "items nest too deeply".into(),
        });
        return;
    }
    for (i, r) in r_items.iter().enumerate() {
        let link = r.get("linkId").and_then(Value::as_str);
        let loc = format!("{path}.item[{i}]");
        match link {
            None => issues.push(AnswerIssue {
                link_id: None,
                location: loc,
                code: IssueCode::Structure,
                message: "item without linkId".into(),
            }),
            Some(l) if !q_items.iter().any(|q| q.link_id == l) => issues.push(AnswerIssue {
                link_id: Some(l.to_string()),
                location: loc,
                code: IssueCode::Structure,
                message: format!("item '{l}' is not defined by the Questionnaire"),
            }),
            Some(_) => {}
        }
    }
    for q in q_items {
        let link = q.link_id.as_str();
        let ty = q.ty.as_str();
        let matching: Vec<(usize, &Value)> = r_items
            .iter()
            .enumerate()
            .filter(|(_, r)| r.get("linkId").and_then(Value::as_str) == Some(link))
            .collect();
        let repeats = q.repeats;
        if matching.len() > 1 && !repeats {
            issues.push(AnswerIssue {
                link_id: Some(link.to_string()),
                location: format!("{path}.item[{}]", matching[1].0),
                code: IssueCode::Structure,
                message: format!(
                    "item '{link}' appears {} times but does not repeat",
                    matching.len()
                ),
            });
        }
        let answered = matching.iter().any(|(_, r)| {
            r.get("answer")
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(has_value))
                || r.get("item")
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty())
        });
        if q.required && !answered {
            issues.push(AnswerIssue {
                link_id: Some(link.to_string()),
                location: matching
                    .first()
                    .map(|(i, _)| format!("{path}.item[{i}]"))
                    .unwrap_or_else(|| format!("{path}.item")),
                code: IssueCode::Required,
                message: format!("required item '{link}' has no answer"),
            });
        }
        for (i, r) in &matching {
            let loc = format!("{path}.item[{i}]");
            let answers = r
                .get("answer")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            if answers.len() > 1 && !repeats {
                issues.push(AnswerIssue {
                    link_id: Some(link.to_string()),
                    location: format!("{loc}.answer[1]"),
                    code: IssueCode::Structure,
                    message: format!("item '{link}' allows one answer, got {}", answers.len()),
                });
            }
            for (j, a) in answers.iter().enumerate() {
                check_answer(q, link, ty, a, &format!("{loc}.answer[{j}]"), t, issues);
            }
            let q_children = q.items.as_slice();
            let r_children = r
                .get("item")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            if !q_children.is_empty() || !r_children.is_empty() {
                check_level(q_children, r_children, &loc, t, issues, depth + 1);
            }
        }
    }
}

fn has_value(answer: &Value) -> bool {
    answer
        .as_object()
        .is_some_and(|o| o.keys().any(|k| k.starts_with("value")))
}

fn check_answer(
    q: &QItem,
    link: &str,
    ty: &str,
    answer: &Value,
    loc: &str,
    t: &Ctx,
    issues: &mut Vec<AnswerIssue>,
) {
    let mut push = |code, message: String| {
        issues.push(AnswerIssue {
            link_id: Some(link.to_string()),
            location: loc.to_string(),
            code,
            message,
        })
    };
    let Some(obj) = answer.as_object() else {
        push(IssueCode::Structure, "answer is not an object".into());
        return;
    };
    let value_keys: Vec<&String> = obj.keys().filter(|k| k.starts_with("value")).collect();
    let allowed: Vec<String> = answer_types(ty)
        .iter()
        .map(|suffix| format!("value{suffix}"))
        .collect();
    if ty == "group" || ty == "display" {
        if !value_keys.is_empty() {
            push(
                IssueCode::Structure,
                format!("a '{ty}' item takes no answer value"),
            );
        }
        return;
    }
    let [key] = value_keys.as_slice() else {
        push(
            IssueCode::Value,
            format!(
                "an answer to '{link}' needs exactly one value[x], got {}",
                value_keys.len()
            ),
        );
        return;
    };
    if !allowed.iter().any(|a| a == key.as_str()) {
        push(
            IssueCode::Value,
            format!(
                "'{link}' is a {ty} item: expected {}, got {key}",
                allowed.join(" or ")
            ),
        );
        return;
    }
    let value = &obj[key.as_str()];
    match key.as_str() {
        "valueString" | "valueUri" => {
            if value.as_str().is_none_or(|s| s.trim().is_empty()) {
                push(
                    IssueCode::Value,
                    format!("'{link}' needs a non-empty string"),
                );
            }
        }
        "valueInteger" => {
            if !value
                .as_i64()
                .is_some_and(|n| (i32::MIN as i64..=i32::MAX as i64).contains(&n))
            {
                push(
                    IssueCode::Value,
                    format!("'{link}' needs a 32-bit integer, got {value}"),
                );
            }
        }
        "valueDecimal" => {
            if !value.is_number() {
                push(
                    IssueCode::Value,
                    format!("'{link}' needs a number, got {value}"),
                );
            }
        }
        "valueBoolean" => {
            if !value.is_boolean() {
                push(
                    IssueCode::Value,
                    format!("'{link}' needs true or false, got {value}"),
                );
            }
        }
        "valueDate" => {
            if !value.as_str().is_some_and(is_fhir_date) {
                push(
                    IssueCode::Value,
                    format!("'{link}' needs a date (YYYY, YYYY-MM or YYYY-MM-DD), got {value}"),
                );
            }
        }
        "valueDateTime" => {
            if !value.as_str().is_some_and(is_fhir_date_time) {
                push(
                    IssueCode::Value,
                    format!("'{link}' needs a dateTime, got {value}"),
                );
            }
        }
        "valueCoding" => check_coding(q, link, value, t, &mut push),
        _ => {
            if !value.is_object() {
                push(IssueCode::Value, format!("'{link}' needs a {key} object"));
            }
        }
    }
}

fn check_coding(
    q: &QItem,
    link: &str,
    coding: &Value,
    t: &Ctx,
    push: &mut impl FnMut(IssueCode, String),
) {
    let code = coding
        .get("code")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty());
    let system = coding.get("system").and_then(Value::as_str);
    let Some(code) = code else {
        push(
            IssueCode::Value,
            format!("the coding answering '{link}' has no code"),
        );
        return;
    };
    if !q.options.is_empty() {
        let ok = q.options.iter().any(|c| {
            c.get("code").and_then(Value::as_str) == Some(code)
                && c.get("system").and_then(Value::as_str) == system
        });
        if !ok {
            push(
                IssueCode::CodeInvalid,
                format!(
                    "{} is not one of the options of '{link}'",
                    show(system, code)
                ),
            );
        }
        return;
    }
    if let Some(vs) = q.answer_value_set.as_deref() {
        let also = t.also.get(link).map(Vec::as_slice).unwrap_or(&[]);
        if also
            .iter()
            .any(|a| matches!(t.t.contains(a, system, code), Ok(true)))
        {
            return;
        }
        match t.t.contains(vs, system, code) {
            Ok(true) => {}
            Ok(false) => push(
                IssueCode::CodeInvalid,
                format!(
                    "{} is not in the value set {vs} that '{link}' requires",
                    show(system, code)
                ),
            ),
            // A value set this service cannot evaluate locally is not the caller's fault:
            // accept rather than reject valid data.
            Err(_) => {}
        }
    }
}

fn show(system: Option<&str>, code: &str) -> String {
    match system {
        Some(s) => format!("{s}|{code}"),
        None => code.to_string(),
    }
}

/// FHIR `date`: `YYYY`, `YYYY-MM` or `YYYY-MM-DD`, and a real calendar date.
pub fn is_fhir_date(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let digits = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_digit());
    match parts.as_slice() {
        [y] => digits(y, 4),
        [y, m] => digits(y, 4) && digits(m, 2) && (1..=12).contains(&m.parse::<u32>().unwrap_or(0)),
        [y, m, d] => {
            if !(digits(y, 4) && digits(m, 2) && digits(d, 2)) {
                return false;
            }
            let (y, m, d) = (
                y.parse::<u32>().unwrap_or(0),
                m.parse::<u32>().unwrap_or(0),
                d.parse::<u32>().unwrap_or(0),
            );
            (1..=12).contains(&m)
                && d >= 1
                && i64::from(d) <= fhirpath::calendar::days_in_month(i64::from(y), i64::from(m))
        }
        _ => false,
    }
}

/// FHIR `dateTime`: a date, or a full date with `Thh:mm:ss[.fff]` and a zone.
pub fn is_fhir_date_time(s: &str) -> bool {
    let Some((date, time)) = s.split_once('T') else {
        return is_fhir_date(s);
    };
    if date.len() != 10 || !is_fhir_date(date) {
        return false;
    }
    let (clock, zone) = if let Some(t) = time.strip_suffix('Z') {
        (t, "Z")
    } else if let Some(p) = time.rfind(['+', '-']) {
        (&time[..p], &time[p..])
    } else {
        return false; // FHIR requires a zone when a time is given
    };
    let zone_ok = zone == "Z" || {
        let z = &zone[1..];
        z.len() == 5
            && z.as_bytes()[2] == b':'
            && z[..2].parse::<u32>().is_ok_and(|h| h <= 14)
            && z[3..].parse::<u32>().is_ok_and(|m| m < 60)
    };
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
    let f: Vec<&str> = hms.split(':').collect();
    let two = |p: &str, max: u32| p.len() == 2 && p.parse::<u32>().is_ok_and(|n| n <= max);
    zone_ok
        && f.len() == 3
        && two(f[0], 23)
        && two(f[1], 59)
        && two(f[2], 60)
        && frac.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn questionnaire() -> Value {
        json!({"resourceType": "Questionnaire", "item": [
            {"linkId": "name", "type": "string", "required": true},
            {"linkId": "birthDate", "type": "date"},
            {"linkId": "dose", "type": "integer", "required": true},
            {"linkId": "sex", "type": "choice", "answerValueSet": "http://x/vs"},
            {"linkId": "kind", "type": "choice", "answerOption": [{"valueCoding": {"system": "http://k", "code": "a"}}]}
        ]})
    }

    fn terminology() -> Terminology {
        let mut t = Terminology::new();
        t.add(json!({"resourceType": "ValueSet", "url": "http://x/vs",
            "compose": {"include": [{"system": "http://s", "concept": [{"code": "male"}]}]}}))
            .unwrap();
        t
    }

    fn response(items: Value) -> Value {
        json!({"resourceType": "QuestionnaireResponse", "status": "completed", "item": items})
    }

    fn links(issues: &[AnswerIssue]) -> Vec<(Option<&str>, IssueCode)> {
        issues
            .iter()
            .map(|i| (i.link_id.as_deref(), i.code))
            .collect()
    }

    #[test]
    fn a_conforming_response_has_no_issues() {
        let r = response(json!([
            {"linkId": "name", "answer": [{"valueString": "A B"}]},
            {"linkId": "birthDate", "answer": [{"valueDate": "2000-02-29"}]},
            {"linkId": "dose", "answer": [{"valueInteger": 1}]},
            {"linkId": "sex", "answer": [{"valueCoding": {"system": "http://s", "code": "male"}}]},
            {"linkId": "kind", "answer": [{"valueCoding": {"system": "http://k", "code": "a"}}]}
        ]));
        assert_eq!(
            check(&questionnaire(), &r, &terminology(), &AlsoAccepted::new()),
            vec![]
        );
    }

    #[test]
    fn each_fault_names_its_link_id() {
        let r = response(json!([
            {"linkId": "name", "answer": [{"valueInteger": 3}]},
            {"linkId": "birthDate", "answer": [{"valueDate": "2001-02-29"}]},
            {"linkId": "sex", "answer": [{"valueCoding": {"system": "http://s", "code": "man"}}]},
            {"linkId": "kind", "answer": [{"valueCoding": {"system": "http://k", "code": "b"}}]},
            {"linkId": "extra", "answer": [{"valueString": "?"}]}
        ]));
        let got = check(&questionnaire(), &r, &terminology(), &AlsoAccepted::new());
        assert_eq!(
            links(&got),
            vec![
                (Some("extra"), IssueCode::Structure),
                (Some("name"), IssueCode::Value),
                (Some("birthDate"), IssueCode::Value),
                (Some("dose"), IssueCode::Required),
                (Some("sex"), IssueCode::CodeInvalid),
                (Some("kind"), IssueCode::CodeInvalid),
            ]
        );
        assert_eq!(got[2].location, "QuestionnaireResponse.item[1].answer[0]");
    }

    #[test]
    fn corrections_widen_one_item_only() {
        let mut t = terminology();
        t.add(json!({"resourceType": "ValueSet", "url": "http://x/also",
            "compose": {"include": [{"system": "http://s", "concept": [{"code": "man"}]}]}}))
            .unwrap();
        let r = response(json!([
            {"linkId": "name", "answer": [{"valueString": "A"}]},
            {"linkId": "dose", "answer": [{"valueInteger": 1}]},
            {"linkId": "sex", "answer": [{"valueCoding": {"system": "http://s", "code": "man"}}]}
        ]));
        assert_eq!(
            links(&check(&questionnaire(), &r, &t, &AlsoAccepted::new())),
            vec![(Some("sex"), IssueCode::CodeInvalid)]
        );
        let also = AlsoAccepted::from([("sex".to_string(), vec!["http://x/also".to_string()])]);
        assert_eq!(check(&questionnaire(), &r, &t, &also), vec![]);
    }

    #[test]
    fn unfinished_responses_are_refused() {
        let mut r = response(json!([
            {"linkId": "name", "answer": [{"valueString": "A"}]},
            {"linkId": "dose", "answer": [{"valueInteger": 1}]}
        ]));
        r["status"] = json!("in-progress");
        assert_eq!(
            links(&check(
                &questionnaire(),
                &r,
                &terminology(),
                &AlsoAccepted::new()
            )),
            vec![(None, IssueCode::Value)]
        );
    }

    #[test]
    fn single_answer_items_refuse_several() {
        let r = response(json!([
            {"linkId": "name", "answer": [{"valueString": "A"}, {"valueString": "B"}]},
            {"linkId": "dose", "answer": [{"valueInteger": 1}]}
        ]));
        assert_eq!(
            links(&check(
                &questionnaire(),
                &r,
                &terminology(),
                &AlsoAccepted::new()
            )),
            vec![(Some("name"), IssueCode::Structure)]
        );
    }

    #[test]
    fn dates_are_real_calendar_dates() {
        for ok in ["2021", "2021-07", "2021-07-08", "2000-02-29"] {
            assert!(is_fhir_date(ok), "{ok}");
        }
        for bad in [
            "21",
            "2021-13",
            "2021-02-30",
            "2021-7-8",
            "2021-07-08T",
            "",
            "2021-00-10",
            "1900-02-29",
        ] {
            assert!(!is_fhir_date(bad), "{bad}");
        }
        for ok in [
            "2021-07-08",
            "2021-07-08T10:00:00Z",
            "2021-07-08T10:00:00.123+02:00",
        ] {
            assert!(is_fhir_date_time(ok), "{ok}");
        }
        for bad in [
            "2021-07-08T10:00:00",
            "2021-07-08T25:00:00Z",
            "2021-07-08T10:00Z",
            "2021-07-08T10:00:00+2",
        ] {
            assert!(!is_fhir_date_time(bad), "{bad}");
        }
    }

    #[test]
    fn hostile_nesting_is_bounded() {
        let mut item = json!({"linkId": "x", "item": []});
        for _ in 0..200 {
            item = json!({"linkId": "x", "item": [item]});
        }
        let q = json!({"item": [{"linkId": "x", "type": "group"}]});
        let r = response(json!([item]));
        let issues = check(&q, &r, &Terminology::new(), &AlsoAccepted::new());
        assert!(issues.iter().any(|i| i.code == IssueCode::Structure));
    }
}
