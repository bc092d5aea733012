//! `limit`/`marker` pagination and the `next` links that tell clients where
//! the following page starts.

use crate::error::ApiError;

/// The paging part of a list request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: Option<usize>,
    pub marker: Option<String>,
}

impl PageRequest {
    /// Reads `limit` and `marker` from query pairs. A `limit` above
    /// `max_limit` is capped, as OpenStack services do; a negative or
    /// non-numeric one is rejected.
    pub fn from_query(pairs: &[(String, String)], max_limit: usize) -> Result<Self, ApiError> {
        let mut page = PageRequest::default();
        for (key, value) in pairs {
            match key.as_str() {
                "limit" => {
                    if value.is_empty() || !value.bytes().all(|byte| byte.is_ascii_digit()) {
                        return Err(ApiError::bad_request(format!(
                            "Invalid limit '{value}': limit must be a non-negative integer."
                        )));
                    }
                    // A number too large for usize is still a valid
                    // request for the largest page.
                    let limit = value.parse::<usize>().unwrap_or(usize::MAX);
                    page.limit = Some(limit.min(max_limit));
                }
                "marker" => page.marker = Some(value.clone()),
                _ => {}
            }
        }
        Ok(page)
    }
}

/// One page of a sorted list and whether more follow.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The id to pass as `marker` for the next page, when the page is full.
    pub next_marker: Option<String>,
}

/// Cuts one page out of `items`, which must already be in list order. The
/// page starts after the item whose id is the marker; an unknown marker is a
/// 400 naming it (Nova's and Neutron's answer).
pub fn paginate<T>(
    items: Vec<T>,
    page: &PageRequest,
    id_of: impl Fn(&T) -> &str,
) -> Result<Page<T>, ApiError> {
    let start = match &page.marker {
        None => 0,
        Some(marker) => {
            let position = items.iter().position(|item| id_of(item) == marker);
            position
                .map(|p| p + 1)
                .ok_or_else(|| ApiError::bad_request(format!("marker [{marker}] not found")))?
        }
    };
    let mut items: Vec<T> = items.into_iter().skip(start).collect();
    let mut next_marker = None;
    if let Some(limit) = page.limit {
        if items.len() > limit {
            items.truncate(limit);
        }
        if limit > 0 && items.len() == limit {
            next_marker = items.last().map(|item| id_of(item).to_owned());
        }
    }
    Ok(Page { items, next_marker })
}

/// Builds the `next` link: `base` with the request's query, its `marker`
/// replaced by `next_marker`.
pub fn next_link(base: &str, query: &[(String, String)], next_marker: &str) -> String {
    let mut pairs: Vec<(&str, &str)> = query
        .iter()
        .filter(|(k, _)| k != "marker")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    pairs.push(("marker", next_marker));
    let encoded: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode_component(k), encode_component(v)))
        .collect();
    format!("{base}?{}", encoded.join("&"))
}

fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("id{i}")).collect()
    }

    fn page(limit: Option<usize>, marker: Option<&str>) -> PageRequest {
        PageRequest {
            limit,
            marker: marker.map(str::to_owned),
        }
    }

    #[test]
    fn full_page_has_next_marker() {
        let result = paginate(ids(5), &page(Some(2), None), |s| s).unwrap();
        assert_eq!(result.items, vec!["id0", "id1"]);
        assert_eq!(result.next_marker.as_deref(), Some("id1"));
    }

    #[test]
    fn marker_starts_after_item() {
        let result = paginate(ids(5), &page(Some(2), Some("id3")), |s| s).unwrap();
        assert_eq!(result.items, vec!["id4"]);
        assert_eq!(result.next_marker, None);
    }

    #[test]
    fn unknown_marker_is_rejected() {
        let error = paginate(ids(3), &page(None, Some("nope")), |s| s).unwrap_err();
        assert!(error.message.contains("nope"));
    }

    #[test]
    fn limit_is_capped_and_validated() {
        let pairs = vec![("limit".to_owned(), "5000".to_owned())];
        assert_eq!(
            PageRequest::from_query(&pairs, 1000).unwrap().limit,
            Some(1000)
        );
        let huge = vec![("limit".to_owned(), "99999999999999999999".to_owned())];
        assert_eq!(
            PageRequest::from_query(&huge, 1000).unwrap().limit,
            Some(1000)
        );
        for bad in ["-1", "", "1.5", "ten"] {
            let pairs = vec![("limit".to_owned(), bad.to_owned())];
            assert!(PageRequest::from_query(&pairs, 1000).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn next_link_replaces_marker() {
        let query = vec![
            ("limit".to_owned(), "2".to_owned()),
            ("marker".to_owned(), "old".to_owned()),
            ("name".to_owned(), "a b".to_owned()),
        ];
        assert_eq!(
            next_link("http://h/v2.0/networks", &query, "id9"),
            "http://h/v2.0/networks?limit=2&name=a%20b&marker=id9"
        );
    }
}
