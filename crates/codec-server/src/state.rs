//! Shared server state: the namespace table (swapped atomically on reload,
//! so the request path takes no lock), the limits, CORS answers, metrics and
//! readiness of one server instance.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use payload_converter::PayloadCodec;

use crate::auth::Auth;
use crate::config::Config;
use crate::cors::{Cors, InvalidCorsValue};
use crate::error::ApiError;
use crate::limits::Limits;
use crate::metrics::Metrics;

/// How one namespace is served.
#[derive(Clone, Debug)]
pub struct NamespacePolicy {
    /// The codec chain.
    pub codec: Arc<dyn PayloadCodec>,
    /// Whether decoding can produce much more than it reads (the chain
    /// decompresses). When it cannot, a small request is decoded on the I/O
    /// thread without keeping its body for a second try on the blocking
    /// pool; when unsure, say `true`.
    pub may_inflate: bool,
    /// Who may call.
    pub auth: Auth,
    /// The chain with external storage around it, when the namespace has a
    /// `storage` section.
    pub storage: Option<payload_storage::StorageCodec>,
}

/// Namespace → policy, with an optional default and refused names.
#[derive(Clone, Debug, Default)]
pub struct NamespaceTable {
    default: Option<Arc<NamespacePolicy>>,
    named: HashMap<String, Option<Arc<NamespacePolicy>>>,
    /// The KMS hub of the namespaces' envelope codecs (for `/metrics`).
    kms: Option<Arc<payload_kms::Kms>>,
}

impl NamespaceTable {
    /// A table serving every namespace with `default`, if given.
    pub fn new(default: Option<NamespacePolicy>) -> Self {
        Self {
            default: default.map(Arc::new),
            named: HashMap::new(),
            kms: None,
        }
    }

    /// The KMS hub the namespaces' envelope codecs share.
    pub fn set_kms(&mut self, kms: Option<Arc<payload_kms::Kms>>) {
        self.kms = kms;
    }

    /// Counts of KMS calls and data key cache lookups, if a namespace
    /// uses a KEK.
    pub(crate) fn kms_stats(&self) -> Option<payload_kms::KmsStats> {
        self.kms.as_ref().map(|kms| kms.stats())
    }

    /// Each external storage driver's counts, by namespace section
    /// (`default` for the default section), sorted.
    pub(crate) fn storage_stats(&self) -> Vec<(String, String, payload_storage::DriverStats)> {
        let sections = self.default.iter().map(|p| ("default", p)).chain(
            self.named
                .iter()
                .filter_map(|(name, p)| p.as_ref().map(|p| (name.as_str(), p))),
        );
        let mut out: Vec<_> = sections
            .filter_map(|(name, policy)| Some((name, policy.storage.as_ref()?)))
            .flat_map(|(name, storage)| {
                storage
                    .storage()
                    .driver_stats()
                    .into_iter()
                    .map(move |(driver, stats)| (name.to_owned(), driver.to_owned(), stats))
            })
            .collect();
        out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        out
    }

    /// Serves `namespace` with its own policy.
    pub fn insert(&mut self, namespace: impl Into<String>, policy: NamespacePolicy) {
        self.named.insert(namespace.into(), Some(Arc::new(policy)));
    }

    /// Refuses `namespace`.
    pub fn refuse(&mut self, namespace: impl Into<String>) {
        self.named.insert(namespace.into(), None);
    }

    /// Whether `namespace` has a section of its own (served or refused).
    pub fn has(&self, namespace: &str) -> bool {
        self.named.contains_key(namespace)
    }

    /// The policy for `namespace`.
    pub(crate) fn policy(&self, namespace: &str) -> Result<&NamespacePolicy, ApiError> {
        match self.named.get(namespace) {
            Some(Some(policy)) => Ok(policy),
            Some(None) => Err(ApiError::NamespaceRefused(namespace.to_owned())),
            None => self
                .default
                .as_deref()
                .ok_or_else(|| ApiError::NamespaceRefused(namespace.to_owned())),
        }
    }

    /// The metrics label: configured names as they are, others `other`.
    pub(crate) fn metric_label<'a>(&self, namespace: &'a str) -> &'a str {
        if self.has(namespace) {
            namespace
        } else {
            "other"
        }
    }
}

struct Shared {
    namespaces: ArcSwap<NamespaceTable>,
    limits: Limits,
    cors: Cors,
    metrics: Metrics,
    ready: AtomicBool,
}

/// State shared by all requests; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("limits", &self.shared.limits)
            .field("cors", &self.shared.cors)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// State serving `namespaces` with the limits and CORS of `config`
    /// (validated: see [`Config::validate`]).
    pub fn new(namespaces: NamespaceTable, config: &Config) -> Result<Self, InvalidCorsValue> {
        Ok(Self {
            shared: Arc::new(Shared {
                namespaces: ArcSwap::from_pointee(namespaces),
                limits: Limits::new(&config.server),
                cors: Cors::new(&config.cors)?,
                metrics: Metrics::new(),
                ready: AtomicBool::new(true),
            }),
        })
    }

    /// Replaces the namespace table; requests in flight finish with the old one.
    pub fn reload(&self, namespaces: NamespaceTable) {
        self.shared.namespaces.store(Arc::new(namespaces));
    }

    /// A view of the namespace table for one connection (see [`TableView`]).
    pub(crate) fn table_view(&self) -> TableView {
        TableView(std::sync::Mutex::new(Arc::new(HeldTable(
            self.shared.namespaces.load_full(),
        ))))
    }

    pub(crate) fn limits(&self) -> &Limits {
        &self.shared.limits
    }

    pub(crate) fn cors(&self) -> &Cors {
        &self.shared.cors
    }

    /// The storage counts of the current namespace table.
    pub(crate) fn storage_stats(&self) -> Vec<(String, String, payload_storage::DriverStats)> {
        self.shared.namespaces.load().storage_stats()
    }

    /// The KMS counts of the current namespace table.
    pub(crate) fn kms_stats(&self) -> Option<payload_kms::KmsStats> {
        self.shared.namespaces.load().kms_stats()
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// Marks the server ready or not (`/readyz`).
    pub fn set_ready(&self, ready: bool) {
        self.shared.ready.store(ready, Ordering::Release);
    }

    pub(crate) fn is_ready(&self) -> bool {
        self.shared.ready.load(Ordering::Acquire)
    }
}

/// One connection's handle on the current namespace table.
///
/// A request keeps the table it started with until it ends, across its
/// awaits, so it needs a reference count of its own on it. Counting on the
/// shared table would have every core write the same cache line for every
/// request; here each request counts on its connection's handle instead,
/// which only that connection touches. A reload is seen by the next request
/// (the shared pointer is compared on every call).
#[derive(Debug)]
pub(crate) struct TableView(std::sync::Mutex<Arc<HeldTable>>);

/// The shared table, held by a connection: what requests count on.
#[derive(Debug)]
pub(crate) struct HeldTable(Arc<NamespaceTable>);

impl std::ops::Deref for HeldTable {
    type Target = NamespaceTable;

    fn deref(&self) -> &NamespaceTable {
        &self.0
    }
}

impl TableView {
    /// The current table, replacing the held one after a reload.
    pub(crate) fn current(&self, state: &AppState) -> Arc<HeldTable> {
        let mut held = crate::shard::lock(&self.0);
        let now = state.shared.namespaces.load();
        if !Arc::ptr_eq(&held.0, &*now) {
            *held = Arc::new(HeldTable(arc_swap::Guard::into_inner(now)));
        }
        held.clone()
    }
}
