//! Tests of the configuration: parsing, validation, overrides.

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    let config = Config::from_toml(text, Path::new("/etc/codec/config.toml"))?;
    config.validate()?;
    Ok(config)
}

#[test]
fn full_config_parses() {
    let config = parse(
        r#"
        [server]
        listen = "0.0.0.0:9000"
        max_body_bytes = 67108864
        [cors]
        allowed_origins = ["https://cloud.temporal.io"]
        allow_credentials = true
        [default]
        keyring = "keys.toml"
        chain = ["encrypt", "zstd"]
        [namespaces.payments]
        keyring = "/secure/payments.toml"
        auth = { mode = "bearer", token_sha256 = ["00"] }
        [namespaces.legacy]
        refuse = true
        "#,
    )
    .unwrap();
    assert_eq!(config.server.listen.port(), 9000);
    assert_eq!(
        config.default.as_ref().unwrap().chain,
        [CodecName::Encrypt, CodecName::Zstd]
    );
    assert_eq!(
        config.resolve(Path::new("keys.toml")),
        Path::new("/etc/codec/keys.toml")
    );
    assert!(config.namespaces["legacy"].refuse);
}

#[test]
fn mistakes_are_explained() {
    let err = parse("[server]\nlisten = \"nope\"")
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 2"), "{err}");
    let err = parse("[server]\nlisten_addr = \"0.0.0.0:1\"")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `listen_addr`"), "{err}");
    let err = parse("[cors]\nallowed_origins=[\"*\"]\nallow_credentials=true")
        .unwrap_err()
        .to_string();
    assert!(err.contains("wildcard"), "{err}");
    let err = parse("[cors]\nallowed_origins=[\"http://localhost:8233/\"]")
        .unwrap_err()
        .to_string();
    assert!(err.contains("no path or trailing slash"), "{err}");
    let err = parse("[default]\nchain=[\"encrypt\"]")
        .unwrap_err()
        .to_string();
    assert!(err.contains("names no `keyring`"), "{err}");
    let err = parse("[default]\nkeyring=\"k\"\nauth={mode=\"magic\"}")
        .unwrap_err()
        .to_string();
    assert!(err.contains("magic"), "{err}");
}

#[test]
fn overrides_win_over_the_file() {
    let mut config =
        parse("[server]\nlisten = \"127.0.0.1:1\"\n[default]\nkeyring = \"old.toml\"").unwrap();
    config
        .apply(&Overrides {
            listen: Some("127.0.0.1:2".parse().unwrap()),
            keyring: Some(PathBuf::from("k.toml")),
            allow_origins: vec!["https://ui.example".into()],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(config.server.listen.port(), 2);
    assert_eq!(config.cors.allowed_origins, ["https://ui.example"]);
    assert_eq!(
        config.default.unwrap().keyring.unwrap(),
        Path::new("k.toml")
    );
}

#[test]
fn keyring_override_never_opens_a_config_without_default() {
    let mut config = parse("[namespaces.payments]\nkeyring = \"p.toml\"").unwrap();
    let err = config
        .apply(&Overrides {
            keyring: Some(PathBuf::from("k.toml")),
            ..Default::default()
        })
        .unwrap_err();
    assert!(err.to_string().contains("no [default] section"), "{err}");
    assert!(config.default.is_none());
}

#[test]
fn jwt_auth_parses_with_defaults() {
    let config = parse(
        r#"
        [namespaces.payments]
        keyring = "k"
        auth = { mode = "jwt", jwks_url = "https://login.tmprl.cloud/.well-known/jwks.json", audience = "https://saas-api.tmprl.cloud" }
        [namespaces.orders]
        keyring = "k"
        [namespaces.orders.auth]
        mode = "jwt"
        jwks_url = "http://127.0.0.1:9/jwks"
        issuer = "https://idp.example/"
        audience = ["a", "b"]
        permissions_claim = "https://example/permissions"
        algorithms = ["ES256"]
        leeway_secs = 5
        allow_wildcard_namespace = true
        min_refetch_secs = 2
        "#,
    )
    .unwrap();
    let AuthConfig::Jwt(crate::auth::JwtSettings {
        jwks_url,
        issuer,
        audience,
        permissions_claim,
        algorithms,
        leeway_secs,
        allow_wildcard_namespace,
        min_refetch_secs,
        clock: _,
    }) = &config.namespaces["payments"].auth
    else {
        panic!("not jwt")
    };
    assert_eq!(
        jwks_url.to_string(),
        "https://login.tmprl.cloud/.well-known/jwks.json"
    );
    assert_eq!(*issuer, None);
    assert_eq!(
        audience.as_ref().unwrap().as_slice(),
        ["https://saas-api.tmprl.cloud"]
    );
    assert_eq!(permissions_claim, "permissions");
    assert_eq!(
        algorithms.as_slice(),
        [
            crate::auth::JwtAlgorithm::Rs256,
            crate::auth::JwtAlgorithm::Es256
        ]
    );
    assert_eq!((*leeway_secs, *allow_wildcard_namespace), (30, false));
    assert_eq!(min_refetch_secs.get(), 30);
    let AuthConfig::Jwt(crate::auth::JwtSettings {
        audience,
        algorithms,
        min_refetch_secs,
        ..
    }) = &config.namespaces["orders"].auth
    else {
        panic!("not jwt")
    };
    assert_eq!(audience.as_ref().unwrap().as_slice(), ["a", "b"]);
    assert_eq!(algorithms.as_slice(), [crate::auth::JwtAlgorithm::Es256]);
    assert_eq!(min_refetch_secs.get(), 2);
}

#[test]
fn jwt_mistakes_are_explained() {
    let jwt = |fields: &str| {
        parse(&format!(
            "[default]\nkeyring=\"k\"\nauth={{mode=\"jwt\", {fields}}}"
        ))
        .unwrap_err()
        .to_string()
    };
    let err = jwt(r#"jwks_url="ftp://idp/jwks""#);
    assert!(err.contains("http:// or https://"), "{err}");
    let err = jwt(r#"issuer="x""#);
    assert!(err.contains("missing field `jwks_url`"), "{err}");
    let err = jwt(r#"jwks_url="https://idp/jwks", algorithms=["HS256"]"#);
    assert!(err.contains("HS256"), "{err}");
    let err = jwt(r#"jwks_url="https://idp/jwks", algorithms=[]"#);
    assert!(err.contains("at least one"), "{err}");
    let err = jwt(r#"jwks_url="https://idp/jwks", audience=[]"#);
    assert!(err.contains("at least one audience"), "{err}");
    let err = jwt(r#"jwks_url="https://idp/jwks", audience=1"#);
    assert!(err.contains("a string or a list of strings"), "{err}");
    let err = jwt(r#"jwks_url="https://idp/jwks", min_refetch_secs=0"#);
    assert!(err.contains("nonzero"), "{err}");
    let err = jwt(r#"jwks_url="https://idp/jwks", audiences="x""#);
    assert!(err.contains("unknown field `audiences`"), "{err}");
}
