//! What a Questionnaire says about its answers: the item tree (linkIds, types,
//! required, repeats, enableWhen, answerOptions, answerValueSet) and the answer
//! types each item type takes. The one model of it: the validator checks
//! QuestionnaireResponses for `$validate` with it, and `ddcc-issuing` gates
//! certificate issuance with it (stricter, and with its own corrections).

use serde_json::Value;

#[derive(Debug, Clone)]
pub struct QItem {
    pub link_id: String,
    pub ty: String,
    pub required: bool,
    pub repeats: bool,
    /// Required-ness depends on enableWhen, which is not evaluated here.
    pub conditional: bool,
    pub answer_value_set: Option<String>,
    /// `answerOption.value[x]` values, as given (a Coding option is its object).
    pub options: Vec<Value>,
    pub items: Vec<QItem>,
}

/// The item tree of a Questionnaire.
pub fn items_of(questionnaire: &Value) -> Vec<QItem> {
    parse_items(questionnaire.get("item"), 0)
}

/// The items of a Questionnaire (or of an item) at nesting `depth`; items without a
/// linkId are left out, and so is anything nested deeper than 64.
pub fn parse_items(items: Option<&Value>, depth: usize) -> Vec<QItem> {
    if depth > 64 {
        return Vec::new();
    }
    let Some(list) = items.and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|it| {
            Some(QItem {
                link_id: it.get("linkId")?.as_str()?.to_string(),
                ty: it
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                required: it.get("required").and_then(Value::as_bool).unwrap_or(false),
                repeats: it.get("repeats").and_then(Value::as_bool).unwrap_or(false),
                conditional: it.get("enableWhen").is_some()
                    || it
                        .get("extension")
                        .and_then(Value::as_array)
                        .is_some_and(|a| {
                            a.iter().any(|e| {
                                e.get("url").and_then(Value::as_str).is_some_and(|u| {
                                    u.ends_with("sdc-questionnaire-enableWhenExpression")
                                })
                            })
                        }),
                answer_value_set: it
                    .get("answerValueSet")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                options: it
                    .get("answerOption")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|o| {
                                o.as_object()?
                                    .iter()
                                    .find(|(k, _)| k.starts_with("value"))
                                    .map(|(_, v)| v.clone())
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                items: parse_items(it.get("item"), depth + 1),
            })
        })
        .collect()
}

/// The `answer.value[x]` suffixes an item type accepts (R4).
pub fn answer_types(ty: &str) -> &'static [&'static str] {
    match ty {
        "boolean" => &["Boolean"],
        "decimal" => &["Decimal"],
        "integer" => &["Integer"],
        "date" => &["Date"],
        "dateTime" => &["DateTime"],
        "time" => &["Time"],
        "string" | "text" => &["String"],
        "url" => &["Uri"],
        "choice" => &["Coding"],
        "open-choice" => &["Coding", "String"],
        "attachment" => &["Attachment"],
        "reference" => &["Reference"],
        "quantity" => &["Quantity"],
        _ => &[],
    }
}
