//! Where a stored payload goes: the object key layout of the SDKs' S3 and
//! GCS drivers, so that an object we write is where theirs would be.
//!
//! `v0/ns/{namespace}/wt/{workflow type}/wi/{workflow id}/ri/{run id}/d/sha256/{hex}`
//! for a workflow, `…/at/{activity type}/ai/{activity id}/ri/{run id}/…` for
//! an activity, `v0/d/sha256/{hex}` when the context is unknown. Segments
//! are percent-encoded byte by byte (upper-case hex) except
//! `A-Z a-z 0-9 ! - _ . * ' ( )`; an empty or unknown segment is `null`. A
//! key longer than 1,024 bytes drops the workflow or activity segments.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Bytes left as they are in a key segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// The longest object key S3 accepts.
const MAX_KEY_BYTES: usize = 1024;

/// For whom a payload is stored: it decides the key's prefix, so that
/// lifecycle rules and permissions can follow namespaces and workflows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum StoreTarget {
    /// Unknown (a Codec Server's `/encode` that names no namespace).
    #[default]
    Unknown,
    /// A workflow execution.
    Workflow(Execution),
    /// An activity.
    Activity(Execution),
}

/// What is known of a workflow execution or an activity: everything but
/// the namespace may be unknown.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Execution {
    /// The namespace.
    pub namespace: String,
    /// The workflow or activity type.
    pub kind: Option<String>,
    /// The workflow or activity id.
    pub id: Option<String>,
    /// The run id.
    pub run_id: Option<String>,
}

impl StoreTarget {
    /// A workflow in `namespace` of which nothing else is known (what a
    /// Codec Server learns from `X-Namespace`).
    pub fn namespace(namespace: impl Into<String>) -> Self {
        StoreTarget::Workflow(Execution {
            namespace: namespace.into(),
            ..Execution::default()
        })
    }
}

fn segment(value: Option<&str>) -> String {
    match value {
        Some(v) if !v.is_empty() => utf8_percent_encode(v, SEGMENT).to_string(),
        _ => "null".to_owned(),
    }
}

/// The object key of a payload whose SHA-256 is `hex` (lower case).
pub fn object_key(target: &StoreTarget, hex: &str) -> String {
    let digest = format!("d/sha256/{hex}");
    let (namespace, execution) = match target {
        StoreTarget::Unknown => return format!("v0/{digest}"),
        StoreTarget::Workflow(e) => (&e.namespace, ("wt", "wi", e)),
        StoreTarget::Activity(e) => (&e.namespace, ("at", "ai", e)),
    };
    let ns = format!("v0/ns/{}", segment(Some(namespace)));
    let (type_tag, id_tag, e) = execution;
    let full = format!(
        "{ns}/{type_tag}/{}/{id_tag}/{}/ri/{}/{digest}",
        segment(e.kind.as_deref()),
        segment(e.id.as_deref()),
        segment(e.run_id.as_deref()),
    );
    if full.len() > MAX_KEY_BYTES {
        format!("{ns}/{digest}")
    } else {
        full
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "00ff";

    #[test]
    fn an_unknown_context_has_the_short_key() {
        assert_eq!(object_key(&StoreTarget::Unknown, HEX), "v0/d/sha256/00ff");
    }

    #[test]
    fn workflow_and_activity_keys_follow_the_sdk_layout() {
        let workflow = StoreTarget::Workflow(Execution {
            namespace: "default".to_owned(),
            kind: Some("MyWorkflow".to_owned()),
            id: Some("order 7/ü".to_owned()),
            run_id: None,
        });
        assert_eq!(
            object_key(&workflow, HEX),
            "v0/ns/default/wt/MyWorkflow/wi/order%207%2F%C3%BC/ri/null/d/sha256/00ff"
        );
        let activity = StoreTarget::Activity(Execution {
            namespace: "prod".to_owned(),
            kind: Some("fetch".to_owned()),
            id: Some("1".to_owned()),
            run_id: Some(String::new()),
        });
        assert_eq!(
            object_key(&activity, HEX),
            "v0/ns/prod/at/fetch/ai/1/ri/null/d/sha256/00ff"
        );
        assert_eq!(
            object_key(&StoreTarget::namespace("a!b*c'(d)~"), HEX),
            "v0/ns/a!b*c'(d)%7E/wt/null/wi/null/ri/null/d/sha256/00ff"
        );
    }

    #[test]
    fn an_overlong_key_drops_the_execution_segments() {
        let target = StoreTarget::Workflow(Execution {
            namespace: "ns".to_owned(),
            id: Some("x".repeat(1100)),
            ..Execution::default()
        });
        assert_eq!(object_key(&target, HEX), "v0/ns/ns/d/sha256/00ff");
    }
}
