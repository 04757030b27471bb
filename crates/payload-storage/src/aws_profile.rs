//! The profile step of the standard AWS credential chain: the shared
//! credentials file (`~/.aws/credentials`, or `AWS_SHARED_CREDENTIALS_FILE`)
//! and config file (`~/.aws/config`, or `AWS_CONFIG_FILE`), profile
//! `AWS_PROFILE` (else `default`).
//!
//! The S3 driver and the KMS client read AWS settings through a variable
//! lookup the binary passes in. [`AwsProfile::lookup`] wraps that lookup so
//! a profile answers for the credential and region variables the
//! environment leaves unset, in the AWS SDKs' order: variables in the
//! environment, then the profile, then (in the clients) web identity,
//! container and instance credentials.
//!
//! Only static keys are read (`aws_access_key_id`, `aws_secret_access_key`,
//! `aws_session_token`, `region`). A profile that gets its credentials
//! another way (`role_arn`, `sso_*`, `credential_process`) is refused with
//! an error that says so, rather than silently ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ini::Ini;
use zeroize::Zeroizing;

/// A variable lookup, as the binaries pass it to the libraries.
pub type Lookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Profile keys that name a way of getting credentials this reader does not
/// follow.
const UNSUPPORTED: [&str; 6] = [
    "role_arn",
    "credential_process",
    "sso_session",
    "sso_start_url",
    "sso_account_id",
    "web_identity_token_file",
];

/// Why a profile could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// A shared file exists but cannot be read or parsed.
    #[error("cannot read the AWS shared file {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// `AWS_PROFILE` names a profile neither file has.
    #[error(
        "AWS_PROFILE is `{profile}`, but neither {credentials} nor {config} has that profile; \
         set AWS_PROFILE to a profile of those files or unset it"
    )]
    NotFound {
        /// The profile.
        profile: String,
        /// The credentials file looked in.
        credentials: PathBuf,
        /// The config file looked in.
        config: PathBuf,
    },
    /// The profile has one of the two keys but not the other.
    #[error(
        "AWS profile `{profile}` has no `{missing}`; a profile needs both aws_access_key_id and aws_secret_access_key"
    )]
    Incomplete {
        /// The profile.
        profile: String,
        /// The key it lacks.
        missing: &'static str,
    },
    /// The profile gets its credentials in a way this reader does not follow.
    #[error(
        "AWS profile `{profile}` uses `{key}`, which payloadkit does not follow; give the profile \
         static keys, or put credentials in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, web identity \
         (AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN) or the instance role"
    )]
    Unsupported {
        /// The profile.
        profile: String,
        /// The key.
        key: &'static str,
    },
}

/// A profile read from the shared files.
pub struct AwsProfile {
    name: String,
    /// The profile's key pair and token, when the environment has no pair.
    keys: Option<Keys>,
    region: Option<String>,
}

/// A profile's static credentials, used together or not at all.
struct Keys {
    access_key_id: String,
    secret_access_key: Zeroizing<String>,
    session_token: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for AwsProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsProfile")
            .field("name", &self.name)
            .field(
                "access_key_id",
                &self.keys.as_ref().map(|k| k.access_key_id.as_str()),
            )
            .field("secret_access_key", &self.keys.as_ref().map(|_| "<hidden>"))
            .field("region", &self.region)
            .finish()
    }
}

/// The credential variables, answered by one source together: the
/// environment when it has a key pair, else the profile's keys.
const CREDENTIALS: [&str; 3] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
];

impl AwsProfile {
    /// `env` with the profile's answers, in the AWS SDKs' order. With a
    /// key pair in the environment (`AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY`) the credentials are the environment's and
    /// only the region may come from the profile; otherwise a profile with
    /// keys answers all three credential variables (never mixed with a
    /// leftover variable) and the region the environment leaves unset.
    /// Without shared files, or without the `default` profile in them, `env`
    /// as it is.
    pub fn lookup(env: Lookup) -> Result<Lookup, ProfileError> {
        let Some(profile) = Self::load(env.as_ref())? else {
            return Ok(env);
        };
        let profile = Arc::new(profile);
        Ok(Arc::new(move |name: &str| match &profile.keys {
            Some(keys) if CREDENTIALS.contains(&name) => keys.get(name),
            _ => env(name).or_else(|| profile.region(name, env.as_ref())),
        }))
    }

    /// The profile `env` selects, from the files `env` names; `None` when
    /// it names no profile and there is no `default` one. With a key pair in
    /// the environment only the profile's region is read, and a broken or
    /// missing profile is no error (its keys would not be used).
    pub fn load(env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Self>, ProfileError> {
        let home = env("HOME").map(PathBuf::from);
        let file = |variable: &str, name: &str| {
            env(variable)
                .map(PathBuf::from)
                .or_else(|| home.as_ref().map(|h| h.join(".aws").join(name)))
        };
        let credentials_path = file("AWS_SHARED_CREDENTIALS_FILE", "credentials");
        let config_path = file("AWS_CONFIG_FILE", "config");
        let chosen = env("AWS_PROFILE").filter(|p| !p.trim().is_empty());
        let name = chosen.clone().unwrap_or_else(|| "default".to_owned());
        let env_keys = env("AWS_ACCESS_KEY_ID").is_some() && env("AWS_SECRET_ACCESS_KEY").is_some();
        // With keys in the environment a profile is only a region: nothing
        // about it may stop the program.
        let lenient = |read: Result<Option<Section>, ProfileError>| match read {
            Err(_) if env_keys => Ok(None),
            other => other,
        };
        let credentials = lenient(section(credentials_path.as_deref(), &[&name]))?;
        // The config file names profiles `[profile NAME]`; the default one
        // `[default]` (some tools write `[profile default]`).
        let profile_section = format!("profile {name}");
        let config_names: &[&str] = if name == "default" {
            &["default", "profile default"]
        } else {
            &[&profile_section]
        };
        let config = lenient(section(config_path.as_deref(), config_names))?;
        if credentials.is_none() && config.is_none() {
            return match chosen {
                Some(profile) if !env_keys => Err(ProfileError::NotFound {
                    profile,
                    credentials: credentials_path.unwrap_or_else(|| "~/.aws/credentials".into()),
                    config: config_path.unwrap_or_else(|| "~/.aws/config".into()),
                }),
                _ => Ok(None),
            };
        }
        // The credentials file wins over the config file, key by key.
        let get = |key: &str| {
            [&credentials, &config]
                .into_iter()
                .flatten()
                .find_map(|s| s.get(key).cloned())
        };
        let region = get("region");
        if env_keys {
            return Ok(Some(Self {
                name,
                keys: None,
                region,
            }));
        }
        // A profile that assumes a role or runs a process means another
        // principal than its static keys: refuse rather than guess.
        if let Some(key) = UNSUPPORTED.into_iter().find(|k| get(k).is_some()) {
            return Err(ProfileError::Unsupported { profile: name, key });
        }
        let keys = match (get("aws_access_key_id"), get("aws_secret_access_key")) {
            (Some(access_key_id), Some(secret)) => Some(Keys {
                access_key_id,
                secret_access_key: Zeroizing::new(secret),
                session_token: get("aws_session_token").map(Zeroizing::new),
            }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ProfileError::Incomplete {
                    profile: name,
                    missing: "aws_secret_access_key",
                });
            }
            (None, Some(_)) => {
                return Err(ProfileError::Incomplete {
                    profile: name,
                    missing: "aws_access_key_id",
                });
            }
        };
        Ok(Some(Self { name, keys, region }))
    }

    /// The profile's region for `AWS_REGION`, unless the environment has
    /// `AWS_DEFAULT_REGION` (which beats a profile too).
    fn region(&self, name: &str, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
        (name == "AWS_REGION" && env("AWS_DEFAULT_REGION").is_none())
            .then(|| self.region.clone())
            .flatten()
    }
}

impl Keys {
    fn get(&self, name: &str) -> Option<String> {
        match name {
            "AWS_ACCESS_KEY_ID" => Some(self.access_key_id.clone()),
            "AWS_SECRET_ACCESS_KEY" => Some(self.secret_access_key.to_string()),
            _ => self.session_token.as_deref().cloned(),
        }
    }
}

/// A section's keys (lower case) and values.
type Section = BTreeMap<String, String>;

/// The keys and values of the first of `names` that is a section of the
/// INI file at `path` (repeated sections merged, the later value winning,
/// as the AWS SDKs read them): `None` when there is no such file or section.
fn section(path: Option<&Path>, names: &[&str]) -> Result<Option<Section>, ProfileError> {
    let Some(path) = path else {
        return Ok(None);
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => Zeroizing::new(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(ProfileError::File {
                path: path.to_owned(),
                reason: e.to_string(),
            });
        }
    };
    let ini = Ini::load_from_str(&text).map_err(|e| ProfileError::File {
        path: path.to_owned(),
        // The parser's message names a line and column, never a value.
        reason: e.to_string(),
    })?;
    Ok(names.iter().find_map(|name| {
        let mut sections = ini.section_all(Some(*name)).peekable();
        sections.peek()?;
        Some(
            sections
                .flat_map(|props| props.iter())
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                .collect(),
        )
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A folder with `.aws/credentials` and `.aws/config` holding the
    /// given texts (an empty text: no file), and a lookup of `vars` plus
    /// `HOME` pointing at it.
    fn home(credentials: &str, config: &str, vars: &[(&str, &str)]) -> (tempfile::TempDir, Lookup) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".aws")).unwrap();
        for (name, text) in [("credentials", credentials), ("config", config)] {
            if !text.is_empty() {
                std::fs::write(dir.path().join(".aws").join(name), text).unwrap();
            }
        }
        let mut map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        map.insert("HOME".to_owned(), dir.path().display().to_string());
        (dir, Arc::new(move |name: &str| map.get(name).cloned()))
    }

    /// `lookup` answers `want` for the key id, the secret and the token.
    fn assert_credentials(lookup: &Lookup, want: [Option<&str>; 3]) {
        let got = super::CREDENTIALS.map(|name| lookup(name));
        assert_eq!(got.each_ref().map(Option::as_deref), want);
    }

    const CREDENTIALS: &str = "# comment\n[default]\naws_access_key_id = AKIDDEFAULT\n\
        aws_secret_access_key = secret-default\n\n[ci]\naws_access_key_id=AKIDCI\n\
        aws_secret_access_key=secret-ci\naws_session_token=token-ci\n";
    const CONFIG: &str = "[default]\nregion = eu-west-1\n\n[profile ci]\nregion = ap-south-1\n";

    #[test]
    fn the_default_profile_answers_what_the_environment_leaves_unset() {
        let (_dir, env) = home(CREDENTIALS, CONFIG, &[]);
        let lookup = AwsProfile::lookup(env).unwrap();
        assert_credentials(&lookup, [Some("AKIDDEFAULT"), Some("secret-default"), None]);
        assert_eq!(lookup("AWS_REGION").as_deref(), Some("eu-west-1"));
        assert!(lookup("HOME").is_some());
    }

    #[test]
    fn aws_profile_selects_a_named_profile_and_its_config_section() {
        let (_dir, env) = home(CREDENTIALS, CONFIG, &[("AWS_PROFILE", "ci")]);
        let lookup = AwsProfile::lookup(env).unwrap();
        assert_credentials(
            &lookup,
            [Some("AKIDCI"), Some("secret-ci"), Some("token-ci")],
        );
        assert_eq!(lookup("AWS_REGION").as_deref(), Some("ap-south-1"));
    }

    #[test]
    fn keys_in_the_environment_are_never_mixed_with_a_profile() {
        // A pair in the environment: its keys, no profile token; the
        // environment's region.
        let (_dir, env) = home(
            CREDENTIALS,
            CONFIG,
            &[
                ("AWS_PROFILE", "ci"),
                ("AWS_ACCESS_KEY_ID", "AKIDENV"),
                ("AWS_SECRET_ACCESS_KEY", "secret-env"),
                ("AWS_REGION", "us-east-2"),
            ],
        );
        let lookup = AwsProfile::lookup(env).unwrap();
        assert_credentials(&lookup, [Some("AKIDENV"), Some("secret-env"), None]);
        assert_eq!(lookup("AWS_REGION").as_deref(), Some("us-east-2"));
        // A leftover token or half a pair: the profile answers all three.
        let (_dir, env) = home(
            CREDENTIALS,
            CONFIG,
            &[
                ("AWS_SESSION_TOKEN", "stale"),
                ("AWS_SECRET_ACCESS_KEY", "half"),
            ],
        );
        let lookup = AwsProfile::lookup(env).unwrap();
        assert_credentials(&lookup, [Some("AKIDDEFAULT"), Some("secret-default"), None]);
        let (_dir, env) = home(CREDENTIALS, CONFIG, &[("AWS_DEFAULT_REGION", "us-west-2")]);
        assert_eq!(AwsProfile::lookup(env).unwrap()("AWS_REGION"), None);
    }

    #[test]
    fn with_keys_in_the_environment_a_broken_profile_is_no_error() {
        let keys = [
            ("AWS_ACCESS_KEY_ID", "AKIDENV"),
            ("AWS_SECRET_ACCESS_KEY", "secret-env"),
        ];
        let (_dir, env) = home(
            CREDENTIALS,
            CONFIG,
            &[keys[0], keys[1], ("AWS_PROFILE", "prod")],
        );
        assert_eq!(
            AwsProfile::lookup(env).unwrap()("AWS_ACCESS_KEY_ID").as_deref(),
            Some("AKIDENV")
        );
        let (_dir, env) = home(
            "[default\n",
            "[default]\nsso_session = corp\nregion = r1\n",
            &keys,
        );
        let lookup = AwsProfile::lookup(env).unwrap();
        assert_eq!(
            lookup("AWS_SECRET_ACCESS_KEY").as_deref(),
            Some("secret-env")
        );
        assert_eq!(lookup("AWS_REGION").as_deref(), Some("r1"));
    }

    #[test]
    fn a_profile_that_assumes_a_role_is_refused_even_with_static_keys() {
        let (_dir, env) = home(
            "[default]\naws_access_key_id = A\naws_secret_access_key = B\n",
            "[default]\nrole_arn = arn:aws:iam::1:role/r\n",
            &[],
        );
        let err = AwsProfile::load(env.as_ref()).unwrap_err().to_string();
        assert!(err.contains("uses `role_arn`"), "{err}");
    }

    #[test]
    fn repeated_sections_merge_and_profile_default_is_read() {
        let (_dir, env) = home(
            "[default]\naws_access_key_id = OLD\n[default]\naws_access_key_id = NEW\naws_secret_access_key = S\n",
            "[profile default]\nregion = r2\n",
            &[],
        );
        let lookup = AwsProfile::lookup(env).unwrap();
        assert_eq!(lookup("AWS_ACCESS_KEY_ID").as_deref(), Some("NEW"));
        assert_eq!(lookup("AWS_REGION").as_deref(), Some("r2"));
    }

    #[test]
    fn files_named_by_variables_are_read_instead_of_home() {
        let (dir, _) = home("", "", &[]);
        let credentials = dir.path().join("creds.ini");
        std::fs::write(
            &credentials,
            "[x]\naws_access_key_id=A\naws_secret_access_key=B\n",
        )
        .unwrap();
        let path = credentials.display().to_string();
        let env: Lookup = Arc::new(move |name: &str| match name {
            "AWS_SHARED_CREDENTIALS_FILE" => Some(path.clone()),
            "AWS_PROFILE" => Some("x".to_owned()),
            _ => None,
        });
        assert_eq!(
            AwsProfile::lookup(env).unwrap()("AWS_ACCESS_KEY_ID").as_deref(),
            Some("A")
        );
    }

    #[test]
    fn no_files_or_no_default_profile_leave_the_lookup_as_it_is() {
        let (_dir, env) = home("", "", &[("AWS_REGION", "r")]);
        assert!(AwsProfile::load(env.as_ref()).unwrap().is_none());
        let (_dir, env) = home(
            "[other]\naws_access_key_id=A\naws_secret_access_key=B\n",
            "",
            &[],
        );
        let lookup = AwsProfile::lookup(env).unwrap();
        assert_eq!(lookup("AWS_ACCESS_KEY_ID"), None);
    }

    #[test]
    fn bad_profiles_are_clear_errors_without_secrets() {
        let (_dir, env) = home(CREDENTIALS, CONFIG, &[("AWS_PROFILE", "prod")]);
        let err = AwsProfile::load(env.as_ref()).unwrap_err().to_string();
        assert!(
            err.contains("AWS_PROFILE is `prod`") && err.contains(".aws/credentials"),
            "{err}"
        );
        let (_dir, env) = home("[default]\naws_access_key_id = A\n", "", &[]);
        let err = AwsProfile::load(env.as_ref()).unwrap_err().to_string();
        assert!(err.contains("no `aws_secret_access_key`"), "{err}");
        let (_dir, env) = home(
            "",
            "[profile sso]\nsso_session = corp\n",
            &[("AWS_PROFILE", "sso")],
        );
        let err = AwsProfile::load(env.as_ref()).unwrap_err().to_string();
        assert!(err.contains("uses `sso_session`"), "{err}");
        let (_dir, env) = home("[default\naws_secret_access_key = very-secret\n", "", &[]);
        let err = AwsProfile::load(env.as_ref()).unwrap_err().to_string();
        assert!(
            err.contains("cannot read the AWS shared file") && !err.contains("very-secret"),
            "{err}"
        );
    }

    #[test]
    fn debug_hides_the_secret_and_the_token() {
        let (_dir, env) = home(CREDENTIALS, CONFIG, &[("AWS_PROFILE", "ci")]);
        let shown = format!("{:?}", AwsProfile::load(env.as_ref()).unwrap().unwrap());
        assert!(
            !shown.contains("secret-ci") && !shown.contains("token-ci"),
            "{shown}"
        );
        assert!(shown.contains("AKIDCI"), "{shown}");
    }
}
