//! The target side of a transform: an arena of nodes so that a variable bound to a
//! created resource and the element it was assigned to are the same object (as in
//! Matchbox, where `entry.resource = create('Patient') as p` and later writes to `p`
//! show up in the entry).

use crate::model::{Definitions, TypeCtx};
use serde_json::{Map, Value};
use std::sync::Arc;

pub type NodeId = usize;

#[derive(Debug, Clone)]
pub enum Content<'a> {
    /// Children in insertion order: JSON name, does it repeat, the values.
    Obj(Vec<(String, bool, Vec<NodeId>)>),
    /// A primitive value.
    Prim(Value),
    /// A complex value computed during the transform; exploded into `Obj` when
    /// written into.
    Json(Arc<Value>),
    /// A value of the source document, referenced rather than copied; exploded
    /// into `Obj` when written into.
    Src(&'a Value),
}

#[derive(Debug, Clone)]
pub struct Node<'a> {
    pub ctx: Option<TypeCtx>,
    pub content: Content<'a>,
    /// Placed in an element of type Resource (`Bundle.entry.resource`): a logical
    /// model instance there carries `resourceType`, as at the root; elsewhere (an
    /// element typed by another logical model) it does not, as in Matchbox.
    pub resource_slot: bool,
}

#[derive(Debug, Default)]
pub struct Tree<'a> {
    pub nodes: Vec<Node<'a>>,
}

/// Serialising a node graph that contains a cycle (`a.x = a`) must stop.
const MAX_DEPTH: usize = 256;

impl<'a> Tree<'a> {
    pub fn add(&mut self, ctx: Option<TypeCtx>, content: Content<'a>) -> NodeId {
        self.nodes.push(Node {
            ctx,
            content,
            resource_slot: false,
        });
        self.nodes.len() - 1
    }

    pub fn node(&self, id: NodeId) -> Option<&Node<'a>> {
        self.nodes.get(id)
    }

    /// Children named `name` (or, for a choice base name, `name` + a type suffix).
    pub fn children(&mut self, id: NodeId, name: &str, defs: &Definitions) -> Vec<NodeId> {
        self.explode(id, defs);
        let Some(Node {
            content: Content::Obj(kids),
            ..
        }) = self.nodes.get(id)
        else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (n, _, ids) in kids {
            if n == name || is_choice_of(n, name) {
                out.extend_from_slice(ids);
            }
        }
        out
    }

    /// Turn a copied or referenced JSON value into nodes so elements can be added
    /// to it.
    pub fn explode(&mut self, id: NodeId, defs: &Definitions) {
        let Some(node) = self.nodes.get(id) else {
            return;
        };
        let ctx = node.ctx.clone();
        match &node.content {
            Content::Src(v) => {
                let v: &'a Value = v;
                self.explode_with(id, ctx, v, defs, &mut |it| Content::Src(it));
            }
            Content::Json(v) => {
                let v = v.clone();
                self.explode_with(id, ctx, &v, defs, &mut |it| {
                    if it.is_object() {
                        Content::Json(Arc::new(it.clone()))
                    } else {
                        Content::Prim(it.clone())
                    }
                });
            }
            _ => {}
        }
    }

    fn explode_with<'v>(
        &mut self,
        id: NodeId,
        ctx: Option<TypeCtx>,
        v: &'v Value,
        defs: &Definitions,
        make: &mut dyn FnMut(&'v Value) -> Content<'a>,
    ) {
        let Value::Object(obj) = v else {
            if let Some(n) = self.nodes.get_mut(id) {
                n.content = Content::Prim(v.clone());
            }
            return;
        };
        let mut kids = Vec::new();
        for (k, val) in obj {
            if k == "resourceType" {
                continue;
            }
            let (repeats, items): (bool, Vec<&'v Value>) = match val {
                Value::Array(a) => (true, a.iter().collect()),
                other => (false, vec![other]),
            };
            let child_ctx = ctx.as_ref().and_then(|c| {
                crate::exec::engine::json_child_ctx(defs, c, k, items.first().copied())
            });
            let mut ids = Vec::new();
            for it in items {
                let id = self.add(child_ctx.clone(), make(it));
                if let Some(n) = self.nodes.get_mut(id) {
                    n.resource_slot = it.get("resourceType").is_some();
                }
                ids.push(id);
            }
            kids.push((k.clone(), repeats, ids));
        }
        if let Some(n) = self.nodes.get_mut(id) {
            n.content = Content::Obj(kids);
        }
    }

    /// The node as FHIR JSON: `resourceType` first for resources and logical models.
    pub fn to_json(&self, id: NodeId) -> Result<Value, String> {
        self.to_json_depth(id, 0)
    }

    /// The final output: like [`Tree::to_json`], but values and names of nodes
    /// reachable once are moved instead of copied. Shared nodes (one object
    /// assigned in two places) are copied at each place.
    pub fn into_json(mut self, root: NodeId) -> Result<Value, String> {
        let mut refs = vec![0u32; self.nodes.len()];
        if let Some(r) = refs.get_mut(root) {
            *r += 1;
        }
        for n in &self.nodes {
            if let Content::Obj(kids) = &n.content {
                for (_, _, ids) in kids {
                    for &i in ids {
                        if let Some(r) = refs.get_mut(i) {
                            *r = r.saturating_add(1);
                        }
                    }
                }
            }
        }
        self.take_json(root, 0, &refs)
    }

    fn take_json(&mut self, id: NodeId, depth: usize, refs: &[u32]) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err("target tree too deep (cycle?)".into());
        }
        if refs.get(id).copied().unwrap_or(0) > 1 {
            return self.to_json_depth(id, depth);
        }
        let node = self
            .nodes
            .get_mut(id)
            .ok_or_else(|| format!("dangling node {id}"))?;
        let content = std::mem::replace(&mut node.content, Content::Prim(Value::Null));
        let writes_type =
            depth == 0 || node.resource_slot || matches!(node.ctx, Some(TypeCtx::R4(_)));
        let rt = node
            .ctx
            .as_ref()
            .and_then(TypeCtx::resource_type)
            .filter(|_| writes_type)
            .map(str::to_string);
        match content {
            Content::Prim(v) => Ok(v),
            Content::Json(v) => Ok(Arc::try_unwrap(v).unwrap_or_else(|a| (*a).clone())),
            Content::Src(v) => Ok(v.clone()),
            Content::Obj(kids) => {
                let mut m = Map::new();
                if let Some(rt) = rt {
                    m.insert("resourceType".into(), Value::String(rt));
                }
                for (name, repeats, ids) in kids {
                    if ids.is_empty() {
                        continue;
                    }
                    if repeats {
                        let mut a = Vec::with_capacity(ids.len());
                        for c in ids {
                            a.push(self.take_json(c, depth + 1, refs)?);
                        }
                        m.insert(name, Value::Array(a));
                    } else if let Some(&last) = ids.last() {
                        let v = self.take_json(last, depth + 1, refs)?;
                        m.insert(name, v);
                    }
                }
                Ok(Value::Object(m))
            }
        }
    }

    fn to_json_depth(&self, id: NodeId, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err("target tree too deep (cycle?)".into());
        }
        let node = self
            .nodes
            .get(id)
            .ok_or_else(|| format!("dangling node {id}"))?;
        match &node.content {
            Content::Prim(v) => Ok(v.clone()),
            Content::Json(v) => Ok((**v).clone()),
            Content::Src(v) => Ok((*v).clone()),
            Content::Obj(kids) => {
                let mut m = Map::new();
                let ctx = node.ctx.as_ref();
                let writes_type =
                    depth == 0 || node.resource_slot || matches!(ctx, Some(TypeCtx::R4(_)));
                if let Some(rt) = ctx.and_then(TypeCtx::resource_type).filter(|_| writes_type) {
                    m.insert("resourceType".into(), Value::String(rt.to_string()));
                }
                for (name, repeats, ids) in kids {
                    if ids.is_empty() {
                        continue;
                    }
                    if *repeats {
                        let mut a = Vec::with_capacity(ids.len());
                        for &c in ids {
                            a.push(self.to_json_depth(c, depth + 1)?);
                        }
                        m.insert(name.clone(), Value::Array(a));
                    } else if let Some(&last) = ids.last() {
                        m.insert(name.clone(), self.to_json_depth(last, depth + 1)?);
                    }
                }
                Ok(Value::Object(m))
            }
        }
    }
}

/// `valueCoding` is a value of choice element `value`.
pub fn is_choice_of(json_name: &str, base: &str) -> bool {
    json_name.len() > base.len()
        && json_name.starts_with(base)
        && json_name[base.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_uppercase())
}
