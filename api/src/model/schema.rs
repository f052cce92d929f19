//! The schema cache: every collection with its rules parsed once.
//!
//! 1. Rebuilt (never mutated) whenever a commit changes collections; readers hold an `Arc`.
//! 2. A rule is `Locked` (null: superusers only), `Open` ("": everyone) or a parsed expression.

use super::collection::Collection;
use std::collections::HashMap;
use std::sync::Arc;

/// A parsed rule.
#[derive(Debug, Clone)]
pub enum Rule {
    /// `null`: superusers only.
    Locked,
    /// `""`: everyone.
    Open,
    /// An expression.
    Expr(Arc<rules::Expr>),
}

/// All collections and their parsed rules.
#[derive(Default)]
pub struct Schema {
    /// Collections in creation order.
    pub collections: Vec<Arc<Collection>>,
    rules: HashMap<(String, &'static str), Rule>,
    infos: Vec<rules::CollectionInfo>,
}

const ALL_RULES: &[&str] = &[
    "listRule",
    "viewRule",
    "createRule",
    "updateRule",
    "deleteRule",
    "authRule",
    "manageRule",
];

impl Schema {
    /// Builds the cache (parsing every rule once).
    pub fn new(collections: Vec<Collection>) -> Schema {
        let collections: Vec<Arc<Collection>> = collections.into_iter().map(Arc::new).collect();
        let mut rules_map = HashMap::new();
        for collection in &collections {
            for key in ALL_RULES {
                let rule = match collection.rule(key) {
                    None => Rule::Locked,
                    Some(text) if text.trim().is_empty() => Rule::Open,
                    Some(text) => match rules::parse_rule(text) {
                        Ok(expr) => Rule::Expr(Arc::new(expr)),
                        Err(err) => {
                            tracing::warn!(collection = %collection.name, rule = key, error = %err, "stored rule does not parse; locking it");
                            Rule::Locked
                        }
                    },
                };
                rules_map.insert((collection.id.clone(), *key), rule);
            }
        }
        let infos = collections.iter().map(|c| collection_info(c)).collect();
        Schema {
            collections,
            rules: rules_map,
            infos,
        }
    }

    /// A collection by id or name (names case-insensitively).
    pub fn find(&self, id_or_name: &str) -> Option<&Arc<Collection>> {
        self.collections
            .iter()
            .find(|c| c.id == id_or_name)
            .or_else(|| {
                self.collections
                    .iter()
                    .find(|c| c.name.eq_ignore_ascii_case(id_or_name))
            })
    }

    /// A parsed rule of a collection.
    pub fn rule(&self, collection_id: &str, key: &str) -> Rule {
        ALL_RULES
            .iter()
            .find(|k| **k == key)
            .and_then(|k| self.rules.get(&(collection_id.to_string(), *k)))
            .cloned()
            .unwrap_or(Rule::Locked)
    }

    /// The rules crate's view of a collection.
    pub fn info(&self, collection_id: &str) -> Option<&rules::CollectionInfo> {
        self.infos.iter().find(|i| i.id == collection_id)
    }
}

fn collection_info(collection: &Collection) -> rules::CollectionInfo {
    rules::CollectionInfo {
        id: collection.id.clone(),
        name: collection.name.clone(),
        kind: match collection.kind.as_str() {
            "auth" => rules::CollectionKind::Auth,
            "view" => rules::CollectionKind::View,
            _ => rules::CollectionKind::Base,
        },
        fields: collection
            .fields
            .iter()
            .map(|f| rules::FieldInfo {
                name: f.name().to_string(),
                kind: f.rule_kind(),
                hidden: f.hidden()
                    || f.kind() == "password"
                    || (collection.is_auth() && f.name() == "tokenKey"),
            })
            .collect(),
        list_rule: collection.rule("listRule").map(str::to_string),
    }
}

impl rules::Schema for Schema {
    fn find(&self, name_or_id: &str) -> Option<&rules::CollectionInfo> {
        self.infos.iter().find(|i| i.id == name_or_id).or_else(|| {
            self.infos
                .iter()
                .find(|i| i.name.eq_ignore_ascii_case(name_or_id))
        })
    }
    fn all(&self) -> Vec<&rules::CollectionInfo> {
        self.infos.iter().collect()
    }
}
