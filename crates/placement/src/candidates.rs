//! Allocation candidates: the providers that can satisfy a request for
//! resources, with the traits and aggregates it requires.
// NOTE: each candidate is one provider holding every requested class.
// Requests spread over a provider tree (nested providers) or over sharing
// providers find no candidate.

use std::collections::BTreeMap;

use crate::error::PlacementError;
use crate::model::{ProviderId, Resources};
use crate::snapshot::Snapshot;
use crate::PlacementService;

/// A scheduler's request, as the query of `GET /allocation_candidates`.
#[derive(Clone, Debug, Default)]
pub struct CandidateRequest {
    /// Amount by resource class; at least one class.
    pub resources: Resources,
    /// Traits the provider must have.
    pub required: Vec<String>,
    /// Traits the provider must not have.
    pub forbidden: Vec<String>,
    /// Every group must contain one of the provider's aggregates.
    pub member_of: Vec<Vec<String>>,
    /// The maximum number of candidates to return.
    pub limit: Option<usize>,
}

/// One way to satisfy a request.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub provider: ProviderId,
    /// The resources to claim on the provider, as requested.
    pub allocations: Resources,
    /// Capacity and current usage of each requested class on the provider,
    /// for weighing candidates.
    pub summary: BTreeMap<String, ClassSummary>,
}

/// Capacity (`(total - reserved) * allocation_ratio`) and usage of a class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassSummary {
    pub capacity: i64,
    pub used: i64,
}

impl PlacementService {
    /// Returns the providers that can hold `request` now, in provider UUID
    /// order, at most `request.limit` of them.
    pub async fn allocation_candidates(
        &self,
        request: &CandidateRequest,
    ) -> Result<Vec<Candidate>, PlacementError> {
        Ok(self.candidates_with_snapshot(request).await?.0)
    }

    /// Returns the candidates and the snapshot they were chosen from, which
    /// the HTTP API renders provider summaries from.
    pub async fn candidates_with_snapshot(
        &self,
        request: &CandidateRequest,
    ) -> Result<(Vec<Candidate>, Snapshot), PlacementError> {
        if request.resources.is_empty() {
            return Err(PlacementError::BadRequest(
                "Badly formed resources parameter: request at least one resource class.".into(),
            ));
        }
        let snapshot = Snapshot::load(self.pool()).await?;
        let mut providers: Vec<&ProviderId> = snapshot.inventories.keys().collect();
        providers.sort();

        let mut candidates = Vec::new();
        for provider in providers {
            if request.limit.is_some_and(|limit| candidates.len() >= limit) {
                break;
            }
            let eligible = snapshot.fits(provider, &request.resources)
                && snapshot.has_traits(provider, &request.required, &request.forbidden)
                && snapshot.in_aggregates(provider, &request.member_of);
            if eligible {
                candidates.push(candidate(&snapshot, provider, &request.resources));
            }
        }
        Ok((candidates, snapshot))
    }
}

fn candidate(snapshot: &Snapshot, provider: &ProviderId, resources: &Resources) -> Candidate {
    let inventories = &snapshot.inventories[provider];
    let summary = resources
        .keys()
        .map(|class| {
            let summary = ClassSummary {
                capacity: inventories[class].capacity(),
                used: snapshot.used(provider, class),
            };
            (class.clone(), summary)
        })
        .collect();
    Candidate {
        provider: provider.clone(),
        allocations: resources.clone(),
        summary,
    }
}
