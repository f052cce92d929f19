//! The schema cache: every collection with its rules parsed once.
//!
//! 1. Rebuilt (never mutated) whenever a commit changes collections; readers hold an `Arc`.
//! 2. A rule is `Locked` (null: superusers only), `Open` ("": everyone) or a parsed expression.
//! 3. Rules are named by [`RuleKind`]; `RuleKind::as_str` is the one place their JSON keys
//!    (`"listRule"`, ...) are spelled. A rule a collection's type does not have (`authRule` of
//!    a base collection) reads as its stored value, which is absent and so `Locked`.

use super::collection::Collection;
use super::field::FieldType;
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

/// The rules of a collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleKind {
    /// `listRule`: who may list and search records (and subscribe to the collection).
    List,
    /// `viewRule`: who may view one record (and subscribe to it).
    View,
    /// `createRule`.
    Create,
    /// `updateRule`.
    Update,
    /// `deleteRule`.
    Delete,
    /// `manageRule` (auth collections): who may manage other users' auth fields.
    Manage,
    /// `authRule` (auth collections): who may authenticate.
    Auth,
    /// `restoreRule` (base and auth collections, pocketlog's own): who may restore a deleted
    /// record or revert one to an earlier version, besides the create or update rule.
    Restore,
}

impl RuleKind {
    /// Every rule.
    pub const ALL: [RuleKind; 8] = [
        RuleKind::List,
        RuleKind::View,
        RuleKind::Create,
        RuleKind::Update,
        RuleKind::Delete,
        RuleKind::Manage,
        RuleKind::Auth,
        RuleKind::Restore,
    ];
    /// The five rules every collection has, in PocketBase's JSON order.
    pub const RECORD: [RuleKind; 5] = [
        RuleKind::List,
        RuleKind::View,
        RuleKind::Create,
        RuleKind::Update,
        RuleKind::Delete,
    ];
    /// The rules only auth collections have, in PocketBase's JSON order.
    pub const AUTH: [RuleKind; 2] = [RuleKind::Auth, RuleKind::Manage];

    /// The collection JSON key (`"listRule"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::List => "listRule",
            RuleKind::View => "viewRule",
            RuleKind::Create => "createRule",
            RuleKind::Update => "updateRule",
            RuleKind::Delete => "deleteRule",
            RuleKind::Manage => "manageRule",
            RuleKind::Auth => "authRule",
            RuleKind::Restore => "restoreRule",
        }
    }

    /// The rule a collection JSON key names; `None` for any other key.
    pub fn parse(key: &str) -> Option<RuleKind> {
        RuleKind::ALL.into_iter().find(|kind| kind.as_str() == key)
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for RuleKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// All collections and their parsed rules.
#[derive(Default)]
pub struct Schema {
    /// Collections in creation order.
    pub collections: Vec<Arc<Collection>>,
    /// Collection id → its rules, indexed by [`RuleKind`].
    rules: HashMap<String, [Rule; RuleKind::ALL.len()]>,
    infos: Vec<rules::CollectionInfo>,
}

impl Schema {
    /// Builds the cache (parsing every rule once).
    pub fn new(collections: Vec<Collection>) -> Schema {
        let collections: Vec<Arc<Collection>> = collections.into_iter().map(Arc::new).collect();
        let mut rules_map = HashMap::new();
        for collection in &collections {
            let parsed = RuleKind::ALL.map(|kind| match collection.rule(kind) {
                None => Rule::Locked,
                Some(text) if text.trim().is_empty() => Rule::Open,
                Some(text) => match rules::parse_rule(text) {
                    Ok(expr) => Rule::Expr(Arc::new(expr)),
                    Err(err) => {
                        tracing::warn!(collection = %collection.name, rule = %kind, error = %err, "stored rule does not parse; locking it");
                        Rule::Locked
                    }
                },
            });
            rules_map.insert(collection.id.clone(), parsed);
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
    pub fn rule(&self, collection_id: &str, kind: RuleKind) -> Rule {
        self.rules
            .get(collection_id)
            .map(|rules| rules[kind.index()].clone())
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
        kind: collection.kind,
        fields: collection
            .fields
            .iter()
            .map(|f| rules::FieldInfo {
                name: f.name().to_string(),
                kind: f.rule_kind(),
                hidden: f.hidden()
                    || f.kind() == FieldType::Password
                    || (collection.is_auth() && f.name() == "tokenKey"),
            })
            .collect(),
        list_rule: collection.rule(RuleKind::List).map(str::to_string),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_kinds_round_trip_their_json_key() {
        for kind in RuleKind::ALL {
            assert_eq!(RuleKind::parse(kind.as_str()), Some(kind));
            assert_eq!(RuleKind::ALL[kind.index()], kind);
        }
        assert_eq!(RuleKind::parse("listrule"), None);
        assert_eq!(RuleKind::parse("rule"), None);
    }
}
