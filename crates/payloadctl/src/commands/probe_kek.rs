//! `payloadctl probe-kek`: checks that the KEKs of a KMS file are reachable
//! and can wrap and unwrap a data key, before a Codec Server relies on them.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Args;

use crate::cli::{OutputFormat, read_kms_file};
use crate::commands::probe::{Check, Status, print_checks};
use crate::commands::{Outcome, runtime};
use crate::output;

/// Check that KMS keys (KEKs) can wrap and unwrap a data key.
///
/// For each KEK (the --kek URIs given, else the file's `kek` and
/// `decrypt_keks`): wraps a fresh random 32-byte key with the KMS, unwraps
/// it again and compares. Prints PASS with the round trip's time, or FAIL
/// with what the KMS said; exits 1 when any KEK failed. No payload is
/// written and nothing is cached.
#[derive(Debug, Args)]
#[command(after_long_help = "\
Examples:
  payloadctl probe-kek --kms kms.toml
  payloadctl probe-kek --kms kms.toml --kek hashivault://payloads --kek awskms:///alias/temporal
  BAO_TOKEN=... payloadctl probe-kek --kms kms.toml --output json")]
pub(crate) struct ProbeKekArgs {
    /// The KMS file: the keys of the Codec Server's `[kms]` section
    /// (docs/key-management.md).
    #[arg(long, value_name = "FILE", env = "PAYLOADCTL_KMS")]
    kms: PathBuf,
    /// A KEK URI to check (repeat for several); default: the file's `kek`
    /// and `decrypt_keks`.
    #[arg(long, value_name = "URI")]
    kek: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

/// Runs `payloadctl probe-kek`.
pub(crate) fn run(args: ProbeKekArgs) -> anyhow::Result<Outcome> {
    let (settings, base) = read_kms_file(&args.kms)?;
    let keks: Vec<String> = if args.kek.is_empty() {
        settings
            .kek
            .iter()
            .chain(&settings.decrypt_keks)
            .cloned()
            .collect()
    } else {
        args.kek.clone()
    };
    if keks.is_empty() {
        bail!(
            "{} names no kek and no decrypt_keks; pass --kek URI",
            args.kms.display()
        );
    }
    let checks = runtime()?.block_on(async {
        let env = crate::codecs::process_env(keks.iter().any(|uri| payload_kms::is_aws_kek(uri)))?;
        let kms = settings
            .build(env.as_ref(), &|p| base.join(p))
            .with_context(|| args.kms.display().to_string())?;
        let mut checks = Vec::with_capacity(keks.len());
        for uri in &keks {
            let check = match kms.kek(uri) {
                Err(err) => Check::new(shown(uri), Status::Fail, err.to_string()),
                Ok(kek) => {
                    let name = kek.uri().to_string();
                    match kms.probe(&kek).await {
                        Ok(took) => Check::new(
                            name,
                            Status::Pass,
                            format!(
                                "wrapped and unwrapped a data key in {:.1} ms",
                                took.as_secs_f64() * 1000.0
                            ),
                        ),
                        Err(err) => Check::new(name, Status::Fail, err.to_string()),
                    }
                }
            };
            checks.push(check);
        }
        anyhow::Ok(checks)
    })?;
    print_checks(&checks, args.output)?;
    let failed = checks.iter().filter(|c| c.is_failure()).count();
    output::note(&if failed == 0 {
        format!("{} KEK(s) work", checks.len())
    } else {
        format!("{failed} of {} KEK(s) failed", checks.len())
    });
    Ok(Outcome::failed_if(failed > 0))
}

/// A KEK URI as shown when it cannot even be parsed (a key in it hidden).
fn shown(uri: &str) -> String {
    match payload_kms::KekUri::parse(uri) {
        Ok(parsed) => parsed.to_string(),
        Err(_) => uri.split("://").next().unwrap_or("?").to_owned() + "://…",
    }
}
