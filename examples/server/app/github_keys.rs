//! GitHub's secret-scanning public keys, and the check of a message's signature.
//!
//! GitHub signs each secret-scanning message with an ECDSA P-256 key: the
//! `Github-Public-Key-Signature` header holds the base64 of the DER signature of the raw
//! body (SHA-256), and `Github-Public-Key-Identifier` names the key. The keys are published
//! at `https://api.github.com/meta/public_keys/secret_scanning`; `SECRET_SCANNING_KEYS`
//! names a file holding that document, so the server never fetches keys at request time.

use std::collections::HashMap;
use std::fmt;

use base64::Engine;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde::Deserialize;

/// The keys a secret-scanning message may be signed with, by identifier.
#[derive(Clone)]
pub struct GithubKeys {
    keys: HashMap<String, VerifyingKey>,
}

impl fmt::Debug for GithubKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GithubKeys")
            .field("key_identifiers", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Deserialize)]
struct Document {
    public_keys: Vec<PublicKey>,
}

#[derive(Deserialize)]
struct PublicKey {
    key_identifier: String,
    key: String,
}

/// Why a message's signature was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// A header is missing or unreadable.
    Missing,
    /// The key identifier names no configured key.
    UnknownKey,
    /// The signature is not valid base64 DER, or does not match the body.
    BadSignature,
}

impl GithubKeys {
    /// The keys in `path` (GitHub's `{"public_keys": [{"key_identifier", "key"}]}`).
    pub fn load(path: &str) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("SECRET_SCANNING_KEYS: cannot read {path}: {e}"))?;
        Self::parse(&text).map_err(|e| format!("SECRET_SCANNING_KEYS ({path}): {e}"))
    }

    /// The keys in GitHub's key document `text`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let document: Document = serde_json::from_str(text).map_err(|e| {
            format!("is not GitHub's key document ({{\"public_keys\": [...]}}): {e}")
        })?;
        let mut keys = HashMap::new();
        for entry in document.public_keys {
            let key = VerifyingKey::from_public_key_pem(&entry.key).map_err(|_| {
                format!(
                    "key {:?} is not a PEM-encoded ECDSA P-256 public key",
                    entry.key_identifier
                )
            })?;
            keys.insert(entry.key_identifier, key);
        }
        if keys.is_empty() {
            return Err("lists no key".into());
        }
        Ok(Self { keys })
    }

    /// Accept `body` if `signature` (base64 DER) is a valid signature of it by the key
    /// `identifier`.
    pub fn check(
        &self,
        identifier: Option<&[u8]>,
        signature: Option<&[u8]>,
        body: &[u8],
    ) -> Result<(), Refused> {
        let (Some(identifier), Some(signature)) = (identifier, signature) else {
            return Err(Refused::Missing);
        };
        let identifier = std::str::from_utf8(identifier).map_err(|_| Refused::Missing)?;
        let key = self.keys.get(identifier).ok_or(Refused::UnknownKey)?;
        let der = base64::engine::general_purpose::STANDARD
            .decode(signature)
            .map_err(|_| Refused::BadSignature)?;
        let signature = Signature::from_der(&der).map_err(|_| Refused::BadSignature)?;
        key.verify(body, &signature)
            .map_err(|_| Refused::BadSignature)
    }
}
