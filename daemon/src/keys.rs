//! The node's identity key: one file, `identity.key` in the data directory,
//! that holds the ed25519 seed of the node, either plain or sealed with a
//! passphrase (DESIGN.md section 7: ICEShare's envelope encryption, without a
//! server that holds the key-encryption key).
//!
//! # File format, version 1
//!
//! A fixed binary layout, integers big-endian:
//!
//! | offset | bytes | field                                                       |
//! |--------|-------|-------------------------------------------------------------|
//! | 0      | 8     | magic `SHERDKEY`                                            |
//! | 8      | 1     | format version: 1                                           |
//! | 9      | 1     | kind: 1 = plain, 2 = sealed                                 |
//! | 10     | 32    | the ed25519 public key                                      |
//! | 42     | 32    | plain only: the ed25519 seed (74 bytes in all)              |
//! | 42     | 12    | sealed only: Argon2id memory (KiB), iterations, lanes (u32) |
//! | 54     | 16    | sealed only: Argon2id salt                                  |
//! | 70     | 24    | sealed only: XSalsa20 nonce                                 |
//! | 94     | 48    | sealed only: Poly1305 tag, then the encrypted seed (142)    |
//!
//! A sealed seed is `crypto_secretbox_easy(seed, nonce, kek)` with
//! `kek = Argon2id(passphrase, salt)` (version 0x13, 32 bytes). Salt and nonce
//! are fresh from the OS for every write. The Argon2id parameters live in the
//! file so they can be raised later by sealing again; [`KdfParams::DEFAULT`]
//! (64 MiB, 3 iterations, 1 lane) is what new files get.
//!
//! Why this shape:
//! - Binary and fixed-size: every kind has exactly one valid length, so parsing
//!   is a few slices and there is nothing to re-serialise or normalise.
//! - The public key is stored in both kinds. In a plain file it is the only
//!   integrity check: without it a flipped bit in the seed would silently
//!   become another identity. In a sealed file it confirms that the right seed
//!   came out. The feed id is public anyway.
//! - Any change to a sealed file after the kind byte (parameters, salt, nonce,
//!   tag, ciphertext, public key) gives the same
//!   [`KeyError::WrongPassphraseOrDamaged`], as a wrong passphrase does: the
//!   two cannot be told apart, and the error says so. Parameters out of
//!   [`KdfParams`]' bounds are refused before any memory is taken, so a damaged
//!   file cannot make the daemon allocate more than 1 GiB. A wrong magic, kind
//!   or length is [`KeyError::Damaged`]; another version byte is
//!   [`KeyError::UnsupportedVersion`].
//!
//! # Writing and permissions
//!
//! A key file is never written in place. The bytes go to `identity.key.tmp`
//! (created with `O_EXCL`, mode 0600), which is fsynced, then published: a new
//! key by a hard link, which fails if a key already exists (so two first
//! starts racing on one data directory cannot each run with a key the other
//! replaced), a re-sealed key by a rename over the old one. The directory is
//! fsynced before the key is used. A crash therefore leaves either the old file
//! or the new one, never half of one; a leftover temp file is never read and
//! is removed at the next start (it may hold a plain copy of a key that has
//! since been sealed).
//!
//! The key file must be a regular file (a symlink is refused: we would be
//! trusting whoever controls its target) with no permission bits for group or
//! others. A loose mode is refused, not repaired: the key may already have been
//! copied, and the owner should know. The data directory is created 0700.
//!
//! # Passphrases
//!
//! [`Passphrase`] comes from a file named in the config, from `SHERD_PASSPHRASE`
//! or from a terminal prompt ([`Passphrase::from_sources`]). When a passphrase
//! is given on the first start the key is created sealed. When one is given but
//! the key on disk is plain, the key is loaded and a warning is logged (the
//! daemon keeps working; the user learns their passphrase protects nothing).
//! Passphrases, key-encryption keys, seeds and Argon2's working memory are
//! zeroized after use and never logged.

use std::fmt;
use std::fs::{self, File, Metadata, OpenOptions, Permissions};
use std::io::{self, IsTerminal, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use argon2::{Algorithm, Argon2, Block, Version};
use crypto_secretbox::XSalsa20Poly1305;
use crypto_secretbox::aead::{AeadInPlace, KeyInit};
use rand_core::Rng;
use sherd_protocol::Keypair;
use zeroize::Zeroizing;

use crate::rng::os_rng;

/// The key file's name inside the data directory.
pub const KEY_FILE_NAME: &str = "identity.key";
/// Where a key file is written before it is published; never read as a key.
const TEMP_FILE_NAME: &str = "identity.key.tmp";
/// The environment variable a passphrase may come from. The caller reads it
/// and passes the value to [`Passphrase::from_sources`].
pub const PASSPHRASE_ENV: &str = "SHERD_PASSPHRASE";

const MAGIC: &[u8; 8] = b"SHERDKEY";
const FORMAT_VERSION: u8 = 1;
const KIND_PLAIN: u8 = 1;
const KIND_SEALED: u8 = 2;
/// Magic, version, kind.
const PREFIX_LEN: usize = 10;
const PUBLIC_LEN: usize = 32;
const SEED_LEN: usize = 32;
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const PLAIN_LEN: usize = PREFIX_LEN + PUBLIC_LEN + SEED_LEN;
const SEALED_LEN: usize = PREFIX_LEN + PUBLIC_LEN + 12 + SALT_LEN + NONCE_LEN + TAG_LEN + SEED_LEN;
/// Longer than any valid key file: reading stops here.
const KEY_READ_CAP: usize = SEALED_LEN + 1;
/// The longest passphrase file accepted. Anything longer is more likely the
/// wrong file than a passphrase.
const MAX_PASSPHRASE_LEN: usize = 1024;
/// Permission bits for group and others: a secret file must have none.
const GROUP_OTHER_BITS: u32 = 0o077;

/// Why the identity key could not be loaded, created or rewritten.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The data directory does not exist and could not be created, or is not a directory.
    #[error(
        "cannot create the data directory {}: {source}; check that the path is a directory you can write to",
        path.display()
    )]
    CreateDir {
        /// The data directory.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The key file exists but could not be read.
    #[error(
        "cannot read the key file {}: {source}; check that it is readable by the user running sherdd",
        path.display()
    )]
    Read {
        /// The key file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// A key file (or its temp file, or the directory sync) could not be written.
    #[error(
        "cannot write {}: {source}; check free space and that the data directory is writable",
        path.display()
    )]
    Write {
        /// The file or directory being written.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The key file is a symlink, a directory or anything but a regular file.
    #[error(
        "the key file {} is not a regular file (a symlink, directory or device); \
         put the key file itself there, or move it aside to create a new identity",
        path.display()
    )]
    NotARegularFile {
        /// The key file.
        path: PathBuf,
    },
    /// Group or others may read or write the key file.
    #[error(
        "the key file {} has mode {mode:04o}, so group or others can read or write it; \
         sherdd refuses to use it: fix it with `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    Permissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file is not a sherd key file of a known layout (wrong magic, kind or
    /// length), or a plain key does not match its public key.
    #[error(
        "the key file {} is damaged; restore it from a backup, or move it aside to create a new identity",
        path.display()
    )]
    Damaged {
        /// The key file.
        path: PathBuf,
    },
    /// The file was written by a newer (or unknown) format version.
    #[error(
        "the key file {} has format version {version}, which this sherdd does not know; run a newer sherdd",
        path.display()
    )]
    UnsupportedVersion {
        /// The key file.
        path: PathBuf,
        /// The version byte found.
        version: u8,
    },
    /// A sealed key did not open: the passphrase is wrong or the file was
    /// changed. The two cannot be told apart.
    #[error(
        "wrong passphrase or damaged key file {}; check the passphrase, and if it is right, \
         restore the key file from a backup",
        path.display()
    )]
    WrongPassphraseOrDamaged {
        /// The key file.
        path: PathBuf,
    },
    /// The key is sealed and no passphrase was supplied.
    #[error(
        "the key file {} is protected by a passphrase and none was given; set `passphrase_file` \
         in the config, set {PASSPHRASE_ENV}, or start sherdd on a terminal to be asked for it",
        path.display()
    )]
    PassphraseRequired {
        /// The key file.
        path: PathBuf,
    },
    /// There is no key to re-seal or unseal.
    #[error("there is no key file at {}; start sherdd once to create one", path.display())]
    NoKey {
        /// Where the key file was looked for.
        path: PathBuf,
    },
    /// The Argon2id parameters asked for are outside [`KdfParams`]' bounds.
    #[error(
        "argon2id parameters out of range ({params}); memory must be 8 KiB per lane up to {} KiB, \
         iterations 1 to {}, lanes 1 to {}",
        KdfParams::MAX_MEMORY_KIB,
        KdfParams::MAX_ITERATIONS,
        KdfParams::MAX_LANES
    )]
    InvalidKdfParams {
        /// The parameters refused.
        params: KdfParams,
    },
    /// The memory Argon2id needs could not be allocated.
    #[error(
        "not enough memory to derive the key-encryption key ({} MiB); free some memory and retry",
        memory_kib / 1024
    )]
    KdfOutOfMemory {
        /// The memory asked for, in KiB.
        memory_kib: u32,
    },
}

/// Why a passphrase could not be obtained.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum PassphraseError {
    /// The passphrase file could not be opened or read.
    #[error(
        "cannot read the passphrase file {}: {source}; check `passphrase_file` in the config",
        path.display()
    )]
    ReadFile {
        /// The passphrase file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The passphrase file is a directory, device or other non-regular file.
    #[error(
        "the passphrase file {} is not a regular file; point `passphrase_file` at a file",
        path.display()
    )]
    NotARegularFile {
        /// The passphrase file.
        path: PathBuf,
    },
    /// Group or others may read or write the passphrase file.
    #[error(
        "the passphrase file {} has mode {mode:04o}, so group or others can read or write it; \
         sherdd refuses to use it: fix it with `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    Permissions {
        /// The passphrase file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The passphrase file is longer than any passphrase should be.
    #[error(
        "the passphrase file {} is longer than {MAX_PASSPHRASE_LEN} bytes; is it the right file?",
        path.display()
    )]
    TooLong {
        /// The passphrase file.
        path: PathBuf,
    },
    /// The passphrase is empty (after stripping one trailing newline, for a file).
    #[error(
        "the passphrase from {from} is empty; an empty passphrase protects nothing, set a real one"
    )]
    Empty {
        /// Where it came from: a file, the environment or the prompt.
        from: String,
    },
    /// Both a passphrase file and the environment variable were given.
    #[error(
        "a passphrase was given both in the file {} and in {PASSPHRASE_ENV}; give only one",
        path.display()
    )]
    Conflicting {
        /// The passphrase file.
        path: PathBuf,
    },
    /// The terminal prompt failed.
    #[error("cannot read the passphrase from the terminal: {source}")]
    Prompt {
        /// What the OS said.
        source: io::Error,
    },
}

/// A passphrase. Zeroized on drop, never printed.
pub struct Passphrase(Zeroizing<Vec<u8>>);

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

impl Passphrase {
    /// A passphrase from text the caller already holds (a test, an API
    /// request). Refuses the empty string.
    pub fn new(text: String) -> Result<Self, PassphraseError> {
        Self::from_bytes(Zeroizing::new(text.into_bytes()), "the caller".to_owned())
    }

    /// The passphrase from the first source that has one, or `None`:
    /// - `file`: a file named in the config. It must be a regular file (a
    ///   symlink to one is followed: secret mounts are often symlinks) with no
    ///   permission bits for group or others. One trailing newline (`\n` or
    ///   `\r\n`) is stripped, as editors and `echo` add one.
    /// - `env_var_value`: the value of [`PASSPHRASE_ENV`], read by the caller,
    ///   used as is. Giving both a file and this is refused: which one wins
    ///   would be a guess, and a wrong guess looks like a wrong passphrase.
    /// - a prompt on the terminal, only if `prompt_if_tty` and stdin is a
    ///   terminal. Callers pass `true` only when the key needs a passphrase
    ///   (see [`key_file_kind`]), so a plain key never prompts.
    ///
    /// An empty passphrase from any source is refused.
    pub fn from_sources(
        file: Option<&Path>,
        env_var_value: Option<String>,
        prompt_if_tty: bool,
    ) -> Result<Option<Self>, PassphraseError> {
        let env_value = env_var_value.map(|value| Zeroizing::new(value.into_bytes()));
        match (file, env_value) {
            (Some(path), Some(_)) => Err(PassphraseError::Conflicting {
                path: path.to_owned(),
            }),
            (Some(path), None) => Self::from_file(path).map(Some),
            (None, Some(value)) => Self::from_bytes(value, PASSPHRASE_ENV.to_owned()).map(Some),
            (None, None) if prompt_if_tty && io::stdin().is_terminal() => {
                Self::from_prompt().map(Some)
            }
            (None, None) => Ok(None),
        }
    }

    /// The passphrase in `path`, checked and with one trailing newline stripped.
    pub fn from_file(path: &Path) -> Result<Self, PassphraseError> {
        let read_error = |source| PassphraseError::ReadFile {
            path: path.to_owned(),
            source,
        };
        let mut file = File::open(path).map_err(read_error)?;
        // Checked on the open file, not the path, so the file checked is the
        // file read.
        let meta = file.metadata().map_err(read_error)?;
        if !meta.is_file() {
            return Err(PassphraseError::NotARegularFile {
                path: path.to_owned(),
            });
        }
        if let Some(mode) = loose_mode(&meta) {
            return Err(PassphraseError::Permissions {
                path: path.to_owned(),
                mode,
            });
        }
        let (buf, len) =
            read_capped::<{ MAX_PASSPHRASE_LEN + 1 }>(&mut file).map_err(read_error)?;
        if len > MAX_PASSPHRASE_LEN {
            return Err(PassphraseError::TooLong {
                path: path.to_owned(),
            });
        }
        let text = buf.get(..len).unwrap_or_default();
        let text = text
            .strip_suffix(b"\r\n")
            .or_else(|| text.strip_suffix(b"\n"))
            .unwrap_or(text);
        let mut bytes = Zeroizing::new(Vec::with_capacity(text.len()));
        bytes.extend_from_slice(text);
        Self::from_bytes(bytes, format!("the file {}", path.display()))
    }

    /// Asks on the terminal. rpassword reads from the tty with echo off.
    fn from_prompt() -> Result<Self, PassphraseError> {
        let text = rpassword::prompt_password("passphrase for the sherd identity key: ")
            .map_err(|source| PassphraseError::Prompt { source })?;
        Self::from_bytes(Zeroizing::new(text.into_bytes()), "the prompt".to_owned())
    }

    fn from_bytes(bytes: Zeroizing<Vec<u8>>, from: String) -> Result<Self, PassphraseError> {
        if bytes.is_empty() {
            return Err(PassphraseError::Empty { from });
        }
        Ok(Self(bytes))
    }

    fn expose(&self) -> &[u8] {
        &self.0
    }
}

/// Argon2id cost parameters for the key-encryption key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub iterations: u32,
    /// Lanes (Argon2's parallelism; computed one after another here).
    pub lanes: u32,
}

impl KdfParams {
    /// What new sealed files get: 64 MiB, 3 iterations, 1 lane. RFC 9106's
    /// second recommended option, with one lane instead of four: the argon2
    /// crate computes lanes one after another here, so more lanes would add
    /// time for us without adding cost for an attacker's parallel hardware.
    pub const DEFAULT: Self = Self {
        memory_kib: 64 * 1024,
        iterations: 3,
        lanes: 1,
    };
    /// The most memory a key file may ask for: 1 GiB. Higher is refused so a
    /// damaged file cannot exhaust the machine's memory.
    pub const MAX_MEMORY_KIB: u32 = 1 << 20;
    /// The most passes a key file may ask for.
    pub const MAX_ITERATIONS: u32 = 32;
    /// The most lanes a key file may ask for.
    pub const MAX_LANES: u32 = 16;

    /// Tiny parameters that keep tests fast. Never for a real key.
    pub const fn for_tests() -> Self {
        Self {
            memory_kib: 64,
            iterations: 1,
            lanes: 1,
        }
    }

    fn is_within_bounds(&self) -> bool {
        (1..=Self::MAX_LANES).contains(&self.lanes)
            && (1..=Self::MAX_ITERATIONS).contains(&self.iterations)
            && (8 * self.lanes..=Self::MAX_MEMORY_KIB).contains(&self.memory_kib)
    }
}

impl Default for KdfParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl fmt::Display for KdfParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "m = {} KiB, t = {}, p = {}",
            self.memory_kib, self.iterations, self.lanes
        )
    }
}

/// Whether a key file is sealed with a passphrase.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFileKind {
    /// The seed is stored as is; the file's mode is its only protection.
    Plain,
    /// The seed is encrypted under a passphrase.
    Sealed,
}

/// The key file's path in `data_dir`.
pub fn key_file_path(data_dir: &Path) -> PathBuf {
    data_dir.join(KEY_FILE_NAME)
}

/// The kind of the key file in `data_dir`, or `None` if there is none yet.
/// Lets the caller decide whether to ask for a passphrase before
/// [`load_or_create`]. Applies the same checks as loading.
pub fn key_file_kind(data_dir: &Path) -> Result<Option<KeyFileKind>, KeyError> {
    let path = key_file_path(data_dir);
    Ok(read_key_file(&path)?.map(|file| file.kind()))
}

/// The node's key pair: loaded from `identity.key` in `data_dir`, or created
/// there on the first start (sealed if a passphrase is given, plain if not).
/// Creates `data_dir` (mode 0700) if it is missing. New sealed keys use
/// [`KdfParams::DEFAULT`].
pub fn load_or_create(
    data_dir: &Path,
    passphrase: Option<&Passphrase>,
) -> Result<Keypair, KeyError> {
    load_or_create_with(data_dir, passphrase, KdfParams::DEFAULT)
}

/// [`load_or_create`] with the Argon2id parameters a new sealed key gets.
/// Loading uses the parameters stored in the file.
pub fn load_or_create_with(
    data_dir: &Path,
    passphrase: Option<&Passphrase>,
    params: KdfParams,
) -> Result<Keypair, KeyError> {
    ensure_data_dir(data_dir)?;
    remove_stale_temp(data_dir);
    let path = key_file_path(data_dir);
    if let Some(file) = read_key_file(&path)? {
        return load_existing(&path, &file, passphrase);
    }

    let keypair = Keypair::generate(&mut os_rng());
    let file = match passphrase {
        None => KeyFile::plain(&keypair),
        Some(passphrase) => KeyFile::seal(&keypair, passphrase, params)?,
    };
    if publish_new(data_dir, &file.encode())? {
        tracing::info!(
            feed_id = %keypair.feed_id(),
            path = %path.display(),
            sealed = passphrase.is_some(),
            "created a new identity key"
        );
        return Ok(keypair);
    }
    // Another process created the key between our read and our link: use
    // theirs, so that both run the identity that is on disk.
    match read_key_file(&path)? {
        Some(file) => load_existing(&path, &file, passphrase),
        None => Err(KeyError::NoKey { path }),
    }
}

/// Seals the key in `data_dir` under `new`, replacing the file atomically. The
/// identity stays the same. `current` opens the key if it is already sealed
/// (this is also how a passphrase is changed).
pub fn seal_key_file(
    data_dir: &Path,
    current: Option<&Passphrase>,
    new: &Passphrase,
    params: KdfParams,
) -> Result<(), KeyError> {
    let path = key_file_path(data_dir);
    let keypair = open_for_rewrite(&path, current)?;
    let sealed = KeyFile::seal(&keypair, new, params)?;
    replace(data_dir, &sealed.encode())
}

/// Stores the key in `data_dir` plain again, replacing the file atomically.
/// Does nothing if it is already plain.
pub fn unseal_key_file(data_dir: &Path, current: &Passphrase) -> Result<(), KeyError> {
    let path = key_file_path(data_dir);
    let keypair = open_for_rewrite(&path, Some(current))?;
    replace(data_dir, &KeyFile::plain(&keypair).encode())
}

fn open_for_rewrite(path: &Path, passphrase: Option<&Passphrase>) -> Result<Keypair, KeyError> {
    let file = read_key_file(path)?.ok_or_else(|| KeyError::NoKey {
        path: path.to_owned(),
    })?;
    file.unlock(passphrase, path)
}

fn load_existing(
    path: &Path,
    file: &KeyFile,
    passphrase: Option<&Passphrase>,
) -> Result<Keypair, KeyError> {
    let keypair = file.unlock(passphrase, path)?;
    if passphrase.is_some() && file.kind() == KeyFileKind::Plain {
        // Not an error: the node can run. But a user who supplies a
        // passphrase believes the key is protected, and it is not.
        tracing::warn!(
            path = %path.display(),
            "a passphrase was given but the identity key is not sealed, so the passphrase was \
             not used; seal the key (sherdd key set-passphrase) or stop supplying a passphrase"
        );
    }
    Ok(keypair)
}

// ---------------------------------------------------------------------------
// The format: bytes in, values out.

/// A decoded key file, before any passphrase is applied.
enum KeyFile {
    Plain {
        public: [u8; PUBLIC_LEN],
        seed: Zeroizing<[u8; SEED_LEN]>,
    },
    Sealed(SealedKey),
}

/// The sealed part of a key file. Nothing here is secret without the passphrase.
#[derive(Debug)]
struct SealedKey {
    public: [u8; PUBLIC_LEN],
    params: KdfParams,
    salt: [u8; SALT_LEN],
    nonce: [u8; NONCE_LEN],
    tag: [u8; TAG_LEN],
    ciphertext: [u8; SEED_LEN],
}

impl fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Plain { public, .. } => f
                .debug_struct("Plain")
                .field("public", public)
                .finish_non_exhaustive(),
            Self::Sealed(sealed) => sealed.fmt(f),
        }
    }
}

/// Why bytes are not a key file; the caller adds the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FormatError {
    Damaged,
    UnsupportedVersion(u8),
}

impl FormatError {
    fn at(self, path: &Path) -> KeyError {
        let path = path.to_owned();
        match self {
            Self::Damaged => KeyError::Damaged { path },
            Self::UnsupportedVersion(version) => KeyError::UnsupportedVersion { path, version },
        }
    }
}

/// Why a key-encryption key could not be derived.
enum KdfError {
    /// Argon2 refused the parameters.
    Invalid,
    /// The working memory could not be allocated.
    OutOfMemory,
}

impl KeyFile {
    fn plain(keypair: &Keypair) -> Self {
        Self::Plain {
            public: *keypair.feed_id().as_bytes(),
            seed: keypair.seed(),
        }
    }

    fn seal(
        keypair: &Keypair,
        passphrase: &Passphrase,
        params: KdfParams,
    ) -> Result<Self, KeyError> {
        if !params.is_within_bounds() {
            return Err(KeyError::InvalidKdfParams { params });
        }
        let mut rng = os_rng();
        let mut salt = [0u8; SALT_LEN];
        rng.fill_bytes(&mut salt);
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let kek = derive_kek(passphrase, &salt, params).map_err(|err| match err {
            KdfError::Invalid => KeyError::InvalidKdfParams { params },
            KdfError::OutOfMemory => KeyError::KdfOutOfMemory {
                memory_kib: params.memory_kib,
            },
        })?;
        // Encrypted in place in a zeroizing buffer, so no heap copy of the
        // seed is left behind.
        let mut buf = keypair.seed();
        // XSalsa20Poly1305 fails only when given associated data, and none is.
        let tag = XSalsa20Poly1305::new((&*kek).into())
            .encrypt_in_place_detached((&nonce).into(), b"", buf.as_mut_slice())
            .expect("encrypting 32 bytes without associated data");
        Ok(Self::Sealed(SealedKey {
            public: *keypair.feed_id().as_bytes(),
            params,
            salt,
            nonce,
            tag: tag.into(),
            ciphertext: *buf,
        }))
    }

    fn kind(&self) -> KeyFileKind {
        match self {
            Self::Plain { .. } => KeyFileKind::Plain,
            Self::Sealed(_) => KeyFileKind::Sealed,
        }
    }

    /// The key pair, checked against the stored public key.
    fn unlock(&self, passphrase: Option<&Passphrase>, path: &Path) -> Result<Keypair, KeyError> {
        match self {
            Self::Plain { public, seed } => {
                matching_keypair(seed, public).ok_or_else(|| FormatError::Damaged.at(path))
            }
            Self::Sealed(sealed) => {
                let passphrase = passphrase.ok_or_else(|| KeyError::PassphraseRequired {
                    path: path.to_owned(),
                })?;
                let wrong = || KeyError::WrongPassphraseOrDamaged {
                    path: path.to_owned(),
                };
                let seed = sealed.open(passphrase)?.ok_or_else(wrong)?;
                matching_keypair(&seed, &sealed.public).ok_or_else(wrong)
            }
        }
    }

    /// The file's bytes, in a buffer that is zeroized on drop (a plain file
    /// holds the seed).
    fn encode(&self) -> Zeroizing<Vec<u8>> {
        let (kind, len) = match self {
            Self::Plain { .. } => (KIND_PLAIN, PLAIN_LEN),
            Self::Sealed(_) => (KIND_SEALED, SEALED_LEN),
        };
        // Exact capacity: the buffer never grows, so never leaves a copy behind.
        let mut out = Zeroizing::new(Vec::with_capacity(len));
        out.extend_from_slice(MAGIC);
        out.push(FORMAT_VERSION);
        out.push(kind);
        match self {
            Self::Plain { public, seed } => {
                out.extend_from_slice(public);
                out.extend_from_slice(seed.as_slice());
            }
            Self::Sealed(s) => {
                out.extend_from_slice(&s.public);
                out.extend_from_slice(&s.params.memory_kib.to_be_bytes());
                out.extend_from_slice(&s.params.iterations.to_be_bytes());
                out.extend_from_slice(&s.params.lanes.to_be_bytes());
                out.extend_from_slice(&s.salt);
                out.extend_from_slice(&s.nonce);
                out.extend_from_slice(&s.tag);
                out.extend_from_slice(&s.ciphertext);
            }
        }
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let mut r = Reader(bytes);
        if r.array::<8>()? != *MAGIC {
            return Err(FormatError::Damaged);
        }
        let [version] = r.array::<1>()?;
        if version != FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion(version));
        }
        let [kind] = r.array::<1>()?;
        let public = r.array::<PUBLIC_LEN>()?;
        let file = match kind {
            KIND_PLAIN => Self::Plain {
                public,
                seed: r.secret_array()?,
            },
            KIND_SEALED => Self::Sealed(SealedKey {
                public,
                params: KdfParams {
                    memory_kib: r.u32()?,
                    iterations: r.u32()?,
                    lanes: r.u32()?,
                },
                salt: r.array()?,
                nonce: r.array()?,
                tag: r.array()?,
                ciphertext: r.array()?,
            }),
            _ => return Err(FormatError::Damaged),
        };
        if !r.0.is_empty() {
            return Err(FormatError::Damaged);
        }
        Ok(file)
    }
}

impl SealedKey {
    /// The seed, or `None` if the passphrase is wrong or the file was changed.
    fn open(&self, passphrase: &Passphrase) -> Result<Option<Zeroizing<[u8; SEED_LEN]>>, KeyError> {
        if !self.params.is_within_bounds() {
            return Ok(None);
        }
        let kek = match derive_kek(passphrase, &self.salt, self.params) {
            Ok(kek) => kek,
            Err(KdfError::Invalid) => return Ok(None),
            Err(KdfError::OutOfMemory) => {
                return Err(KeyError::KdfOutOfMemory {
                    memory_kib: self.params.memory_kib,
                });
            }
        };
        let mut seed = Zeroizing::new(self.ciphertext);
        let opened = XSalsa20Poly1305::new((&*kek).into()).decrypt_in_place_detached(
            (&self.nonce).into(),
            b"",
            seed.as_mut_slice(),
            (&self.tag).into(),
        );
        Ok(opened.ok().map(|()| seed))
    }
}

/// The key pair of `seed` if its public key is `public`.
fn matching_keypair(seed: &[u8; SEED_LEN], public: &[u8; PUBLIC_LEN]) -> Option<Keypair> {
    let keypair = Keypair::from_seed(seed);
    (keypair.feed_id().as_bytes() == public).then_some(keypair)
}

/// Argon2id(passphrase, salt) with `params`, 32 bytes. The working memory is
/// ours, not Argon2's, so that it is zeroized too: it holds enough of the
/// computation to speed up a guess at the passphrase.
fn derive_kek(
    passphrase: &Passphrase,
    salt: &[u8; SALT_LEN],
    params: KdfParams,
) -> Result<Zeroizing<[u8; 32]>, KdfError> {
    let argon_params =
        argon2::Params::new(params.memory_kib, params.iterations, params.lanes, Some(32))
            .map_err(|_| KdfError::Invalid)?;
    let blocks = argon_params.block_count();
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params);
    let mut memory: Zeroizing<Vec<Block>> = Zeroizing::new(Vec::new());
    memory
        .try_reserve_exact(blocks)
        .map_err(|_| KdfError::OutOfMemory)?;
    memory.resize(blocks, Block::new());
    let mut kek = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into_with_memory(
            passphrase.expose(),
            salt,
            kek.as_mut_slice(),
            memory.as_mut_slice(),
        )
        .map_err(|_| KdfError::Invalid)?;
    Ok(kek)
}

/// Takes fixed-size fields off the front of a byte slice.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], FormatError> {
        if self.0.len() < n {
            return Err(FormatError::Damaged);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], FormatError> {
        self.take(N)?.try_into().map_err(|_| FormatError::Damaged)
    }

    /// Like [`Reader::array`], but copied straight into a zeroizing buffer.
    fn secret_array<const N: usize>(&mut self) -> Result<Zeroizing<[u8; N]>, FormatError> {
        let mut out = Zeroizing::new([0u8; N]);
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, FormatError> {
        self.array().map(u32::from_be_bytes)
    }
}

// ---------------------------------------------------------------------------
// The disk.

/// Creates the data directory 0700 if it is missing. An existing directory is
/// used as it is, with a warning if others may write to it (they could
/// replace the key file).
fn ensure_data_dir(dir: &Path) -> Result<(), KeyError> {
    let create_error = |source| KeyError::CreateDir {
        path: dir.to_owned(),
        source,
    };
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {
            if meta.permissions().mode() & 0o022 != 0 {
                tracing::warn!(
                    path = %dir.display(),
                    mode = format_args!("{:04o}", meta.permissions().mode() & 0o7777),
                    "the data directory is writable by group or others, who could replace the \
                     identity key; fix it with `chmod 700`"
                );
            }
            Ok(())
        }
        Ok(_) => Err(create_error(io::Error::new(
            io::ErrorKind::NotADirectory,
            "not a directory",
        ))),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(create_error)?;
            // The umask may have taken bits away; set exactly 0700.
            fs::set_permissions(dir, Permissions::from_mode(0o700)).map_err(create_error)
        }
        Err(err) => Err(create_error(err)),
    }
}

/// Removes a temp file left by a crash. Best effort: if it cannot be removed
/// now, the next write removes it or reports why it cannot.
fn remove_stale_temp(dir: &Path) {
    let temp = dir.join(TEMP_FILE_NAME);
    match fs::remove_file(&temp) {
        Ok(()) => tracing::info!(path = %temp.display(), "removed a key temp file left by a crash"),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => tracing::warn!(
            path = %temp.display(),
            error = %err,
            "cannot remove a key temp file left by a crash"
        ),
    }
}

/// The key file at `path` decoded, or `None` if there is none. Refuses
/// anything but a regular file with no group or other permission bits.
fn read_key_file(path: &Path) -> Result<Option<KeyFile>, KeyError> {
    let read_error = |source| KeyError::Read {
        path: path.to_owned(),
        source,
    };
    // symlink_metadata: a symlink must be seen as one, not as its target.
    match fs::symlink_metadata(path) {
        Ok(meta) => check_key_metadata(path, &meta)?,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(read_error(err)),
    }
    // O_NOFOLLOW and a second check on the open file: the path may have been
    // swapped for a symlink or another file since the first look.
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|err| {
            if err.raw_os_error() == Some(libc::ELOOP) {
                KeyError::NotARegularFile {
                    path: path.to_owned(),
                }
            } else {
                read_error(err)
            }
        })?;
    check_key_metadata(path, &file.metadata().map_err(read_error)?)?;
    let (buf, len) = read_capped::<KEY_READ_CAP>(&mut file).map_err(read_error)?;
    let bytes = buf.get(..len).unwrap_or_default();
    KeyFile::decode(bytes).map(Some).map_err(|err| err.at(path))
}

fn check_key_metadata(path: &Path, meta: &Metadata) -> Result<(), KeyError> {
    if !meta.file_type().is_file() {
        return Err(KeyError::NotARegularFile {
            path: path.to_owned(),
        });
    }
    match loose_mode(meta) {
        Some(mode) => Err(KeyError::Permissions {
            path: path.to_owned(),
            mode,
        }),
        None => Ok(()),
    }
}

/// The permission bits, if group or others have any of them.
pub(crate) fn loose_mode(meta: &Metadata) -> Option<u32> {
    let mode = meta.permissions().mode() & 0o7777;
    (mode & GROUP_OTHER_BITS != 0).then_some(mode)
}

/// Reads up to `N` bytes into a zeroizing buffer; a count of `N` means the
/// file is at least that long. A fixed buffer never reallocates, so no copy
/// of a secret is left in freed memory.
pub(crate) fn read_capped<const N: usize>(
    file: &mut File,
) -> io::Result<(Zeroizing<[u8; N]>, usize)> {
    let mut buf = Zeroizing::new([0u8; N]);
    let mut len = 0;
    while let Some(rest) = buf.get_mut(len..).filter(|rest| !rest.is_empty()) {
        match file.read(rest) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok((buf, len))
}

/// Writes `bytes` to the temp file, 0600, and fsyncs it. Removes it again if
/// anything fails.
fn write_temp(dir: &Path, bytes: &[u8]) -> Result<PathBuf, KeyError> {
    let temp = dir.join(TEMP_FILE_NAME);
    let write = || -> io::Result<()> {
        match fs::remove_file(&temp) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
            _ => {}
        }
        // create_new is O_EXCL: it never follows a symlink or reuses a file.
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        // The umask may have taken bits away; set exactly 0600.
        file.set_permissions(Permissions::from_mode(0o600))?;
        file.write_all(bytes)?;
        file.sync_all()
    };
    write().map_err(|source| {
        // Best effort: a leftover is removed at the next start anyway.
        let _ = fs::remove_file(&temp);
        KeyError::Write {
            path: temp.clone(),
            source,
        }
    })?;
    Ok(temp)
}

/// Publishes a new key file without replacing one: `false` if a key file
/// appeared meanwhile (it is left alone).
fn publish_new(dir: &Path, bytes: &[u8]) -> Result<bool, KeyError> {
    let temp = write_temp(dir, bytes)?;
    let path = key_file_path(dir);
    // A hard link, unlike rename, fails if the target exists.
    let linked = fs::hard_link(&temp, &path);
    let removed = fs::remove_file(&temp);
    match linked {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
        Err(source) => return Err(KeyError::Write { path, source }),
    }
    removed.map_err(|source| KeyError::Write { path: temp, source })?;
    sync_dir(dir)?;
    Ok(true)
}

/// Replaces the key file with `bytes` atomically.
fn replace(dir: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    let temp = write_temp(dir, bytes)?;
    let path = key_file_path(dir);
    if let Err(source) = fs::rename(&temp, &path) {
        let _ = fs::remove_file(&temp);
        return Err(KeyError::Write { path, source });
    }
    sync_dir(dir)
}

/// Makes the directory entry durable: without it a crash right after could
/// lose the new name, and the node would come back without the key it ran with.
fn sync_dir(dir: &Path) -> Result<(), KeyError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| KeyError::Write {
            path: dir.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn pass(text: &str) -> Passphrase {
        Passphrase::new(text.to_owned()).unwrap()
    }

    fn mode_of(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
    }

    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, Permissions::from_mode(mode)).unwrap();
    }

    /// A data dir (inside a temp dir, so its creation is ours) and the guard.
    fn data_dir() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        (tmp, dir)
    }

    fn sealed_dir(passphrase: &str) -> (tempfile::TempDir, PathBuf, Keypair) {
        let (tmp, dir) = data_dir();
        let kp =
            load_or_create_with(&dir, Some(&pass(passphrase)), KdfParams::for_tests()).unwrap();
        (tmp, dir, kp)
    }

    fn write_key_bytes(dir: &Path, bytes: &[u8]) {
        let path = key_file_path(dir);
        fs::write(&path, bytes).unwrap();
        chmod(&path, 0o600);
    }

    #[test]
    fn create_then_reload_gives_the_same_feed_id() {
        let (_tmp, dir) = data_dir();
        let first = load_or_create(&dir, None).unwrap();
        let again = load_or_create(&dir, None).unwrap();
        assert_eq!(first.feed_id(), again.feed_id());
        assert_eq!(*first.seed(), *again.seed());
        assert_eq!(fs::read(key_file_path(&dir)).unwrap().len(), PLAIN_LEN);
        assert_eq!(key_file_kind(&dir).unwrap(), Some(KeyFileKind::Plain));
    }

    #[test]
    fn new_key_file_is_0600_and_new_data_dir_is_0700() {
        let (tmp, _) = data_dir();
        let dir = tmp.path().join("nested").join("data");
        load_or_create(&dir, None).unwrap();
        assert_eq!(mode_of(&dir), 0o700);
        assert_eq!(mode_of(&key_file_path(&dir)), 0o600);
        assert!(!dir.join(TEMP_FILE_NAME).exists());
    }

    #[test]
    fn key_file_readable_or_writable_by_others_is_refused_with_the_chmod_hint() {
        let (_tmp, dir) = data_dir();
        load_or_create(&dir, None).unwrap();
        let path = key_file_path(&dir);
        for mode in [0o644, 0o640, 0o604, 0o620, 0o602, 0o660] {
            chmod(&path, mode);
            let err = load_or_create(&dir, None).unwrap_err();
            assert!(
                matches!(err, KeyError::Permissions { mode: m, .. } if m == mode),
                "{mode:o}: {err:?}"
            );
            let msg = err.to_string();
            assert!(
                msg.contains(&format!("chmod 600 {}", path.display())),
                "{msg}"
            );
            assert!(msg.contains(&format!("{mode:04o}")), "{msg}");
            assert!(msg.contains(&path.display().to_string()), "{msg}");
        }
        // Owner-only modes are fine, including read-only.
        chmod(&path, 0o400);
        load_or_create(&dir, None).unwrap();
    }

    #[test]
    fn symlinked_key_file_is_refused() {
        let (tmp, dir) = data_dir();
        let first = load_or_create(&dir, None).unwrap();
        let path = key_file_path(&dir);
        let elsewhere = tmp.path().join("real.key");
        fs::rename(&path, &elsewhere).unwrap();
        symlink(&elsewhere, &path).unwrap();
        let err = load_or_create(&dir, None).unwrap_err();
        assert!(matches!(err, KeyError::NotARegularFile { .. }), "{err:?}");
        assert!(err.to_string().contains("not a regular file"));
        // Not replaced, not followed.
        assert!(
            fs::symlink_metadata(&path)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        fs::remove_file(&path).unwrap();
        fs::rename(&elsewhere, &path).unwrap();
        assert_eq!(
            load_or_create(&dir, None).unwrap().feed_id(),
            first.feed_id()
        );
    }

    #[test]
    fn directory_in_place_of_key_file_is_refused() {
        let (_tmp, dir) = data_dir();
        fs::create_dir_all(key_file_path(&dir)).unwrap();
        let err = load_or_create(&dir, None).unwrap_err();
        assert!(matches!(err, KeyError::NotARegularFile { .. }), "{err:?}");
    }

    #[test]
    fn sealed_round_trip() {
        let (_tmp, dir, kp) = sealed_dir("correct horse");
        assert_eq!(fs::read(key_file_path(&dir)).unwrap().len(), SEALED_LEN);
        assert_eq!(key_file_kind(&dir).unwrap(), Some(KeyFileKind::Sealed));
        let again = load_or_create(&dir, Some(&pass("correct horse"))).unwrap();
        assert_eq!(again.feed_id(), kp.feed_id());
        // The seed is not in the file.
        let bytes = fs::read(key_file_path(&dir)).unwrap();
        assert!(!bytes.windows(SEED_LEN).any(|w| w == kp.seed().as_slice()));
    }

    #[test]
    fn wrong_passphrase_is_a_typed_error() {
        let (_tmp, dir, _) = sealed_dir("correct horse");
        let err = load_or_create(&dir, Some(&pass("battery staple"))).unwrap_err();
        assert!(
            matches!(err, KeyError::WrongPassphraseOrDamaged { .. }),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("wrong passphrase or damaged key file")
        );
    }

    #[test]
    fn sealed_file_without_passphrase_says_how_to_supply_it() {
        let (_tmp, dir, _) = sealed_dir("correct horse");
        let err = load_or_create(&dir, None).unwrap_err();
        assert!(
            matches!(err, KeyError::PassphraseRequired { .. }),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains("protected by a passphrase"), "{msg}");
        assert!(msg.contains(PASSPHRASE_ENV), "{msg}");
        assert!(msg.contains("passphrase_file"), "{msg}");
    }

    #[test]
    fn every_flipped_byte_of_a_sealed_file_is_a_typed_error() {
        let (_tmp, dir, _) = sealed_dir("correct horse");
        let good = fs::read(key_file_path(&dir)).unwrap();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0xff;
            write_key_bytes(&dir, &bad);
            let err = load_or_create(&dir, Some(&pass("correct horse"))).unwrap_err();
            match i {
                0..=7 | 9 => assert!(matches!(err, KeyError::Damaged { .. }), "{i}: {err:?}"),
                8 => assert!(
                    matches!(err, KeyError::UnsupportedVersion { version: 0xfe, .. }),
                    "{i}: {err:?}"
                ),
                _ => assert!(
                    matches!(err, KeyError::WrongPassphraseOrDamaged { .. }),
                    "{i}: {err:?}"
                ),
            }
        }
        // And single-bit flips, which keep the parameters closer to valid.
        for i in PREFIX_LEN..good.len() {
            for bit in 0..8 {
                let mut bad = good.clone();
                bad[i] ^= 1 << bit;
                write_key_bytes(&dir, &bad);
                let err = load_or_create(&dir, Some(&pass("correct horse"))).unwrap_err();
                assert!(
                    matches!(err, KeyError::WrongPassphraseOrDamaged { .. }),
                    "{i}/{bit}: {err:?}"
                );
            }
        }
    }

    #[test]
    fn every_flipped_byte_of_a_plain_file_is_detected() {
        let (_tmp, dir) = data_dir();
        load_or_create(&dir, None).unwrap();
        let good = fs::read(key_file_path(&dir)).unwrap();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            write_key_bytes(&dir, &bad);
            let err = load_or_create(&dir, None).unwrap_err();
            assert!(
                matches!(
                    err,
                    KeyError::Damaged { .. } | KeyError::UnsupportedVersion { .. }
                ),
                "{i}: {err:?}"
            );
        }
    }

    #[test]
    fn truncated_or_extended_files_are_damaged() {
        let (_tmp, plain_dir) = data_dir();
        load_or_create(&plain_dir, None).unwrap();
        let (_tmp2, sealed_dir, _) = sealed_dir("pw");
        for dir in [&plain_dir, &sealed_dir] {
            let good = fs::read(key_file_path(dir)).unwrap();
            for len in 0..good.len() {
                write_key_bytes(dir, &good[..len]);
                let err = load_or_create(dir, Some(&pass("pw"))).unwrap_err();
                assert!(matches!(err, KeyError::Damaged { .. }), "{len}: {err:?}");
            }
            let mut long = good.clone();
            long.push(0);
            write_key_bytes(dir, &long);
            let err = load_or_create(dir, Some(&pass("pw"))).unwrap_err();
            assert!(matches!(err, KeyError::Damaged { .. }), "{err:?}");
            // Much longer than any key file: still read only up to the cap.
            write_key_bytes(dir, &vec![0u8; 1 << 20]);
            let err = load_or_create(dir, None).unwrap_err();
            assert!(matches!(err, KeyError::Damaged { .. }), "{err:?}");
        }
    }

    /// Builds both kinds byte by byte from the table in the module doc, with
    /// the primitives called directly, and loads them: the layout is pinned.
    #[test]
    fn layout_matches_the_documented_format() {
        let seed = [7u8; 32];
        let kp = Keypair::from_seed(&seed);
        let public = *kp.feed_id().as_bytes();

        let mut plain = b"SHERDKEY\x01\x01".to_vec();
        plain.extend_from_slice(&public);
        plain.extend_from_slice(&seed);
        assert_eq!(plain.len(), 74);
        let (_tmp, dir) = data_dir();
        fs::create_dir_all(&dir).unwrap();
        write_key_bytes(&dir, &plain);
        assert_eq!(load_or_create(&dir, None).unwrap().feed_id(), kp.feed_id());

        let (salt, nonce) = ([1u8; 16], [2u8; 24]);
        let mut kek = [0u8; 32];
        Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            argon2::Params::new(64, 1, 1, Some(32)).unwrap(),
        )
        .hash_password_into(b"pw", &salt, &mut kek)
        .unwrap();
        let boxed = crypto_secretbox::aead::Aead::encrypt(
            &XSalsa20Poly1305::new(&kek.into()),
            &nonce.into(),
            &seed[..],
        )
        .unwrap();
        let mut sealed = b"SHERDKEY\x01\x02".to_vec();
        sealed.extend_from_slice(&public);
        sealed.extend_from_slice(&[0, 0, 0, 64, 0, 0, 0, 1, 0, 0, 0, 1]);
        sealed.extend_from_slice(&salt);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&boxed);
        assert_eq!(sealed.len(), 142);
        write_key_bytes(&dir, &sealed);
        let opened = load_or_create(&dir, Some(&pass("pw"))).unwrap();
        assert_eq!(opened.feed_id(), kp.feed_id());

        // Decoding and encoding again gives the same bytes.
        let Ok(KeyFile::Sealed(decoded)) = KeyFile::decode(&sealed) else {
            panic!("not sealed");
        };
        assert_eq!(decoded.params, KdfParams::for_tests());
        assert_eq!(KeyFile::Sealed(decoded).encode().as_slice(), &sealed[..]);
    }

    #[test]
    fn unknown_format_version_is_its_own_error() {
        let (_tmp, dir) = data_dir();
        load_or_create(&dir, None).unwrap();
        let mut bytes = fs::read(key_file_path(&dir)).unwrap();
        bytes[8] = 2;
        write_key_bytes(&dir, &bytes);
        let err = load_or_create(&dir, None).unwrap_err();
        assert!(
            matches!(err, KeyError::UnsupportedVersion { version: 2, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("run a newer sherdd"));
    }

    #[test]
    fn passphrase_given_for_a_plain_key_still_loads_it() {
        let (_tmp, dir) = data_dir();
        let kp = load_or_create(&dir, None).unwrap();
        let again = load_or_create(&dir, Some(&pass("unused"))).unwrap();
        assert_eq!(again.feed_id(), kp.feed_id());
        // Loading never rewrites the file.
        assert_eq!(key_file_kind(&dir).unwrap(), Some(KeyFileKind::Plain));
    }

    #[test]
    fn seal_change_and_unseal_keep_the_identity() {
        let (_tmp, dir) = data_dir();
        let kp = load_or_create(&dir, None).unwrap();
        let path = key_file_path(&dir);

        seal_key_file(&dir, None, &pass("one"), KdfParams::for_tests()).unwrap();
        assert_eq!(key_file_kind(&dir).unwrap(), Some(KeyFileKind::Sealed));
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(
            load_or_create(&dir, Some(&pass("one"))).unwrap().feed_id(),
            kp.feed_id()
        );

        // Changing the passphrase needs the current one.
        let err = seal_key_file(&dir, None, &pass("two"), KdfParams::for_tests()).unwrap_err();
        assert!(
            matches!(err, KeyError::PassphraseRequired { .. }),
            "{err:?}"
        );
        let err = seal_key_file(
            &dir,
            Some(&pass("nope")),
            &pass("two"),
            KdfParams::for_tests(),
        )
        .unwrap_err();
        assert!(
            matches!(err, KeyError::WrongPassphraseOrDamaged { .. }),
            "{err:?}"
        );
        seal_key_file(
            &dir,
            Some(&pass("one")),
            &pass("two"),
            KdfParams::for_tests(),
        )
        .unwrap();
        let err = load_or_create(&dir, Some(&pass("one"))).unwrap_err();
        assert!(
            matches!(err, KeyError::WrongPassphraseOrDamaged { .. }),
            "{err:?}"
        );

        unseal_key_file(&dir, &pass("two")).unwrap();
        assert_eq!(key_file_kind(&dir).unwrap(), Some(KeyFileKind::Plain));
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(load_or_create(&dir, None).unwrap().feed_id(), kp.feed_id());
        assert!(!dir.join(TEMP_FILE_NAME).exists());
    }

    #[test]
    fn rewriting_needs_an_existing_key() {
        let (_tmp, dir) = data_dir();
        fs::create_dir_all(&dir).unwrap();
        let err = seal_key_file(&dir, None, &pass("x"), KdfParams::for_tests()).unwrap_err();
        assert!(matches!(err, KeyError::NoKey { .. }), "{err:?}");
        let err = unseal_key_file(&dir, &pass("x")).unwrap_err();
        assert!(matches!(err, KeyError::NoKey { .. }), "{err:?}");
    }

    #[test]
    fn out_of_bounds_kdf_params_are_refused_when_sealing() {
        let (_tmp, dir) = data_dir();
        load_or_create(&dir, None).unwrap();
        let bad = [
            KdfParams {
                memory_kib: KdfParams::MAX_MEMORY_KIB + 1,
                ..KdfParams::DEFAULT
            },
            KdfParams {
                memory_kib: 7,
                ..KdfParams::for_tests()
            },
            KdfParams {
                iterations: 0,
                ..KdfParams::for_tests()
            },
            KdfParams {
                iterations: KdfParams::MAX_ITERATIONS + 1,
                ..KdfParams::for_tests()
            },
            KdfParams {
                lanes: 0,
                ..KdfParams::for_tests()
            },
            KdfParams {
                lanes: 2,
                memory_kib: 15,
                iterations: 1,
            },
        ];
        for params in bad {
            let err = seal_key_file(&dir, None, &pass("x"), params).unwrap_err();
            assert!(
                matches!(err, KeyError::InvalidKdfParams { .. }),
                "{params}: {err:?}"
            );
        }
        assert_eq!(key_file_kind(&dir).unwrap(), Some(KeyFileKind::Plain));
    }

    #[test]
    fn default_kdf_uses_at_least_64_mib_and_load_or_create_uses_it() {
        const { assert!(KdfParams::DEFAULT.memory_kib >= 64 * 1024) };
        assert_eq!(KdfParams::default(), KdfParams::DEFAULT);
        assert!(KdfParams::DEFAULT.is_within_bounds());
        // One real sealing at the default cost, read back from the file.
        let (_tmp, dir) = data_dir();
        let kp = load_or_create(&dir, Some(&pass("slow"))).unwrap();
        let bytes = fs::read(key_file_path(&dir)).unwrap();
        let Ok(KeyFile::Sealed(sealed)) = KeyFile::decode(&bytes) else {
            panic!("not a sealed file");
        };
        assert_eq!(sealed.params, KdfParams::DEFAULT);
        assert!(sealed.params.memory_kib >= 64 * 1024, "{}", sealed.params);
        assert_eq!(sealed.public, *kp.feed_id().as_bytes());
    }

    #[test]
    fn key_bytes_never_appear_in_debug_output() {
        let (_tmp, dir) = data_dir();
        let kp = load_or_create(&dir, None).unwrap();
        let seed = kp.seed();
        let file = KeyFile::plain(&kp);
        let sealed = KeyFile::seal(&kp, &pass("hunter2"), KdfParams::for_tests()).unwrap();
        let outputs = [
            format!("{kp:?}"),
            format!("{file:?}"),
            format!("{file:#?}"),
            format!("{sealed:?}"),
            format!("{:?}", pass("hunter2")),
            format!(
                "{:?}",
                load_or_create(&dir, Some(&pass("hunter2"))).map(|_| ())
            ),
        ];
        // The seed as Debug prints it (a list of numbers), in parts too.
        let seed_list = format!("{:?}", &seed[..]);
        let seed_head = format!("{:?}", &seed[..4]);
        let seed_head = seed_head.trim_matches(['[', ']']);
        for out in &outputs {
            assert!(!out.contains(seed_list.trim_matches(['[', ']'])), "{out}");
            assert!(!out.contains(seed_head), "{out}");
            assert!(!out.contains("hunter2"), "{out}");
        }
        assert_eq!(format!("{:?}", pass("hunter2")), "Passphrase(<redacted>)");
    }

    #[test]
    fn leftover_partial_temp_file_does_not_block_the_next_start() {
        // A crash during the first start: only a partial temp file, no key.
        let (_tmp, dir) = data_dir();
        fs::create_dir_all(&dir).unwrap();
        let temp = dir.join(TEMP_FILE_NAME);
        fs::write(&temp, &MAGIC[..5]).unwrap();
        chmod(&temp, 0o644);
        let kp = load_or_create(&dir, None).unwrap();
        assert!(!temp.exists());
        assert_eq!(load_or_create(&dir, None).unwrap().feed_id(), kp.feed_id());

        // A crash during a re-seal: a complete temp file of another key next
        // to the real one. It is never taken for the key, and is removed.
        let (_tmp2, other_dir) = data_dir();
        load_or_create(&other_dir, None).unwrap();
        fs::copy(key_file_path(&other_dir), &temp).unwrap();
        assert_eq!(load_or_create(&dir, None).unwrap().feed_id(), kp.feed_id());
        assert!(!temp.exists());
    }

    #[test]
    fn a_key_created_meanwhile_is_not_replaced() {
        let (_tmp, dir) = data_dir();
        let first = load_or_create(&dir, None).unwrap();
        let before = fs::read(key_file_path(&dir)).unwrap();
        let other = Keypair::generate(&mut os_rng());
        assert!(!publish_new(&dir, &KeyFile::plain(&other).encode()).unwrap());
        assert_eq!(fs::read(key_file_path(&dir)).unwrap(), before);
        assert!(!dir.join(TEMP_FILE_NAME).exists());
        assert_eq!(
            load_or_create(&dir, None).unwrap().feed_id(),
            first.feed_id()
        );
    }

    #[test]
    fn data_dir_that_is_a_file_is_refused() {
        let (tmp, _) = data_dir();
        let file = tmp.path().join("file");
        fs::write(&file, b"x").unwrap();
        let err = load_or_create(&file, None).unwrap_err();
        assert!(matches!(err, KeyError::CreateDir { .. }), "{err:?}");
    }

    #[test]
    fn key_file_kind_of_an_empty_data_dir_is_none() {
        let (_tmp, dir) = data_dir();
        assert_eq!(key_file_kind(&dir).unwrap(), None);
        assert!(!dir.exists(), "asking must not create the data dir");
    }

    // Passphrase sources.

    fn secret_file(dir: &Path, contents: &[u8]) -> PathBuf {
        let path = dir.join("passphrase");
        fs::write(&path, contents).unwrap();
        chmod(&path, 0o600);
        path
    }

    #[test]
    fn passphrase_file_loses_exactly_one_trailing_newline() {
        let tmp = tempfile::tempdir().unwrap();
        for (contents, expected) in [
            (&b"pw\n"[..], &b"pw"[..]),
            (b"pw\r\n", b"pw"),
            (b"pw\n\n", b"pw\n"),
            (b"pw", b"pw"),
            (b" pw \n", b" pw "),
        ] {
            let path = secret_file(tmp.path(), contents);
            let p = Passphrase::from_sources(Some(&path), None, false)
                .unwrap()
                .unwrap();
            assert_eq!(p.expose(), expected);
        }
    }

    #[test]
    fn empty_passphrases_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        for contents in [&b""[..], b"\n", b"\r\n"] {
            let path = secret_file(tmp.path(), contents);
            let err = Passphrase::from_sources(Some(&path), None, false).unwrap_err();
            assert!(matches!(err, PassphraseError::Empty { .. }), "{err:?}");
        }
        let err = Passphrase::from_sources(None, Some(String::new()), false).unwrap_err();
        assert!(matches!(err, PassphraseError::Empty { .. }), "{err:?}");
        assert!(err.to_string().contains(PASSPHRASE_ENV));
        assert!(Passphrase::new(String::new()).is_err());
    }

    #[test]
    fn passphrase_file_readable_by_others_is_refused_with_the_chmod_hint() {
        let tmp = tempfile::tempdir().unwrap();
        let path = secret_file(tmp.path(), b"pw\n");
        chmod(&path, 0o644);
        let err = Passphrase::from_sources(Some(&path), None, false).unwrap_err();
        assert!(
            matches!(err, PassphraseError::Permissions { mode: 0o644, .. }),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .contains(&format!("chmod 600 {}", path.display()))
        );
    }

    #[test]
    fn passphrase_file_problems_are_typed() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("missing");
        let err = Passphrase::from_sources(Some(&missing), None, false).unwrap_err();
        assert!(matches!(err, PassphraseError::ReadFile { .. }), "{err:?}");
        let err = Passphrase::from_sources(Some(tmp.path()), None, false).unwrap_err();
        assert!(
            matches!(
                err,
                PassphraseError::NotARegularFile { .. } | PassphraseError::Permissions { .. }
            ),
            "{err:?}"
        );
        let long = secret_file(tmp.path(), &[b'a'; MAX_PASSPHRASE_LEN + 1]);
        let err = Passphrase::from_sources(Some(&long), None, false).unwrap_err();
        assert!(matches!(err, PassphraseError::TooLong { .. }), "{err:?}");
        let longest = secret_file(tmp.path(), &[b'a'; MAX_PASSPHRASE_LEN]);
        assert!(Passphrase::from_file(&longest).is_ok());
    }

    #[test]
    fn passphrase_file_through_a_symlink_is_followed_and_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let target = secret_file(tmp.path(), b"pw\n");
        let link = tmp.path().join("link");
        symlink(&target, &link).unwrap();
        let p = Passphrase::from_file(&link).unwrap();
        assert_eq!(p.expose(), b"pw");
        chmod(&target, 0o640);
        let err = Passphrase::from_file(&link).unwrap_err();
        assert!(
            matches!(err, PassphraseError::Permissions { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn passphrase_from_env_value_or_none() {
        let p = Passphrase::from_sources(None, Some("from env\n".to_owned()), false)
            .unwrap()
            .unwrap();
        // Used as is: only files get a newline stripped.
        assert_eq!(p.expose(), b"from env\n");
        assert!(
            Passphrase::from_sources(None, None, false)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn passphrase_file_and_env_together_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let path = secret_file(tmp.path(), b"pw");
        let err = Passphrase::from_sources(Some(&path), Some("pw".to_owned()), false).unwrap_err();
        assert!(
            matches!(err, PassphraseError::Conflicting { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains(PASSPHRASE_ENV));
    }

    #[test]
    fn passphrase_from_file_opens_the_sealed_key() {
        let (tmp, dir, kp) = sealed_dir("from a file");
        let path = secret_file(tmp.path(), b"from a file\n");
        let p = Passphrase::from_sources(Some(&path), None, false).unwrap();
        assert_eq!(
            load_or_create(&dir, p.as_ref()).unwrap().feed_id(),
            kp.feed_id()
        );
    }
}
