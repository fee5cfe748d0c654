//! The typed JSON content of entries (DESIGN.md section 5).
//!
//! Public types (`about`, `contact`) travel as plain JSON; the private ones
//! inside an [`crate::envelope`]. Every content has `type` and `version`.
//! Parsing is strict: malformed JSON, duplicate keys, unknown types, unknown
//! versions, unknown fields and out-of-range values are all refused with an
//! error that names the field. The JSON Schemas in `schemas/` say the same;
//! a test keeps the two from drifting apart.

use std::collections::BTreeSet;
use std::fmt;

use base64::Engine as _;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::identity::FeedId;
use crate::ids::{BackupId, EntryId, RequestId};

/// The content version this code reads and writes.
pub const CONTENT_VERSION: u64 = 1;
/// The most custodians a backup can have.
pub const MAX_CUSTODIANS: usize = 32;
/// Reply entries a `redeemed` lists at most: one per custodian, and as many
/// again for refused or surplus ones.
pub const MAX_REPLIES_LISTED: usize = 2 * MAX_CUSTODIANS;
/// The most trustees a backup can name.
pub const MAX_TRUSTEES: usize = 8;
/// The longest label, in bytes.
pub const MAX_LABEL_LEN: usize = 256;
/// The longest veto delay: a year.
pub const MAX_VETO_DELAY_SECS: u32 = 365 * 24 * 60 * 60;
/// The longest free-text field (descriptions, reasons), in bytes.
pub const MAX_TEXT_LEN: usize = 1024;
/// The longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// The largest sealed shard a content can carry, in bytes.
pub const MAX_SEALED_LEN: usize = 40 * 1024;

/// Why content was refused.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    /// Not valid JSON (or a duplicate key, or trailing bytes).
    #[error("not valid JSON: {0}")]
    Json(String),
    /// Valid JSON, but not an object.
    #[error("content must be a JSON object")]
    NotAnObject,
    /// The `type` is missing, not a string, or not a type this code knows.
    #[error("field `type`: unknown content type {0:?}")]
    UnknownType(String),
    /// The `version` is missing or not one this code knows.
    #[error(
        "field `version`: unsupported version {found} of `{content_type}` (this node reads version {CONTENT_VERSION})"
    )]
    UnsupportedVersion {
        /// The content type.
        content_type: &'static str,
        /// The version found, as JSON.
        found: String,
    },
    /// A field is missing, unknown, of the wrong type, or out of range.
    #[error("field `{field}`: {reason}")]
    Field {
        /// The path of the field, such as `custodians[2].feed`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

fn field_error(field: impl Into<String>, reason: impl Into<String>) -> ContentError {
    ContentError::Field {
        field: field.into(),
        reason: reason.into(),
    }
}

/// The `version` field: always 1 in this version of the code.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct V1;

impl Serialize for V1 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(CONTENT_VERSION)
    }
}

impl<'de> Deserialize<'de> for V1 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match u64::deserialize(d)? {
            CONTENT_VERSION => Ok(V1),
            other => Err(de::Error::custom(format!("unsupported version {other}"))),
        }
    }
}

/// Who releases shards to a trustee once the veto delay has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Release {
    /// Each custodian's user approves the release (the default).
    #[default]
    Approve,
    /// Custodians' nodes release on their own after the delay.
    Auto,
}

/// What a recovery request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    /// The owner, same identity, asks for its shards back.
    Owner,
    /// A custodian asks its co-custodians to forward to the owner's new identity.
    LostDevice,
    /// A trustee named in the policy asks, subject to the owner's veto.
    Emergency,
}

/// Bytes carried as standard base64 (with padding) in JSON.
#[derive(Clone, PartialEq, Eq)]
pub struct Base64Bytes(pub Vec<u8>);

impl fmt::Debug for Base64Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Base64Bytes({} bytes)", self.0.len())
    }
}

impl Serialize for Base64Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Base64Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        // Refuse oversized strings before decoding them.
        if s.len() > MAX_SEALED_LEN.div_ceil(3) * 4 {
            return Err(de::Error::custom(format!(
                "longer than {MAX_SEALED_LEN} bytes"
            )));
        }
        base64::engine::general_purpose::STANDARD
            .decode(s.as_bytes())
            .map(Base64Bytes)
            .map_err(|_| de::Error::custom("not canonical standard base64"))
    }
}

/// A per-custodian key for health checks, kept by the owner. Zeroized on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct CheckKey(pub Zeroizing<[u8; 32]>);

impl fmt::Debug for CheckKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CheckKey(<redacted>)")
    }
}

impl Serialize for CheckKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.0.as_ref()))
    }
}

impl<'de> Deserialize<'de> for CheckKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Zeroizing::new(String::deserialize(d)?);
        let mut out = Zeroizing::new([0u8; 32]);
        let lower = s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if s.len() != 64 || !lower || hex::decode_to_slice(s.as_bytes(), out.as_mut()).is_err() {
            return Err(de::Error::custom("expected 64 lowercase hex characters"));
        }
        Ok(CheckKey(out))
    }
}

/// 32 public bytes carried as 64 lowercase hex characters: a challenge's
/// nonce, a proof.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Hex32(pub [u8; 32]);

impl Serialize for Hex32 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for Hex32 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let mut out = [0u8; 32];
        let lower = s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if s.len() != 64 || !lower || hex::decode_to_slice(s.as_bytes(), &mut out).is_err() {
            return Err(de::Error::custom("expected 64 lowercase hex characters"));
        }
        Ok(Hex32(out))
    }
}

/// `about` (public): how a node presents itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct About {
    /// Always 1.
    pub version: V1,
    /// A display name, 1 to 64 characters, no control characters.
    pub name: String,
    /// A free-text description, up to 1024 bytes.
    #[serde(
        default,
        deserialize_with = "present_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub description: Option<String>,
}

/// `contact` (public): the author follows (or stops following) a feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    /// Always 1.
    pub version: V1,
    /// The feed followed.
    pub contact: FeedId,
    /// True to follow, false to stop.
    pub following: bool,
}

/// One custodian in the owner's record of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootCustodian {
    /// The custodian's feed.
    pub feed: FeedId,
    /// The health-check key sealed in that custodian's shard.
    pub check_key: CheckKey,
}

/// `root` (private, to the owner itself): the owner's record of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Root {
    /// Always 1.
    pub version: V1,
    /// The backup.
    pub backup: BackupId,
    /// What the secret is, in the owner's words (up to 256 bytes).
    pub label: String,
    /// How many shards recover the secret.
    pub threshold: u8,
    /// The custodians, in shard order, with their health-check keys.
    pub custodians: Vec<RootCustodian>,
    /// Trustees who may ask for emergency access.
    pub trustees: Vec<FeedId>,
    /// Seconds the owner has to veto an emergency request.
    pub veto_delay_secs: u32,
    /// Whether the secret is erased everywhere once a trustee has seen it.
    pub one_time: bool,
    /// Who releases to a trustee after the delay.
    pub release: Release,
    /// When the backup was made, ms since the Unix epoch.
    pub created_ms: u64,
}

/// `shard` (private, to one custodian): a sealed, owner-signed shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shard {
    /// Always 1.
    pub version: V1,
    /// The backup the shard belongs to.
    pub backup: BackupId,
    /// The signed inner shard, sealed to the custodian (PROTOCOL.md, "Sealed shard").
    pub sealed: Base64Bytes,
}

/// `ack` (private, to the owner): a custodian verified and stored its shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ack {
    /// Always 1.
    pub version: V1,
    /// The backup.
    pub backup: BackupId,
    /// The id of the `shard` entry acknowledged.
    pub shard: EntryId,
}

/// `request` (private, to custodians, and for some kinds the owner or the new
/// identity): asks custodians to release their shards to `recipient`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Always 1.
    pub version: V1,
    /// The request's id, chosen by the requester.
    pub id: RequestId,
    /// What the request is for.
    pub kind: RequestKind,
    /// The backup whose shards are asked for.
    pub backup: BackupId,
    /// The backup's owner.
    pub owner: FeedId,
    /// Who the shards go to (the owner, its new identity, or the trustee).
    pub recipient: FeedId,
    /// The custodians asked (they will reply or forward to `recipient`).
    pub custodians: Vec<FeedId>,
    /// When the request lapses, ms since the Unix epoch.
    pub expires_ms: u64,
}

/// `reply` (private, to the requester): a custodian's shard, resealed to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reply {
    /// Always 1.
    pub version: V1,
    /// The request answered.
    pub request: RequestId,
    /// The backup.
    pub backup: BackupId,
    /// The signed inner shard, sealed to the requester.
    pub sealed: Base64Bytes,
}

/// `forward` (private, to the owner's new identity): a shard, resealed to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Forward {
    /// Always 1.
    pub version: V1,
    /// The request answered.
    pub request: RequestId,
    /// The backup.
    pub backup: BackupId,
    /// The owner's old identity.
    pub owner: FeedId,
    /// The signed inner shard, sealed to the new identity.
    pub sealed: Base64Bytes,
}

/// `deny` (private): a request is refused (by a custodian) or vetoed (by the owner).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deny {
    /// Always 1.
    pub version: V1,
    /// The request refused.
    pub request: RequestId,
    /// The backup.
    pub backup: BackupId,
    /// Why, in words, up to 1024 bytes.
    #[serde(
        default,
        deserialize_with = "present_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub reason: Option<String>,
}

/// `revoke` (private, to the custodians and the trustees): the owner
/// withdraws a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revoke {
    /// Always 1.
    pub version: V1,
    /// The backup revoked.
    pub backup: BackupId,
    /// The ids of the backup's `shard` entries in the owner's feed, whose
    /// payloads every replica that receives this erases (0 to
    /// [`MAX_CUSTODIANS`], distinct; absent when none are listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<EntryId>,
}

/// `grant` (private, to a trustee): what the trustee may ask for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// Always 1.
    pub version: V1,
    /// The backup.
    pub backup: BackupId,
    /// What the secret is, as much as the owner wants the trustee to know.
    #[serde(
        default,
        deserialize_with = "present_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub label: Option<String>,
    /// The custodians to ask.
    pub custodians: Vec<FeedId>,
    /// How many shards recover the secret.
    pub threshold: u8,
    /// Seconds the owner has to veto.
    pub veto_delay_secs: u32,
    /// Whether access is one-time.
    pub one_time: bool,
    /// Who releases after the delay.
    pub release: Release,
}

/// `redeemed` (private, to the custodians and the owner): a trustee saw a
/// one-time secret; everyone erases their copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Redeemed {
    /// Always 1.
    pub version: V1,
    /// The backup.
    pub backup: BackupId,
    /// The request that redeemed it.
    pub request: RequestId,
    /// The ids of the `reply` entries (in the custodians' feeds) the trustee
    /// received for it, whose payloads every replica that receives this
    /// erases (0 to [`MAX_REPLIES_LISTED`], distinct; absent when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replies: Vec<EntryId>,
}

/// `challenge` (private, to custodians): the owner asks each custodian to
/// show it still holds its shard of `backup` (a health check).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Challenge {
    /// Always 1.
    pub version: V1,
    /// The backup.
    pub backup: BackupId,
    /// Fresh random bytes, so that no answer can be made ahead.
    pub nonce: Hex32,
}

/// `proof` (private, to the owner): a custodian's answer to a `challenge`
/// (`crate::health::proof`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Proof {
    /// Always 1.
    pub version: V1,
    /// The backup.
    pub backup: BackupId,
    /// The `challenge` entry answered.
    pub challenge: EntryId,
    /// HMAC-SHA-256 under the custodian's check key (`crate::health`).
    pub proof: Hex32,
}

/// Any content.
// Values are transient (one parsed at a time), so the size difference between
// `root` and `revoke` costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Content {
    About(About),
    Contact(Contact),
    Root(Root),
    Shard(Shard),
    Ack(Ack),
    Request(Request),
    Reply(Reply),
    Forward(Forward),
    Deny(Deny),
    Revoke(Revoke),
    Grant(Grant),
    Redeemed(Redeemed),
    Challenge(Challenge),
    Proof(Proof),
}

/// Every content type, as its `type` string.
pub const CONTENT_TYPES: [&str; 14] = [
    "about",
    "contact",
    "root",
    "shard",
    "ack",
    "request",
    "reply",
    "forward",
    "deny",
    "revoke",
    "grant",
    "redeemed",
    "challenge",
    "proof",
];

impl Content {
    /// The `type` string.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::About(_) => "about",
            Self::Contact(_) => "contact",
            Self::Root(_) => "root",
            Self::Shard(_) => "shard",
            Self::Ack(_) => "ack",
            Self::Request(_) => "request",
            Self::Reply(_) => "reply",
            Self::Forward(_) => "forward",
            Self::Deny(_) => "deny",
            Self::Revoke(_) => "revoke",
            Self::Grant(_) => "grant",
            Self::Redeemed(_) => "redeemed",
            Self::Challenge(_) => "challenge",
            Self::Proof(_) => "proof",
        }
    }

    /// Whether this type travels in a public entry (else it must be boxed).
    pub fn is_public(&self) -> bool {
        matches!(self, Self::About(_) | Self::Contact(_))
    }

    /// The JSON bytes. Checks the value first, so nothing invalid is written.
    pub fn to_json(&self) -> Result<Vec<u8>, ContentError> {
        self.validate()?;
        serde_json::to_vec(self).map_err(|e| ContentError::Json(e.to_string()))
    }

    /// Parses content strictly.
    pub fn parse(bytes: &[u8]) -> Result<Self, ContentError> {
        let StrictValue(value) =
            serde_json::from_slice(bytes).map_err(|e| ContentError::Json(e.to_string()))?;
        let Value::Object(mut map) = value else {
            return Err(ContentError::NotAnObject);
        };
        let type_name = match map.remove("type") {
            Some(Value::String(t)) => CONTENT_TYPES
                .iter()
                .find(|k| **k == t)
                .copied()
                .ok_or(ContentError::UnknownType(t))?,
            Some(other) => return Err(ContentError::UnknownType(other.to_string())),
            None => return Err(field_error("type", "missing")),
        };
        match map.get("version") {
            Some(v) if v.as_u64() == Some(CONTENT_VERSION) => {}
            found => {
                return Err(ContentError::UnsupportedVersion {
                    content_type: type_name,
                    found: found.map_or_else(|| "(missing)".to_owned(), Value::to_string),
                });
            }
        }
        let content = match type_name {
            "about" => Self::About(from_map(map)?),
            "contact" => Self::Contact(from_map(map)?),
            "root" => Self::Root(from_map(map)?),
            "shard" => Self::Shard(from_map(map)?),
            "ack" => Self::Ack(from_map(map)?),
            "request" => Self::Request(from_map(map)?),
            "reply" => Self::Reply(from_map(map)?),
            "forward" => Self::Forward(from_map(map)?),
            "deny" => Self::Deny(from_map(map)?),
            "revoke" => Self::Revoke(from_map(map)?),
            "grant" => Self::Grant(from_map(map)?),
            "redeemed" => Self::Redeemed(from_map(map)?),
            "challenge" => Self::Challenge(from_map(map)?),
            _ => Self::Proof(from_map(map)?),
        };
        content.validate()?;
        Ok(content)
    }

    /// Checks the ranges the types alone do not enforce.
    pub fn validate(&self) -> Result<(), ContentError> {
        match self {
            Self::About(a) => {
                check_name("name", &a.name)?;
                check_text("description", a.description.as_deref(), MAX_TEXT_LEN)
            }
            Self::Revoke(r) => check_entry_list("shards", &r.shards, MAX_CUSTODIANS),
            Self::Redeemed(r) => check_entry_list("replies", &r.replies, MAX_REPLIES_LISTED),
            Self::Contact(_) | Self::Ack(_) | Self::Challenge(_) | Self::Proof(_) => Ok(()),
            Self::Root(r) => {
                check_label("label", &r.label)?;
                let feeds: Vec<FeedId> = r.custodians.iter().map(|c| c.feed).collect();
                check_custodians("custodians", &feeds, r.threshold)?;
                check_trustees(&r.trustees)?;
                check_veto(r.veto_delay_secs)
            }
            Self::Shard(s) => check_sealed("sealed", &s.sealed),
            Self::Reply(r) => check_sealed("sealed", &r.sealed),
            Self::Forward(f) => check_sealed("sealed", &f.sealed),
            Self::Request(r) => check_feed_list("custodians", &r.custodians, 1, MAX_CUSTODIANS),
            Self::Deny(d) => check_text("reason", d.reason.as_deref(), MAX_TEXT_LEN),
            Self::Grant(g) => {
                if let Some(label) = &g.label {
                    check_label("label", label)?;
                }
                check_custodians("custodians", &g.custodians, g.threshold)?;
                check_veto(g.veto_delay_secs)
            }
        }
    }
}

/// An optional string field: absent is `None`, but `null` is refused, so
/// "absent" has one spelling.
fn present_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    String::deserialize(d).map(Some)
}

fn from_map<T: de::DeserializeOwned>(map: Map<String, Value>) -> Result<T, ContentError> {
    serde_path_to_error::deserialize(Value::Object(map)).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // Unknown and missing fields are reported by serde at the parent;
        // name the field itself.
        let field = match serde_named_field(&inner) {
            Some(name) if path == "." => name,
            Some(name) if !path.ends_with(&name) => format!("{path}.{name}"),
            _ => path,
        };
        field_error(field, inner)
    })
}

/// The field named in serde's "unknown field `x`" / "missing field `x`" messages.
fn serde_named_field(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("missing field `"))
        .or_else(|| message.strip_prefix("duplicate field `"))?;
    rest.split('`').next().map(str::to_owned)
}

fn check_name(field: &str, name: &str) -> Result<(), ContentError> {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS {
        return Err(field_error(
            field,
            format!("must be 1 to {MAX_NAME_CHARS} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(field_error(field, "must not contain control characters"));
    }
    Ok(())
}

fn check_label(field: &str, label: &str) -> Result<(), ContentError> {
    if label.is_empty() || label.len() > MAX_LABEL_LEN {
        return Err(field_error(
            field,
            format!("must be 1 to {MAX_LABEL_LEN} bytes"),
        ));
    }
    if label.chars().any(char::is_control) {
        return Err(field_error(field, "must not contain control characters"));
    }
    Ok(())
}

fn check_text(field: &str, text: Option<&str>, max: usize) -> Result<(), ContentError> {
    match text {
        Some(t) if t.len() > max => Err(field_error(field, format!("must be at most {max} bytes"))),
        _ => Ok(()),
    }
}

fn check_sealed(field: &str, sealed: &Base64Bytes) -> Result<(), ContentError> {
    let min = crate::sealed::SEAL_OVERHEAD + 1;
    if sealed.0.len() < min || sealed.0.len() > MAX_SEALED_LEN {
        return Err(field_error(
            field,
            format!("must decode to {min} to {MAX_SEALED_LEN} bytes"),
        ));
    }
    Ok(())
}

fn check_feed_list(
    field: &str,
    feeds: &[FeedId],
    min: usize,
    max: usize,
) -> Result<(), ContentError> {
    if feeds.len() < min || feeds.len() > max {
        return Err(field_error(
            field,
            format!("must list {min} to {max} feeds"),
        ));
    }
    let mut seen = BTreeSet::new();
    if let Some(i) = feeds.iter().position(|f| !seen.insert(*f)) {
        return Err(field_error(format!("{field}[{i}]"), "listed twice"));
    }
    Ok(())
}

fn check_entry_list(field: &str, entries: &[EntryId], max: usize) -> Result<(), ContentError> {
    if entries.len() > max {
        return Err(field_error(
            field,
            format!("must list at most {max} entries"),
        ));
    }
    let mut seen = BTreeSet::new();
    if let Some(i) = entries.iter().position(|e| !seen.insert(*e)) {
        return Err(field_error(format!("{field}[{i}]"), "listed twice"));
    }
    Ok(())
}

fn check_custodians(field: &str, feeds: &[FeedId], threshold: u8) -> Result<(), ContentError> {
    check_feed_list(field, feeds, 1, MAX_CUSTODIANS)?;
    if threshold == 0 || usize::from(threshold) > feeds.len() {
        return Err(field_error(
            "threshold",
            format!(
                "must be between 1 and the number of custodians ({})",
                feeds.len()
            ),
        ));
    }
    Ok(())
}

fn check_trustees(trustees: &[FeedId]) -> Result<(), ContentError> {
    check_feed_list("trustees", trustees, 0, MAX_TRUSTEES)
}

fn check_veto(secs: u32) -> Result<(), ContentError> {
    if secs > MAX_VETO_DELAY_SECS {
        return Err(field_error(
            "veto_delay_secs",
            format!("must be at most {MAX_VETO_DELAY_SECS} (a year)"),
        ));
    }
    Ok(())
}

/// A JSON value parsed with duplicate object keys refused (serde_json keeps
/// the last one silently, which lets two parsers disagree on one document).
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let StrictValue(v) = map.next_value()?;
            if out.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate key `{key}`")));
            }
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Keypair;

    fn feed(n: u8) -> FeedId {
        Keypair::from_seed(&[n; 32]).feed_id()
    }

    #[test]
    fn round_trips_through_json() {
        let c = Content::Request(Request {
            version: V1,
            id: RequestId([1; 16]),
            kind: RequestKind::LostDevice,
            backup: BackupId([2; 32]),
            owner: feed(1),
            recipient: feed(2),
            custodians: vec![feed(3), feed(4)],
            expires_ms: 5,
        });
        let json = c.to_json().unwrap();
        assert!(String::from_utf8_lossy(&json).starts_with("{\"type\":\"request\",\"version\":1,"));
        assert_eq!(Content::parse(&json).unwrap(), c);
    }

    #[test]
    fn strictness_names_the_field() {
        let ok = format!(
            r#"{{"type":"contact","version":1,"contact":"{}","following":true}}"#,
            feed(1)
        );
        assert!(Content::parse(ok.as_bytes()).is_ok());
        let cases = [
            (r#"[1]"#.to_owned(), "content must be a JSON object"),
            (
                r#"{"type":"nope","version":1}"#.to_owned(),
                "field `type`: unknown content type \"nope\"",
            ),
            (
                ok.replace("\"version\":1", "\"version\":2"),
                "field `version`: unsupported version 2 of `contact` (this node reads version 1)",
            ),
            (
                ok.replace("\"following\":true", "\"following\":true,\"extra\":1"),
                "field `extra`: unknown field `extra`, expected one of `version`, `contact`, `following`",
            ),
            (
                ok.replace(",\"following\":true", ""),
                "field `following`: missing field `following`",
            ),
            (
                ok.replace("\"following\":true", "\"following\":1"),
                "field `following`: invalid type: integer `1`, expected a boolean",
            ),
            (
                ok.replace(
                    "\"following\":true",
                    "\"following\":true,\"following\":false",
                ),
                "not valid JSON: duplicate key `following` at line 1 column 130",
            ),
            (
                ok.replace("12D3KooW", "12D3KooX"),
                "field `contact`: not a feed id: expected the PeerId of an ed25519 key (12D3KooW...)",
            ),
        ];
        for (json, expected) in cases {
            let err = Content::parse(json.as_bytes()).unwrap_err();
            assert_eq!(err.to_string(), expected, "{json}");
        }
    }

    #[test]
    fn ranges_are_checked() {
        let custodians: Vec<String> = (1..=3).map(|i| format!("\"{}\"", feed(i))).collect();
        let grant = |threshold: u8, custodians: &str| {
            format!(
                r#"{{"type":"grant","version":1,"backup":"{}","custodians":[{custodians}],"threshold":{threshold},"veto_delay_secs":60,"one_time":false,"release":"auto"}}"#,
                BackupId([7; 32])
            )
        };
        assert!(Content::parse(grant(2, &custodians.join(",")).as_bytes()).is_ok());
        let err = Content::parse(grant(4, &custodians.join(",")).as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "field `threshold`: must be between 1 and the number of custodians (3)"
        );
        let twice = format!("{},{}", custodians[0], custodians[0]);
        let err = Content::parse(grant(1, &twice).as_bytes()).unwrap_err();
        assert_eq!(err.to_string(), "field `custodians[1]`: listed twice");
    }
}
