//! Object stores behind table locations: S3 (and S3-compatible servers) through `object_store`.
//!
//! Settings come from the `[s3]` section of the config file; every key left unset there falls
//! back to the standard `AWS_*` environment variables (`AWS_ENDPOINT_URL`, `AWS_REGION`,
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_ALLOW_HTTP`).

use std::sync::Arc;

use datafusion::prelude::SessionContext;
use futures::StreamExt;
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use url::Url;

use super::{Error, Result};
use crate::config::S3Config;

/// The URL of an `s3://` or `s3a://` location, or `None` for other schemes.
pub fn s3_url(location: &str) -> Option<Url> {
    let lower = location.to_ascii_lowercase();
    if !(lower.starts_with("s3://") || lower.starts_with("s3a://")) {
        return None;
    }
    Url::parse(location).ok()
}

/// Builds an S3 store for the bucket of `url` and registers it with the session, so that
/// DataFusion's listing tables can read `s3://bucket/...` paths.
pub fn register_s3(
    ctx: &SessionContext,
    config: &S3Config,
    url: &Url,
    location: &str,
) -> Result<Arc<dyn ObjectStore>> {
    let bucket = url.host_str().ok_or_else(|| Error::LocationNotFound {
        location: location.to_string(),
    })?;
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    if let Some(v) = &config.endpoint {
        builder = builder.with_endpoint(v);
    }
    if let Some(v) = &config.region {
        builder = builder.with_region(v);
    }
    if let Some(v) = &config.access_key_id {
        builder = builder.with_access_key_id(v);
    }
    if let Some(v) = &config.secret_access_key {
        builder = builder.with_secret_access_key(v);
    }
    if let Some(v) = &config.session_token {
        builder = builder.with_token(v);
    }
    if let Some(v) = config.allow_http {
        builder = builder.with_allow_http(v);
    }
    if let Some(v) = config.virtual_hosted_style {
        builder = builder.with_virtual_hosted_style_request(v);
    }
    let store: Arc<dyn ObjectStore> =
        Arc::new(builder.build().map_err(|source| Error::S3Config {
            location: location.to_string(),
            source,
        })?);
    let base = Url::parse(&format!("{}://{bucket}", url.scheme())).map_err(|_| {
        Error::LocationNotFound {
            location: location.to_string(),
        }
    })?;
    ctx.register_object_store(&base, store.clone());
    Ok(store)
}

/// Fails with [`Error::LocationNotFound`] when nothing is stored under the location's prefix.
pub async fn check_prefix_exists(store: &dyn ObjectStore, url: &Url, location: &str) -> Result<()> {
    let prefix = url.path().trim_start_matches('/');
    let prefix = ObjectPath::from(prefix);
    let mut listing = store.list(Some(&prefix));
    match listing.next().await {
        Some(Ok(_)) => Ok(()),
        None => Err(Error::LocationNotFound {
            location: location.to_string(),
        }),
        Some(Err(object_store::Error::NotFound { .. })) => Err(Error::LocationNotFound {
            location: location.to_string(),
        }),
        Some(Err(source)) => Err(Error::LocationUnreadable {
            location: location.to_string(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_s3_locations() {
        assert!(s3_url("s3://bucket/events/").is_some());
        assert!(s3_url("S3A://bucket/x").is_some());
        assert!(s3_url("/data/events/").is_none());
        assert!(s3_url("file:///data").is_none());
    }

    #[tokio::test]
    async fn prefix_check_on_in_memory_store() {
        use object_store::{ObjectStoreExt, PutPayload, memory::InMemory};
        let store = InMemory::new();
        let url = Url::parse("s3://b/events/").unwrap();
        assert!(matches!(
            check_prefix_exists(&store, &url, "s3://b/events/").await,
            Err(Error::LocationNotFound { .. })
        ));
        store
            .put(
                &ObjectPath::from("events/date=2026-10-01/part-0.parquet"),
                PutPayload::from_static(b"x"),
            )
            .await
            .unwrap();
        check_prefix_exists(&store, &url, "s3://b/events/")
            .await
            .unwrap();
    }
}
