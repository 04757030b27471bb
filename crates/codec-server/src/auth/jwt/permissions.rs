//! Authorization by a permissions claim of `<namespace>:<read|write|admin>`
//! entries.

use serde_json::Value;

use crate::auth::Access;

/// Whether the permissions `claim` grants `access` to `namespace`; the error
/// is the 403 detail.
pub(super) fn authorize(
    claim: Option<&Value>,
    claim_name: &str,
    namespace: &str,
    access: Access,
    allow_wildcard: bool,
) -> Result<(), String> {
    let (needed, alternatives, action) = match access {
        Access::Read => ("read", &["write", "admin"][..], "decode"),
        Access::Write => ("write", &["admin"][..], "encode"),
    };
    if namespace.is_empty() {
        return Err(format!(
            "the request names no namespace (send `X-Namespace`), so the token's `{claim_name}` \
             cannot grant {needed} access needed to {action}"
        ));
    }
    let granted = permissions(claim).any(|entry| grants(entry, namespace, access, allow_wildcard));
    if granted {
        return Ok(());
    }
    let presence = if claim.is_none() {
        format!("the token has no `{claim_name}` claim; ")
    } else {
        String::new()
    };
    let alternatives: Vec<String> = alternatives
        .iter()
        .map(|perm| format!("`{namespace}:{perm}`"))
        .collect();
    Err(format!(
        "{presence}token lacks `{namespace}:{needed}` (or {}) in its `{claim_name}` claim, needed to {action}",
        alternatives.join(", ")
    ))
}

/// The entries of a permissions claim: a list of strings, or one string of
/// space-separated entries. Anything else grants nothing.
fn permissions(claim: Option<&Value>) -> Box<dyn Iterator<Item = &str> + '_> {
    match claim {
        Some(Value::Array(items)) => Box::new(items.iter().filter_map(Value::as_str)),
        Some(Value::String(text)) => Box::new(text.split_whitespace()),
        _ => Box::new(std::iter::empty()),
    }
}

/// Whether one `<namespace>:<perm>` entry grants `access` to `namespace`.
fn grants(entry: &str, namespace: &str, access: Access, allow_wildcard: bool) -> bool {
    let Some((scope, perm)) = entry.rsplit_once(':') else {
        return false;
    };
    let in_scope = scope == namespace || (allow_wildcard && scope == "*");
    in_scope
        && match perm {
            "admin" | "write" => true,
            "read" => access == Access::Read,
            _ => false,
        }
}
#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(claim: Value, ns: &str, access: Access, wildcard: bool) -> Result<(), String> {
        authorize(Some(&claim), "permissions", ns, access, wildcard)
    }

    #[test]
    fn read_decodes_write_and_admin_do_both() {
        let read = json!(["payments:read"]);
        assert!(check(read.clone(), "payments", Access::Read, false).is_ok());
        let err = check(read, "payments", Access::Write, false).unwrap_err();
        assert!(err.contains("lacks `payments:write`"), "{err}");
        assert!(err.contains("needed to encode"), "{err}");
        assert!(err.contains("(or `payments:admin`)"), "{err}");
        for perm in ["write", "admin"] {
            let claim = json!([format!("payments:{perm}")]);
            assert!(check(claim.clone(), "payments", Access::Read, false).is_ok());
            assert!(check(claim, "payments", Access::Write, false).is_ok());
        }
    }

    #[test]
    fn only_the_named_namespace_is_granted() {
        let claim = json!(["orders:admin", "payments.acct:read"]);
        let err = check(claim.clone(), "payments", Access::Read, false).unwrap_err();
        assert!(err.contains("lacks `payments:read`"), "{err}");
        assert!(check(claim.clone(), "payments.acct", Access::Read, false).is_ok());
        assert!(check(claim, "order", Access::Read, false).is_err());
        // The permission is the last segment, so namespaces may hold `:`.
        assert!(check(json!(["a:b:write"]), "a:b", Access::Write, false).is_ok());
    }

    #[test]
    fn wildcard_namespaces_need_opting_in() {
        let claim = json!(["*:write"]);
        assert!(check(claim.clone(), "payments", Access::Write, false).is_err());
        assert!(check(claim, "payments", Access::Write, true).is_ok());
    }

    #[test]
    fn odd_claims_grant_nothing() {
        assert!(
            check(
                json!("payments:read orders:write"),
                "orders",
                Access::Write,
                false
            )
            .is_ok()
        );
        for claim in [
            json!([]),
            json!(["payments"]),
            json!(["payments:READ"]),
            json!(["payments:"]),
            json!([":read"]),
            json!([42, {"payments": "read"}]),
            json!({"payments": "read"}),
            json!(true),
        ] {
            assert!(
                check(claim.clone(), "payments", Access::Read, false).is_err(),
                "{claim}"
            );
        }
        let err = authorize(None, "perms", "payments", Access::Read, false).unwrap_err();
        assert!(err.contains("no `perms` claim"), "{err}");
        let err = check(json!(["payments:read"]), "", Access::Read, false).unwrap_err();
        assert!(err.contains("X-Namespace"), "{err}");
    }
}
