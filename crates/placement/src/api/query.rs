//! Query strings of placement's list endpoints: repeated keys, the
//! `resources=VCPU:1,MEMORY_MB:512` syntax, `required=A,!B` and
//! `member_of=in:AGG1,AGG2`.

use oxstack_core::ApiError;

use crate::model::{normalize_uuid, Resources, MAX_INT};

/// The decoded pairs of a query string, after checking every key is one
/// the endpoint accepts at this microversion.
pub struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    pub fn new(pairs: Vec<(String, String)>, allowed: &[&str]) -> Result<Self, ApiError> {
        Self::matching(pairs, |key| allowed.contains(&key), &allowed.join(", "))
    }

    /// Accepts the keys for which `is_allowed` is true; `expected` lists
    /// them for the error message.
    pub fn matching(
        pairs: Vec<(String, String)>,
        is_allowed: impl Fn(&str) -> bool,
        expected: &str,
    ) -> Result<Self, ApiError> {
        if let Some((key, _)) = pairs.iter().find(|(key, _)| !is_allowed(key)) {
            return Err(bad_value(format!(
                "Invalid query string parameters: '{key}' is not allowed; expected one of: {expected}."
            )));
        }
        Ok(QueryParams(pairs))
    }

    /// Returns the distinct keys, in order of first appearance.
    pub fn keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = Vec::new();
        for (key, _) in &self.0 {
            if !keys.contains(&key.as_str()) {
                keys.push(key);
            }
        }
        keys
    }

    /// Returns the single value of `key`; a repeated key is a 400.
    pub fn one<'a>(&'a self, key: &'a str) -> Result<Option<&'a str>, ApiError> {
        let mut values = self.all(key);
        let first = values.next();
        if values.next().is_some() {
            return Err(ApiError::bad_request(format!(
                "Query parameter '{key}' may be given only once."
            ))
            .with_type("placement.query.duplicate_key"));
        }
        Ok(first)
    }

    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn bad_value(message: String) -> ApiError {
    ApiError::bad_request(message).with_type(crate::error::CODE_QUERY_BAD_VALUE)
}

/// Parses `VCPU:1,MEMORY_MB:512`.
pub fn parse_resources(text: &str) -> Result<Resources, ApiError> {
    let mut resources = Resources::new();
    for item in text.split(',') {
        let parsed = item.split_once(':').and_then(|(class, amount)| {
            let amount: i64 = amount.trim().parse().ok()?;
            let class = class.trim();
            let valid = !class.is_empty()
                && class
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
            (valid && (1..=MAX_INT).contains(&amount)).then(|| (class.to_owned(), amount))
        });
        let Some((class, amount)) = parsed else {
            return Err(bad_value(format!(
                "Badly formed resources parameter. Expected resources query string parameter in form: ?resources=VCPU:2,MEMORY_MB:1024. Got: {text}."
            )));
        };
        if resources.insert(class.clone(), amount).is_some() {
            return Err(bad_value(format!(
                "Badly formed resources parameter: {class} appears more than once in {text}."
            )));
        }
    }
    Ok(resources)
}

/// Parses `required=A,B,!C` into required and forbidden traits; `!` is
/// accepted only when `allow_forbidden` (microversion 1.22 and later).
pub fn parse_required(
    text: &str,
    allow_forbidden: bool,
) -> Result<(Vec<String>, Vec<String>), ApiError> {
    let mut required = Vec::new();
    let mut forbidden = Vec::new();
    for item in text.split(',').map(str::trim) {
        let (name, list) = match item.strip_prefix('!') {
            Some(name) if allow_forbidden => (name, &mut forbidden),
            _ => (item, &mut required),
        };
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            return Err(bad_value(format!(
                "Invalid query string parameters: Expected 'required' parameter value of the form: HW_CPU_X86_VMX,{}CUSTOM_MAGIC. Got: {text}.",
                if allow_forbidden { "!" } else { "" }
            )));
        }
        list.push(name.to_owned());
    }
    Ok((required, forbidden))
}

/// Parses one `member_of` value, a UUID or `in:UUID1,UUID2`, into the
/// aggregates of which the provider must be in one.
pub fn parse_member_of(text: &str) -> Result<Vec<String>, ApiError> {
    let list = text.strip_prefix("in:").unwrap_or(text);
    list.split(',')
        .map(|item| {
            normalize_uuid(item.trim()).ok_or_else(|| {
                bad_value(format!(
                    "Invalid query string parameters: Expected 'member_of' parameter to contain valid UUID(s). Got: {text}."
                ))
            })
        })
        .collect()
}

/// Parses every `member_of` value; a repeat is allowed from microversion
/// 1.24 on.
pub fn parse_member_of_all(
    params: &QueryParams,
    allow_repeat: bool,
) -> Result<Vec<Vec<String>>, ApiError> {
    parse_member_of_key(params, "member_of", allow_repeat)
}

/// Parses every value of `key`, a `member_of` key with or without a
/// group suffix.
pub fn parse_member_of_key(
    params: &QueryParams,
    key: &str,
    allow_repeat: bool,
) -> Result<Vec<Vec<String>>, ApiError> {
    let groups: Vec<Vec<String>> = params
        .all(key)
        .map(parse_member_of)
        .collect::<Result<_, _>>()?;
    if groups.len() > 1 && !allow_repeat {
        return Err(bad_value(
            "Query parameter 'member_of' may be given only once before microversion 1.24.".into(),
        ));
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_parse_pairs() {
        let parsed = parse_resources("VCPU:1,MEMORY_MB:512").unwrap();
        assert_eq!(parsed["VCPU"], 1);
        assert_eq!(parsed["MEMORY_MB"], 512);
    }

    #[test]
    fn resources_reject_bad_forms() {
        for bad in ["VCPU", "VCPU:0", "vcpu:1", "VCPU:1,VCPU:2", "VCPU:x", ""] {
            assert!(parse_resources(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn required_splits_forbidden() {
        let (required, forbidden) = parse_required("HW_CPU_X86_AVX,!CUSTOM_SLOW", true).unwrap();
        assert_eq!(required, ["HW_CPU_X86_AVX"]);
        assert_eq!(forbidden, ["CUSTOM_SLOW"]);
        assert!(parse_required("!CUSTOM_SLOW", false).is_err());
    }

    #[test]
    fn member_of_accepts_in_list() {
        let a = "11111111-1111-1111-1111-111111111111";
        let b = "22222222-2222-2222-2222-222222222222";
        assert_eq!(parse_member_of(&format!("in:{a},{b}")).unwrap(), [a, b]);
        assert!(parse_member_of("in:nope").is_err());
    }
}
