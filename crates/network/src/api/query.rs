//! List requests as Neutron reads them: filters on any attribute (repeat a
//! key to match any of several values), `tags` filters, `fields=`
//! selection, `sort_key`/`sort_dir`, and `limit`/`marker`/`page_reverse`
//! with `<collection>_links`. It works on rendered JSON objects, so every
//! resource shares it.

use std::cmp::Ordering;

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;

use oxstack_core::pagination::{next_link, paginate, PageRequest};
use oxstack_core::ApiError;
use serde_json::{json, Map, Value};

use super::body::bad_request;

/// The query string as ordered pairs, with repeated keys kept. A query
/// that does not decode is Neutron's `HTTPBadRequest`.
pub struct QueryPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(pairs) = Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| {
                bad_request(format!("Invalid query string: {}", rejection.body_text()))
            })?;
        Ok(QueryPairs(pairs))
    }
}

/// Query keys that are not attribute filters.
const CONTROL_KEYS: &[&str] = &[
    "fields",
    "limit",
    "marker",
    "sort_key",
    "sort_dir",
    "page_reverse",
    "tags",
    "tags-any",
    "not-tags",
    "not-tags-any",
];

/// The largest page a client can ask for.
const MAX_LIMIT: usize = 1000;

/// The parts of a list request.
pub struct ListQuery {
    pairs: Vec<(String, String)>,
    page: PageRequest,
    page_reverse: bool,
    sort: Vec<(String, bool)>,
    pub fields: Vec<String>,
    /// Filter keys the caller applies itself (a port's `fixed_ips`).
    skipped: Vec<&'static str>,
}

impl ListQuery {
    /// Reads the query pairs; `sortable` names the attributes that
    /// `sort_key` may name.
    pub fn parse(pairs: Vec<(String, String)>, sortable: &[&str]) -> Result<Self, ApiError> {
        let mut page = PageRequest::from_query(&pairs, MAX_LIMIT)
            .map_err(|e| e.with_type("HTTPBadRequest"))?;
        // Neutron reads limit=0 as "no limit".
        if page.limit == Some(0) {
            page.limit = None;
        }
        let values = |key: &str| -> Vec<String> {
            pairs
                .iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .collect()
        };
        let page_reverse = values("page_reverse")
            .iter()
            .any(|v| v.eq_ignore_ascii_case("true"));
        let fields = values("fields")
            .into_iter()
            .filter(|f| !f.is_empty())
            .collect();
        let sort = parse_sort(&values("sort_key"), &values("sort_dir"), sortable)?;
        Ok(ListQuery {
            pairs,
            page,
            page_reverse,
            sort,
            fields,
            skipped: Vec::new(),
        })
    }

    /// Leaves filter `key` out of `matches`, for a resource that applies
    /// it with its own meaning.
    pub fn skip_filter(mut self, key: &'static str) -> Self {
        self.skipped.push(key);
        self
    }

    /// Filters, sorts and pages `items` and wraps them as the body of a
    /// list of `collection`, whose absolute URL is `base_url`.
    pub fn respond(
        &self,
        collection: &str,
        base_url: &str,
        items: Vec<Value>,
    ) -> Result<Value, ApiError> {
        let mut items: Vec<Value> = items
            .into_iter()
            .filter(|item| self.matches(item))
            .collect();
        items.sort_by(|a, b| self.compare(a, b));
        if self.page_reverse {
            items.reverse();
        }

        let page = paginate(items, &self.page, id_of).map_err(|e| e.with_type("HTTPBadRequest"))?;
        let mut page_items = page.items;
        if self.page_reverse {
            page_items.reverse();
        }
        let links = self.links(base_url, &page_items, page.next_marker.is_some());
        let selected: Vec<Value> = page_items
            .into_iter()
            .map(|item| select_fields(item, &self.fields))
            .collect();

        let mut body = Map::new();
        body.insert(collection.to_owned(), Value::Array(selected));
        if !links.is_empty() {
            body.insert(format!("{collection}_links"), Value::Array(links));
        }
        Ok(Value::Object(body))
    }

    /// Returns true when `item` passes every attribute and tag filter.
    /// Filters on attributes the item does not have are ignored, as Neutron
    /// ignores unknown filters.
    pub fn matches(&self, item: &Value) -> bool {
        let mut keys: Vec<&str> = self.pairs.iter().map(|(k, _)| k.as_str()).collect();
        keys.dedup();
        let attributes_match = keys
            .iter()
            .filter(|key| !CONTROL_KEYS.contains(key) && !self.skipped.contains(key))
            .all(|key| {
                let Some(actual) = item.get(*key) else {
                    return true;
                };
                self.pairs
                    .iter()
                    .filter(|(k, _)| k == key)
                    .any(|(_, expected)| value_matches(actual, expected))
            });
        attributes_match && self.tags_match(item)
    }

    fn tags_match(&self, item: &Value) -> bool {
        let has = |tag: &str| {
            item["tags"]
                .as_array()
                .is_some_and(|tags| tags.iter().any(|t| t == tag))
        };
        let lists = |key: &str| -> Vec<Vec<String>> {
            self.pairs
                .iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v.split(',').map(str::to_owned).collect())
                .collect()
        };
        lists("tags").iter().all(|tags| tags.iter().all(|t| has(t)))
            && lists("tags-any")
                .iter()
                .all(|tags| tags.iter().any(|t| has(t)))
            && lists("not-tags")
                .iter()
                .all(|tags| !tags.iter().all(|t| has(t)))
            && lists("not-tags-any")
                .iter()
                .all(|tags| !tags.iter().any(|t| has(t)))
    }

    fn compare(&self, a: &Value, b: &Value) -> Ordering {
        for (key, ascending) in &self.sort {
            let order = compare_values(&a[key.as_str()], &b[key.as_str()]);
            let order = if *ascending { order } else { order.reverse() };
            if order != Ordering::Equal {
                return order;
            }
        }
        compare_values(&a["id"], &b["id"])
    }

    // Returns a `next` link when the page is full and a `previous` link when
    // the page did not start at the beginning. Both need `limit`.
    fn links(&self, base_url: &str, items: &[Value], full_page: bool) -> Vec<Value> {
        let (Some(first), Some(last)) = (items.first(), items.last()) else {
            return Vec::new();
        };
        if self.page.limit.is_none() {
            return Vec::new();
        }
        let forward: Vec<(String, String)> = self
            .pairs
            .iter()
            .filter(|(k, _)| k != "page_reverse")
            .cloned()
            .collect();
        let mut backward = forward.clone();
        backward.push(("page_reverse".to_owned(), "True".to_owned()));

        let mut links = Vec::new();
        let (more_ahead, more_behind) = if self.page_reverse {
            (self.page.marker.is_some(), full_page)
        } else {
            (full_page, self.page.marker.is_some())
        };
        if more_ahead {
            links.push(json!({"rel": "next", "href": next_link(base_url, &forward, id_of(last))}));
        }
        if more_behind {
            links.push(
                json!({"rel": "previous", "href": next_link(base_url, &backward, id_of(first))}),
            );
        }
        links
    }
}

fn parse_sort(
    keys: &[String],
    dirs: &[String],
    sortable: &[&str],
) -> Result<Vec<(String, bool)>, ApiError> {
    if !dirs.is_empty() && dirs.len() != keys.len() {
        return Err(bad_request(
            "The number of sort_keys and sort_dirs must be same",
        ));
    }
    let mut sort = Vec::new();
    for (index, key) in keys.iter().enumerate() {
        if !sortable.contains(&key.as_str()) {
            return Err(bad_request(format!(
                "{key} is invalid attribute for sort_key"
            )));
        }
        let ascending = match dirs.get(index).map(String::as_str) {
            None | Some("asc") => true,
            Some("desc") => false,
            Some(other) => {
                return Err(bad_request(format!(
                    "{other} is invalid value for sort_dir"
                )))
            }
        };
        sort.push((key.clone(), ascending));
    }
    Ok(sort)
}

fn id_of(item: &Value) -> &str {
    item["id"].as_str().unwrap_or_default()
}

/// Compares a rendered attribute with a filter value as Neutron converts
/// filters: booleans from `true`/`false`/`1`/`0`, numbers by value, lists
/// by any member.
fn value_matches(actual: &Value, expected: &str) -> bool {
    match actual {
        Value::String(text) => text == expected,
        Value::Bool(flag) => match expected.to_ascii_lowercase().as_str() {
            "true" | "1" => *flag,
            "false" | "0" => !*flag,
            _ => false,
        },
        Value::Number(number) => number.to_string() == expected,
        Value::Array(items) => items.iter().any(|item| value_matches(item, expected)),
        Value::Null => expected.is_empty() || expected == "None",
        Value::Object(_) => false,
    }
}

fn compare_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .unwrap_or_default()
            .partial_cmp(&y.as_f64().unwrap_or_default())
            .unwrap_or(Ordering::Equal),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        _ => a.to_string().cmp(&b.to_string()),
    }
}

/// Keeps only `fields` of `item`; all of it when `fields` is empty.
pub fn select_fields(item: Value, fields: &[String]) -> Value {
    if fields.is_empty() {
        return item;
    }
    let Value::Object(object) = item else {
        return item;
    };
    Value::Object(
        object
            .into_iter()
            .filter(|(key, _)| fields.contains(key))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn items() -> Vec<Value> {
        vec![
            json!({"id": "a", "name": "net1", "shared": false, "mtu": 1450, "tags": ["x", "y"]}),
            json!({"id": "b", "name": "net2", "shared": true, "mtu": 1500, "tags": ["y"]}),
            json!({"id": "c", "name": "net3", "shared": false, "mtu": 1400, "tags": []}),
        ]
    }

    fn ids(body: &Value, collection: &str) -> Vec<String> {
        body[collection]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect()
    }

    fn run(query: &[(&str, &str)]) -> Value {
        let query = ListQuery::parse(pairs(query), &["name", "mtu"]).unwrap();
        query
            .respond("networks", "http://h/v2.0/networks", items())
            .unwrap()
    }

    #[test]
    fn repeated_filter_matches_any_value() {
        assert_eq!(
            ids(&run(&[("name", "net1"), ("name", "net3")]), "networks"),
            vec!["a", "c"]
        );
    }

    #[test]
    fn boolean_and_number_filters() {
        assert_eq!(ids(&run(&[("shared", "True")]), "networks"), vec!["b"]);
        assert_eq!(ids(&run(&[("mtu", "1400")]), "networks"), vec!["c"]);
        assert_eq!(
            ids(&run(&[("unknown_attribute", "x")]), "networks"),
            vec!["a", "b", "c"]
        );
    }

    #[test]
    fn tag_filters() {
        assert_eq!(ids(&run(&[("tags", "x,y")]), "networks"), vec!["a"]);
        assert_eq!(
            ids(&run(&[("tags-any", "x,y")]), "networks"),
            vec!["a", "b"]
        );
        assert_eq!(
            ids(&run(&[("not-tags-any", "x")]), "networks"),
            vec!["b", "c"]
        );
    }

    #[test]
    fn fields_select_keys() {
        let body = run(&[("fields", "id"), ("fields", "name")]);
        assert_eq!(body["networks"][0], json!({"id": "a", "name": "net1"}));
    }

    #[test]
    fn sort_by_key_and_direction() {
        assert_eq!(
            ids(
                &run(&[("sort_key", "mtu"), ("sort_dir", "desc")]),
                "networks"
            ),
            vec!["b", "a", "c"]
        );
        let error = ListQuery::parse(pairs(&[("sort_key", "secret")]), &["name"])
            .err()
            .unwrap();
        assert_eq!(error.error_type, Some("HTTPBadRequest"));
        assert!(ListQuery::parse(
            pairs(&[("sort_key", "name"), ("sort_dir", "up")]),
            &["name"]
        )
        .is_err());
    }

    #[test]
    fn links_only_with_limit() {
        let body = run(&[]);
        assert!(body.get("networks_links").is_none());
        let body = run(&[("limit", "2")]);
        assert_eq!(ids(&body, "networks"), vec!["a", "b"]);
        let links = body["networks_links"].as_array().unwrap();
        assert_eq!(links.len(), 1);
        assert_eq!(links[0]["rel"], "next");
        assert_eq!(links[0]["href"], "http://h/v2.0/networks?limit=2&marker=b");
    }

    #[test]
    fn marker_page_has_previous_link() {
        let body = run(&[("limit", "2"), ("marker", "b")]);
        assert_eq!(ids(&body, "networks"), vec!["c"]);
        let links = body["networks_links"].as_array().unwrap();
        assert_eq!(links.len(), 1);
        assert_eq!(links[0]["rel"], "previous");
        assert_eq!(
            links[0]["href"],
            "http://h/v2.0/networks?limit=2&page_reverse=True&marker=c"
        );
    }

    #[test]
    fn page_reverse_returns_items_before_marker() {
        let body = run(&[("limit", "1"), ("marker", "c"), ("page_reverse", "True")]);
        assert_eq!(ids(&body, "networks"), vec!["b"]);
    }
}
