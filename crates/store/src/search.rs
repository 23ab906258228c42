//! Search: parsing and validating query parameters (pure), and compiling them to SQL over
//! the `idx` table, shared by both back ends.

use crate::index::{fold, param_def, split_reference, Kind, ParamDef};
use crate::sql::SqlVal;
use crate::time::parse_range;
use crate::StoreError;

/// Query parameters as received (`name[:modifier]`, value), repeated names ANDed and
/// comma-separated values ORed, as FHIR search defines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchQuery {
    pub params: Vec<(String, String)>,
}

impl SearchQuery {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        SearchQuery {
            params: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((name.into(), value.into()));
        self
    }
}

pub const DEFAULT_COUNT: usize = 100;
pub const MAX_COUNT: usize = 1000;
/// `_offset` beyond this is refused: deep offsets cost a scan of every skipped row, and
/// no client pages that far through one registry search.
pub const MAX_OFFSET: usize = 1_000_000;

/// Checks `query` as [`crate::Store::search`] would (supported parameters, well-formed
/// values) without running it: for front ends that answer searches from elsewhere and
/// must refuse exactly what the store refuses.
pub fn check_query(resource_type: &str, query: &SearchQuery) -> Result<(), StoreError> {
    parse(resource_type, query).map(|_| ())
}
const MAX_VALUES: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DatePrefix {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
}

#[derive(Debug)]
enum Alt {
    Token {
        sys: Option<String>,
        code: Option<String>,
    },
    Ref {
        rtype: Option<String>,
        id: String,
    },
    Date {
        prefix: DatePrefix,
        lo: i64,
        hi: i64,
    },
    Str {
        value: String,
        exact: bool,
    },
}

#[derive(Debug)]
enum Cond {
    Ids(Vec<String>),
    Index {
        param: &'static str,
        alts: Vec<Alt>,
    },
    /// `ref_param.target_param=…`: resources whose `ref_param` points at a `target` whose
    /// `target_param` matches.
    Chain {
        ref_param: &'static str,
        target: &'static str,
        target_param: &'static str,
        alts: Vec<Alt>,
    },
}

#[derive(Debug)]
enum SortKey {
    Id,
    LastUpdated,
    Date(&'static str),
}

#[derive(Debug)]
pub(crate) struct Parsed {
    resource_type: String,
    conds: Vec<Cond>,
    sort: Vec<(SortKey, bool)>,
    pub count: usize,
    pub offset: usize,
}

fn bad(param: &str, reason: impl Into<String>) -> StoreError {
    StoreError::InvalidSearchValue {
        param: param.chars().take(64).collect(),
        reason: reason.into(),
    }
}

fn parse_alt(
    def_kind: Kind,
    target: Option<&str>,
    name: &str,
    modifier: Option<&str>,
    v: &str,
) -> Result<Alt, StoreError> {
    match def_kind {
        Kind::Token => {
            if modifier.is_some() {
                return Err(StoreError::UnsupportedSearchParam(format!(
                    "{name}:{}",
                    modifier.unwrap_or_default()
                )));
            }
            match v.split_once('|') {
                None if v.is_empty() => Err(bad(name, "empty token")),
                None => Ok(Alt::Token {
                    sys: None,
                    code: Some(v.to_owned()),
                }),
                Some((s, c)) if s.is_empty() && c.is_empty() => Err(bad(name, "empty token")),
                Some((s, c)) => Ok(Alt::Token {
                    sys: Some(s.to_owned()),
                    code: (!c.is_empty()).then(|| c.to_owned()),
                }),
            }
        }
        Kind::Reference => {
            if v.is_empty() {
                return Err(bad(name, "empty reference"));
            }
            // A modifier on a reference names the target type (`subject:Patient=1`).
            let modifier_type = match modifier {
                Some(m) if crate::ids::is_resource_type(m) => Some(m.to_owned()),
                Some(m) => return Err(StoreError::UnsupportedSearchParam(format!("{name}:{m}"))),
                None => None,
            };
            let (t, id) = split_reference(v);
            let rtype = if !t.is_empty() {
                Some(t)
            } else {
                modifier_type.or(target.map(str::to_owned))
            };
            Ok(Alt::Ref { rtype, id })
        }
        Kind::Date => {
            if modifier.is_some() {
                return Err(StoreError::UnsupportedSearchParam(format!(
                    "{name}:{}",
                    modifier.unwrap_or_default()
                )));
            }
            let (prefix, rest) = match v.get(..2) {
                Some("eq") => (DatePrefix::Eq, &v[2..]),
                Some("ne") => (DatePrefix::Ne, &v[2..]),
                Some("gt") => (DatePrefix::Gt, &v[2..]),
                Some("lt") => (DatePrefix::Lt, &v[2..]),
                Some("ge") => (DatePrefix::Ge, &v[2..]),
                Some("le") => (DatePrefix::Le, &v[2..]),
                Some("sa" | "eb" | "ap") => {
                    return Err(bad(name, "prefixes sa, eb and ap are not supported"))
                }
                _ => (DatePrefix::Eq, v),
            };
            let (lo, hi) = parse_range(rest).ok_or_else(|| {
                bad(
                    name,
                    format!(
                        "not a FHIR date: {}",
                        rest.chars().take(40).collect::<String>()
                    ),
                )
            })?;
            Ok(Alt::Date { prefix, lo, hi })
        }
        Kind::String => {
            let exact = match modifier {
                None => false,
                Some("exact") => true,
                Some(m) => return Err(StoreError::UnsupportedSearchParam(format!("{name}:{m}"))),
            };
            Ok(Alt::Str {
                value: fold(v),
                exact,
            })
        }
    }
}

fn split_values(name: &str, v: &str) -> Result<Vec<String>, StoreError> {
    // FHIR escapes literal commas as `\,`.
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n @ (',' | '|' | '$' | '\\')) => cur.push(n),
                Some(n) => {
                    cur.push('\\');
                    cur.push(n);
                }
                None => cur.push('\\'),
            },
            ',' => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    if out.len() > MAX_VALUES {
        return Err(bad(name, format!("more than {MAX_VALUES} values")));
    }
    Ok(out)
}

/// Validates a query for `resource_type`. Unknown parameters, modifiers and malformed
/// values are errors: silently ignoring a filter would return documents the client did
/// not ask for.
pub(crate) fn parse(resource_type: &str, q: &SearchQuery) -> Result<Parsed, StoreError> {
    crate::ids::check_type(resource_type)?;
    let mut parsed = Parsed {
        resource_type: resource_type.to_owned(),
        conds: Vec::new(),
        sort: Vec::new(),
        count: DEFAULT_COUNT,
        offset: 0,
    };
    for (raw_name, value) in &q.params {
        let (name, modifier) = match raw_name.split_once(':') {
            Some((n, m)) => (n, Some(m)),
            None => (raw_name.as_str(), None),
        };
        match name {
            "_count" => {
                // FHIR lets a server return fewer than asked: larger counts are capped, at
                // one more than the largest page so a pager can tell whether another
                // page follows.
                parsed.count = value
                    .parse::<usize>()
                    .map_err(|_| bad("_count", "expected a non-negative integer"))?
                    .min(MAX_COUNT + 1);
            }
            // Paging: the results' order is total (the sort keys, then the id), so an
            // offset names the same position on every request while the data is unchanged.
            "_offset" => {
                parsed.offset = value
                    .parse::<usize>()
                    .ok()
                    .filter(|o| *o <= MAX_OFFSET)
                    .ok_or_else(|| {
                        bad(
                            "_offset",
                            format!("expected an integer from 0 to {MAX_OFFSET}"),
                        )
                    })?;
            }
            // Response-format parameters: the HTTP layer honours them; they select nothing.
            "_format" | "_pretty" => {}
            "_sort" => {
                for key in value.split(',') {
                    let (desc, key) = match key.strip_prefix('-') {
                        Some(k) => (true, k),
                        None => (false, key),
                    };
                    let sk = match key {
                        "_id" => SortKey::Id,
                        "_lastUpdated" => SortKey::LastUpdated,
                        other => match param_def(resource_type, other) {
                            Some(d) if d.kind == Kind::Date => SortKey::Date(d.name),
                            _ => {
                                return Err(bad(
                                    "_sort",
                                    format!(
                                        "cannot sort {resource_type} by `{}`",
                                        other.chars().take(40).collect::<String>()
                                    ),
                                ))
                            }
                        },
                    };
                    parsed.sort.push((sk, desc));
                }
            }
            "_id" => {
                if modifier.is_some() {
                    return Err(StoreError::UnsupportedSearchParam(
                        raw_name.chars().take(64).collect(),
                    ));
                }
                let ids = split_values(name, value)?;
                for id in &ids {
                    crate::ids::check_id(id).map_err(|_| bad("_id", "invalid id"))?;
                }
                parsed.conds.push(Cond::Ids(ids));
            }
            "_lastUpdated" => {
                let alts = split_values(name, value)?
                    .iter()
                    .map(|v| parse_alt(Kind::Date, None, name, modifier, v))
                    .collect::<Result<_, _>>()?;
                parsed.conds.push(Cond::Index {
                    param: "_lastUpdated",
                    alts,
                });
            }
            _ => {
                // Chained reference: `patient.identifier=sys|val`.
                if let Some((ref_name, target_name)) = name.split_once('.') {
                    let def: &ParamDef = param_def(resource_type, ref_name)
                        .filter(|d| d.kind == Kind::Reference && modifier.is_none())
                        .ok_or_else(|| {
                            StoreError::UnsupportedSearchParam(raw_name.chars().take(64).collect())
                        })?;
                    let target = def.target.ok_or_else(|| {
                        StoreError::UnsupportedSearchParam(raw_name.chars().take(64).collect())
                    })?;
                    let tdef = param_def(target, target_name)
                        .filter(|d| d.kind != Kind::Reference)
                        .ok_or_else(|| {
                            StoreError::UnsupportedSearchParam(raw_name.chars().take(64).collect())
                        })?;
                    let alts = split_values(name, value)?
                        .iter()
                        .map(|v| parse_alt(tdef.kind, None, name, None, v))
                        .collect::<Result<_, _>>()?;
                    parsed.conds.push(Cond::Chain {
                        ref_param: def.name,
                        target,
                        target_param: tdef.name,
                        alts,
                    });
                    continue;
                }
                let def = param_def(resource_type, name).ok_or_else(|| {
                    StoreError::UnsupportedSearchParam(raw_name.chars().take(64).collect())
                })?;
                let alts = split_values(name, value)?
                    .iter()
                    .map(|v| parse_alt(def.kind, def.target, name, modifier, v))
                    .collect::<Result<_, _>>()?;
                parsed.conds.push(Cond::Index {
                    param: def.name,
                    alts,
                });
            }
        }
    }
    Ok(parsed)
}

/// Replaces query values of personal parameters by what `blind(resource_type, param,
/// value)` returns, so they match the blind index rows. Strings become exact matches: a
/// blind value has no prefixes.
pub(crate) fn blind_values(
    parsed: &mut Parsed,
    blind: &dyn Fn(&str, &str, &str) -> Option<String>,
) {
    let own = parsed.resource_type.clone();
    for cond in &mut parsed.conds {
        let (rt, param, alts): (&str, &str, &mut Vec<Alt>) = match cond {
            Cond::Index { param, alts } => (own.as_str(), param, alts),
            Cond::Chain {
                target,
                target_param,
                alts,
                ..
            } => (target, target_param, alts),
            Cond::Ids(_) => continue,
        };
        for alt in alts.iter_mut() {
            match alt {
                Alt::Token { code: Some(c), .. } => {
                    if let Some(b) = blind(rt, param, c) {
                        *c = b;
                    }
                }
                Alt::Str { value, exact } => {
                    if let Some(b) = blind(rt, param, value) {
                        *value = b;
                        *exact = true;
                    }
                }
                _ => {}
            }
        }
    }
}

/// Placeholder-numbering SQL builder: `$n` (PostgreSQL syntax; the SQLite adapter turns it
/// into `?n`, which has the same numbered semantics).
#[derive(Default)]
pub(crate) struct Sql {
    pub text: String,
    pub params: Vec<SqlVal>,
}

impl Sql {
    pub fn bind(&mut self, v: SqlVal) -> String {
        self.params.push(v);
        format!("${}", self.params.len())
    }
}

fn alt_sql(sql: &mut Sql, alias: &str, alt: &Alt) -> String {
    match alt {
        Alt::Token { sys, code } => {
            let mut parts = Vec::new();
            if let Some(s) = sys {
                parts.push(format!(
                    "{alias}.sys = {}",
                    sql.bind(SqlVal::Text(s.clone()))
                ));
            }
            if let Some(c) = code {
                parts.push(format!(
                    "{alias}.val = {}",
                    sql.bind(SqlVal::Text(c.clone()))
                ));
            }
            format!("({})", parts.join(" AND "))
        }
        Alt::Ref { rtype, id } => match rtype {
            Some(t) => format!(
                "({alias}.val = {} AND {alias}.sys = {})",
                sql.bind(SqlVal::Text(id.clone())),
                sql.bind(SqlVal::Text(t.clone()))
            ),
            None => format!("({alias}.val = {})", sql.bind(SqlVal::Text(id.clone()))),
        },
        Alt::Date { prefix, lo, hi } => {
            // FHIR date semantics over closed ranges: eq = the value's range lies within
            // the parameter's; gt/lt/ge/le compare the relevant ends. Only the bounds a
            // comparison uses are bound (PostgreSQL rejects unused parameters).
            let mut b = |v: i64| sql.bind(SqlVal::Int(v));
            match prefix {
                DatePrefix::Eq => {
                    format!("({alias}.lo >= {} AND {alias}.hi <= {})", b(*lo), b(*hi))
                }
                DatePrefix::Ne => format!(
                    "NOT ({alias}.lo >= {} AND {alias}.hi <= {})",
                    b(*lo),
                    b(*hi)
                ),
                DatePrefix::Gt => format!("({alias}.hi > {})", b(*hi)),
                DatePrefix::Lt => format!("({alias}.lo < {})", b(*lo)),
                DatePrefix::Ge => format!("({alias}.hi >= {})", b(*lo)),
                DatePrefix::Le => format!("({alias}.lo <= {})", b(*hi)),
            }
        }
        Alt::Str { value, exact: true } => {
            format!("({alias}.val = {})", sql.bind(SqlVal::Text(value.clone())))
        }
        Alt::Str {
            value,
            exact: false,
        } => {
            // SUBSTR rather than LIKE: LIKE's case rules and escapes differ between the
            // two databases; values are already case-folded on both sides.
            let n = value.chars().count();
            format!(
                "(SUBSTR({alias}.val, 1, {n}) = {})",
                sql.bind(SqlVal::Text(value.clone()))
            )
        }
    }
}

fn alts_sql(sql: &mut Sql, alias: &str, alts: &[Alt]) -> String {
    let parts: Vec<String> = alts.iter().map(|a| alt_sql(sql, alias, a)).collect();
    format!("({})", parts.join(" OR "))
}

/// Lower is expected to match fewer resources.
fn selectivity_rank(c: &Cond) -> u8 {
    match c {
        Cond::Ids(_) => 0,
        Cond::Index {
            param: "identifier",
            ..
        } => 1,
        Cond::Index { alts, .. } if alts.iter().all(|a| matches!(a, Alt::Ref { .. })) => 2,
        Cond::Chain { .. } => 3,
        Cond::Index { alts, .. } if alts.iter().all(|a| matches!(a, Alt::Str { .. })) => 4,
        Cond::Index { alts, .. } if alts.iter().all(|a| matches!(a, Alt::Token { .. })) => 5,
        Cond::Index { .. } => 6,
    }
}

/// `SELECT id, version, lu, deleted, body` of matching current resources.
/// `per_resource_hint` is inserted after `idx` in the correlated per-candidate lookups
/// (SQLite: `INDEXED BY idx_res`; see [`crate::sql::Db::per_resource_index_hint`]).
pub(crate) fn compile(p: &Parsed, per_resource_hint: &str) -> Sql {
    let h = per_resource_hint;
    let mut sql = Sql::default();
    let rt = sql.bind(SqlVal::Text(p.resource_type.clone()));
    let mut text = format!(
        "SELECT r.id, r.version, r.lu, r.deleted, r.body FROM cur c \
         JOIN res r ON r.rtype = c.rtype AND r.id = c.id AND r.version = c.version \
         WHERE c.rtype = {rt} AND c.deleted = 0"
    );
    // The most selective-looking condition drives the query (`c.id IN (…)`, an index
    // range on `idx_val`); the others are checked per candidate with correlated EXISTS on
    // `idx_res`. Several IN subqueries would each materialise every match (all
    // `status=current` documents, say) before intersecting.
    let driver = p
        .conds
        .iter()
        .enumerate()
        .min_by_key(|(_, c)| selectivity_rank(c))
        .map(|(i, _)| i);
    for (n, cond) in p.conds.iter().enumerate() {
        let drive = Some(n) == driver;
        match cond {
            Cond::Ids(ids) => {
                let list: Vec<String> = ids
                    .iter()
                    .map(|i| sql.bind(SqlVal::Text(i.clone())))
                    .collect();
                text.push_str(&format!(" AND c.id IN ({})", list.join(", ")));
            }
            Cond::Index { param, alts } => {
                let pp = sql.bind(SqlVal::Text((*param).to_owned()));
                let a = alts_sql(&mut sql, "i", alts);
                if drive {
                    text.push_str(&format!(" AND c.id IN (SELECT i.id FROM idx i WHERE i.rtype = {rt} AND i.param = {pp} AND {a})"));
                } else {
                    text.push_str(&format!(" AND EXISTS (SELECT 1 FROM idx i{h} WHERE i.rtype = c.rtype AND i.id = c.id AND i.param = {pp} AND {a})"));
                }
            }
            Cond::Chain {
                ref_param,
                target,
                target_param,
                alts,
            } => {
                let rp = sql.bind(SqlVal::Text((*ref_param).to_owned()));
                let tt = sql.bind(SqlVal::Text((*target).to_owned()));
                let tp = sql.bind(SqlVal::Text((*target_param).to_owned()));
                let a = alts_sql(&mut sql, "j", alts);
                let targets = format!(
                    "SELECT j.id FROM idx j JOIN cur cj ON cj.rtype = j.rtype AND cj.id = j.id AND cj.deleted = 0 \
                     WHERE j.rtype = {tt} AND j.param = {tp} AND {a}"
                );
                if drive {
                    text.push_str(&format!(" AND c.id IN (SELECT i.id FROM idx i WHERE i.rtype = {rt} AND i.param = {rp} AND i.sys = {tt} AND i.val IN ({targets}))"));
                } else {
                    text.push_str(&format!(" AND EXISTS (SELECT 1 FROM idx i{h} WHERE i.rtype = c.rtype AND i.id = c.id AND i.param = {rp} AND i.sys = {tt} AND i.val IN ({targets}))"));
                }
            }
        }
    }
    let mut order = Vec::new();
    for (key, desc) in &p.sort {
        let dir = if *desc { "DESC" } else { "ASC" };
        match key {
            SortKey::Id => order.push(format!("c.id {dir}")),
            SortKey::LastUpdated => order.push(format!("+c.lu_ms {dir}")),
            SortKey::Date(param) => {
                let pp = sql.bind(SqlVal::Text((*param).to_owned()));
                // COALESCE gives resources without the element the same place (last when
                // descending) in both databases, whose NULL ordering differs.
                let agg = if *desc { "MAX(d.hi)" } else { "MIN(d.lo)" };
                let missing = if *desc { i64::MIN + 1 } else { i64::MAX };
                order.push(format!(
                    "COALESCE((SELECT {agg} FROM idx d{h} WHERE d.rtype = c.rtype AND d.id = c.id AND d.param = {pp}), {missing}) {dir}"
                ));
            }
        }
    }
    // Newest first by default, with the id as a tie-breaker so pages are deterministic.
    // With filters, `+c.lu_ms` (an expression, not the column) keeps SQLite from walking
    // the whole `cur_lu` index in order and testing each row, when the filter's index
    // finds the few matches directly; without filters that ordered walk is the best plan.
    order.push(
        if p.conds.is_empty() {
            "c.lu_ms DESC"
        } else {
            "+c.lu_ms DESC"
        }
        .to_owned(),
    );
    order.push("c.id ASC".to_owned());
    text.push_str(&format!(
        " ORDER BY {} LIMIT {} OFFSET {}",
        order.join(", "),
        p.count,
        p.offset
    ));
    sql.text = text;
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> SearchQuery {
        SearchQuery::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn accepts_the_mhd_parameters() {
        let ok = parse(
            "DocumentReference",
            &q(&[
                ("patient", "Patient/1"),
                ("patient.identifier", "sys|v"),
                ("identifier", "urn:ietf:rfc:3986|urn:uuid:x"),
                ("status", "current"),
                ("type", "http://loinc.org|82593-5"),
                ("category", "a,b"),
                ("date", "ge2021-01-01"),
                ("date", "lt2022"),
                ("_id", "a,b"),
                ("_count", "5"),
                ("_sort", "-date"),
            ]),
        )
        .unwrap();
        assert_eq!(ok.count, 5);
        let capped = parse("Binary", &q(&[("_count", "100000"), ("_format", "json")])).unwrap();
        assert_eq!(capped.count, MAX_COUNT + 1);
        let paged = parse("List", &q(&[("_count", "10"), ("_offset", "20")])).unwrap();
        assert_eq!((paged.count, paged.offset), (10, 20));
        assert!(compile(&paged, "")
            .text
            .ends_with("c.id ASC LIMIT 10 OFFSET 20"));
        let sql = compile(&ok, "");
        let n = sql.params.len();
        assert!(sql.text.contains(&format!("${n}")) && !sql.text.contains(&format!("${}", n + 1)));
        assert!(parse(
            "List",
            &q(&[
                ("code", "folder"),
                ("designationType", "s|ddcc"),
                ("patient", "1"),
                ("status", "current")
            ])
        )
        .is_ok());
        assert!(parse(
            "AuditEvent",
            &q(&[
                ("date", "2021"),
                ("type", "x"),
                ("subtype", "y"),
                ("entity", "Bundle/1"),
                ("agent", "Device/1"),
                ("outcome", "0")
            ])
        )
        .is_ok());
    }

    #[test]
    fn refuses_what_it_cannot_answer() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("DocumentReference", &[("author", "x")]),
            ("DocumentReference", &[("status:not", "current")]),
            ("DocumentReference", &[("date", "ap2021")]),
            ("DocumentReference", &[("date", "yesterday")]),
            ("DocumentReference", &[("_count", "-1")]),
            ("DocumentReference", &[("_sort", "status")]),
            ("DocumentReference", &[("_offset", "-1")]),
            ("DocumentReference", &[("_offset", "1000001")]),
            ("DocumentReference", &[("_offset", "x")]),
            ("DocumentReference", &[("_id", "../x")]),
            ("DocumentReference", &[("patient.name", "x")]),
            ("DocumentReference", &[("identifier", "")]),
            ("Nope", &[]),
        ];
        for (t, pairs) in cases {
            assert!(parse(t, &q(pairs)).is_err(), "{t} {pairs:?}");
        }
        assert!(matches!(
            parse("DocumentReference", &q(&[("author", "x")])),
            Err(StoreError::UnsupportedSearchParam(_))
        ));
    }

    #[test]
    fn escaped_commas() {
        assert_eq!(
            split_values("x", r"a\,b,c").unwrap(),
            vec!["a,b".to_owned(), "c".to_owned()]
        );
    }
}
