//! A driver described in configuration (a Codec Server's `storage`
//! section, payloadctl's flags), and building it.
//!
//! Credentials never come from here: S3 takes them from the standard AWS
//! variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`), a shared profile when the caller's lookup is
//! wrapped by [`AwsProfile::lookup`](crate::AwsProfile::lookup), web
//! identity, ECS container credentials or the instance metadata service;
//! GCS from `GOOGLE_APPLICATION_CREDENTIALS`, a service account file, or the
//! metadata server. The caller passes the
//! variable lookup in, so that libraries do not read the environment.

use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::local::LocalFileSystem;
use object_store::{BackoffConfig, ObjectStore, RetryConfig};
use serde::{Deserialize, Serialize};

use crate::codec::{DEFAULT_THRESHOLD, ExternalStorage};
use crate::http::HyperConnector;
use crate::object::{DriverLimits, ObjectStoreDriver};

/// The kinds of store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriverKind {
    /// Amazon S3 or an S3-compatible store (`endpoint`): the SDKs'
    /// `aws.s3driver`.
    S3,
    /// Google Cloud Storage: the SDKs' `gcp.gcsdriver`.
    Gcs,
    /// A directory on this machine (one machine only).
    Filesystem,
}

impl DriverKind {
    /// The driver name written into references by default.
    pub fn default_name(self) -> &'static str {
        match self {
            DriverKind::S3 => "aws.s3driver",
            DriverKind::Gcs => "gcp.gcsdriver",
            DriverKind::Filesystem => "payloadkit.fsdriver",
        }
    }
}

/// Where payloads are offloaded to and read from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSettings {
    /// `s3`, `gcs` or `filesystem`.
    pub driver: DriverKind,
    /// The bucket (S3, GCS).
    #[serde(default)]
    pub bucket: Option<String>,
    /// The store's URL, for S3-compatible stores and emulators
    /// (`http://127.0.0.1:9000`); plain `http://` is allowed only here.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The S3 region (else `AWS_REGION`, else `us-east-1`).
    #[serde(default)]
    pub region: Option<String>,
    /// The directory (filesystem).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// The driver name in references, when the writers use another one
    /// than the default (`aws.s3driver`, `gcp.gcsdriver`).
    #[serde(default)]
    pub name: Option<String>,
    /// Payloads of at least this many bytes (serialized, after the codecs)
    /// are offloaded by `/encode`.
    #[serde(default = "default_threshold")]
    pub threshold_bytes: usize,
    /// The largest stored payload written or read.
    #[serde(default = "default_max_object")]
    pub max_object_bytes: u64,
    /// Longest one object's transfer may take, retries included.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Objects moved at once by one request.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
}

fn default_threshold() -> usize {
    DEFAULT_THRESHOLD
}
fn default_max_object() -> u64 {
    DriverLimits::default().max_object_bytes
}
fn default_timeout() -> u64 {
    DriverLimits::default().timeout.as_secs()
}
fn default_concurrency() -> usize {
    DriverLimits::default().concurrency
}

/// A storage section cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// A required field is missing.
    #[error("the {driver} driver needs `{field}`")]
    Missing {
        /// The driver kind.
        driver: &'static str,
        /// The field.
        field: &'static str,
    },
    /// A value is out of range or malformed.
    #[error("`{field}`: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The object store client could not be set up.
    #[error("cannot set up the {driver} client: {reason}")]
    Client {
        /// The driver kind.
        driver: &'static str,
        /// Why.
        reason: String,
    },
}

/// The AWS variables passed to the S3 client.
const AWS_VARIABLES: [&str; 12] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_ENDPOINT_URL_STS",
];

/// The Google variables passed to the GCS client.
const GOOGLE_VARIABLES: [&str; 3] = [
    "GOOGLE_SERVICE_ACCOUNT",
    "GOOGLE_SERVICE_ACCOUNT_KEY",
    "GOOGLE_APPLICATION_CREDENTIALS",
];

impl StorageSettings {
    /// Whether the store is S3: the binaries then read the shared AWS
    /// profile for credentials.
    pub fn uses_aws(&self) -> bool {
        self.driver == DriverKind::S3
    }

    /// Settings for `driver` with every default.
    pub fn new(driver: DriverKind) -> Self {
        Self {
            driver,
            bucket: None,
            endpoint: None,
            region: None,
            path: None,
            name: None,
            threshold_bytes: default_threshold(),
            max_object_bytes: default_max_object(),
            timeout_secs: default_timeout(),
            concurrency: default_concurrency(),
        }
    }

    /// Checks the fields without building anything.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let kind = self.driver.default_name();
        match self.driver {
            DriverKind::S3 | DriverKind::Gcs => {
                if self.bucket.as_deref().is_none_or(str::is_empty) {
                    return Err(SettingsError::Missing {
                        driver: kind,
                        field: "bucket",
                    });
                }
            }
            DriverKind::Filesystem => {
                if self.path.is_none() {
                    return Err(SettingsError::Missing {
                        driver: kind,
                        field: "path",
                    });
                }
            }
        }
        if let Some(endpoint) = &self.endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err(SettingsError::Invalid {
                field: "endpoint",
                reason: format!("{endpoint:?} is not an http:// or https:// URL"),
            });
        }
        if self.timeout_secs == 0 {
            return Err(SettingsError::Invalid {
                field: "timeout_secs",
                reason: "must be at least 1".to_owned(),
            });
        }
        if self.concurrency == 0 {
            return Err(SettingsError::Invalid {
                field: "concurrency",
                reason: "must be at least 1".to_owned(),
            });
        }
        if self.max_object_bytes == 0 {
            return Err(SettingsError::Invalid {
                field: "max_object_bytes",
                reason: "must be at least 1".to_owned(),
            });
        }
        Ok(())
    }

    /// The driver's limits.
    pub fn limits(&self) -> DriverLimits {
        DriverLimits {
            max_object_bytes: self.max_object_bytes,
            concurrency: self.concurrency,
            timeout: Duration::from_secs(self.timeout_secs),
        }
    }

    /// Builds the storage: `env` looks up credential variables, `resolve`
    /// makes a relative filesystem path absolute (against the config file).
    pub fn build(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
        resolve: &dyn Fn(&Path) -> PathBuf,
    ) -> Result<ExternalStorage, SettingsError> {
        self.validate()?;
        let name = self
            .name
            .clone()
            .unwrap_or_else(|| self.driver.default_name().to_owned());
        let limits = self.limits();
        let (store, bucket, label): (Arc<dyn ObjectStore>, _, _) = match self.driver {
            DriverKind::S3 => {
                let bucket = self.bucket.clone().unwrap_or_default();
                let store = self.s3(&bucket, env)?;
                (
                    store,
                    Some(bucket.clone()),
                    format!("{name} bucket {bucket}"),
                )
            }
            DriverKind::Gcs => {
                let bucket = self.bucket.clone().unwrap_or_default();
                let store = self.gcs(&bucket, env)?;
                (
                    store,
                    Some(bucket.clone()),
                    format!("{name} bucket {bucket}"),
                )
            }
            DriverKind::Filesystem => {
                let root = resolve(self.path.as_deref().unwrap_or(Path::new(".")));
                std::fs::create_dir_all(&root).map_err(|e| SettingsError::Invalid {
                    field: "path",
                    reason: format!("cannot create {}: {e}", root.display()),
                })?;
                let store = LocalFileSystem::new_with_prefix(&root).map_err(|e| {
                    SettingsError::Invalid {
                        field: "path",
                        reason: format!("{}: {e}", root.display()),
                    }
                })?;
                let label = format!("{name} at {}", root.display());
                (Arc::new(store), None, label)
            }
        };
        let driver = ObjectStoreDriver::new(name, store, bucket, label, limits);
        Ok(ExternalStorage::new(Arc::new(driver)).with_threshold(self.threshold_bytes))
    }

    fn connector(&self) -> HyperConnector {
        HyperConnector {
            connect_timeout: Duration::from_secs(5).min(self.limits().timeout),
            request_timeout: self.limits().timeout,
        }
    }

    fn retry(&self) -> RetryConfig {
        RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(2),
                base: 2.0,
            },
            max_retries: 3,
            retry_timeout: self.limits().timeout,
        }
    }

    fn s3(
        &self,
        bucket: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Arc<dyn ObjectStore>, SettingsError> {
        let mut builder = AmazonS3Builder::new();
        for variable in AWS_VARIABLES {
            if let (Some(value), Ok(key)) = (
                env(variable),
                AmazonS3ConfigKey::from_str(&variable.to_ascii_lowercase()),
            ) {
                builder = builder.with_config(key, value);
            }
        }
        builder = builder
            .with_bucket_name(bucket)
            .with_http_connector(self.connector())
            .with_retry(self.retry());
        if let Some(region) = &self.region {
            builder = builder.with_region(region);
        }
        if let Some(endpoint) = &self.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"))
                // S3-compatible stores and emulators address buckets by path.
                .with_virtual_hosted_style_request(false);
        }
        let store = builder.build().map_err(|e| SettingsError::Client {
            driver: "s3",
            reason: payload_converter::error_text(&e),
        })?;
        Ok(Arc::new(store))
    }

    fn gcs(
        &self,
        bucket: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Arc<dyn ObjectStore>, SettingsError> {
        let mut builder = GoogleCloudStorageBuilder::new();
        for variable in GOOGLE_VARIABLES {
            if let (Some(value), Ok(key)) = (
                env(variable),
                GoogleConfigKey::from_str(&variable.to_ascii_lowercase()),
            ) {
                builder = builder.with_config(key, value);
            }
        }
        builder = builder
            .with_bucket_name(bucket)
            .with_http_connector(self.connector())
            .with_retry(self.retry());
        if let Some(endpoint) = &self.endpoint {
            builder = builder
                .with_base_url(endpoint)
                .with_client_options(
                    object_store::ClientOptions::new()
                        .with_allow_http(endpoint.starts_with("http://")),
                )
                // Emulators take no credentials.
                .with_skip_signature(endpoint.starts_with("http://"));
        }
        let store = builder.build().map_err(|e| SettingsError::Client {
            driver: "gcs",
            reason: payload_converter::error_text(&e),
        })?;
        Ok(Arc::new(store))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_section_parses_with_defaults_and_refuses_unknown_fields() {
        let settings: StorageSettings =
            toml::from_str("driver = \"s3\"\nbucket = \"b\"\n").unwrap();
        assert_eq!(settings.threshold_bytes, 256 * 1024);
        assert_eq!(settings.max_object_bytes, 50 * 1024 * 1024);
        settings.validate().unwrap();
        let err = toml::from_str::<StorageSettings>("driver = \"s3\"\nbuckt = \"b\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("buckt"), "{err}");
    }

    #[test]
    fn missing_and_bad_fields_are_named() {
        let err = StorageSettings::new(DriverKind::S3).validate().unwrap_err();
        assert_eq!(err.to_string(), "the aws.s3driver driver needs `bucket`");
        let err = StorageSettings::new(DriverKind::Filesystem)
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("`path`"), "{err}");
        let mut settings = StorageSettings::new(DriverKind::S3);
        settings.bucket = Some("b".to_owned());
        settings.endpoint = Some("127.0.0.1:9000".to_owned());
        let err = settings.validate().unwrap_err();
        assert!(err.to_string().contains("not an http"), "{err}");
    }

    #[test]
    fn s3_and_gcs_clients_build_without_network() {
        let mut s3 = StorageSettings::new(DriverKind::S3);
        s3.bucket = Some("b".to_owned());
        s3.endpoint = Some("http://127.0.0.1:9".to_owned());
        // Half a key pair is refused with the missing half named.
        let half = |name: &str| (name == "AWS_ACCESS_KEY_ID").then(|| "test".to_owned());
        let err = s3.build(&half, &|p| p.to_path_buf()).unwrap_err();
        assert!(err.to_string().contains("SecretAccessKey"), "{err}");
        let both = |name: &str| name.starts_with("AWS_").then(|| "test".to_owned());
        s3.build(&both, &|p| p.to_path_buf()).unwrap();
        let mut gcs = StorageSettings::new(DriverKind::Gcs);
        gcs.bucket = Some("b".to_owned());
        gcs.endpoint = Some("http://127.0.0.1:9".to_owned());
        gcs.build(&|_| None, &|p| p.to_path_buf()).unwrap();
    }
}
