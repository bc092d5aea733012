//! Microversion negotiation: `OpenStack-API-Version: <service> X.Y` and the
//! legacy `X-OpenStack-Nova-API-Version`, with `latest`, the 406 for versions
//! outside the supported range and the echo on every response.

use std::fmt;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, ErrorKind};

pub const HEADER: &str = "openstack-api-version";

/// A `major.minor` API version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Microversion {
    pub major: u32,
    pub minor: u32,
}

impl Microversion {
    pub const fn new(major: u32, minor: u32) -> Self {
        Microversion { major, minor }
    }

    pub fn parse(text: &str) -> Option<Self> {
        let (major, minor) = text.trim().split_once('.')?;
        Some(Microversion {
            major: major.parse().ok()?,
            minor: minor.parse().ok()?,
        })
    }

    /// True when the negotiated version is at least `major.minor`.
    pub fn at_least(self, major: u32, minor: u32) -> bool {
        self >= Microversion::new(major, minor)
    }
}

impl fmt::Display for Microversion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The versions one service supports and the headers it reads.
#[derive(Clone, Copy, Debug)]
pub struct VersionRange {
    /// The service name in `OpenStack-API-Version` (`compute`, `placement`).
    pub service: &'static str,
    /// A legacy per-service header, such as `X-OpenStack-Nova-API-Version`.
    pub legacy_header: Option<&'static str>,
    pub min: Microversion,
    pub max: Microversion,
}

impl VersionRange {
    /// Picks the version for a request. No header means the minimum.
    pub fn negotiate(&self, headers: &HeaderMap) -> Result<Microversion, ApiError> {
        let Some(requested) = self.requested(headers) else {
            return Ok(self.min);
        };
        if requested.eq_ignore_ascii_case("latest") {
            return Ok(self.max);
        }
        let version = Microversion::parse(&requested).ok_or_else(|| {
            ApiError::bad_request(format!(
                "Version string '{requested}' is not valid; send a version such as {}.",
                self.min
            ))
        })?;
        if version < self.min || version > self.max {
            return Err(ApiError::new(
                ErrorKind::NotAcceptable,
                format!(
                    "Version {version} is not supported by the API. Minimum is {} and maximum is {}.",
                    self.min, self.max
                ),
            ));
        }
        Ok(version)
    }

    fn requested(&self, headers: &HeaderMap) -> Option<String> {
        // `OpenStack-API-Version` may name several services, comma separated
        // or repeated; only our service's entry counts.
        for value in headers.get_all(HEADER) {
            let Ok(text) = value.to_str() else { continue };
            for entry in text.split(',') {
                let mut words = entry.split_whitespace();
                if words
                    .next()
                    .is_some_and(|s| s.eq_ignore_ascii_case(self.service))
                {
                    if let Some(version) = words.next() {
                        return Some(version.to_owned());
                    }
                }
            }
        }
        let legacy = self.legacy_header?;
        headers
            .get(legacy)?
            .to_str()
            .ok()
            .map(|v| v.trim().to_owned())
    }

    fn echo(&self, headers: &mut HeaderMap, version: Microversion) {
        let value = format!("{} {version}", self.service);
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HEADER, value);
        }
        if let Some(legacy) = self.legacy_header {
            if let Ok(value) = HeaderValue::from_str(&version.to_string()) {
                headers.insert(legacy, value);
            }
        }
        let vary = match self.legacy_header {
            Some(legacy) => format!("OpenStack-API-Version, {legacy}"),
            None => "OpenStack-API-Version".to_owned(),
        };
        if let Ok(value) = HeaderValue::from_str(&vary) {
            headers.insert(axum::http::header::VARY, value);
        }
    }
}

/// Middleware that negotiates the version, stores it in the request
/// extensions for handlers and echoes it on the response (errors included).
pub async fn negotiate(range: VersionRange, mut request: Request, next: Next) -> Response {
    let version = match range.negotiate(request.headers()) {
        Ok(version) => version,
        Err(error) => {
            let mut response = error.into_response();
            range.echo(response.headers_mut(), range.min);
            return response;
        }
    };
    request.extensions_mut().insert(version);
    let mut response = next.run(request).await;
    range.echo(response.headers_mut(), version);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOVA: VersionRange = VersionRange {
        service: "compute",
        legacy_header: Some("x-openstack-nova-api-version"),
        min: Microversion::new(2, 1),
        max: Microversion::new(2, 60),
    };

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn missing_header_means_minimum() {
        assert_eq!(
            NOVA.negotiate(&HeaderMap::new()).unwrap(),
            Microversion::new(2, 1)
        );
    }

    #[test]
    fn latest_means_maximum() {
        let h = headers(&[("openstack-api-version", "compute latest")]);
        assert_eq!(NOVA.negotiate(&h).unwrap(), Microversion::new(2, 60));
    }

    #[test]
    fn entry_for_other_service_is_ignored() {
        let h = headers(&[("openstack-api-version", "volume 3.5, compute 2.10")]);
        assert_eq!(NOVA.negotiate(&h).unwrap(), Microversion::new(2, 10));
    }

    #[test]
    fn legacy_header_is_read() {
        let h = headers(&[("x-openstack-nova-api-version", "2.37")]);
        assert_eq!(NOVA.negotiate(&h).unwrap(), Microversion::new(2, 37));
    }

    #[test]
    fn out_of_range_is_not_acceptable() {
        let h = headers(&[("openstack-api-version", "compute 2.200")]);
        let error = NOVA.negotiate(&h).unwrap_err();
        assert_eq!(error.kind, ErrorKind::NotAcceptable);
        assert!(
            error.message.contains("maximum is 2.60"),
            "{}",
            error.message
        );
    }

    #[test]
    fn garbage_is_bad_request() {
        let h = headers(&[("openstack-api-version", "compute two")]);
        assert_eq!(NOVA.negotiate(&h).unwrap_err().kind, ErrorKind::BadRequest);
    }

    #[test]
    fn versions_compare_numerically() {
        assert!(Microversion::new(2, 10) > Microversion::new(2, 9));
        assert!(Microversion::new(2, 10).at_least(2, 9));
    }
}
