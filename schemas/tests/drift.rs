//! Keeps the JSON Schemas in `v1/` and the strict parser in
//! `sherd_protocol::content` from drifting apart.
//!
//! Both judge the same documents: the examples in `examples/` (each valid one
//! must pass both, each invalid one must fail both), content built in Rust,
//! and documents at every limit the protocol's constants set. The few places
//! where JSON Schema cannot say what the parser checks are pinned in
//! `known_gaps`, so that a change on either side shows up there too.
//!
//! Schemas are compiled offline: the shared definitions are registered from
//! the embedded text, and nothing is ever fetched.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use jsonschema::{Draft, Registry, Validator};
use serde_json::Value;
use sherd_protocol::content::{
    self, About, Ack, Base64Bytes, Challenge, CheckKey, Contact, Content, Deny, Forward, Grant,
    Hex32, Proof, Redeemed, Release, Reply, Request, RequestKind, Revoke, Root, RootCustodian,
    Shard, V1,
};
use sherd_protocol::{BackupId, EntryId, FeedId, Keypair, RequestId};

const DRAFT_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";
const ID_BASE: &str = "https://sherd.invalid/schemas/v1/";

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Failures gathered over a whole test, so that one run lists them all.
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    fn push(&mut self, failure: String) {
        self.0.push(failure);
    }

    fn check(self) {
        assert!(
            self.0.is_empty(),
            "{} failure(s):\n{}",
            self.0.len(),
            self.0.join("\n")
        );
    }
}

fn parse_json(what: &str, text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{what} is not JSON: {e}"))
}

/// One validator per content type, compiled under draft 2020-12 with the
/// shared definitions registered and retrieval turned off.
struct Schemas(BTreeMap<&'static str, Validator>);

impl Schemas {
    fn compile() -> Self {
        let defs = parse_json("defs.schema.json", sherd_schemas::DEFS);
        let registry = Registry::new()
            .add(sherd_schemas::DEFS_ID, defs)
            .and_then(|r| r.prepare())
            .unwrap_or_else(|e| panic!("defs.schema.json does not register: {e}"));
        let validators = sherd_schemas::CONTENT_TYPES
            .iter()
            .map(|&ty| {
                let text =
                    sherd_schemas::schema(ty).unwrap_or_else(|| panic!("no schema for {ty}"));
                let schema = parse_json(&format!("{ty}.schema.json"), text);
                let validator = jsonschema::options()
                    .with_draft(Draft::Draft202012)
                    .offline()
                    .with_registry(&registry)
                    .build(&schema)
                    .unwrap_or_else(|e| panic!("{ty}.schema.json does not compile: {e}"));
                (ty, validator)
            })
            .collect();
        Self(validators)
    }

    fn get(&self, ty: &str) -> &Validator {
        self.0
            .get(ty)
            .unwrap_or_else(|| panic!("no schema for {ty:?}"))
    }

    /// The schema's complaints about `value`, one line; empty if it accepts it.
    fn errors(&self, ty: &str, value: &Value) -> String {
        self.get(ty)
            .iter_errors(value)
            .map(|e| format!("at `{}`: {e}", e.instance_path()))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn accepts(&self, ty: &str, value: &Value) -> bool {
        self.get(ty).is_valid(value)
    }
}

/// The `.json` files of `examples/<kind>/<ty>/`, sorted.
fn examples(kind: &str, ty: &str) -> Vec<PathBuf> {
    let dir = crate_dir().join("examples").join(kind).join(ty);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("readable directory entry").path())
        .collect();
    files.sort();
    files
}

fn names_in(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            entry
                .expect("readable directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

fn short(path: &Path) -> String {
    path.strip_prefix(crate_dir())
        .unwrap_or(path)
        .display()
        .to_string()
}

fn feeds() -> Vec<FeedId> {
    (1..=40u8)
        .map(|n| Keypair::from_seed(&[n; 32]).feed_id())
        .collect()
}

/// JSON of content, without the validation `to_json` does first: the
/// boundary cases need out-of-range values on the wire.
fn unchecked_json(content: &Content) -> Value {
    serde_json::to_value(content).expect("content serialises")
}

#[test]
fn content_types_match_the_protocol() {
    assert_eq!(sherd_schemas::CONTENT_TYPES, content::CONTENT_TYPES);
    assert_eq!(sherd_schemas::schema("nope"), None);
    assert_eq!(sherd_schemas::schema("About"), None);

    // Exactly one schema file per type, plus the shared definitions.
    let mut expected: BTreeSet<String> = content::CONTENT_TYPES
        .iter()
        .map(|ty| format!("{ty}.schema.json"))
        .collect();
    expected.insert("defs.schema.json".to_owned());
    assert_eq!(names_in(&crate_dir().join("v1")), expected, "files in v1/");

    // The embedded text is the file on disk.
    for ty in content::CONTENT_TYPES {
        let on_disk = fs::read_to_string(crate_dir().join("v1").join(format!("{ty}.schema.json")))
            .expect("schema file");
        assert_eq!(sherd_schemas::schema(ty), Some(on_disk.as_str()), "{ty}");
    }

    // One example directory per type, valid and invalid, nothing else, and
    // enough examples in each.
    let types: BTreeSet<String> = content::CONTENT_TYPES
        .iter()
        .map(|ty| (*ty).to_owned())
        .collect();
    assert_eq!(
        names_in(&crate_dir().join("examples")),
        BTreeSet::from(["invalid".to_owned(), "valid".to_owned()])
    );
    for (kind, at_least) in [("valid", 2), ("invalid", 3)] {
        assert_eq!(
            names_in(&crate_dir().join("examples").join(kind)),
            types,
            "directories in examples/{kind}/"
        );
        for ty in content::CONTENT_TYPES {
            let files = examples(kind, ty);
            assert!(
                files.len() >= at_least,
                "examples/{kind}/{ty}/ has {} examples, wants {at_least}",
                files.len()
            );
            for file in files {
                assert_eq!(
                    file.extension().and_then(|e| e.to_str()),
                    Some("json"),
                    "{}",
                    short(&file)
                );
            }
        }
    }
}

#[test]
fn schemas_are_draft_2020_12_and_compile() {
    let mut failures = Failures::default();
    let mut documents = vec![("defs".to_owned(), parse_json("defs", sherd_schemas::DEFS))];
    for ty in content::CONTENT_TYPES {
        let text = sherd_schemas::schema(ty).unwrap_or_else(|| panic!("no schema for {ty}"));
        documents.push((ty.to_owned(), parse_json(ty, text)));
    }
    for (name, schema) in &documents {
        if let Err(e) = jsonschema::meta::validate(schema) {
            failures.push(format!("{name}.schema.json is not a valid schema: {e}"));
        }
        let expect = |key: &str, want: &str| {
            (schema.get(key).and_then(Value::as_str) != Some(want))
                .then(|| format!("{name}.schema.json: `{key}` is not {want:?}"))
        };
        failures.0.extend(expect("$schema", DRAFT_2020_12));
        failures
            .0
            .extend(expect("$id", &format!("{ID_BASE}{name}.schema.json")));
        for key in ["title", "description"] {
            if schema
                .get(key)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                failures.push(format!("{name}.schema.json has no {key}"));
            }
        }
        if name == "defs" {
            continue;
        }
        // Every content schema closes the object and pins `type` and `version`.
        if schema
            .pointer("/properties/type/const")
            .and_then(Value::as_str)
            != Some(name)
        {
            failures.push(format!("{name}.schema.json: `type` is not const {name:?}"));
        }
        if schema
            .pointer("/properties/version/$ref")
            .and_then(Value::as_str)
            != Some("defs.schema.json#/$defs/version")
        {
            failures.push(format!(
                "{name}.schema.json: `version` does not use the shared definition"
            ));
        }
        if schema.get("additionalProperties") != Some(&Value::Bool(false)) {
            failures.push(format!("{name}.schema.json does not refuse unknown fields"));
        }
        let required = schema
            .get("required")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for key in ["type", "version"] {
            if !required.contains(&Value::from(key)) {
                failures.push(format!("{name}.schema.json does not require `{key}`"));
            }
        }
    }
    assert_eq!(
        documents
            .iter()
            .find(|(n, _)| n == "defs")
            .and_then(|(_, d)| d.pointer("/$defs/version/const")),
        Some(&Value::from(content::CONTENT_VERSION)),
        "the schemas' version is the protocol's"
    );
    failures.check();
    // Compiles all of them (offline, panicking on the first that fails).
    Schemas::compile();
}

#[test]
fn a_schema_that_refers_to_the_network_does_not_compile() {
    // Shows the validators really are offline: without the registry, the
    // shared definitions cannot be found, and nothing is fetched instead.
    let schema = parse_json(
        "about",
        sherd_schemas::schema("about").expect("about schema"),
    );
    let err = jsonschema::options()
        .with_draft(Draft::Draft202012)
        .offline()
        .build(&schema)
        .expect_err("unresolvable $ref refused");
    assert!(err.to_string().contains(sherd_schemas::DEFS_ID), "{err}");
}

#[test]
fn valid_examples_pass_the_schema_and_the_parser() {
    let schemas = Schemas::compile();
    let mut failures = Failures::default();
    for ty in content::CONTENT_TYPES {
        for path in examples("valid", ty) {
            let name = short(&path);
            let bytes = fs::read(&path).expect("example file");
            let value: Value = match serde_json::from_slice(&bytes) {
                Ok(v) => v,
                Err(e) => {
                    failures.push(format!("{name}: not JSON: {e}"));
                    continue;
                }
            };
            let errors = schemas.errors(ty, &value);
            if !errors.is_empty() {
                failures.push(format!("{name}: schema refuses it: {errors}"));
            }
            let parsed = match Content::parse(&bytes) {
                Ok(c) => c,
                Err(e) => {
                    failures.push(format!("{name}: parser refuses it: {e}"));
                    continue;
                }
            };
            if parsed.type_name() != ty {
                failures.push(format!("{name}: parsed as {}", parsed.type_name()));
            }
            let json = match parsed.to_json() {
                Ok(json) => json,
                Err(e) => {
                    failures.push(format!("{name}: parsed value does not serialise: {e}"));
                    continue;
                }
            };
            let written: Value = serde_json::from_slice(&json).expect("to_json writes JSON");
            let errors = schemas.errors(ty, &written);
            if !errors.is_empty() {
                failures.push(format!(
                    "{name}: schema refuses the re-serialised value: {errors}"
                ));
            }
            // Examples are written the way sherd writes them: same fields, no
            // other spelling (no nulls for absent fields, no `1.0` for `1`).
            if written != value {
                failures.push(format!("{name}: re-serialises differently: {written}"));
            }
            if Content::parse(&json).as_ref() != Ok(&parsed) {
                failures.push(format!("{name}: does not round-trip"));
            }
        }
    }
    failures.check();
}

#[test]
fn invalid_examples_fail_the_schema_and_the_parser() {
    let schemas = Schemas::compile();
    let mut failures = Failures::default();
    for ty in content::CONTENT_TYPES {
        for path in examples("invalid", ty) {
            let name = short(&path);
            let bytes = fs::read(&path).expect("example file");
            // Invalid examples are still JSON (duplicate keys aside, which
            // JSON Schema cannot see: see `known_gaps`), so the schema has a
            // document to judge.
            let value: Value = match serde_json::from_slice(&bytes) {
                Ok(v) => v,
                Err(e) => {
                    failures.push(format!("{name}: not JSON: {e}"));
                    continue;
                }
            };
            if schemas.accepts(ty, &value) {
                failures.push(format!("{name}: schema accepts it"));
            }
            if let Ok(c) = Content::parse(&bytes) {
                failures.push(format!("{name}: parser accepts it as {c:?}"));
            }
        }
    }
    failures.check();
}

/// One content of each type, built in Rust, with every optional field set
/// and (in the second list) left out.
fn built_in_rust() -> (Vec<Content>, Vec<Content>) {
    let f = feeds();
    let backup = BackupId([0x42; 32]);
    let request = RequestId([0x17; 16]);
    let sealed = || Base64Bytes((0..700u32).map(|i| (i * 7 % 251) as u8).collect());
    let custodians = vec![f[1], f[2], f[3]];
    let full = vec![
        Content::About(About {
            version: V1,
            name: "Ünïcødé laptop".to_owned(),
            description: Some("Keeps shards for the family.\n".to_owned()),
        }),
        Content::Contact(Contact {
            version: V1,
            contact: f[1],
            following: true,
        }),
        Content::Root(Root {
            version: V1,
            backup,
            label: "wallet seed".to_owned(),
            threshold: 2,
            custodians: custodians
                .iter()
                .zip(1u8..)
                .map(|(&feed, n)| RootCustodian {
                    feed,
                    check_key: CheckKey([n; 32].into()),
                })
                .collect(),
            trustees: vec![f[7]],
            veto_delay_secs: 3 * 24 * 3600,
            one_time: true,
            release: Release::Auto,
            created_ms: 1_763_903_468_123,
        }),
        Content::Shard(Shard {
            version: V1,
            backup,
            sealed: sealed(),
        }),
        Content::Ack(Ack {
            version: V1,
            backup,
            shard: EntryId([0xee; 32]),
        }),
        Content::Request(Request {
            version: V1,
            id: request,
            kind: RequestKind::Emergency,
            backup,
            owner: f[0],
            recipient: f[7],
            custodians: custodians.clone(),
            expires_ms: u64::MAX,
        }),
        Content::Reply(Reply {
            version: V1,
            request,
            backup,
            sealed: sealed(),
        }),
        Content::Forward(Forward {
            version: V1,
            request,
            backup,
            owner: f[0],
            sealed: sealed(),
        }),
        Content::Deny(Deny {
            version: V1,
            request,
            backup,
            reason: Some("vetoed".to_owned()),
        }),
        Content::Revoke(Revoke {
            version: V1,
            backup,
            shards: Vec::new(),
        }),
        Content::Revoke(Revoke {
            version: V1,
            backup,
            shards: vec![EntryId([5; 32]), EntryId([6; 32])],
        }),
        Content::Grant(Grant {
            version: V1,
            backup,
            label: Some("wallet seed".to_owned()),
            custodians: custodians.clone(),
            threshold: 2,
            veto_delay_secs: 0,
            one_time: false,
            release: Release::Approve,
        }),
        Content::Redeemed(Redeemed {
            version: V1,
            backup,
            request,
            replies: Vec::new(),
        }),
        Content::Redeemed(Redeemed {
            version: V1,
            backup,
            request,
            replies: vec![EntryId([7; 32])],
        }),
        Content::Challenge(Challenge {
            version: V1,
            backup,
            nonce: Hex32([0x5a; 32]),
        }),
        Content::Proof(Proof {
            version: V1,
            backup,
            challenge: EntryId([0xc4; 32]),
            proof: Hex32([0x9e; 32]),
        }),
    ];
    let minimal = vec![
        Content::About(About {
            version: V1,
            name: "a".to_owned(),
            description: None,
        }),
        Content::Deny(Deny {
            version: V1,
            request,
            backup,
            reason: None,
        }),
        Content::Grant(Grant {
            version: V1,
            backup,
            label: None,
            custodians: vec![f[1]],
            threshold: 1,
            veto_delay_secs: content::MAX_VETO_DELAY_SECS,
            one_time: true,
            release: Release::Auto,
        }),
        Content::Request(Request {
            version: V1,
            id: request,
            kind: RequestKind::Owner,
            backup,
            owner: f[0],
            recipient: f[0],
            custodians: vec![f[1]],
            expires_ms: 0,
        }),
        Content::Request(Request {
            version: V1,
            id: request,
            kind: RequestKind::LostDevice,
            backup,
            owner: f[0],
            recipient: f[8],
            custodians: vec![f[2]],
            expires_ms: 1,
        }),
    ];
    (full, minimal)
}

#[test]
fn content_built_in_rust_passes_the_schema() {
    let schemas = Schemas::compile();
    let mut failures = Failures::default();
    let (full, minimal) = built_in_rust();
    let covered: BTreeSet<&str> = full.iter().map(Content::type_name).collect();
    assert_eq!(
        covered,
        BTreeSet::from(content::CONTENT_TYPES),
        "one of each type is built"
    );
    for c in full.iter().chain(&minimal) {
        let ty = c.type_name();
        let json = c.to_json().unwrap_or_else(|e| panic!("{ty}: {e}"));
        let value: Value = serde_json::from_slice(&json).expect("to_json writes JSON");
        let errors = schemas.errors(ty, &value);
        if !errors.is_empty() {
            failures.push(format!("{ty}: schema refuses {value}: {errors}"));
        }
    }
    failures.check();
}

/// Content at, and just past, every limit the protocol's constants set: the
/// schema and the parser must give the same verdict, and the expected one.
#[test]
fn schema_and_parser_agree_at_every_limit() {
    use content::{
        MAX_CUSTODIANS, MAX_LABEL_LEN, MAX_NAME_CHARS, MAX_SEALED_LEN, MAX_TEXT_LEN, MAX_TRUSTEES,
        MAX_VETO_DELAY_SECS,
    };
    use sherd_protocol::sealed::SEAL_OVERHEAD;

    let schemas = Schemas::compile();
    let f = feeds();
    assert!(
        f.len() > MAX_CUSTODIANS,
        "enough distinct feeds to go past the limit"
    );
    let (full, _) = built_in_rust();
    let of = |ty: &str| {
        full.iter()
            .find(|c| c.type_name() == ty)
            .cloned()
            .expect("built")
    };
    let mut cases: Vec<(String, Content, bool)> = Vec::new();

    let Content::About(about) = of("about") else {
        unreachable!()
    };
    for (what, name, ok) in [
        (
            "name of the most characters",
            "n".repeat(MAX_NAME_CHARS),
            true,
        ),
        (
            "name of the most characters, non-ASCII",
            "é".repeat(MAX_NAME_CHARS),
            true,
        ),
        (
            "name one character too long",
            "n".repeat(MAX_NAME_CHARS + 1),
            false,
        ),
        ("empty name", String::new(), false),
        ("name with DEL", "a\u{7f}".to_owned(), false),
        ("name with a C1 control", "a\u{85}".to_owned(), false),
        (
            "name with a zero-width joiner (not a control)",
            "a\u{200d}b".to_owned(),
            true,
        ),
    ] {
        cases.push((
            format!("about: {what}"),
            Content::About(About {
                name,
                ..about.clone()
            }),
            ok,
        ));
    }
    for (len, ok) in [(0, true), (MAX_TEXT_LEN, true), (MAX_TEXT_LEN + 1, false)] {
        let description = Some("d".repeat(len));
        cases.push((
            format!("about: description of {len} bytes"),
            Content::About(About {
                description,
                ..about.clone()
            }),
            ok,
        ));
    }

    let Content::Deny(deny) = of("deny") else {
        unreachable!()
    };
    for (len, ok) in [(0, true), (MAX_TEXT_LEN, true), (MAX_TEXT_LEN + 1, false)] {
        let reason = Some("r".repeat(len));
        cases.push((
            format!("deny: reason of {len} bytes"),
            Content::Deny(Deny {
                reason,
                ..deny.clone()
            }),
            ok,
        ));
    }

    let Content::Root(root) = of("root") else {
        unreachable!()
    };
    let Content::Grant(grant) = of("grant") else {
        unreachable!()
    };
    let Content::Request(request) = of("request") else {
        unreachable!()
    };
    for (len, ok) in [
        (0, false),
        (1, true),
        (MAX_LABEL_LEN, true),
        (MAX_LABEL_LEN + 1, false),
    ] {
        let label = "l".repeat(len);
        cases.push((
            format!("root: label of {len} bytes"),
            Content::Root(Root {
                label: label.clone(),
                ..root.clone()
            }),
            ok,
        ));
        cases.push((
            format!("grant: label of {len} bytes"),
            Content::Grant(Grant {
                label: Some(label),
                ..grant.clone()
            }),
            ok,
        ));
    }
    cases.push((
        "root: label with a tab".to_owned(),
        Content::Root(Root {
            label: "a\tb".to_owned(),
            ..root.clone()
        }),
        false,
    ));

    // Every custodian count up to one past the limit, with every threshold
    // from 0 to one past the count: this walks the whole threshold ladder.
    for n in 0..=MAX_CUSTODIANS + 1 {
        let feeds = f[..n].to_vec();
        let root_custodians: Vec<RootCustodian> = feeds
            .iter()
            .map(|&feed| RootCustodian {
                feed,
                check_key: CheckKey([9; 32].into()),
            })
            .collect();
        for threshold in [0, 1, n, n + 1] {
            let Ok(t) = u8::try_from(threshold) else {
                continue;
            };
            let ok = (1..=MAX_CUSTODIANS).contains(&n) && (1..=n).contains(&threshold);
            cases.push((
                format!("root: {n} custodians, threshold {threshold}"),
                Content::Root(Root {
                    custodians: root_custodians.clone(),
                    threshold: t,
                    ..root.clone()
                }),
                ok,
            ));
            cases.push((
                format!("grant: {n} custodians, threshold {threshold}"),
                Content::Grant(Grant {
                    custodians: feeds.clone(),
                    threshold: t,
                    ..grant.clone()
                }),
                ok,
            ));
        }
        cases.push((
            format!("request: {n} custodians"),
            Content::Request(Request {
                custodians: feeds,
                ..request.clone()
            }),
            (1..=MAX_CUSTODIANS).contains(&n),
        ));
    }
    for (n, ok) in [(0, true), (MAX_TRUSTEES, true), (MAX_TRUSTEES + 1, false)] {
        cases.push((
            format!("root: {n} trustees"),
            Content::Root(Root {
                trustees: f[..n].to_vec(),
                ..root.clone()
            }),
            ok,
        ));
    }
    cases.push((
        "root: a trustee listed twice".to_owned(),
        Content::Root(Root {
            trustees: vec![f[5], f[5]],
            ..root.clone()
        }),
        false,
    ));
    cases.push((
        "request: a custodian listed twice".to_owned(),
        Content::Request(Request {
            custodians: vec![f[1], f[2], f[1]],
            ..request.clone()
        }),
        false,
    ));

    for (secs, ok) in [
        (0, true),
        (MAX_VETO_DELAY_SECS, true),
        (MAX_VETO_DELAY_SECS + 1, false),
        (u32::MAX, false),
    ] {
        cases.push((
            format!("root: veto delay {secs}s"),
            Content::Root(Root {
                veto_delay_secs: secs,
                ..root.clone()
            }),
            ok,
        ));
        cases.push((
            format!("grant: veto delay {secs}s"),
            Content::Grant(Grant {
                veto_delay_secs: secs,
                ..grant.clone()
            }),
            ok,
        ));
    }
    for ms in [0, u64::MAX] {
        cases.push((
            format!("root: created at {ms}"),
            Content::Root(Root {
                created_ms: ms,
                ..root.clone()
            }),
            true,
        ));
    }

    // Sealed sizes around both limits, in all three base64 tail shapes.
    let Content::Shard(shard) = of("shard") else {
        unreachable!()
    };
    let Content::Reply(reply) = of("reply") else {
        unreachable!()
    };
    let Content::Forward(forward) = of("forward") else {
        unreachable!()
    };
    let sizes = [
        0,
        1,
        SEAL_OVERHEAD - 1,
        SEAL_OVERHEAD,
        SEAL_OVERHEAD + 1,
        SEAL_OVERHEAD + 2,
        SEAL_OVERHEAD + 3,
        SEAL_OVERHEAD + 4,
        MAX_SEALED_LEN - 2,
        MAX_SEALED_LEN - 1,
        MAX_SEALED_LEN,
        MAX_SEALED_LEN + 1,
        MAX_SEALED_LEN + 2,
        MAX_SEALED_LEN + 3,
    ];
    for len in sizes {
        let ok = (SEAL_OVERHEAD + 1..=MAX_SEALED_LEN).contains(&len);
        let bytes = Base64Bytes((0..len).map(|i| (i % 253) as u8).collect());
        cases.push((
            format!("shard: sealed {len} bytes"),
            Content::Shard(Shard {
                sealed: bytes.clone(),
                ..shard.clone()
            }),
            ok,
        ));
        cases.push((
            format!("reply: sealed {len} bytes"),
            Content::Reply(Reply {
                sealed: bytes.clone(),
                ..reply.clone()
            }),
            ok,
        ));
        cases.push((
            format!("forward: sealed {len} bytes"),
            Content::Forward(Forward {
                sealed: bytes,
                ..forward.clone()
            }),
            ok,
        ));
    }

    let mut failures = Failures::default();
    for (what, c, ok) in &cases {
        let value = unchecked_json(c);
        let bytes = serde_json::to_vec(&value).expect("JSON");
        let by_schema = schemas.accepts(c.type_name(), &value);
        let by_parser = Content::parse(&bytes).is_ok();
        if (by_schema, by_parser) != (*ok, *ok) {
            failures.push(format!(
                "{what}: expected {}, schema {}, parser {}",
                verdict(*ok),
                verdict(by_schema),
                verdict(by_parser)
            ));
        }
    }
    failures.check();
    assert!(cases.len() > 250, "{} cases", cases.len());
}

fn verdict(ok: bool) -> &'static str {
    if ok { "accepts" } else { "refuses" }
}

/// The places where the schema and the parser disagree, each pinned with the
/// reason. All but the last are limits of JSON Schema, which sees a parsed
/// document (no duplicate keys, `2.0` equal to `2`), counts characters rather
/// than bytes, and cannot compare fields across array items or decode keys.
/// If one of these starts to agree, move it to `examples/invalid/`.
#[test]
fn known_gaps() {
    let schemas = Schemas::compile();
    let f = feeds();
    let backup = BackupId([0x42; 32]);
    let request = RequestId([0x17; 16]);
    let custodian = |feed: &FeedId, key: &str| {
        format!(r#"{{"feed":"{feed}","check_key":"{}"}}"#, key.repeat(32))
    };
    let root = |custodians: &str, label: &str, threshold: &str| {
        format!(
            r#"{{"type":"root","version":1,"backup":"{backup}","label":"{label}","threshold":{threshold},"custodians":[{custodians}],"trustees":[],"veto_delay_secs":60,"one_time":false,"release":"approve","created_ms":1}}"#
        )
    };
    let two = format!("{},{}", custodian(&f[1], "01"), custodian(&f[2], "02"));
    // The identity point: a small-order key, which the pattern cannot tell apart.
    let weak_feed = "12D3KooW9tGaPdJo5jmCpadQ971nfiq4kLcQjeBPYTfutBTtckPH";
    let cases: Vec<(&str, String, bool, bool)> = vec![
        (
            "duplicate key (serde_json keeps the last one; the schema sees one key)",
            format!(
                r#"{{"type":"contact","version":1,"contact":"{}","following":true,"following":false}}"#,
                f[1]
            ),
            true,
            false,
        ),
        (
            "version written 1.0 (a JSON Schema integer; not a u64 to serde)",
            format!(r#"{{"type":"revoke","version":1.0,"backup":"{backup}"}}"#),
            true,
            false,
        ),
        (
            "threshold written 2.0",
            root(&two, "label", "2.0"),
            true,
            false,
        ),
        (
            "label of 129 characters but 258 bytes",
            root(&two, &"é".repeat(129), "1"),
            true,
            false,
        ),
        (
            "reason of 1024 characters but 2048 bytes",
            format!(
                r#"{{"type":"deny","version":1,"request":"{request}","backup":"{backup}","reason":"{}"}}"#,
                "é".repeat(1024)
            ),
            true,
            false,
        ),
        (
            "one custodian feed twice, with different check keys (uniqueItems compares whole items)",
            root(
                &format!("{},{}", custodian(&f[1], "01"), custodian(&f[1], "02")),
                "label",
                "1",
            ),
            true,
            false,
        ),
        (
            "feed id of a small-order key (the pattern cannot decode it)",
            format!(r#"{{"type":"contact","version":1,"contact":"{weak_feed}","following":true}}"#),
            true,
            false,
        ),
    ];
    let mut failures = Failures::default();
    for (what, json, schema_accepts, parser_accepts) in cases {
        let value: Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{what}: {e}"));
        let ty = value["type"].as_str().expect("type");
        let by_schema = schemas.accepts(ty, &value);
        let by_parser = Content::parse(json.as_bytes()).is_ok();
        if (by_schema, by_parser) != (schema_accepts, parser_accepts) {
            failures.push(format!(
                "{what}: expected schema {} and parser {}, now schema {} and parser {}",
                verdict(schema_accepts),
                verdict(parser_accepts),
                verdict(by_schema),
                verdict(by_parser)
            ));
        }
    }
    failures.check();
}
