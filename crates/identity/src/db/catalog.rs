//! Services, endpoints and regions: the service catalog.

use oxstack_core::ApiError;
use oxstack_store::{Pool, Row};
use sqlx::any::AnyRow;

use super::{db_error, new_id, now};

#[derive(Clone, Debug)]
pub struct Service {
    pub id: String,
    pub service_type: String,
    pub name: String,
    pub description: String,
    pub enabled: bool,
}

#[derive(Clone, Debug)]
pub struct Endpoint {
    pub id: String,
    pub service_id: String,
    pub interface: String,
    pub region_id: Option<String>,
    pub url: String,
    pub enabled: bool,
}

#[derive(Clone, Debug)]
pub struct Region {
    pub id: String,
    pub description: String,
    pub parent_region_id: Option<String>,
}

fn service_from_row(row: &AnyRow) -> Result<Service, sqlx::Error> {
    Ok(Service {
        id: row.try_get("id")?,
        service_type: row.try_get("type")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
    })
}

fn endpoint_from_row(row: &AnyRow) -> Result<Endpoint, sqlx::Error> {
    Ok(Endpoint {
        id: row.try_get("id")?,
        service_id: row.try_get("service_id")?,
        interface: row.try_get("interface")?,
        region_id: row.try_get("region_id")?,
        url: row.try_get("url")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
    })
}

fn region_from_row(row: &AnyRow) -> Result<Region, sqlx::Error> {
    Ok(Region {
        id: row.try_get("id")?,
        description: row.try_get("description")?,
        parent_region_id: row.try_get("parent_region_id")?,
    })
}

pub async fn list_services(pool: &Pool) -> Result<Vec<Service>, ApiError> {
    let rows =
        sqlx::query("SELECT id, type, name, description, enabled FROM services ORDER BY type, id")
            .fetch_all(pool)
            .await
            .map_err(db_error)?;
    rows.iter()
        .map(service_from_row)
        .collect::<Result<_, _>>()
        .map_err(db_error)
}

pub async fn get_service(pool: &Pool, id: &str) -> Result<Option<Service>, ApiError> {
    let row =
        sqlx::query("SELECT id, type, name, description, enabled FROM services WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await
            .map_err(db_error)?;
    row.as_ref()
        .map(service_from_row)
        .transpose()
        .map_err(db_error)
}

pub async fn insert_service(pool: &Pool, service: &Service) -> Result<(), ApiError> {
    sqlx::query("INSERT INTO services (id, type, name, description, enabled, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(&service.id)
        .bind(&service.service_type)
        .bind(&service.name)
        .bind(&service.description)
        .bind(i64::from(service.enabled))
        .bind(now())
        .execute(pool)
        .await
        .map_err(db_error)?;
    Ok(())
}

pub async fn update_service(pool: &Pool, service: &Service) -> Result<(), ApiError> {
    sqlx::query(
        "UPDATE services SET type = $2, name = $3, description = $4, enabled = $5 WHERE id = $1",
    )
    .bind(&service.id)
    .bind(&service.service_type)
    .bind(&service.name)
    .bind(&service.description)
    .bind(i64::from(service.enabled))
    .execute(pool)
    .await
    .map_err(db_error)?;
    Ok(())
}

pub async fn delete_service(pool: &Pool, id: &str) -> Result<(), ApiError> {
    let mut tx = pool.begin().await.map_err(db_error)?;
    for sql in [
        "DELETE FROM endpoints WHERE service_id = $1",
        "DELETE FROM services WHERE id = $1",
    ] {
        sqlx::query(sql)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
    }
    tx.commit().await.map_err(db_error)
}

pub async fn list_endpoints(pool: &Pool) -> Result<Vec<Endpoint>, ApiError> {
    let rows = sqlx::query("SELECT id, service_id, interface, region_id, url, enabled FROM endpoints ORDER BY service_id, interface, id")
        .fetch_all(pool)
        .await
        .map_err(db_error)?;
    rows.iter()
        .map(endpoint_from_row)
        .collect::<Result<_, _>>()
        .map_err(db_error)
}

pub async fn get_endpoint(pool: &Pool, id: &str) -> Result<Option<Endpoint>, ApiError> {
    let row = sqlx::query(
        "SELECT id, service_id, interface, region_id, url, enabled FROM endpoints WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
    .map_err(db_error)?;
    row.as_ref()
        .map(endpoint_from_row)
        .transpose()
        .map_err(db_error)
}

pub async fn insert_endpoint(pool: &Pool, endpoint: &Endpoint) -> Result<(), ApiError> {
    sqlx::query("INSERT INTO endpoints (id, service_id, interface, region_id, url, enabled, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(&endpoint.id)
        .bind(&endpoint.service_id)
        .bind(&endpoint.interface)
        .bind(&endpoint.region_id)
        .bind(&endpoint.url)
        .bind(i64::from(endpoint.enabled))
        .bind(now())
        .execute(pool)
        .await
        .map_err(db_error)?;
    Ok(())
}

pub async fn update_endpoint(pool: &Pool, endpoint: &Endpoint) -> Result<(), ApiError> {
    sqlx::query("UPDATE endpoints SET service_id = $2, interface = $3, region_id = $4, url = $5, enabled = $6 WHERE id = $1")
        .bind(&endpoint.id)
        .bind(&endpoint.service_id)
        .bind(&endpoint.interface)
        .bind(&endpoint.region_id)
        .bind(&endpoint.url)
        .bind(i64::from(endpoint.enabled))
        .execute(pool)
        .await
        .map_err(db_error)?;
    Ok(())
}

pub async fn delete_endpoint(pool: &Pool, id: &str) -> Result<(), ApiError> {
    sqlx::query("DELETE FROM endpoints WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await
        .map_err(db_error)?;
    Ok(())
}

pub async fn list_regions(pool: &Pool) -> Result<Vec<Region>, ApiError> {
    let rows = sqlx::query("SELECT id, description, parent_region_id FROM regions ORDER BY id")
        .fetch_all(pool)
        .await
        .map_err(db_error)?;
    rows.iter()
        .map(region_from_row)
        .collect::<Result<_, _>>()
        .map_err(db_error)
}

pub async fn get_region(pool: &Pool, id: &str) -> Result<Option<Region>, ApiError> {
    let row = sqlx::query("SELECT id, description, parent_region_id FROM regions WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
        .map_err(db_error)?;
    row.as_ref()
        .map(region_from_row)
        .transpose()
        .map_err(db_error)
}

pub async fn insert_region(pool: &Pool, region: &Region) -> Result<(), ApiError> {
    let result = sqlx::query("INSERT INTO regions (id, description, parent_region_id, created_at) VALUES ($1, $2, $3, $4)")
        .bind(&region.id)
        .bind(&region.description)
        .bind(&region.parent_region_id)
        .bind(now())
        .execute(pool)
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(e) if oxstack_store::is_unique_violation(&e) => Err(ApiError::conflict(format!(
            "Conflict occurred attempting to store region - Duplicate ID, {}.",
            region.id
        ))),
        Err(e) => Err(db_error(e)),
    }
}

pub async fn update_region(pool: &Pool, region: &Region) -> Result<(), ApiError> {
    sqlx::query("UPDATE regions SET description = $2, parent_region_id = $3 WHERE id = $1")
        .bind(&region.id)
        .bind(&region.description)
        .bind(&region.parent_region_id)
        .execute(pool)
        .await
        .map_err(db_error)?;
    Ok(())
}

pub async fn delete_region(pool: &Pool, id: &str) -> Result<(), ApiError> {
    sqlx::query("DELETE FROM regions WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Deletes the regions `ids` in one transaction, in the given order. List
/// children before their parents: `parent_region_id` is a foreign key.
pub async fn delete_regions(pool: &Pool, ids: &[String]) -> Result<(), ApiError> {
    let mut tx = pool.begin().await.map_err(db_error)?;
    for id in ids {
        sqlx::query("DELETE FROM regions WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
    }
    tx.commit().await.map_err(db_error)
}

/// Makes sure `service_type` has exactly the given endpoints (one per
/// interface) in `region`, creating the service, region and endpoints as
/// needed and correcting URLs that changed. Used at every start, so a
/// resumed deployment neither duplicates entries nor keeps stale URLs.
pub async fn ensure_service(
    pool: &Pool,
    service_type: &str,
    name: &str,
    region: &str,
    endpoints: &[(&str, String)],
) -> Result<(), ApiError> {
    if get_region(pool, region).await?.is_none() {
        insert_region(
            pool,
            &Region {
                id: region.to_owned(),
                description: String::new(),
                parent_region_id: None,
            },
        )
        .await?;
    }
    let services = list_services(pool).await?;
    let service = match services
        .into_iter()
        .find(|s| s.service_type == service_type)
    {
        Some(service) => service,
        None => {
            let service = Service {
                id: new_id(),
                service_type: service_type.to_owned(),
                name: name.to_owned(),
                description: String::new(),
                enabled: true,
            };
            insert_service(pool, &service).await?;
            service
        }
    };
    let existing = list_endpoints(pool).await?;
    for (interface, url) in endpoints {
        let found = existing.iter().find(|e| {
            e.service_id == service.id
                && e.interface == *interface
                && e.region_id.as_deref() == Some(region)
        });
        match found {
            Some(endpoint) if endpoint.url == *url => {}
            Some(endpoint) => {
                let mut updated = endpoint.clone();
                updated.url = url.clone();
                update_endpoint(pool, &updated).await?;
            }
            None => {
                let endpoint = Endpoint {
                    id: new_id(),
                    service_id: service.id.clone(),
                    interface: interface.to_string(),
                    region_id: Some(region.to_owned()),
                    url: url.clone(),
                    enabled: true,
                };
                insert_endpoint(pool, &endpoint).await?;
            }
        }
    }
    Ok(())
}
