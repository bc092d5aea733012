//! `/v3/projects`, including the project hierarchy and tags.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use oxstack_core::validate::JsonBody;
use oxstack_core::{body_schema, ApiError, RequestContext};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    bool_param, description_schema, list_body, opt_str, self_link, short_name_schema, tags_schema,
    QueryMap,
};
use crate::db::projects::{self, Project, ProjectFilter};
use crate::policy::authorize;
use crate::{Identity, IdentityState};

pub fn routes() -> Router<IdentityState> {
    Router::new()
        .route("/v3/projects", get(list).post(create))
        .route(
            "/v3/projects/{project_id}",
            get(show).patch(update).delete(remove),
        )
        .route(
            "/v3/projects/{project_id}/tags",
            get(list_tags).put(replace_tags).delete(clear_tags),
        )
        .route(
            "/v3/projects/{project_id}/tags/{tag}",
            get(check_tag).put(add_tag).delete(remove_tag),
        )
        .route("/v3/users/{user_id}/projects", get(list_for_user))
}

pub fn render(state: &Identity, project: &Project) -> Value {
    json!({
        "id": project.id,
        "name": project.name,
        "domain_id": project.domain_id,
        "parent_id": project.parent_id.clone().unwrap_or_else(|| project.domain_id.clone()),
        "description": project.description,
        "enabled": project.enabled,
        "is_domain": false,
        "tags": project.tags,
        "options": project.options,
        "links": self_link(state, &format!("projects/{}", project.id)),
    })
}

#[derive(Deserialize)]
pub struct ProjectBody {
    project: Value,
}

body_schema!(
    ProjectBody,
    json!({
        "type": "object",
        "required": ["project"],
        "properties": {"project": {
            "type": "object",
            "properties": {
                "name": short_name_schema(),
                "description": description_schema(),
                "domain_id": {"type": ["string", "null"], "minLength": 1, "maxLength": 64},
                "parent_id": {"type": ["string", "null"], "minLength": 1, "maxLength": 64},
                "enabled": {"type": "boolean"},
                "is_domain": {"type": "boolean"},
                "tags": tags_schema(),
                "options": {"type": "object"}
            }
        }}
    })
);

pub async fn find(state: &Identity, id: &str) -> Result<Project, ApiError> {
    projects::get(state.pool(), id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Could not find project: {id}.")))
}

fn target(project: &Project) -> Value {
    json!({"project": {"id": project.id, "domain_id": project.domain_id}})
}

async fn list(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    query: QueryMap,
) -> Result<Json<Value>, ApiError> {
    let domain_id = query.get("domain_id").cloned();
    authorize(
        &state,
        &ctx,
        "identity:list_projects",
        &json!({"domain_id": domain_id}),
    )?;
    let filter = ProjectFilter {
        name: query.get("name").cloned(),
        domain_id,
        parent_id: query.get("parent_id").cloned(),
        enabled: bool_param(&query, "enabled")?,
        ids: None,
    };
    if bool_param(&query, "is_domain")? == Some(true) {
        return Ok(Json(list_body(&state, "projects", "projects", Vec::new())));
    }
    let items = projects::list(state.pool(), &filter)
        .await?
        .iter()
        .filter(|p| tags_match(p, &query))
        .map(|p| render(&state, p))
        .collect();
    Ok(Json(list_body(&state, "projects", "projects", items)))
}

// `tags` (all of), `tags-any`, `not-tags`, `not-tags-any`, comma separated.
fn tags_match(project: &Project, query: &std::collections::HashMap<String, String>) -> bool {
    let has = |tag: &str| {
        project
            .tags
            .as_array()
            .is_some_and(|t| t.iter().any(|v| v.as_str() == Some(tag)))
    };
    let split = |key: &str| {
        query
            .get(key)
            .map(|v| v.split(',').map(str::to_owned).collect::<Vec<_>>())
    };
    split("tags").is_none_or(|t| t.iter().all(|x| has(x)))
        && split("tags-any").is_none_or(|t| t.iter().any(|x| has(x)))
        && split("not-tags").is_none_or(|t| !t.iter().all(|x| has(x)))
        && split("not-tags-any").is_none_or(|t| !t.iter().any(|x| has(x)))
}

async fn create(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    JsonBody(body): JsonBody<ProjectBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let input = body.project;
    let name = opt_str(&input, "name").ok_or_else(|| {
        ApiError::bad_request("Invalid input for field 'project.name': the field is required.")
    })?;
    if input.get("is_domain") == Some(&Value::Bool(true)) {
        return Err(ApiError::bad_request(
            "Projects acting as domains are not supported; create a domain with POST /v3/domains.",
        ));
    }
    let parent = match opt_str(&input, "parent_id") {
        Some(parent_id) => projects::get(state.pool(), &parent_id).await?,
        None => None,
    };
    let requested_domain = opt_str(&input, "domain_id");
    // A parent_id may name the domain itself, which means top level.
    let domain_id = match (&parent, opt_str(&input, "parent_id"), requested_domain) {
        (Some(parent), _, Some(domain)) if parent.domain_id != domain => {
            return Err(ApiError::bad_request(format!(
                "Project {} is in domain {}, not {domain}; a child project must be in its parent's domain.",
                parent.id, parent.domain_id
            )));
        }
        (Some(parent), _, _) => parent.domain_id.clone(),
        (None, Some(parent_id), _)
            if crate::db::domains::get(state.pool(), &parent_id)
                .await?
                .is_some() =>
        {
            parent_id
        }
        (None, Some(parent_id), _) => {
            return Err(ApiError::not_found(format!(
                "Could not find project: {parent_id}."
            )));
        }
        (None, None, Some(domain)) => domain,
        (None, None, None) => ctx
            .auth
            .project_domain_id
            .clone()
            .unwrap_or_else(|| "default".to_owned()),
    };
    authorize(
        &state,
        &ctx,
        "identity:create_project",
        &json!({"project": {"domain_id": domain_id}}),
    )?;
    let domain_exists = crate::db::domains::get(state.pool(), &domain_id)
        .await?
        .is_some();
    if !domain_exists {
        return Err(ApiError::not_found(format!(
            "Could not find domain: {domain_id}."
        )));
    }
    if let Some(parent) = &parent {
        let depth = projects::ancestors(state.pool(), parent).await?.len() + 2;
        if depth > projects::MAX_DEPTH {
            return Err(ApiError::forbidden(format!(
                "Max hierarchy depth reached for {} branch; projects may be nested {} deep.",
                parent.id,
                projects::MAX_DEPTH
            )));
        }
    }
    let project = Project {
        id: crate::db::new_id(),
        name,
        domain_id,
        parent_id: parent.map(|p| p.id),
        description: opt_str(&input, "description").unwrap_or_default(),
        enabled: input
            .get("enabled")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        tags: input.get("tags").cloned().unwrap_or(json!([])),
        options: input.get("options").cloned().unwrap_or(json!({})),
    };
    projects::insert(state.pool(), &project).await?;
    tracing::info!(project_id = %project.id, "created project");
    Ok((
        StatusCode::CREATED,
        Json(json!({ "project": render(&state, &project) })),
    ))
}

async fn show(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    query: QueryMap,
) -> Result<Json<Value>, ApiError> {
    // Authorise on what the caller named before looking it up, so a member
    // of another project learns nothing from 404 versus 403.
    let project = match projects::get(state.pool(), &id).await? {
        Some(project) => project,
        None => {
            authorize(
                &state,
                &ctx,
                "identity:get_project",
                &json!({"project": {"id": id}}),
            )?;
            return Err(ApiError::not_found(format!(
                "Could not find project: {id}."
            )));
        }
    };
    authorize(&state, &ctx, "identity:get_project", &target(&project))?;
    let mut body = render(&state, &project);
    if query.contains_key("parents_as_ids") || query.contains_key("parents_as_list") {
        let ancestors = projects::ancestors(state.pool(), &project).await?;
        body["parents"] = json!(ancestors);
    }
    if query.contains_key("subtree_as_ids") || query.contains_key("subtree_as_list") {
        let all = projects::list(state.pool(), &ProjectFilter::default()).await?;
        let subtree: Vec<&String> = all
            .iter()
            .filter(|p| p.parent_id.as_deref() == Some(project.id.as_str()))
            .map(|p| &p.id)
            .collect();
        body["subtree"] = json!(subtree);
    }
    Ok(Json(json!({ "project": body })))
}

async fn update(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ProjectBody>,
) -> Result<Json<Value>, ApiError> {
    let mut project = find(&state, &id).await?;
    authorize(&state, &ctx, "identity:update_project", &target(&project))?;
    let input = body.project;
    if input
        .get("domain_id")
        .and_then(Value::as_str)
        .is_some_and(|d| d != project.domain_id)
    {
        return Err(ApiError::bad_request(
            "Invalid input for field 'project.domain_id': a project cannot move to another domain.",
        ));
    }
    if input
        .get("parent_id")
        .and_then(Value::as_str)
        .is_some_and(|p| Some(p) != project.parent_id.as_deref() && p != project.domain_id)
    {
        return Err(ApiError::forbidden("Update of `parent_id` is not allowed."));
    }
    if input.get("is_domain") == Some(&Value::Bool(true)) {
        return Err(ApiError::bad_request(
            "Invalid input for field 'project.is_domain': it cannot be changed.",
        ));
    }
    if let Some(name) = opt_str(&input, "name") {
        project.name = name;
    }
    if let Some(description) = input.get("description") {
        project.description = description.as_str().unwrap_or_default().to_owned();
    }
    if let Some(enabled) = input.get("enabled").and_then(Value::as_bool) {
        project.enabled = enabled;
    }
    if let Some(tags) = input.get("tags") {
        project.tags = tags.clone();
    }
    if let Some(options) = input.get("options") {
        project.options = options.clone();
    }
    projects::update(state.pool(), &project).await?;
    Ok(Json(json!({ "project": render(&state, &project) })))
}

async fn remove(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let project = find(&state, &id).await?;
    authorize(&state, &ctx, "identity:delete_project", &target(&project))?;
    if projects::has_children(state.pool(), &id).await? {
        return Err(ApiError::forbidden(format!(
            "Cannot delete project {id}: it has child projects; delete them first."
        )));
    }
    projects::delete(state.pool(), &id).await?;
    tracing::info!(project_id = %id, "deleted project");
    Ok(StatusCode::NO_CONTENT)
}

async fn list_for_user(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path(user_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authorize(
        &state,
        &ctx,
        "identity:list_user_projects",
        &json!({"user": {"id": user_id}}),
    )?;
    if crate::db::users::get(state.pool(), &user_id)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found(format!(
            "Could not find user: {user_id}."
        )));
    }
    let ids: Vec<String> = super::auth::projects_of_user(&state, &user_id)
        .await?
        .into_iter()
        .collect();
    let filter = ProjectFilter {
        ids: Some(ids),
        ..Default::default()
    };
    let items = projects::list(state.pool(), &filter)
        .await?
        .iter()
        .map(|p| render(&state, p))
        .collect();
    Ok(Json(list_body(
        &state,
        "projects",
        &format!("users/{user_id}/projects"),
        items,
    )))
}

fn tag_list(project: &Project) -> Vec<String> {
    project
        .tags
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

async fn list_tags(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let project = find(&state, &id).await?;
    authorize(
        &state,
        &ctx,
        "identity:list_project_tags",
        &target(&project),
    )?;
    Ok(Json(json!({ "tags": tag_list(&project) })))
}

#[derive(Deserialize)]
pub struct TagsBody {
    tags: Vec<String>,
}

body_schema!(
    TagsBody,
    json!({"type": "object", "required": ["tags"], "properties": {"tags": tags_schema()}})
);

async fn replace_tags(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<TagsBody>,
) -> Result<Json<Value>, ApiError> {
    let mut project = find(&state, &id).await?;
    authorize(
        &state,
        &ctx,
        "identity:update_project_tags",
        &target(&project),
    )?;
    project.tags = json!(body.tags);
    projects::update(state.pool(), &project).await?;
    Ok(Json(
        json!({ "tags": body.tags, "links": self_link(&state, &format!("projects/{id}/tags")) }),
    ))
}

async fn clear_tags(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let mut project = find(&state, &id).await?;
    authorize(
        &state,
        &ctx,
        "identity:update_project_tags",
        &target(&project),
    )?;
    project.tags = json!([]);
    projects::update(state.pool(), &project).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn check_tag(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path((id, tag)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let project = find(&state, &id).await?;
    authorize(
        &state,
        &ctx,
        "identity:list_project_tags",
        &target(&project),
    )?;
    if tag_list(&project).contains(&tag) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "Tag {tag} is not on project {id}."
        )))
    }
}

async fn add_tag(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path((id, tag)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let mut project = find(&state, &id).await?;
    authorize(
        &state,
        &ctx,
        "identity:update_project_tags",
        &target(&project),
    )?;
    if tag.is_empty() || tag.chars().count() > 255 || tag.contains(',') || tag.contains('/') {
        return Err(ApiError::bad_request(
            "Invalid tag: tags are 1 to 255 characters without ',' or '/'.",
        ));
    }
    let mut tags = tag_list(&project);
    if !tags.contains(&tag) {
        if tags.len() >= 80 {
            return Err(ApiError::bad_request("A project may have at most 80 tags."));
        }
        tags.push(tag);
    }
    project.tags = json!(tags);
    projects::update(state.pool(), &project).await?;
    Ok(StatusCode::CREATED)
}

async fn remove_tag(
    State(state): State<IdentityState>,
    ctx: RequestContext,
    Path((id, tag)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let mut project = find(&state, &id).await?;
    authorize(
        &state,
        &ctx,
        "identity:update_project_tags",
        &target(&project),
    )?;
    let mut tags = tag_list(&project);
    let before = tags.len();
    tags.retain(|t| *t != tag);
    if tags.len() == before {
        return Err(ApiError::not_found(format!(
            "Tag {tag} is not on project {id}."
        )));
    }
    project.tags = json!(tags);
    projects::update(state.pool(), &project).await?;
    Ok(StatusCode::NO_CONTENT)
}
