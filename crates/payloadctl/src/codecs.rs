//! The codecs behind the commands: the local keyring and codec chain, or a
//! remote Codec Server.
//!
//! Encoding uses the chain the user names (`--chain encrypt,zstd`,
//! outermost first, as in the Codec Server's configuration). Decoding
//! locally does not need the chain's order: [`Layers`] undoes one layer at a
//! time by the payload's own `encoding` (`binary/encrypted` with the key it
//! names, `binary/zstd`, `binary/zlib`) until the payload is plain, so
//! payloads written by any SDK's chain decode, and [`Layers::peel`] can say
//! what each layer was.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, anyhow, bail};
use codec_client::{RemoteCodecError, RemotePayloadCodec};
use payload_codecs::{
    AesGcmCodec, ChainBuilder, CodecName, ENCODING_ENCRYPTED, ENCODING_ZLIB, ENCODING_ZSTD,
    Keyring, METADATA_ENCRYPTION_DEK, METADATA_ENCRYPTION_KEY_ID, ZlibCodec, ZstdCodec,
};
use payload_converter::{Budget, CodecChain, CodecErrorKind, PayloadCodec, PayloadExt as _};
use payload_kms::EnvelopeCodec;
use payload_proto::temporal::api::common::v1::Payload;
use payload_storage::ExternalStorage;
use payload_storage::reference::is_reference;

use crate::cli::{KeySources, KeyringArgs, KmsArgs, RemoteArgs};

/// Most layers undone on one payload (a guard against a payload that
/// decodes into another encoded payload forever).
const MAX_LAYERS: usize = 16;

/// Loads the keyring file at `path`, reading `env` keys from the
/// environment.
pub(crate) fn load_keyring(path: &Path) -> anyhow::Result<Arc<Keyring>> {
    let keyring = Keyring::load(path, &|name| std::env::var(name).ok())
        .with_context(|| format!("cannot load the keyring {}", path.display()))?;
    Ok(Arc::new(keyring))
}

/// The process environment as the libraries read it. With `aws` (S3
/// storage or an `awskms://` KEK in use), a shared AWS profile
/// (`AWS_PROFILE`, `~/.aws/credentials`) answers for the credentials the
/// environment lacks.
pub(crate) fn process_env(aws: bool) -> anyhow::Result<payload_storage::aws_profile::Lookup> {
    let env: payload_storage::aws_profile::Lookup = Arc::new(|name: &str| std::env::var(name).ok());
    if !aws {
        return Ok(env);
    }
    payload_storage::AwsProfile::lookup(env).context("reading the AWS profile")
}

/// A remote codec from `--remote`, `--namespace` and `--auth`.
pub(crate) fn remote_codec(url: &str, args: &RemoteArgs) -> anyhow::Result<RemotePayloadCodec> {
    let mut codec = RemotePayloadCodec::new(url, &args.namespace)?;
    if let Some(auth) = &args.auth {
        codec = codec.with_authorization(auth)?;
    }
    Ok(codec)
}

/// The encode chain for `names` (outermost first): `encrypt` is envelope
/// encryption with `--kms`, else the keyring's.
pub(crate) fn encode_chain(
    names: &[CodecName],
    keyring: &KeyringArgs,
    kms: &KmsArgs,
) -> anyhow::Result<CodecChain> {
    if !names.contains(&CodecName::Encrypt) {
        return Ok(ChainBuilder::from_names(names, None)?);
    }
    if let Some(envelope) = kms.envelope(None)? {
        return Ok(ChainBuilder::from_names_with(
            names,
            Some(Arc::new(envelope)),
        )?);
    }
    Ok(ChainBuilder::from_names(
        names,
        Some(load_keyring(keyring.required().map_err(|e| {
            anyhow!("{e} (or encrypt under a KMS key with --kms FILE)")
        })?)?),
    )?)
}

/// One layer of an encoded payload, e.g. `binary/encrypted(key=k1)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layer {
    pub(crate) encoding: String,
    pub(crate) key_id: Option<String>,
}

impl Layer {
    fn of(payload: &Payload) -> Self {
        Self {
            encoding: payload.encoding().unwrap_or("(none)").to_owned(),
            // An envelope payload's key id is a KEK URI, which may hold a
            // key (`base64key://`); a keyring key id is just a name.
            key_id: payload.metadata_str(METADATA_ENCRYPTION_KEY_ID).map(|id| {
                if payload.metadata.contains_key(METADATA_ENCRYPTION_DEK) {
                    payload_kms::shown_kek(id)
                } else {
                    id.to_owned()
                }
            }),
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key_id {
            Some(key) => write!(f, "{}(key={key})", self.encoding),
            None => f.write_str(&self.encoding),
        }
    }
}

/// The result of undoing every layer of a payload that could be undone.
#[derive(Debug)]
pub(crate) struct Peeled {
    /// The layers, outermost first, ending with the payload's final
    /// encoding.
    pub(crate) layers: Vec<Layer>,
    /// The innermost payload reached.
    pub(crate) payload: Payload,
    /// Why a layer could not be undone, if one could not.
    pub(crate) error: Option<String>,
}

/// Undoes the layers payloadctl knows, locally.
#[derive(Debug)]
pub(crate) struct Layers {
    encrypt: Option<AesGcmCodec>,
    envelope: Option<EnvelopeCodec>,
    keyring_path: Option<PathBuf>,
    zstd: Option<ZstdCodec>,
    zlib: Option<ZlibCodec>,
}

impl Layers {
    /// Undoes the codecs in `only` (all when empty); the keyring is loaded
    /// when given, and needed only for encrypted payloads.
    pub(crate) fn new(
        keyring: &KeyringArgs,
        kms: &KmsArgs,
        only: &[CodecName],
    ) -> anyhow::Result<Self> {
        let wants = |c: CodecName| only.is_empty() || only.contains(&c);
        let encrypt = match (&keyring.keyring, wants(CodecName::Encrypt)) {
            (Some(path), true) => Some(AesGcmCodec::new(load_keyring(path)?)),
            _ => None,
        };
        let envelope = match wants(CodecName::Encrypt) {
            true => kms.envelope(None)?,
            false => None,
        };
        Ok(Self {
            encrypt,
            envelope,
            keyring_path: keyring.keyring.clone(),
            zstd: wants(CodecName::Zstd).then(ZstdCodec::new),
            zlib: wants(CodecName::Zlib).then(ZlibCodec::new),
        })
    }

    /// The codec for the payload's outer layer, if it is one we undo.
    fn codec_for(&self, payload: &Payload) -> anyhow::Result<Option<&dyn PayloadCodec>> {
        let codec: Option<&dyn PayloadCodec> = match payload.encoding() {
            Some(ENCODING_ENCRYPTED) if payload.metadata.contains_key(METADATA_ENCRYPTION_DEK) => {
                match &self.envelope {
                    Some(codec) => Some(codec),
                    None => bail!(
                        "the payload is envelope-encrypted under the KMS key `{}`: pass --kms \
                         FILE (docs/key-management.md), or decode through a Codec Server with \
                         --remote URL",
                        payload
                            .metadata_str(METADATA_ENCRYPTION_KEY_ID)
                            .map(payload_kms::shown_kek)
                            .unwrap_or_default()
                    ),
                }
            }
            Some(ENCODING_ENCRYPTED) => match &self.encrypt {
                Some(codec) => Some(codec),
                None if self.keyring_path.is_none() => bail!(
                    "the payload is encrypted with key `{}`: pass --keyring PATH or set \
                     PAYLOADCTL_KEYRING (or decode through a Codec Server with --remote URL)",
                    payload
                        .metadata_str(METADATA_ENCRYPTION_KEY_ID)
                        .unwrap_or("(no key id)")
                ),
                None => None,
            },
            Some(ENCODING_ZSTD) => self.zstd.as_ref().map(|c| c as &dyn PayloadCodec),
            Some(ENCODING_ZLIB) => self.zlib.as_ref().map(|c| c as &dyn PayloadCodec),
            _ => None,
        };
        Ok(codec)
    }

    /// Undoes layers until the payload is one we cannot or need not undo.
    pub(crate) async fn peel(&self, mut payload: Payload) -> Peeled {
        let mut layers = Vec::new();
        for _ in 0..MAX_LAYERS {
            let codec = match self.codec_for(&payload) {
                Ok(Some(codec)) => codec,
                Ok(None) => break,
                Err(err) => {
                    layers.push(Layer::of(&payload));
                    return Peeled {
                        layers,
                        payload,
                        error: Some(err.to_string()),
                    };
                }
            };
            layers.push(Layer::of(&payload));
            match codec.decode(vec![payload.clone()]).await {
                Ok(mut out) if out.len() == 1 => payload = out.remove(0),
                Ok(_) => unreachable!("a codec returns one payload per payload"),
                Err(err) => {
                    // The codec's index is 0 (a batch of one): leave it out.
                    let mut message = err.inner().to_string();
                    if err.kind() == CodecErrorKind::UnknownKey
                        && let Some(path) = &self.keyring_path
                    {
                        message.push_str(&format!(
                            " (keyring {}; `payloadctl keys list` shows its keys)",
                            path.display()
                        ));
                    }
                    return Peeled {
                        layers,
                        payload,
                        error: Some(message),
                    };
                }
            }
        }
        layers.push(Layer::of(&payload));
        Peeled {
            layers,
            payload,
            error: None,
        }
    }
}

/// Decodes batches of payloads, locally or through a Codec Server, with a
/// result per payload so that one bad payload does not hide the others.
#[derive(Debug)]
pub(crate) enum Decoder {
    /// The keyring's codecs, and a store to resolve references with.
    Local(Box<Layers>, Option<Box<ExternalStorage>>),
    Remote(Box<RemotePayloadCodec>),
}

impl Decoder {
    /// From the command's arguments: remote when `--remote` is given.
    pub(crate) fn from_args(keys: &KeySources, only: &[CodecName]) -> anyhow::Result<Self> {
        let (keyring, kms, remote) = (&keys.keyring, &keys.kms, &keys.remote);
        match &remote.remote {
            Some(_) if kms.kms.is_some() || kms.kek.is_some() => Err(anyhow!(
                "--kms and --kek are for local decoding; with --remote the Codec Server uses \
                 its own [kms]"
            )),
            Some(url) => Ok(Decoder::Remote(Box::new(remote_codec(url, remote)?))),
            None => Ok(Decoder::Local(
                Box::new(Layers::new(keyring, kms, only)?),
                None,
            )),
        }
    }

    /// Resolves external storage references with `storage` before
    /// decoding (local decoding only: a Codec Server resolves them itself).
    pub(crate) fn with_storage(self, storage: Option<ExternalStorage>) -> anyhow::Result<Self> {
        match (self, storage) {
            (decoder, None) => Ok(decoder),
            (Decoder::Local(layers, _), Some(storage)) => {
                Ok(Decoder::Local(layers, Some(Box::new(storage))))
            }
            (Decoder::Remote(_), Some(_)) => Err(anyhow!(
                "--storage is for local decoding; with --remote the Codec Server resolves \
                 references with its own storage section"
            )),
        }
    }

    /// Decodes `batch`. An error for the whole batch (the server is
    /// unreachable, or refuses the credentials) is returned as such; errors
    /// about single payloads are in the per-payload results.
    pub(crate) async fn decode(
        &self,
        batch: Vec<Payload>,
    ) -> anyhow::Result<Vec<Result<Payload, String>>> {
        match self {
            Decoder::Local(layers, storage) => {
                let mut out = Vec::with_capacity(batch.len());
                for payload in batch {
                    let payload = match storage {
                        Some(storage) if is_reference(&payload) => {
                            match storage.resolve(vec![payload], &Budget::unlimited()).await {
                                Ok(mut resolved) => resolved.remove(0),
                                Err(err) => {
                                    out.push(Err(err.to_string()));
                                    continue;
                                }
                            }
                        }
                        _ => payload,
                    };
                    let peeled = layers.peel(payload).await;
                    out.push(match peeled.error {
                        None => Ok(peeled.payload),
                        Some(err) => Err(err),
                    });
                }
                Ok(out)
            }
            Decoder::Remote(codec) => match codec.decode(batch.clone()).await {
                Ok(out) => Ok(out.into_iter().map(Ok).collect()),
                Err(err) if refused_credentials(&err) => Err(anyhow!(
                    "{err}; pass the credentials the server expects with --auth \"Bearer TOKEN\""
                )),
                Err(err) if err.kind() == CodecErrorKind::InvalidPayload && batch.len() > 1 => {
                    // Find out which payloads the server refuses, one by one.
                    let mut out = Vec::with_capacity(batch.len());
                    for payload in batch {
                        out.push(match codec.decode(vec![payload]).await {
                            Ok(mut one) => Ok(one.remove(0)),
                            Err(err) if err.kind() == CodecErrorKind::InvalidPayload => {
                                Err(err.to_string())
                            }
                            Err(err) => return Err(remote_error(err)),
                        });
                    }
                    Ok(out)
                }
                Err(err) if err.kind() == CodecErrorKind::InvalidPayload => {
                    Ok(vec![Err(err.to_string())])
                }
                Err(err) => Err(remote_error(err)),
            },
        }
    }
}

/// Whether the server answered 401 or 403.
fn refused_credentials(err: &payload_converter::PayloadCodecError) -> bool {
    matches!(
        err.inner().downcast_ref::<RemoteCodecError>(),
        Some(RemoteCodecError::Status { status, .. }) if status.as_u16() == 401 || status.as_u16() == 403
    )
}

fn remote_error(err: payload_converter::PayloadCodecError) -> anyhow::Error {
    anyhow!(
        "the Codec Server failed: {err}; check the URL and that the server is running \
         (`payloadctl probe URL` checks it)"
    )
}
