//! The validation walk: a resource against its profiles' element trees.

use crate::issue::{Issue, IssueCode, Severity};
use crate::profile::{
    BindingStrength, Constraint, DiscriminatorType, ElementDef, Profile, ProfileSet,
};
use crate::questionnaire::{answer_types, parse_items, QItem};
use crate::terminology::{Membership, Terminology};
use crate::types::{
    builtin_datatype, check_primitive, is_known_type, is_primitive, is_r4_resource_type, kind,
    suffix_of, type_from_suffix,
};
use fhirpath::{Environment, Item};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Nesting deeper than this (in elements and contained resources) is reported,
/// not walked: FHIR resources are nowhere near it, hostile input may be.
pub const MAX_DEPTH: usize = 96;

const CORE_BASE: &str = "http://hl7.org/fhir/StructureDefinition/";

/// Validates FHIR JSON against loaded profiles. Immutable after construction,
/// `Send + Sync`: share one per process.
pub struct Validator {
    profiles: ProfileSet,
    terminology: Terminology,
    questionnaires: HashMap<String, Vec<QItem>>,
    engine_ok: bool,
}

type ERef<'p> = (&'p Profile, usize);

#[derive(Clone, Copy, PartialEq, Eq)]
enum BundleKind {
    /// document or message: every reference must resolve inside the Bundle.
    Closed,
    /// transaction/batch: only `urn:uuid:`/`urn:oid:` placeholders must resolve.
    Placeholders,
    Other,
}

struct Scope<'v> {
    kind: BundleKind,
    /// fullUrl -> resourceType of the entry.
    full_urls: HashMap<&'v str, &'v str>,
    type_ids: HashSet<(&'v str, &'v str)>,
    refs: Vec<RefUse<'v>>,
}

struct RefUse<'v> {
    loc: String,
    reference: &'v str,
    /// fullUrl of the entry the reference sits in.
    entry: Option<&'v str>,
    /// Allowed target resource types (empty = not restricted or unknown).
    targets: Vec<String>,
}

struct Ctx<'v> {
    issues: Vec<Issue>,
    scopes: Vec<Scope<'v>>,
    entry_urls: Vec<Option<&'v str>>,
    root: &'v Value,
    skipped_invariants: HashSet<String>,
    depth_reported: bool,
}

impl<'v> Ctx<'v> {
    fn new(root: &'v Value) -> Self {
        Ctx {
            issues: Vec::new(),
            scopes: Vec::new(),
            entry_urls: Vec::new(),
            root,
            skipped_invariants: HashSet::new(),
            depth_reported: false,
        }
    }

    fn push(
        &mut self,
        severity: Severity,
        code: IssueCode,
        message_id: &'static str,
        location: &str,
        message: String,
    ) {
        self.issues.push(Issue {
            severity,
            code,
            message_id,
            message,
            location: location.to_string(),
        });
    }

    fn error(&mut self, code: IssueCode, id: &'static str, loc: &str, msg: String) {
        self.push(Severity::Error, code, id, loc, msg);
    }

    fn has_error(&self) -> bool {
        crate::issue::has_errors(&self.issues)
    }
}

struct Env<'a, 't> {
    resource: &'a Value,
    root: &'a Value,
    terminology: &'t Terminology,
}

fn node(v: &Value) -> Item<'_> {
    Item::Node {
        value: v,
        type_name: v
            .get("resourceType")
            .and_then(Value::as_str)
            .map(Cow::Borrowed),
    }
}

impl<'a> Environment<'a> for Env<'a, '_> {
    fn variable(&self, name: &str) -> Option<Vec<Item<'a>>> {
        match name {
            "resource" => Some(vec![node(self.resource)]),
            "rootResource" => Some(vec![node(self.root)]),
            _ => None,
        }
    }
    fn member_of(&self, system: Option<&str>, code: &str, value_set: &str) -> Option<bool> {
        match self.terminology.member(value_set, system, code) {
            Membership::Member => Some(true),
            Membership::NotMember => Some(false),
            Membership::UnknownValueSet | Membership::CannotTell => None,
        }
    }
}

impl Validator {
    pub fn new(profiles: ProfileSet, terminology: Terminology) -> Self {
        // The FHIRPath engine is developed alongside; if it cannot evaluate even
        // `true`, invariants are reported as not evaluated instead of crashing.
        let probe = catch_unwind(|| {
            let v = Value::Object(Map::new());
            matches!(
                fhirpath::evaluate_str("true", &v).as_deref(),
                Ok([Item::Boolean(true)])
            )
        });
        Validator {
            profiles,
            terminology,
            questionnaires: HashMap::new(),
            engine_ok: matches!(probe, Ok(true)),
        }
    }

    /// Load an IG directory laid out like `fhir-profiles/ig/` (`definitions/`,
    /// `terminology/`, `questionnaires/`) or flat like `fhir-profiles/ig-0.2.1/`,
    /// plus the built-in R4 core enumerations. `configure` may add canonical
    /// aliases (or further profiles) before the validator is built. To serve
    /// several editions at once, build one [`ProfileSet`]/[`Terminology`] with
    /// `add_dir` per folder and call [`Validator::new`].
    pub fn load_ig(
        dir: impl AsRef<std::path::Path>,
        configure: impl FnOnce(&mut ProfileSet),
    ) -> Result<Validator, crate::profile::ProfileError> {
        let dir = dir.as_ref();
        // `ig/` keeps each kind in a subfolder; `ig-0.2.1/` is flat.
        let sub = |name: &str| {
            let d = dir.join(name);
            if d.is_dir() {
                d
            } else {
                dir.to_path_buf()
            }
        };
        let (mut profiles, _) = ProfileSet::load_dir(sub("definitions"))?;
        configure(&mut profiles);
        let mut terminology = Terminology::with_r4_core();
        terminology.add_dir(sub("terminology"))?;
        let mut v = Validator::new(profiles, terminology);
        v.add_questionnaire_dir(sub("questionnaires"))?;
        Ok(v)
    }

    /// Register a Questionnaire: QuestionnaireResponses naming its canonical are
    /// then also checked against its items. Returns false for anything else.
    pub fn add_questionnaire(&mut self, q: &Value) -> bool {
        if q.get("resourceType").and_then(Value::as_str) != Some("Questionnaire") {
            return false;
        }
        let Some(url) = q.get("url").and_then(Value::as_str) else {
            return false;
        };
        self.questionnaires
            .insert(url.to_string(), parse_items(q.get("item"), 0));
        true
    }

    /// Every Questionnaire `*.json` in `dir`; returns how many were added.
    pub fn add_questionnaire_dir(
        &mut self,
        dir: impl AsRef<std::path::Path>,
    ) -> Result<usize, crate::profile::ProfileError> {
        Ok(crate::profile::read_json_dir(dir.as_ref())?
            .iter()
            .filter(|(_, q)| self.add_questionnaire(q))
            .count())
    }

    pub fn profiles(&self) -> &ProfileSet {
        &self.profiles
    }

    pub fn terminology(&self) -> &Terminology {
        &self.terminology
    }

    /// Whether `constraint` invariants are evaluated (the FHIRPath engine works).
    pub fn invariants_enabled(&self) -> bool {
        self.engine_ok
    }

    /// Validate a resource. With `profile`, against that canonical (and any known
    /// `meta.profile`); without, against its known `meta.profile` entries, else
    /// base checks only. Issues are deduplicated and in document order of discovery.
    pub fn validate(&self, resource: &Value, profile: Option<&str>) -> Vec<Issue> {
        let mut ctx = Ctx::new(resource);
        let loc = resource
            .get("resourceType")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric()))
            .unwrap_or("Resource")
            .to_string();
        let mut explicit = Vec::new();
        let mut base_only = false;
        if let Some(url) = profile {
            // Through the alias table, so a caller may map a profile it cannot load
            // (e.g. an IHE response profile) onto its core resource.
            let bare = url.split('|').next().unwrap_or(url);
            let canon = self.profiles.canonical(bare);
            let core_type = canon
                .strip_prefix(CORE_BASE)
                .filter(|t| is_r4_resource_type(t));
            match (self.profiles.get(url), core_type) {
                (Some(p), _) => explicit.push(p),
                // A core resource definition: what we know of it are the base checks.
                (None, Some(t)) => {
                    base_only = true;
                    if t != loc {
                        ctx.error(
                            IssueCode::Structure,
                            "PROFILE_TYPE_MISMATCH",
                            &loc,
                            format!("profile {url} is for {t}, not {loc}"),
                        );
                    }
                }
                (None, None) => ctx.error(
                    IssueCode::NotFound,
                    "PROFILE_UNKNOWN",
                    &loc,
                    format!("profile {url} is not known to this validator"),
                ),
            }
        }
        if profile.is_none() || !explicit.is_empty() || base_only {
            self.resource(&mut ctx, resource, &loc, &explicit, 0);
        }
        if !ctx.skipped_invariants.is_empty() && !self.engine_ok {
            let n = ctx.skipped_invariants.len();
            ctx.push(
                Severity::Information,
                IssueCode::NotSupported,
                "INVARIANT_NOT_EVALUATED",
                &loc,
                format!("FHIRPath engine unavailable: {n} invariant(s) not evaluated"),
            );
        }
        let mut seen = HashSet::new();
        ctx.issues
            .into_iter()
            .filter(|i| {
                seen.insert((
                    i.severity,
                    i.message_id,
                    i.location.clone(),
                    i.message.clone(),
                ))
            })
            .collect()
    }

    /// [`Validator::validate`] as the OperationOutcome `$validate` answers with.
    pub fn validate_to_outcome(&self, resource: &Value, profile: Option<&str>) -> Value {
        crate::issue::to_operation_outcome(&self.validate(resource, profile))
    }

    fn too_deep(&self, ctx: &mut Ctx<'_>, depth: usize, loc: &str) -> bool {
        if depth <= MAX_DEPTH {
            return false;
        }
        if !ctx.depth_reported {
            ctx.depth_reported = true;
            ctx.error(
                IssueCode::TooCostly,
                "DEPTH_EXCEEDED",
                loc,
                format!("content nested deeper than {MAX_DEPTH} levels is not validated"),
            );
        }
        true
    }

    fn resource<'v, 'p>(
        &'p self,
        ctx: &mut Ctx<'v>,
        v: &'v Value,
        loc: &str,
        required: &[&'p Profile],
        depth: usize,
    ) {
        if self.too_deep(ctx, depth, loc) {
            return;
        }
        let Some(rt) = v.get("resourceType").and_then(Value::as_str) else {
            ctx.error(
                IssueCode::Structure,
                "RESOURCE_TYPE_MISSING",
                loc,
                format!(
                    "expected a resource (object with resourceType), found {}",
                    kind(v)
                ),
            );
            return;
        };
        if !is_r4_resource_type(rt) && !self.profiles.defines_type(rt) {
            ctx.error(
                IssueCode::Structure,
                "RESOURCE_TYPE_UNKNOWN",
                loc,
                format!("unknown resource type {rt}"),
            );
            return;
        }
        let mut profiles: Vec<&'p Profile> = required.to_vec();
        if let Some(metas) = v.pointer("/meta/profile").and_then(Value::as_array) {
            for m in metas.iter().filter_map(Value::as_str) {
                match self.profiles.get(m) {
                    Some(p) => profiles.push(p),
                    None => ctx.push(
                        Severity::Warning,
                        IssueCode::NotFound,
                        "PROFILE_UNKNOWN",
                        loc,
                        format!("meta.profile {m} is not known; not validated against it"),
                    ),
                }
            }
        }
        let mut seen = HashSet::new();
        profiles.retain(|p| seen.insert(p.url.as_str()));
        // A snapshot contains everything its base profiles require: validating
        // against an ancestor as well would only repeat the same findings.
        let all = profiles.clone();
        profiles.retain(|p| {
            !all.iter()
                .any(|q| q.url != p.url && self.profiles.derives_from(q, &p.url))
        });

        let is_bundle = rt == "Bundle";
        if is_bundle {
            ctx.scopes.push(scope_of(v));
        }
        let mut applied = 0;
        for p in &profiles {
            if p.type_name != rt {
                ctx.error(
                    IssueCode::Structure,
                    "PROFILE_TYPE_MISMATCH",
                    loc,
                    format!("profile {} is for {}, not {rt}", p.url, p.type_name),
                );
                continue;
            }
            applied += 1;
            self.node(ctx, v, (p, p.root()), loc, v, depth + 1, None);
        }
        if applied == 0 {
            self.base_resource(ctx, v, loc, depth);
        }
        if rt == "QuestionnaireResponse" {
            self.questionnaire_response(ctx, v, loc, depth);
        }
        if is_bundle {
            if let Some(scope) = ctx.scopes.pop() {
                resolve_refs(ctx, scope);
            }
        }
    }

    fn questionnaire_response(&self, ctx: &mut Ctx<'_>, v: &Value, loc: &str, depth: usize) {
        let Some(canonical) = v.get("questionnaire").and_then(Value::as_str) else {
            return;
        };
        let bare = canonical.split('|').next().unwrap_or(canonical);
        let items = self.questionnaires.get(bare).or_else(|| {
            self.questionnaires
                .get(self.profiles.canonical(bare).as_ref())
        });
        match items {
            Some(items) => self.qr_items(ctx, v.get("item"), items, loc, depth + 1),
            None => ctx.push(
                Severity::Information,
                IssueCode::NotFound,
                "QUESTIONNAIRE_UNKNOWN",
                loc,
                format!("questionnaire {canonical} is not loaded; answers not checked against it"),
            ),
        }
    }

    fn qr_items(
        &self,
        ctx: &mut Ctx<'_>,
        given: Option<&Value>,
        defs: &[QItem],
        loc: &str,
        depth: usize,
    ) {
        if self.too_deep(ctx, depth, loc) {
            return;
        }
        let given: &[Value] = given.and_then(Value::as_array).map_or(&[], Vec::as_slice);
        for (i, item) in given.iter().enumerate() {
            let iloc = format!("{loc}.item[{i}]");
            let Some(link) = item.get("linkId").and_then(Value::as_str) else {
                continue; // the profile reports the missing linkId
            };
            let Some(def) = defs.iter().find(|d| d.link_id == link) else {
                ctx.error(
                    IssueCode::Structure,
                    "QUESTIONNAIRE_ITEM_UNKNOWN",
                    &iloc,
                    format!("linkId '{link}' is not an item of the questionnaire here"),
                );
                continue;
            };
            let answers: &[Value] = item
                .get("answer")
                .and_then(Value::as_array)
                .map_or(&[], Vec::as_slice);
            if matches!(def.ty.as_str(), "group" | "display") && !answers.is_empty() {
                ctx.error(
                    IssueCode::Structure,
                    "QUESTIONNAIRE_ANSWER_NOT_ALLOWED",
                    &iloc,
                    format!("item '{link}' is a {} and takes no answers", def.ty),
                );
            }
            if !def.repeats && answers.len() > 1 {
                ctx.error(
                    IssueCode::Structure,
                    "QUESTIONNAIRE_REPEATS",
                    &iloc,
                    format!(
                        "item '{link}' does not repeat, but has {} answers",
                        answers.len()
                    ),
                );
            }
            if def.required
                && !def.conditional
                && answers.is_empty()
                && def.ty != "group"
                && def.ty != "display"
            {
                ctx.error(
                    IssueCode::Required,
                    "QUESTIONNAIRE_REQUIRED_MISSING",
                    &iloc,
                    format!("required item '{link}' has no answer"),
                );
            }
            for (j, a) in answers.iter().enumerate() {
                let aloc = format!("{iloc}.answer[{j}]");
                self.qr_answer(ctx, a, def, &aloc);
                if a.get("item").is_some() {
                    self.qr_items(ctx, a.get("item"), &def.items, &aloc, depth + 1);
                }
            }
            if item.get("item").is_some() {
                self.qr_items(ctx, item.get("item"), &def.items, &iloc, depth + 1);
            }
        }
        for d in defs.iter().filter(|d| d.required && !d.conditional) {
            let present = given
                .iter()
                .any(|g| g.get("linkId").and_then(Value::as_str) == Some(d.link_id.as_str()));
            if !present {
                ctx.error(
                    IssueCode::Required,
                    "QUESTIONNAIRE_REQUIRED_MISSING",
                    loc,
                    format!("required item '{}' is missing", d.link_id),
                );
            }
        }
    }

    fn qr_answer(&self, ctx: &mut Ctx<'_>, a: &Value, def: &QItem, loc: &str) {
        let Some((key, value)) = a
            .as_object()
            .and_then(|o| o.iter().find(|(k, _)| k.starts_with("value")))
        else {
            return;
        };
        let suffix = &key["value".len()..];
        let allowed = answer_types(&def.ty);
        if !allowed.is_empty() && !allowed.contains(&suffix) {
            ctx.error(
                IssueCode::Structure,
                "QUESTIONNAIRE_ANSWER_TYPE",
                loc,
                format!(
                    "item '{}' is of type {}: answer {key} is not allowed (expected value{})",
                    def.link_id,
                    def.ty,
                    allowed.join(" or value")
                ),
            );
            return;
        }
        if !def.options.is_empty() {
            let listed = def.options.iter().any(|o| match (o, value) {
                (Value::Object(_), Value::Object(_)) => {
                    o.get("code") == value.get("code")
                        && (o.get("system").is_none() || o.get("system") == value.get("system"))
                }
                _ => json_eq(o, value, &self.profiles),
            });
            if !listed && suffix != "String" {
                ctx.error(
                    IssueCode::CodeInvalid,
                    "QUESTIONNAIRE_ANSWER_NOT_IN_OPTIONS",
                    loc,
                    format!(
                        "answer to '{}' is not one of its answerOptions",
                        def.link_id
                    ),
                );
            }
        }
        if let (Some(vs), "Coding") = (&def.answer_value_set, suffix) {
            if let Some(code) = value.get("code").and_then(Value::as_str) {
                let system = value.get("system").and_then(Value::as_str);
                if self.terminology.member(vs, system, code) == Membership::NotMember {
                    // A warning, as the IG's own examples answer outside some answerValueSets.
                    ctx.push(
                        Severity::Warning,
                        IssueCode::CodeInvalid,
                        "QUESTIONNAIRE_ANSWER_NOT_IN_VALUESET",
                        loc,
                        format!(
                            "{code} is not in the answerValueSet {vs} of '{}'",
                            def.link_id
                        ),
                    );
                }
            }
        }
    }

    /// What can be checked of a resource with no known profile: its id, meta and
    /// narrative, references, and nested resources against their own meta.profile.
    fn base_resource<'v>(&self, ctx: &mut Ctx<'v>, v: &'v Value, loc: &str, depth: usize) {
        if let Some(id) = v.get("id") {
            self.primitive(ctx, id, "id", &format!("{loc}.id"));
        }
        for (k, t) in [("meta", "Meta"), ("text", "Narrative")] {
            if let Some(x) = v.get(k) {
                self.builtin(ctx, x, t, &format!("{loc}.{k}"), depth + 1);
            }
        }
        if let Some(obj) = v.as_object() {
            for (k, x) in obj {
                if matches!(k.as_str(), "resourceType" | "id" | "meta" | "text") {
                    continue;
                }
                let is_entries =
                    k == "entry" && v.get("resourceType").and_then(Value::as_str) == Some("Bundle");
                match x {
                    Value::Array(a) => {
                        for (i, item) in a.iter().enumerate() {
                            if is_entries {
                                ctx.entry_urls
                                    .push(item.get("fullUrl").and_then(Value::as_str));
                            }
                            self.untyped(ctx, item, &format!("{loc}.{k}[{i}]"), depth + 1);
                            if is_entries {
                                ctx.entry_urls.pop();
                            }
                        }
                    }
                    _ => self.untyped(ctx, x, &format!("{loc}.{k}"), depth + 1),
                }
            }
        }
    }

    fn untyped<'v>(&self, ctx: &mut Ctx<'v>, v: &'v Value, loc: &str, depth: usize) {
        if self.too_deep(ctx, depth, loc) {
            return;
        }
        match v {
            Value::Object(obj) => {
                if obj.contains_key("resourceType") {
                    self.resource(ctx, v, loc, &[], depth + 1);
                    return;
                }
                if looks_like_reference(obj) {
                    note_reference(ctx, v, loc, Vec::new());
                }
                for (k, x) in obj {
                    self.untyped(ctx, x, &format!("{loc}.{k}"), depth + 1);
                }
            }
            Value::Array(a) => {
                // An array directly inside an array is not FHIR JSON; index it anyway.
                for (i, x) in a.iter().enumerate() {
                    self.untyped(ctx, x, &format!("{loc}[{i}]"), depth + 1);
                }
            }
            _ => {}
        }
    }

    /// Validate one value against one element definition.
    #[allow(clippy::too_many_arguments)]
    fn node<'v, 'p>(
        &'p self,
        ctx: &mut Ctx<'v>,
        v: &'v Value,
        el: ERef<'p>,
        loc: &str,
        res: &'v Value,
        depth: usize,
        type_hint: Option<&str>,
    ) {
        if self.too_deep(ctx, depth, loc) {
            return;
        }
        let (p, idx) = el;
        let Some(def) = p.elements.get(idx) else {
            return;
        };
        let ty: Option<&str> = type_hint.or_else(|| pick_type(def, v));
        if let Some(t) = ty.filter(|t| is_primitive(t)) {
            if !self.primitive(ctx, v, t, loc) {
                return;
            }
            self.fixed_pattern(ctx, def, v, loc);
            self.element_binding(ctx, def, v, t, loc);
            self.constraints(ctx, &def.constraints, v, t, loc, res);
            return;
        }
        let Some(obj) = v.as_object() else {
            ctx.error(
                IssueCode::Structure,
                "TYPE_WRONG_JSON",
                loc,
                format!(
                    "expected a JSON object for {}, found {}",
                    ty.unwrap_or("a complex element"),
                    kind(v)
                ),
            );
            return;
        };
        if idx != p.root()
            && obj.contains_key("resourceType")
            && ty.is_none_or(|t| {
                matches!(t, "Resource" | "DomainResource")
                    || is_r4_resource_type(t)
                    || self.profiles.defines_type(t)
            })
        {
            let want: Vec<&str> = def.types.iter().map(|t| t.code.as_str()).collect();
            let rt = obj
                .get("resourceType")
                .and_then(Value::as_str)
                .unwrap_or("");
            // Only the profiles of the type actually present apply (a wrong type
            // is reported once, below, not again per profile).
            let mut profs = Vec::new();
            for t in def.types.iter().filter(|t| t.code == rt) {
                for u in &t.profiles {
                    if let Some(pp) = self.profiles.get(u) {
                        profs.push(pp);
                    }
                }
            }
            if !want.is_empty()
                && !want
                    .iter()
                    .any(|w| *w == rt || matches!(*w, "Resource" | "DomainResource"))
            {
                ctx.error(
                    IssueCode::Structure,
                    "TYPE_WRONG_RESOURCE",
                    loc,
                    format!(
                        "resource type {rt} is not allowed here (expected {})",
                        want.join(", ")
                    ),
                );
            }
            self.resource(ctx, v, loc, &profs, depth + 1);
            return;
        }
        if obj.is_empty() || (obj.len() == 1 && obj.contains_key("id")) {
            ctx.error(
                IssueCode::Structure,
                "ELEMENT_EMPTY",
                loc,
                "an element must have a value or children (ele-1)".to_string(),
            );
        }
        self.fixed_pattern(ctx, def, v, loc);
        if let Some(t) = ty {
            self.element_binding(ctx, def, v, t, loc);
            if t == "Reference" {
                let targets = self.reference_targets(def);
                note_reference(ctx, v, loc, targets);
            }
            if t == "Extension" {
                check_ext1(ctx, obj, loc);
            }
        }
        let eff = def.content_ref.unwrap_or(idx);
        let has_children = p.elements.get(eff).is_some_and(|e| !e.children.is_empty());
        if has_children {
            self.children(ctx, obj, (p, eff), loc, res, depth);
        } else if let Some(t) = ty {
            let prof = def
                .types
                .iter()
                .filter(|tr| tr.code == t)
                .flat_map(|tr| tr.profiles.iter())
                .find_map(|u| self.profiles.get(u));
            match prof {
                Some(pp) if pp.elements.first().is_some_and(|r| !r.children.is_empty()) => {
                    self.node(ctx, v, (pp, pp.root()), loc, res, depth + 1, Some(t));
                }
                _ => {
                    if builtin_datatype(t).is_some() {
                        self.builtin(ctx, v, t, loc, depth + 1);
                    }
                }
            }
        }
        let focus_type = ty
            .map(str::to_string)
            .or_else(|| (idx == p.root()).then(|| p.type_name.clone()));
        self.constraints(
            ctx,
            &def.constraints,
            v,
            focus_type.as_deref().unwrap_or(""),
            loc,
            res,
        );
    }

    /// Check a primitive; false when it failed (further checks would only repeat it).
    fn primitive(&self, ctx: &mut Ctx<'_>, v: &Value, t: &str, loc: &str) -> bool {
        match check_primitive(v, t) {
            Ok(()) => true,
            Err((id, msg)) => {
                let code = if id == "TYPE_WRONG_JSON" {
                    IssueCode::Structure
                } else {
                    IssueCode::Value
                };
                ctx.error(code, id, loc, msg);
                false
            }
        }
    }

    fn children<'v, 'p>(
        &'p self,
        ctx: &mut Ctx<'v>,
        obj: &'v Map<String, Value>,
        parent: ERef<'p>,
        loc: &str,
        res: &'v Value,
        depth: usize,
    ) {
        let (p, pidx) = parent;
        let Some(pdef) = p.elements.get(pidx) else {
            return;
        };
        let kids: Vec<&ElementDef> = pdef
            .children
            .iter()
            .filter_map(|&c| p.elements.get(c))
            .collect();
        // Which JSON keys belong to which child (and, for choices, which type).
        // (key, choice type, valid): an invalid choice type still counts as present,
        // so one wrong suffix is one error, not also a missing element.
        let mut claimed: Vec<Vec<(&'v str, Option<String>, bool)>> = vec![Vec::new(); kids.len()];
        for key in obj.keys() {
            if (key == "resourceType" && pidx == p.root()) || key == "fhir_comments" {
                continue;
            }
            let name = key.strip_prefix('_').unwrap_or(key);
            let mut found = false;
            for (ci, c) in kids.iter().enumerate() {
                if c.name == name {
                    if !key.starts_with('_') {
                        claimed[ci].push((key.as_str(), None, true));
                    }
                    found = true;
                    break;
                }
                if c.is_choice() {
                    let base = c.base_name();
                    if let Some(suffix) = name
                        .strip_prefix(base)
                        .filter(|s| s.chars().next().is_some_and(|ch| ch.is_ascii_uppercase()))
                    {
                        found = true;
                        let t = type_from_suffix(suffix);
                        let allowed = if c.types.is_empty() {
                            is_known_type(&t)
                        } else {
                            c.types.iter().any(|tr| suffix_of(&tr.code) == suffix)
                        };
                        if !allowed {
                            let allowed_list: Vec<String> =
                                c.types.iter().map(|t| t.code.clone()).collect();
                            ctx.error(
                                IssueCode::Structure,
                                "TYPE_CHOICE_INVALID",
                                &format!("{loc}.{key}"),
                                format!(
                                    "type {t} is not allowed for {base}[x] (allowed: {})",
                                    allowed_list.join(", ")
                                ),
                            );
                        }
                        if !key.starts_with('_') {
                            claimed[ci].push((key.as_str(), Some(t), allowed));
                        }
                        break;
                    }
                }
            }
            if !found {
                ctx.error(
                    IssueCode::Structure,
                    "UNKNOWN_ELEMENT",
                    &format!("{loc}.{key}"),
                    format!("element '{key}' is not defined in {}", pdef.path),
                );
            } else if key.starts_with('_') {
                check_primitive_extension(ctx, &obj[key], &format!("{loc}.{key}"));
            }
        }
        for (ci, c) in kids.iter().enumerate() {
            let cidx = pdef.children[ci];
            let base = c.base_name();
            let keys = &claimed[ci];
            if keys.len() > 1 {
                ctx.error(
                    IssueCode::Structure,
                    "TYPE_CHOICE_MULTIPLE",
                    &format!("{loc}.{base}"),
                    format!("more than one type given for {base}[x]"),
                );
            }
            let (key, hint, valid) = match keys.first() {
                Some((k, h, ok)) => (Some(*k), h.clone(), *ok),
                None => (None, None, true),
            };
            let val = key.and_then(|k| obj.get(k));
            let ext_count = if c.is_choice() {
                0
            } else {
                match obj.get(&format!("_{}", c.name)) {
                    Some(Value::Array(a)) => a.len(),
                    Some(_) => 1,
                    None => 0,
                }
            };
            let mut items: Vec<(usize, &'v Value)> = Vec::new();
            match val {
                Some(Value::Array(a)) => {
                    if !c.is_array {
                        ctx.error(
                            IssueCode::Structure,
                            "ARRAY_NOT_ALLOWED",
                            &format!("{loc}.{base}"),
                            format!(
                                "{} has at most one value: it must not be a JSON array",
                                c.path
                            ),
                        );
                    }
                    if a.is_empty() {
                        ctx.error(
                            IssueCode::Structure,
                            "ARRAY_EMPTY",
                            &format!("{loc}.{base}"),
                            "FHIR JSON arrays must not be empty".to_string(),
                        );
                    }
                    // A null item only keeps a primitive array aligned with its
                    // `_name` extensions; anywhere else it is not FHIR JSON.
                    let ext = key
                        .and_then(|k| obj.get(&format!("_{k}")))
                        .and_then(Value::as_array);
                    for (i, x) in a.iter().enumerate() {
                        if !x.is_null() {
                            items.push((i, x));
                        } else if ext.is_none_or(|e| e.get(i).is_none_or(Value::is_null)) {
                            ctx.error(
                                IssueCode::Structure,
                                "NULL_NOT_ALLOWED",
                                &format!("{loc}.{base}[{i}]"),
                                "null is only allowed to align a primitive array with its extensions"
                                    .to_string(),
                            );
                        }
                    }
                }
                Some(Value::Null) => ctx.error(
                    IssueCode::Structure,
                    "NULL_NOT_ALLOWED",
                    &format!("{loc}.{base}"),
                    "an element must be absent rather than null".to_string(),
                ),
                None => {}
                Some(x) => {
                    if c.is_array {
                        ctx.error(
                            IssueCode::Structure,
                            "ARRAY_EXPECTED",
                            &format!("{loc}.{base}"),
                            format!("{} repeats: its JSON form must be an array", c.path),
                        );
                    }
                    items.push((0, x));
                }
            }
            let count = items.len().max(ext_count);
            // Formatted only when a cardinality issue is reported.
            let at = (loc, base);
            cardinality(
                ctx,
                c,
                count,
                at,
                "CARDINALITY_MIN",
                "CARDINALITY_MAX",
                &c.path,
            );
            let item_loc = |i: usize| {
                if c.is_array && matches!(val, Some(Value::Array(_))) {
                    format!("{loc}.{base}[{i}]")
                } else {
                    format!("{loc}.{base}")
                }
            };
            let assignment: Vec<Option<usize>> = match &c.slicing {
                Some(sl) if !c.slices.is_empty() => {
                    let mut counts = vec![0usize; c.slices.len()];
                    // Slices some item could not be decided for: their minimum is not checked.
                    let mut uncertain = vec![false; c.slices.len()];
                    let mut out = Vec::with_capacity(items.len());
                    for (i, item) in &items {
                        let mut m = None;
                        let mut undecided = false;
                        for (si, &s) in c.slices.iter().enumerate() {
                            match self.matches_slice(
                                item,
                                (p, s),
                                &sl.discriminators,
                                hint.as_deref(),
                                depth,
                            ) {
                                Some(true) => {
                                    m = Some(si);
                                    break;
                                }
                                None => {
                                    undecided = true;
                                    uncertain[si] = true;
                                }
                                Some(false) => {}
                            }
                        }
                        match m {
                            Some(si) => counts[si] += 1,
                            None if sl.closed && !undecided => ctx.error(
                                IssueCode::Structure,
                                "SLICE_UNMATCHED",
                                &item_loc(*i),
                                format!(
                                    "{} has closed slicing and this item matches no slice",
                                    c.path
                                ),
                            ),
                            None => {}
                        }
                        out.push(m.map(|si| c.slices[si]));
                    }
                    for (si, &s) in c.slices.iter().enumerate() {
                        if let Some(sd) = p.elements.get(s) {
                            let label =
                                format!("{}:{}", c.path, sd.slice_name.as_deref().unwrap_or("?"));
                            let min_id = if uncertain[si] {
                                ""
                            } else {
                                "SLICE_CARDINALITY_MIN"
                            };
                            cardinality(
                                ctx,
                                sd,
                                counts[si],
                                at,
                                min_id,
                                "SLICE_CARDINALITY_MAX",
                                &label,
                            );
                        }
                    }
                    out
                }
                _ => vec![None; items.len()],
            };
            if !valid {
                continue;
            }
            let is_entry = c.path == "Bundle.entry";
            for ((i, item), slice) in items.iter().zip(assignment) {
                if is_entry {
                    ctx.entry_urls
                        .push(item.get("fullUrl").and_then(Value::as_str));
                }
                let target = slice.unwrap_or(cidx);
                self.node(
                    ctx,
                    item,
                    (p, target),
                    &item_loc(*i),
                    res,
                    depth + 1,
                    hint.as_deref(),
                );
                if is_entry {
                    ctx.entry_urls.pop();
                }
            }
        }
    }

    /// A complex datatype from the built-in table (its definition is not loaded).
    fn builtin<'v>(&self, ctx: &mut Ctx<'v>, v: &'v Value, t: &str, loc: &str, depth: usize) {
        if self.too_deep(ctx, depth, loc) {
            return;
        }
        let Some(table) = builtin_datatype(t) else {
            return;
        };
        let Some(obj) = v.as_object() else {
            ctx.error(
                IssueCode::Structure,
                "TYPE_WRONG_JSON",
                loc,
                format!("expected a JSON object for {t}, found {}", kind(v)),
            );
            return;
        };
        if t == "Extension" {
            check_ext1(ctx, obj, loc);
        }
        for (key, x) in obj {
            let name = key.strip_prefix('_').unwrap_or(key);
            if name == "id" {
                self.primitive(ctx, x, "string", &format!("{loc}.{key}"));
                continue;
            }
            if name == "extension" {
                match x {
                    Value::Array(a) => {
                        for (i, e) in a.iter().enumerate() {
                            self.builtin(
                                ctx,
                                e,
                                "Extension",
                                &format!("{loc}.extension[{i}]"),
                                depth + 1,
                            );
                        }
                    }
                    _ => ctx.error(
                        IssueCode::Structure,
                        "ARRAY_EXPECTED",
                        &format!("{loc}.extension"),
                        "extension must be a JSON array".to_string(),
                    ),
                }
                continue;
            }
            let mut hit: Option<(&crate::types::BuiltinElement, String)> = None;
            for e in table {
                if e.name == name {
                    hit = Some((e, e.types[0].to_string()));
                    break;
                }
                if let Some(base) = e.name.strip_suffix("[x]") {
                    if let Some(suffix) = name
                        .strip_prefix(base)
                        .filter(|s| s.chars().next().is_some_and(|c| c.is_ascii_uppercase()))
                    {
                        let tt = type_from_suffix(suffix);
                        let ok = if e.types == ["*"] {
                            is_known_type(&tt)
                        } else {
                            e.types.iter().any(|c| suffix_of(c) == suffix)
                        };
                        if ok {
                            hit = Some((e, tt));
                        } else {
                            ctx.error(
                                IssueCode::Structure,
                                "TYPE_CHOICE_INVALID",
                                &format!("{loc}.{key}"),
                                format!("type {tt} is not allowed for {t}.{}", e.name),
                            );
                            hit = None;
                        }
                        break;
                    }
                }
            }
            let Some((e, et)) = hit else {
                if !table.iter().any(|e| {
                    e.name
                        .strip_suffix("[x]")
                        .is_some_and(|b| name.starts_with(b) && name.len() > b.len())
                }) {
                    ctx.error(
                        IssueCode::Structure,
                        "UNKNOWN_ELEMENT",
                        &format!("{loc}.{key}"),
                        format!("element '{key}' is not defined in {t}"),
                    );
                }
                continue;
            };
            if key.starts_with('_') {
                check_primitive_extension(ctx, x, &format!("{loc}.{key}"));
                continue;
            }
            let base = e.name.strip_suffix("[x]").unwrap_or(e.name);
            let items: Vec<(String, &'v Value)> = match x {
                Value::Array(a) => {
                    if !e.many {
                        ctx.error(
                            IssueCode::Structure,
                            "ARRAY_NOT_ALLOWED",
                            &format!("{loc}.{base}"),
                            format!(
                                "{t}.{base} has at most one value: it must not be a JSON array"
                            ),
                        );
                    }
                    a.iter()
                        .enumerate()
                        .filter(|(_, y)| !y.is_null())
                        .map(|(i, y)| (format!("{loc}.{base}[{i}]"), y))
                        .collect()
                }
                y => {
                    if e.many {
                        ctx.error(
                            IssueCode::Structure,
                            "ARRAY_EXPECTED",
                            &format!("{loc}.{base}"),
                            format!("{t}.{base} repeats: its JSON form must be an array"),
                        );
                    }
                    vec![(format!("{loc}.{base}"), y)]
                }
            };
            for (iloc, y) in items {
                if is_primitive(&et) {
                    if self.primitive(ctx, y, &et, &iloc) {
                        if let Some(vs) = e.required_vs {
                            self.binding(ctx, Some((BindingStrength::Required, vs)), y, &et, &iloc);
                        }
                    }
                } else {
                    if et == "Reference" {
                        note_reference(ctx, y, &iloc, Vec::new());
                    }
                    self.builtin(ctx, y, &et, &iloc, depth + 1);
                }
            }
        }
        for e in table.iter().filter(|e| e.min > 0) {
            let present = match e.name.strip_suffix("[x]") {
                Some(b) => obj.keys().any(|k| k.starts_with(b) && k.len() > b.len()),
                None => obj.contains_key(e.name) || obj.contains_key(&format!("_{}", e.name)),
            };
            if !present {
                ctx.error(
                    IssueCode::Required,
                    "CARDINALITY_MIN",
                    &format!("{loc}.{}", e.name.trim_end_matches("[x]")),
                    format!("{t}.{} is required", e.name),
                );
            }
        }
    }

    /// Resource types a Reference element may point to, from its target profiles;
    /// empty when unrestricted or when a target profile is not known.
    fn reference_targets(&self, def: &ElementDef) -> Vec<String> {
        let mut out = Vec::new();
        for t in def.types.iter().filter(|t| t.code == "Reference") {
            for u in &t.target_profiles {
                let ty = match self.profiles.get(u) {
                    Some(p) => p.type_name.clone(),
                    None => match u.strip_prefix(CORE_BASE) {
                        Some(core) => core.to_string(),
                        None => return Vec::new(),
                    },
                };
                if !out.contains(&ty) {
                    out.push(ty);
                }
            }
        }
        out
    }

    fn fixed_pattern(&self, ctx: &mut Ctx<'_>, def: &ElementDef, v: &Value, loc: &str) {
        if let Some(f) = &def.fixed {
            if !json_eq(f, v, &self.profiles) {
                ctx.error(
                    IssueCode::Value,
                    "FIXED_MISMATCH",
                    loc,
                    format!("value must be exactly {f} (fixed in {})", def.id),
                );
            }
        }
        if let Some(pt) = &def.pattern {
            if !pattern_match(pt, v, &self.profiles, 0) {
                ctx.error(
                    IssueCode::Value,
                    "PATTERN_MISMATCH",
                    loc,
                    format!("value must match pattern {pt} (from {})", def.id),
                );
            }
        }
    }

    fn element_binding(&self, ctx: &mut Ctx<'_>, def: &ElementDef, v: &Value, t: &str, loc: &str) {
        let binding = def
            .binding
            .as_ref()
            .map(|b| (b.strength, b.value_set.as_str()));
        self.binding(ctx, binding, v, t, loc);
    }

    fn binding(
        &self,
        ctx: &mut Ctx<'_>,
        binding: Option<(BindingStrength, &str)>,
        v: &Value,
        t: &str,
        loc: &str,
    ) {
        let Some((strength, vs)) = binding else {
            return;
        };
        if !matches!(
            strength,
            BindingStrength::Required | BindingStrength::Extensible
        ) {
            return;
        }
        let codes: Vec<(Option<&str>, &str)> = match t {
            "code" | "string" | "uri" => v.as_str().map(|s| vec![(None, s)]).unwrap_or_default(),
            "Coding" => coding(v).into_iter().collect(),
            "CodeableConcept" => v
                .get("coding")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(coding).collect())
                .unwrap_or_default(),
            _ => return,
        };
        if !self.terminology.has_value_set(vs) {
            ctx.push(
                Severity::Warning,
                IssueCode::NotFound,
                "VALUESET_UNKNOWN",
                loc,
                format!("value set {vs} is not loaded; binding not checked"),
            );
            return;
        }
        let mut verdict = Membership::NotMember;
        for (sys, code) in &codes {
            match self.terminology.member(vs, *sys, code) {
                Membership::Member => return,
                Membership::CannotTell | Membership::UnknownValueSet => {
                    verdict = Membership::CannotTell
                }
                Membership::NotMember => {}
            }
        }
        if verdict == Membership::CannotTell {
            return;
        }
        let shown: Vec<String> = codes
            .iter()
            .map(|(s, c)| match s {
                Some(s) => format!("{s}#{c}"),
                None => c.to_string(),
            })
            .collect();
        let what = if shown.is_empty() {
            "no code".to_string()
        } else {
            shown.join(", ")
        };
        if strength == BindingStrength::Required {
            ctx.error(
                IssueCode::CodeInvalid,
                "BINDING_REQUIRED",
                loc,
                format!("{what} is not in the required value set {vs}"),
            );
        } else {
            ctx.push(
                Severity::Warning,
                IssueCode::CodeInvalid,
                "BINDING_EXTENSIBLE",
                loc,
                format!("{what} is not in the extensible value set {vs}"),
            );
        }
    }

    fn constraints<'v>(
        &self,
        ctx: &mut Ctx<'v>,
        cs: &[Constraint],
        v: &'v Value,
        ty: &str,
        loc: &str,
        res: &'v Value,
    ) {
        for c in cs {
            // ele-1 and ext-1 are checked natively (structurally) on every element.
            if !c.error || c.key == "ele-1" || c.key == "ext-1" {
                continue;
            }
            let Some(src) = c.expression.as_deref() else {
                continue;
            };
            if !self.engine_ok {
                ctx.skipped_invariants.insert(c.key.clone());
                continue;
            }
            // Content too deep to walk is too deep for the FHIRPath evaluator as well
            // (descendants() and friends recurse over the whole tree).
            if ctx.depth_reported {
                self.not_evaluated(ctx, c, loc, "content nested too deeply");
                continue;
            }
            let compiled = c
                .compiled
                .get_or_init(|| match catch_unwind(|| fhirpath::parse(src)) {
                    Ok(Ok(e)) => Ok(e),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("the FHIRPath parser panicked".to_string()),
                });
            let expr = match compiled {
                Ok(e) => e,
                Err(why) => {
                    self.not_evaluated(ctx, c, loc, why);
                    continue;
                }
            };
            let env = Env {
                resource: res,
                root: ctx.root,
                terminology: &self.terminology,
            };
            let focus = Item::Node {
                value: v,
                type_name: (!ty.is_empty()).then(|| Cow::Owned(ty.to_string())),
            };
            let out = catch_unwind(AssertUnwindSafe(|| {
                fhirpath::evaluate(expr, &[focus], &env)
            }));
            match out {
                Ok(Ok(items)) => {
                    if matches!(items.as_slice(), [Item::Boolean(false)]) {
                        ctx.error(
                            IssueCode::Invariant,
                            "INVARIANT_FAILED",
                            loc,
                            format!("{}: {} [{}]", c.key, c.human, src),
                        );
                    }
                }
                Ok(Err(e)) => self.not_evaluated(ctx, c, loc, &e.to_string()),
                Err(_) => self.not_evaluated(ctx, c, loc, "the FHIRPath evaluator panicked"),
            }
        }
    }

    fn not_evaluated(&self, ctx: &mut Ctx<'_>, c: &Constraint, loc: &str, why: &str) {
        // One note per invariant and validation: the same constraint usually fails
        // to evaluate for the same reason at every location.
        if ctx.skipped_invariants.insert(c.key.clone()) {
            ctx.push(
                Severity::Information,
                IssueCode::NotSupported,
                "INVARIANT_NOT_EVALUATED",
                loc,
                format!("invariant {} not evaluated: {why}", c.key),
            );
        }
    }

    /// Does an item belong to a slice? `None` when a discriminator cannot be
    /// decided here (value not defined in a loaded definition, `resolve()` paths).
    fn matches_slice<'p>(
        &'p self,
        item: &Value,
        slice: ERef<'p>,
        discs: &[crate::profile::Discriminator],
        hint: Option<&str>,
        depth: usize,
    ) -> Option<bool> {
        let mut verdict = Some(true);
        for d in discs {
            match self.discriminator(item, slice, d, hint, depth) {
                Some(false) => return Some(false),
                None => verdict = None,
                Some(true) => {}
            }
        }
        verdict
    }

    fn discriminator<'p>(
        &'p self,
        item: &Value,
        slice: ERef<'p>,
        d: &crate::profile::Discriminator,
        hint: Option<&str>,
        depth: usize,
    ) -> Option<bool> {
        let values = values_at(item, &d.path)?;
        let target = self.elem_at(slice, &d.path);
        let ps = &self.profiles;
        match d.kind {
            DiscriminatorType::Value | DiscriminatorType::Pattern => {
                let (fixed, pattern) = match target {
                    Some((tp, ti)) => {
                        let e = &tp.elements[ti];
                        (e.fixed.clone(), e.pattern.clone())
                    }
                    None => (None, None),
                };
                let fixed = fixed.or_else(|| self.extension_url(slice, &d.path));
                match (fixed, pattern) {
                    (Some(f), _) => Some(values.iter().any(|x| json_eq(&f, x, ps))),
                    (None, Some(pt)) => Some(values.iter().any(|x| pattern_match(&pt, x, ps, 0))),
                    (None, None) => None,
                }
            }
            DiscriminatorType::Exists => {
                let (tp, ti) = target?;
                let e = &tp.elements[ti];
                if e.min >= 1 {
                    Some(!values.is_empty())
                } else if e.max == Some(0) {
                    Some(values.is_empty())
                } else {
                    None
                }
            }
            DiscriminatorType::Type => {
                let (tp, ti) = target?;
                let codes: Vec<&str> = tp.elements[ti]
                    .types
                    .iter()
                    .map(|t| t.code.as_str())
                    .collect();
                type_matches(&values, &codes, d.path == "$this", hint)
            }
            DiscriminatorType::Profile => {
                let (tp, ti) = target?;
                let el = &tp.elements[ti];
                let profs: Vec<&Profile> = el
                    .types
                    .iter()
                    .flat_map(|t| t.profiles.iter())
                    .filter_map(|u| self.profiles.get(u))
                    .collect();
                if profs.is_empty() {
                    // The profile is not loaded: its base type still tells slices apart.
                    let codes: Vec<&str> = el.types.iter().map(|t| t.code.as_str()).collect();
                    return type_matches(&values, &codes, false, hint);
                }
                if values.is_empty() {
                    return Some(false);
                }
                Some(values.iter().all(|x| {
                    profs.iter().any(|pp| {
                        let mut sub = Ctx::new(x);
                        if x.get("resourceType").is_some() {
                            self.resource(&mut sub, x, "x", &[pp], depth + 1);
                        } else {
                            self.node(&mut sub, x, (pp, pp.root()), "x", x, depth + 1, None);
                        }
                        !sub.has_error()
                    })
                }))
            }
        }
    }

    /// An extension slice is identified by its url, which is its profile's canonical.
    fn extension_url(&self, slice: ERef<'_>, path: &str) -> Option<Value> {
        if path != "url" {
            return None;
        }
        let e = slice.0.elements.get(slice.1)?;
        let t = e.types.iter().find(|t| t.code == "Extension")?;
        t.profiles.first().map(|u| Value::String(u.clone()))
    }

    /// The element a discriminator path names, inside a slice definition.
    fn elem_at<'p>(&'p self, start: ERef<'p>, path: &str) -> Option<ERef<'p>> {
        let mut cur = start;
        if path == "$this" {
            return Some(cur);
        }
        for seg in path.split('.') {
            if seg.contains('(') {
                return None;
            }
            let (p, i) = cur;
            let e = p.elements.get(i)?;
            let eff = e.content_ref.unwrap_or(i);
            let here = p.elements.get(eff)?;
            let find = |p: &'p Profile, kids: &[usize]| {
                kids.iter().copied().find(|&k| {
                    p.elements
                        .get(k)
                        .is_some_and(|c| c.name == seg || c.base_name() == seg)
                })
            };
            if let Some(k) = find(p, &here.children) {
                cur = (p, k);
                continue;
            }
            let pp = e
                .types
                .iter()
                .flat_map(|t| t.profiles.iter())
                .find_map(|u| self.profiles.get(u))?;
            let root = pp.elements.first()?;
            let k = find(pp, &root.children)?;
            cur = (pp, k);
        }
        Some(cur)
    }
}

fn cardinality(
    ctx: &mut Ctx<'_>,
    def: &ElementDef,
    count: usize,
    (loc, name): (&str, &str),
    min_id: &'static str,
    max_id: &'static str,
    label: &str,
) {
    if !min_id.is_empty() && (count as u64) < def.min as u64 {
        ctx.error(
            IssueCode::Required,
            min_id,
            &format!("{loc}.{name}"),
            format!("{label}: minimum required = {}, but found {count}", def.min),
        );
    }
    if let Some(max) = def.max {
        if count as u64 > max as u64 {
            ctx.error(
                IssueCode::Structure,
                max_id,
                &format!("{loc}.{name}"),
                format!("{label}: maximum allowed = {max}, but found {count}"),
            );
        }
    }
}

/// Type discriminator: resources by `resourceType`, choices by their JSON suffix.
fn type_matches(values: &[&Value], codes: &[&str], this: bool, hint: Option<&str>) -> Option<bool> {
    if values.is_empty() {
        return Some(false);
    }
    let mut verdict = Some(true);
    for x in values {
        if let Some(rt) = x.get("resourceType").and_then(Value::as_str) {
            if !codes
                .iter()
                .any(|c| *c == rt || matches!(*c, "Resource" | "DomainResource"))
            {
                return Some(false);
            }
        } else if this && hint.is_some() {
            if !hint.is_some_and(|h| codes.contains(&h)) {
                return Some(false);
            }
        } else if codes.len() != 1 {
            verdict = None;
        }
    }
    verdict
}

fn pick_type<'d>(def: &'d ElementDef, v: &Value) -> Option<&'d str> {
    match def.types.as_slice() {
        [] => None,
        [one] => Some(one.code.as_str()),
        many => {
            // Not a choice in JSON (no suffix): pick the first type the JSON shape fits.
            let want_obj = v.is_object();
            many.iter()
                .map(|t| t.code.as_str())
                .find(|c| is_primitive(c) != want_obj)
                .or(Some(many[0].code.as_str()))
        }
    }
}

fn coding(v: &Value) -> Option<(Option<&str>, &str)> {
    Some((
        v.get("system").and_then(Value::as_str),
        v.get("code").and_then(Value::as_str)?,
    ))
}

fn check_ext1(ctx: &mut Ctx<'_>, obj: &Map<String, Value>, loc: &str) {
    let has_value = obj.keys().any(|k| k.starts_with("value"));
    let has_ext = obj
        .get("extension")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if has_value == has_ext {
        ctx.error(
            IssueCode::Invariant,
            "EXTENSION_VALUE_OR_CHILDREN",
            loc,
            "ext-1: an extension must have either extensions or value[x], not both".to_string(),
        );
    }
}

fn check_primitive_extension(ctx: &mut Ctx<'_>, v: &Value, loc: &str) {
    let ok = |x: &Value| x.is_null() || x.is_object();
    let fine = match v {
        Value::Array(a) => a.iter().all(ok),
        x => x.is_object(),
    };
    if !fine {
        ctx.error(
            IssueCode::Structure,
            "TYPE_WRONG_JSON",
            loc,
            format!(
                "a primitive's extension container must be an object, found {}",
                kind(v)
            ),
        );
    }
}

fn looks_like_reference(obj: &Map<String, Value>) -> bool {
    obj.get("reference").is_some_and(Value::is_string)
        && obj.keys().all(|k| {
            matches!(
                k.as_str(),
                "reference" | "type" | "identifier" | "display" | "id" | "extension" | "_reference"
            )
        })
}

fn note_reference<'v>(ctx: &mut Ctx<'v>, v: &'v Value, loc: &str, targets: Vec<String>) {
    let Some(r) = v.get("reference").and_then(Value::as_str) else {
        return;
    };
    let entry = ctx.entry_urls.last().copied().flatten();
    if let Some(scope) = ctx.scopes.last_mut() {
        scope.refs.push(RefUse {
            loc: format!("{loc}.reference"),
            reference: r,
            entry,
            targets,
        });
    }
}

fn scope_of(v: &Value) -> Scope<'_> {
    let kind = match v.get("type").and_then(Value::as_str) {
        Some("document") | Some("message") => BundleKind::Closed,
        Some("transaction") | Some("batch") => BundleKind::Placeholders,
        _ => BundleKind::Other,
    };
    let mut full_urls = HashMap::new();
    let mut type_ids = HashSet::new();
    if let Some(entries) = v.get("entry").and_then(Value::as_array) {
        for e in entries {
            if let Some(u) = e.get("fullUrl").and_then(Value::as_str) {
                let rt = e
                    .pointer("/resource/resourceType")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                // A duplicated fullUrl (itself bdl-7) makes the target ambiguous:
                // keep it resolvable, but do not judge its type.
                let prev = full_urls.insert(u, rt);
                if prev.is_some_and(|p| p != rt) {
                    full_urls.insert(u, "");
                }
            }
            if let (Some(t), Some(id)) = (
                e.pointer("/resource/resourceType").and_then(Value::as_str),
                e.pointer("/resource/id").and_then(Value::as_str),
            ) {
                type_ids.insert((t, id));
            }
        }
    }
    Scope {
        kind,
        full_urls,
        type_ids,
        refs: Vec::new(),
    }
}

fn resolve_refs(ctx: &mut Ctx<'_>, scope: Scope<'_>) {
    if scope.kind == BundleKind::Other {
        return;
    }
    for u in &scope.refs {
        let r = u.reference;
        if r.starts_with('#') {
            continue;
        }
        let resolved: Option<&str> = if let Some(rt) = scope.full_urls.get(r) {
            Some(rt)
        } else if !r.contains(':') {
            // `Type/id[/_history/v]`, resolved against the referring entry's base.
            let mut parts = r.split('/');
            let (t, id) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let by_base = u.entry.and_then(base_of).and_then(|base| {
                scope
                    .full_urls
                    .get(format!("{base}{t}/{id}").as_str())
                    .copied()
            });
            by_base.or_else(|| scope.type_ids.contains(&(t, id)).then_some(t))
        } else {
            None
        };
        match resolved {
            Some(rt) => {
                if !u.targets.is_empty()
                    && !rt.is_empty()
                    && !u.targets.iter().any(|t| t == rt || t == "Resource")
                {
                    ctx.error(
                        IssueCode::Structure,
                        "REFERENCE_TARGET_TYPE",
                        &u.loc,
                        format!(
                            "reference {r} resolves to a {rt}, but only {} may be referenced here",
                            u.targets.join(", ")
                        ),
                    );
                }
            }
            None => {
                let placeholder = r.starts_with("urn:uuid:") || r.starts_with("urn:oid:");
                let relative = !r.contains(':');
                if placeholder || (relative && scope.kind == BundleKind::Closed) {
                    ctx.error(
                        IssueCode::NotFound,
                        "REFERENCE_UNRESOLVED",
                        &u.loc,
                        format!("reference {r} does not resolve to an entry of this Bundle"),
                    );
                } else if !relative && scope.kind == BundleKind::Closed {
                    ctx.push(
                        Severity::Warning,
                        IssueCode::NotFound,
                        "REFERENCE_NOT_IN_BUNDLE",
                        &u.loc,
                        format!("reference {r} is not an entry of this Bundle"),
                    );
                }
            }
        }
    }
}

/// `http://x/fhir/Patient/1` -> `http://x/fhir/`.
fn base_of(full_url: &str) -> Option<&str> {
    if !full_url.contains("://") {
        return None;
    }
    let mut it = full_url.rsplitn(3, '/');
    let _id = it.next()?;
    let _ty = it.next()?;
    let base = it.next()?;
    Some(&full_url[..base.len() + 1])
}

/// Values a discriminator path selects in an item; `None` when the path uses
/// something this walker cannot follow (`resolve()`), which counts as a match.
fn values_at<'v>(item: &'v Value, path: &str) -> Option<Vec<&'v Value>> {
    let mut cur = vec![item];
    if path == "$this" {
        return Some(cur);
    }
    for seg in path.split('.') {
        let mut next = Vec::new();
        if let Some(url) = seg
            .strip_prefix("extension('")
            .and_then(|s| s.strip_suffix("')"))
        {
            for c in &cur {
                if let Some(a) = c.get("extension").and_then(Value::as_array) {
                    next.extend(
                        a.iter()
                            .filter(|e| e.get("url").and_then(Value::as_str) == Some(url)),
                    );
                }
            }
        } else if seg.contains('(') {
            return None;
        } else {
            let base = seg.strip_suffix("[x]").unwrap_or(seg);
            for c in &cur {
                let Some(obj) = c.as_object() else { continue };
                let found: Vec<&Value> = if seg.ends_with("[x]") {
                    obj.iter()
                        .filter(|(k, _)| k.starts_with(base) && k.len() > base.len())
                        .map(|(_, v)| v)
                        .collect()
                } else {
                    obj.get(base).into_iter().collect()
                };
                for f in found {
                    match f {
                        Value::Array(a) => next.extend(a.iter()),
                        x => next.push(x),
                    }
                }
            }
        }
        cur = next;
    }
    Some(cur)
}

/// FHIR value equality: numbers by value, everything else structurally.
pub(crate) fn json_eq(a: &Value, b: &Value, ps: &ProfileSet) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::String(x), Value::String(y)) => ps.same_str(x, y),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q, ps))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, p)| y.get(k).is_some_and(|q| json_eq(p, q, ps)))
        }
        _ => a == b,
    }
}

/// `pattern[x]`: every property the pattern has, the value has (recursively);
/// every pattern array item is matched by some value array item.
pub(crate) fn pattern_match(pattern: &Value, v: &Value, ps: &ProfileSet, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    match (pattern, v) {
        (Value::Object(p), Value::Object(o)) => p.iter().all(|(k, pv)| {
            o.get(k)
                .is_some_and(|ov| pattern_match(pv, ov, ps, depth + 1))
        }),
        (Value::Array(p), Value::Array(o)) => p
            .iter()
            .all(|pv| o.iter().any(|ov| pattern_match(pv, ov, ps, depth + 1))),
        (Value::Array(p), o) => p.iter().all(|pv| pattern_match(pv, o, ps, depth + 1)),
        _ => json_eq(pattern, v, ps),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patterns() {
        let p = json!({"coding": [{"system": "http://loinc.org", "code": "82593-5"}]});
        let v = json!({"coding": [{"system": "x", "code": "y"}, {"system": "http://loinc.org", "code": "82593-5", "display": "d"}], "text": "t"});
        let ps = ProfileSet::new();
        assert!(pattern_match(&p, &v, &ps, 0));
        let w = json!({"coding": [{"system": "http://loinc.org", "code": "1"}]});
        assert!(!pattern_match(&p, &w, &ps, 0));
        assert!(json_eq(&json!(1.0), &json!(1), &ps));
        assert!(!json_eq(&json!({"a": 1}), &json!({"a": 1, "b": 2}), &ps));
        let mut aliased = ProfileSet::new();
        aliased.add_base_alias("http://old/", "https://new/");
        assert!(json_eq(
            &json!("http://old/x"),
            &json!("https://new/x"),
            &aliased
        ));
    }

    #[test]
    fn bases() {
        assert_eq!(
            base_of("http://x.org/fhir/Patient/1"),
            Some("http://x.org/fhir/")
        );
        assert_eq!(base_of("urn:uuid:1"), None);
    }

    #[test]
    fn discriminator_values() {
        let v = json!({"extension": [{"url": "a", "valueString": "x"}], "code": {"coding": [{"code": "1"}, {"code": "2"}]}});
        assert_eq!(values_at(&v, "code.coding.code").map(|x| x.len()), Some(2));
        assert_eq!(
            values_at(&v, "extension('a').value[x]").map(|x| x.len()),
            Some(1)
        );
        assert!(values_at(&v, "resolve()").is_none());
    }
}
