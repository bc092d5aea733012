//! `GET /v2/images`: Glance's filters, sort orders and marker pagination.
//!
//! The database narrows the rows to what the caller may list; filters and
//! sorting then run in memory.
//! NOTE: each list call reads every image the caller may list, which is
//! fine for thousands of images and slow for millions.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use oxstack_core::ApiError;

use crate::db::images::{self, ListScope};
use crate::model::{Image, ImageId, MemberStatus, Visibility};
use crate::policy::{self, Caller};
use crate::ImageService;

/// Sort keys Glance accepts.
const SORT_KEYS: &[&str] = &[
    "name",
    "status",
    "container_format",
    "disk_format",
    "size",
    "id",
    "created_at",
    "updated_at",
];

/// A parsed list request.
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    pub limit: Option<usize>,
    pub marker: Option<String>,
    /// `(key, descending)` pairs, most significant first.
    pub sort: Vec<(String, bool)>,
    /// `None` means every status (`member_status=all`).
    pub member_status: Option<MemberStatus>,
    pub visibility: Option<Visibility>,
    pub all_visibilities: bool,
    pub os_hidden: bool,
    pub tags: Vec<String>,
    pub filters: Vec<Filter>,
}

/// One attribute condition.
#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    /// `name`, `id`, `status`, `disk_format`, `container_format`, `owner`,
    /// `checksum`, `os_hash_value` or an extra property: the value is one of these.
    OneOf {
        key: String,
        values: Vec<String>,
    },
    /// `size_min`, `size_max`, `size`, `min_disk`, `min_ram`.
    Number {
        key: String,
        cmp: NumberCmp,
        value: i64,
    },
    Protected(bool),
    /// `created_at` / `updated_at` against unix seconds.
    Time {
        key: String,
        op: TimeOp,
        at: i64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumberCmp {
    AtLeast,
    AtMost,
    Equal,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeOp {
    Gt,
    Gte,
    Lt,
    Lte,
    Eq,
    Neq,
}

impl ListQuery {
    /// Parses query pairs as Glance does.
    pub fn parse(
        pairs: &[(String, String)],
        default_limit: usize,
        max_limit: usize,
    ) -> Result<Self, ApiError> {
        let mut query = ListQuery {
            limit: Some(default_limit.min(max_limit)),
            member_status: Some(MemberStatus::Accepted),
            ..ListQuery::default()
        };
        let (mut sort_keys, mut sort_dirs, mut new_sort) = (Vec::new(), Vec::new(), None);
        for (key, value) in pairs {
            match key.as_str() {
                "limit" => query.limit = Some(parse_limit(value)?.min(max_limit)),
                "marker" => query.marker = Some(value.clone()),
                "sort" => new_sort = Some(value.clone()),
                "sort_key" => sort_keys.push(check_sort_key(value.trim())?),
                "sort_dir" => sort_dirs.push(check_sort_dir(value.trim())?),
                "member_status" => {
                    query.member_status = match value.as_str() {
                        "all" => None,
                        other => Some(other.parse().map_err(|_| {
                            ApiError::bad_request(format!("Invalid status: {other}"))
                        })?),
                    }
                }
                "tag" => query.tags.push(value.trim().to_owned()),
                _ => query.parse_filter(key, value)?,
            }
        }
        query.sort = match new_sort {
            Some(_) if !sort_keys.is_empty() || !sort_dirs.is_empty() => {
                return Err(ApiError::bad_request(
                    "Old and new sorting syntax cannot be combined",
                ));
            }
            Some(spec) => parse_new_sort(&spec)?,
            None => combine_sort(sort_keys, sort_dirs)?,
        };
        Ok(query)
    }

    fn parse_filter(&mut self, key: &str, value: &str) -> Result<(), ApiError> {
        match key {
            "visibility" if value == "all" => self.all_visibilities = true,
            "visibility" => self.visibility = Some(value.parse().map_err(ApiError::bad_request)?),
            "os_hidden" => self.os_hidden = parse_bool("os_hidden", value)?,
            "protected" => self
                .filters
                .push(Filter::Protected(parse_bool("protected", value)?)),
            "changes-since" => {
                return Err(ApiError::bad_request(
                    "The \"changes-since\" filter is no longer available on v2.",
                ));
            }
            "size_min" | "size_max" | "size" | "min_disk" | "min_ram" => {
                let number = value.trim().parse::<i64>().map_err(|_| {
                    ApiError::bad_request("Unable to filter on a range with a non-numeric value.")
                })?;
                let (key, cmp) = match key {
                    "size_min" => ("size", NumberCmp::AtLeast),
                    "size_max" => ("size", NumberCmp::AtMost),
                    other => (other, NumberCmp::Equal),
                };
                self.filters.push(Filter::Number {
                    key: key.to_owned(),
                    cmp,
                    value: number,
                });
            }
            "created_at" | "updated_at" => self.filters.push(parse_time_filter(key, value)?),
            // Glance keeps no deleted images visible; the flag changes nothing.
            "deleted" => {}
            _ => self.filters.push(Filter::OneOf {
                key: key.to_owned(),
                values: split_values(value),
            }),
        }
        Ok(())
    }
}

fn parse_limit(value: &str) -> Result<usize, ApiError> {
    let limit: i64 = value
        .trim()
        .parse()
        .map_err(|_| ApiError::bad_request("limit param must be an integer"))?;
    usize::try_from(limit).map_err(|_| ApiError::bad_request("limit param must be positive"))
}

fn check_sort_key(key: &str) -> Result<String, ApiError> {
    if SORT_KEYS.contains(&key) {
        return Ok(key.to_owned());
    }
    Err(ApiError::bad_request(format!(
        "Invalid sort key: {key}. It must be one of the following: {}.",
        SORT_KEYS.join(", ")
    )))
}

fn check_sort_dir(dir: &str) -> Result<bool, ApiError> {
    match dir {
        "asc" => Ok(false),
        "desc" => Ok(true),
        _ => Err(ApiError::bad_request(format!(
            "Invalid sort direction: {dir}"
        ))),
    }
}

/// Parses `sort=name:asc,size:desc`; a key without a direction is `desc`.
fn parse_new_sort(spec: &str) -> Result<Vec<(String, bool)>, ApiError> {
    spec.trim()
        .split(',')
        .map(|part| {
            let (key, dir) = part.split_once(':').unwrap_or((part, "desc"));
            Ok((check_sort_key(key.trim())?, check_sort_dir(dir.trim())?))
        })
        .collect()
}

/// Pairs `sort_key`s with `sort_dir`s: one direction applies to every key,
/// several must match the keys one to one.
fn combine_sort(keys: Vec<String>, dirs: Vec<bool>) -> Result<Vec<(String, bool)>, ApiError> {
    if dirs.len() > 1 && dirs.len() != keys.len() {
        return Err(ApiError::bad_request(
            "Number of sort dirs does not match the number of sort keys",
        ));
    }
    let keys = if keys.is_empty() {
        vec!["created_at".to_owned()]
    } else {
        keys
    };
    let default_desc = dirs.first().copied().unwrap_or(true);
    Ok(keys
        .into_iter()
        .enumerate()
        .map(|(i, key)| (key, dirs.get(i).copied().unwrap_or(default_desc)))
        .collect())
}

fn parse_bool(name: &str, value: &str) -> Result<bool, ApiError> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "Invalid value '{value}' for '{name}' filter. Valid values are 'true' or 'false'."
        ))),
    }
}

/// Splits Glance's `in:a,b,"c,d"` and `eq:x` operators off a value. A value
/// with any other prefix before a colon is taken whole, so names such as
/// `ubuntu:22.04` filter as themselves.
fn split_values(value: &str) -> Vec<String> {
    if let Some(list) = value.strip_prefix("in:") {
        return split_quoted(list);
    }
    vec![value.strip_prefix("eq:").unwrap_or(value).trim().to_owned()]
}

/// Splits at commas outside double quotes and removes the quotes.
fn split_quoted(list: &str) -> Vec<String> {
    let mut values = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for ch in list.chars() {
        match ch {
            '"' => quoted = !quoted,
            ',' if !quoted => values.push(std::mem::take(&mut current).trim().to_owned()),
            _ => current.push(ch),
        }
    }
    values.push(current.trim().to_owned());
    values
}

fn parse_time_filter(key: &str, value: &str) -> Result<Filter, ApiError> {
    let (op, time) = match value.split_once(':') {
        Some((op, rest)) if ["gt", "gte", "lt", "lte", "eq", "neq"].contains(&op) => (op, rest),
        _ => ("eq", value),
    };
    let op = match op {
        "gt" => TimeOp::Gt,
        "gte" => TimeOp::Gte,
        "lt" => TimeOp::Lt,
        "lte" => TimeOp::Lte,
        "neq" => TimeOp::Neq,
        _ => TimeOp::Eq,
    };
    let at = oxstack_core::time::parse(time.trim()).ok_or_else(|| {
        ApiError::bad_request(format!(
            "Bad \"{key}\" query filter format. Use ISO 8601 DateTime notation."
        ))
    })?;
    Ok(Filter::Time {
        key: key.to_owned(),
        op,
        at: at.timestamp(),
    })
}

/// One page of images and the marker of the next page when the page is full.
pub struct ImagePage {
    pub images: Vec<Image>,
    pub next_marker: Option<ImageId>,
}

/// Lists the images `caller` may see that match `query`.
pub async fn list(
    service: &ImageService,
    caller: &Caller,
    query: &ListQuery,
) -> Result<ImagePage, ApiError> {
    let target = policy::project_target(caller.project_id.as_deref(), caller.project_id.as_deref());
    policy::enforce(&service.policy, caller, "get_images", &target)?;

    let scope = if caller.is_admin {
        ListScope::All
    } else {
        ListScope::Project {
            project_id: caller.project_id.clone(),
            member_status: query.member_status,
        }
    };
    let candidates = images::list(service.pool(), &scope).await?;
    let marker = match &query.marker {
        Some(marker) => Some(
            candidates
                .iter()
                .find(|image| image.id.as_str() == marker)
                .cloned()
                .ok_or_else(|| ApiError::bad_request(format!("No image found with ID {marker}")))?,
        ),
        None => None,
    };

    let mut matching: Vec<Image> = candidates
        .into_iter()
        .filter(|image| matches(image, caller, query))
        .collect();
    let order = full_order(&query.sort);
    matching.sort_by(|a, b| compare(a, b, &order));
    if let Some(marker) = &marker {
        matching.retain(|image| compare(image, marker, &order) == Ordering::Greater);
    }
    let limit = query.limit.unwrap_or(usize::MAX);
    matching.truncate(limit);
    let next_marker =
        (limit > 0 && matching.len() == limit).then(|| matching[limit - 1].id.clone());
    Ok(ImagePage {
        images: matching,
        next_marker,
    })
}

/// Adds `created_at` and `id` as tie-breakers, in the first key's direction,
/// so every order is total and markers are stable.
fn full_order(sort: &[(String, bool)]) -> Vec<(String, bool)> {
    let mut order = sort.to_vec();
    let default_desc = sort.first().map(|(_, desc)| *desc).unwrap_or(true);
    for key in ["created_at", "id"] {
        if !order.iter().any(|(k, _)| k == key) {
            order.push((key.to_owned(), default_desc));
        }
    }
    order
}

fn compare(a: &Image, b: &Image, order: &[(String, bool)]) -> Ordering {
    for (key, desc) in order {
        let ordering = match key.as_str() {
            "name" => a.name.cmp(&b.name),
            "status" => a.status.as_str().cmp(b.status.as_str()),
            "container_format" => a.container_format.cmp(&b.container_format),
            "disk_format" => a.disk_format.cmp(&b.disk_format),
            "size" => a.size.cmp(&b.size),
            "created_at" => a.created_at.cmp(&b.created_at),
            "updated_at" => a.updated_at.cmp(&b.updated_at),
            _ => a.id.cmp(&b.id),
        };
        let ordering = if *desc { ordering.reverse() } else { ordering };
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    Ordering::Equal
}

/// Applies Glance's visibility defaults and the query's filters.
fn matches(image: &Image, caller: &Caller, query: &ListQuery) -> bool {
    let visibility_ok = match query.visibility {
        Some(visibility) => image.visibility == visibility,
        None if query.all_visibilities => true,
        // Community images are listed only when asked for, or to their owner.
        None => image.visibility != Visibility::Community || caller.owns(image),
    };
    visibility_ok
        && image.os_hidden == query.os_hidden
        && query.tags.iter().all(|tag| image.tags.contains(tag))
        && query
            .filters
            .iter()
            .all(|filter| filter_matches(image, filter))
}

fn filter_matches(image: &Image, filter: &Filter) -> bool {
    match filter {
        Filter::Protected(protected) => image.protected == *protected,
        Filter::OneOf { key, values } => {
            text_attribute(image, key).is_some_and(|text| values.iter().any(|v| v == text))
        }
        Filter::Number { key, cmp, value } => {
            let actual = match key.as_str() {
                "size" => image.size.map(|s| s as i64),
                "min_disk" => Some(image.min_disk),
                _ => Some(image.min_ram),
            };
            actual.is_some_and(|actual| match cmp {
                NumberCmp::AtLeast => actual >= *value,
                NumberCmp::AtMost => actual <= *value,
                NumberCmp::Equal => actual == *value,
            })
        }
        Filter::Time { key, op, at } => {
            let actual = if key == "created_at" {
                image.created_at
            } else {
                image.updated_at
            };
            match op {
                TimeOp::Gt => actual > *at,
                TimeOp::Gte => actual >= *at,
                TimeOp::Lt => actual < *at,
                TimeOp::Lte => actual <= *at,
                TimeOp::Eq => actual == *at,
                TimeOp::Neq => actual != *at,
            }
        }
    }
}

fn text_attribute<'a>(image: &'a Image, key: &str) -> Option<&'a str> {
    match key {
        "name" => image.name.as_deref(),
        "id" => Some(image.id.as_str()),
        "status" => Some(image.status.as_str()),
        "disk_format" => image.disk_format.as_deref(),
        "container_format" => image.container_format.as_deref(),
        "owner" => image.owner.as_deref(),
        "checksum" => image.checksum.as_deref(),
        "os_hash_value" => image.os_hash_value.as_deref(),
        "os_hash_algo" => image.os_hash_algo.as_deref(),
        other => property(&image.properties, other),
    }
}

fn property<'a>(properties: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
    properties.get(key).map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_glance_defaults() {
        let query = ListQuery::parse(&[], 25, 1000).unwrap();
        assert_eq!(query.limit, Some(25));
        assert_eq!(query.sort, vec![("created_at".to_owned(), true)]);
        assert_eq!(query.member_status, Some(MemberStatus::Accepted));
        assert!(!query.os_hidden);
    }

    #[test]
    fn in_operator_splits_quoted_values() {
        let query = ListQuery::parse(
            &pairs(&[("id", "in:a,b"), ("name", "in:\"x,y\",z")]),
            25,
            1000,
        )
        .unwrap();
        assert_eq!(
            query.filters[0],
            Filter::OneOf {
                key: "id".into(),
                values: vec!["a".into(), "b".into()]
            }
        );
        assert_eq!(
            query.filters[1],
            Filter::OneOf {
                key: "name".into(),
                values: vec!["x,y".into(), "z".into()]
            }
        );
    }

    #[test]
    fn sort_syntaxes_cannot_mix() {
        let error = ListQuery::parse(
            &pairs(&[("sort", "name:asc"), ("sort_key", "size")]),
            25,
            1000,
        )
        .unwrap_err();
        assert!(
            error.message.contains("cannot be combined"),
            "{}",
            error.message
        );
        let query = ListQuery::parse(&pairs(&[("sort", "name:asc,size")]), 25, 1000).unwrap();
        assert_eq!(
            query.sort,
            vec![("name".to_owned(), false), ("size".to_owned(), true)]
        );
    }

    #[test]
    fn bad_values_are_rejected() {
        for bad in [
            ("limit", "-1"),
            ("limit", "x"),
            ("sort_key", "owner"),
            ("visibility", "world"),
            ("os_hidden", "maybe"),
            ("size_min", "big"),
            ("member_status", "x"),
            ("created_at", "gt:yesterday"),
            ("changes-since", "2020-01-01T00:00:00Z"),
        ] {
            assert!(
                ListQuery::parse(&pairs(&[bad]), 25, 1000).is_err(),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn limit_is_capped() {
        let query = ListQuery::parse(&pairs(&[("limit", "5000")]), 25, 1000).unwrap();
        assert_eq!(query.limit, Some(1000));
    }

    #[test]
    fn name_with_colon_is_taken_whole() {
        assert_eq!(split_values("ubuntu:22.04"), vec!["ubuntu:22.04"]);
        assert_eq!(split_values("eq:a:b"), vec!["a:b"]);
    }
}
