#!/usr/bin/env python3
"""Checks sherd's test vectors with libsodium, from outside Rust.

    python3 interop/check_vectors.py [protocol/tests/vectors]

Everything cryptographic goes through libsodium (PyNaCl's bindings): the
ed25519 -> X25519 key conversion, ed25519 signatures, crypto_box_seal_open,
crypto_box_beforenm / crypto_box_open_afternm and crypto_secretbox_open. The
formats are decoded here from PROTOCOL.md alone, with hashlib's SHA-256, a
few lines of base58, and GF(2^8) arithmetic for the Shamir shares. The entry
validation rules (PROTOCOL.md 3.3), envelope opening (5), shard checks (8.3)
and recovery (9) are re-implemented here and must reach exactly the verdict
recorded in each vector. Health-check proofs (8.5) are recomputed with the
standard library's hmac and hashlib.

Prints one line per check and a summary; exits 1 on any mismatch.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sys
from pathlib import Path

import nacl
import nacl.bindings as sodium
from nacl.exceptions import BadSignatureError, CryptoError
from nacl.signing import SigningKey, VerifyKey

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = ROOT / "protocol" / "tests" / "vectors"

ENTRY_DOMAIN = b"sherd/entry/v1\x00"
SHARD_DOMAIN = b"sherd/shard/v1\x00"
PROOF_DOMAIN = b"sherd/health-proof/v1"
PEER_ID_PREFIX = bytes([0x00, 0x24, 0x08, 0x01, 0x12, 0x20])
MAX_PAYLOAD_LEN = 65536
MAX_CLOCK_SKEW_MS = 600_000
ENVELOPE_PREFIX_LEN = 1 + 24 + 32 + 8 * 48  # 441
ENVELOPE_OVERHEAD = ENVELOPE_PREFIX_LEN + 32 + 16  # 489
SEAL_OVERHEAD = 48

B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


# --------------------------------------------------------------------------
# Reporting.
# --------------------------------------------------------------------------


class Report:
    def __init__(self) -> None:
        self.checks = 0
        self.failures: list[str] = []

    def check(self, where: str, what: str, ok: bool, detail: str = "") -> bool:
        self.checks += 1
        if ok:
            print(f"ok    {where}: {what}")
        else:
            line = f"{where}: {what}" + (f": {detail}" if detail else "")
            print(f"FAIL  {line}")
            self.failures.append(line)
        return ok

    def equal(self, where: str, what: str, got, want) -> bool:
        return self.check(where, what, got == want, f"got {show(got)}, vector says {show(want)}")


def show(v) -> str:
    if isinstance(v, (bytes, bytearray)):
        return v.hex() if len(v) <= 64 else f"{v[:32].hex()}... ({len(v)} bytes)"
    return repr(v)


def unhex(s: str) -> bytes:
    return bytes.fromhex(s)


def sha256(*parts: bytes) -> bytes:
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.digest()


def b58decode(s: str) -> bytes:
    """base58btc (Bitcoin alphabet); raises ValueError on a bad character."""
    n = 0
    for c in s:
        i = B58_ALPHABET.find(c)
        if i < 0:
            raise ValueError(f"not base58: {c!r}")
        n = n * 58 + i
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    zeros = len(s) - len(s.lstrip("1"))
    return b"\x00" * zeros + body


def ed25519_verify(pk: bytes, message: bytes, signature: bytes) -> bool:
    try:
        VerifyKey(pk).verify(message, signature)
        return True
    except (BadSignatureError, ValueError, TypeError):
        return False
    except Exception:  # PyNaCl raises other errors for unusable keys
        return False


# --------------------------------------------------------------------------
# (1) and (5): keys, the X25519 conversion, feed ids.
# --------------------------------------------------------------------------


def check_party(r: Report, where: str, p: dict) -> None:
    name = p.get("name", "?")
    seed = unhex(p["seed"])
    pk = unhex(p["ed25519_public_key"])
    sodium_pk, sodium_sk = sodium.crypto_sign_seed_keypair(seed)
    r.equal(where, f"{name}: ed25519 public key of the seed", sodium_pk, pk)
    r.equal(where, f"{name}: SigningKey agrees", bytes(SigningKey(seed).verify_key), pk)
    if "ed25519_secret_key" in p:
        r.equal(where, f"{name}: 64-byte secret key", sodium_sk, unhex(p["ed25519_secret_key"]))
    xs = sodium.crypto_sign_ed25519_sk_to_curve25519(seed + pk)
    r.equal(where, f"{name}: crypto_sign_ed25519_sk_to_curve25519", xs, unhex(p["x25519_secret"]))
    xp = sodium.crypto_sign_ed25519_pk_to_curve25519(pk)
    r.equal(where, f"{name}: crypto_sign_ed25519_pk_to_curve25519", xp, unhex(p["x25519_public"]))
    r.equal(where, f"{name}: crypto_scalarmult_base(x25519 secret)", sodium.crypto_scalarmult_base(xs), xp)
    peer_id = b58decode(p["feed_id"])
    r.equal(where, f"{name}: feed id = base58(00 24 08 01 12 20 || key)", peer_id, PEER_ID_PREFIX + pk)
    if "peer_id" in p:
        r.equal(where, f"{name}: peer_id", peer_id, unhex(p["peer_id"]))


def parties_in(value, out: list) -> None:
    if isinstance(value, dict):
        if "seed" in value and "x25519_secret" in value:
            out.append(value)
        for v in value.values():
            parties_in(v, out)
    elif isinstance(value, list):
        for v in value:
            parties_in(v, out)


def feed_id_key(feed_id: str) -> bytes | None:
    """The 32 key bytes of a feed id string, if it has the PeerId form."""
    try:
        raw = b58decode(feed_id)
    except ValueError:
        return None
    if len(raw) != 38 or not raw.startswith(PEER_ID_PREFIX):
        return None
    return raw[6:]


def check_identity_fail(r: Report, where: str, v: dict) -> None:
    expected = v["expected_error"]
    key = feed_id_key(v["feed_id"])
    if expected == "NotAFeedId":
        r.check(where, "feed id does not have the PeerId form of an ed25519 key", key is None)
        return
    pk = unhex(v["public_key"])
    r.equal(where, "feed id decodes to 00 24 08 01 12 20 || public_key", key, pk)
    try:
        sodium.crypto_sign_ed25519_pk_to_curve25519(pk)
        refused = False
    except Exception:
        refused = True
    r.check(where, f"libsodium refuses the key too ({expected})", refused)


# --------------------------------------------------------------------------
# (2): entries. A re-implementation of PROTOCOL.md 3.3.
# --------------------------------------------------------------------------


def decode_header(b: bytes) -> dict:
    return {
        "version": b[0],
        "author": b[1:33],
        "seq": int.from_bytes(b[33:41], "big"),
        "backlink": b[41:73],
        "timestamp_ms": int.from_bytes(b[73:81], "big"),
        "kind": b[81],
        "payload_len": int.from_bytes(b[82:86], "big"),
        "payload_hash": b[86:118],
        "signature": b[118:182],
    }


def entry_signature_ok(b: bytes) -> bool:
    return ed25519_verify(b[1:33], ENTRY_DOMAIN + b[:118], b[118:182])


def validate_entry(author: bytes, head: bytes | None, b: bytes, payload: bytes | None, now_ms: int):
    """(error name or None, fields, fork proof or None), in the order of 3.3."""
    if len(b) != 182:
        return "Length", {"len": len(b)}, None
    h = decode_header(b)
    if h["version"] != 1:
        return "UnknownVersion", {"version": h["version"]}, None
    if h["kind"] not in (0, 1):
        return "UnknownPayloadKind", {"kind": h["kind"]}, None
    if h["seq"] == 0:
        return "ZeroSeq", {}, None
    if (h["seq"] == 1) != (h["backlink"] == bytes(32)):
        return "Backlink", {}, None
    if h["payload_len"] > MAX_PAYLOAD_LEN:
        return "Oversize", {"payload_len": h["payload_len"]}, None
    if h["author"] != author:
        return "WrongAuthor", {}, None
    head_seq = decode_header(head)["seq"] if head else 0
    if head and head_seq == h["seq"]:
        if sha256(head) == sha256(b):
            return "AlreadyHave", {}, None
        if not entry_signature_ok(b):
            return "BadSignature", {}, None
        pair = sorted([head, b], key=sha256)
        return "Fork", {"seq": h["seq"]}, pair[0] + pair[1]
    if h["seq"] != head_seq + 1:
        return "WrongSeq", {"expected": head_seq + 1, "found": h["seq"]}, None
    if h["backlink"] != (sha256(head) if head else bytes(32)):
        return "WrongBacklink", {}, None
    if h["timestamp_ms"] > now_ms + MAX_CLOCK_SKEW_MS:
        return "FromTheFuture", {"timestamp_ms": h["timestamp_ms"], "now_ms": now_ms}, None
    if payload is not None:
        if len(payload) != h["payload_len"]:
            return "PayloadLength", {"declared": h["payload_len"], "actual": len(payload)}, None
        if sha256(payload) != h["payload_hash"]:
            return "PayloadHash", {}, None
    if not entry_signature_ok(b):
        return "BadSignature", {}, None
    return None, {}, None


def check_feed_entry(r: Report, where: str, author_pk: bytes, e: dict, prev_id: bytes | None) -> bytes:
    at = f"entry {e['seq']}"
    b = unhex(e["signed_header"])
    payload = unhex(e["payload"])
    h = decode_header(b)
    r.equal(where, f"{at}: 182 bytes", len(b), 182)
    r.equal(where, f"{at}: signed_message = domain || header", unhex(e["signed_message"]), ENTRY_DOMAIN + b[:118])
    r.check(where, f"{at}: ed25519 signature verifies (libsodium)",
            ed25519_verify(author_pk, ENTRY_DOMAIN + b[:118], b[118:]))
    try:
        sodium.crypto_sign_open(b[118:] + ENTRY_DOMAIN + b[:118], author_pk)
        opened = True
    except (BadSignatureError, CryptoError):
        opened = False
    r.check(where, f"{at}: crypto_sign_open accepts signature || message", opened)
    r.equal(where, f"{at}: id = SHA-256(182 bytes)", sha256(b), unhex(e["id"]))
    r.equal(where, f"{at}: payload hash", sha256(payload), h["payload_hash"])
    r.equal(where, f"{at}: recorded payload hash", h["payload_hash"], unhex(e["payload_hash"]))
    r.equal(where, f"{at}: payload length", (len(payload), h["payload_len"]), (e["payload_len"], e["payload_len"]))
    r.equal(where, f"{at}: author", h["author"], author_pk)
    r.equal(where, f"{at}: seq", h["seq"], e["seq"])
    r.equal(where, f"{at}: timestamp", h["timestamp_ms"], e["timestamp_ms"])
    r.equal(where, f"{at}: payload kind", {0: "public", 1: "boxed"}.get(h["kind"]), e["payload_kind"])
    want_backlink = prev_id if prev_id is not None else bytes(32)
    r.equal(where, f"{at}: backlink is the previous id", h["backlink"], want_backlink)
    r.equal(where, f"{at}: recorded backlink", e["backlink"], prev_id.hex() if prev_id else None)
    return b


def check_feed(r: Report, where: str, v: dict) -> None:
    author = unhex(v["author"]["ed25519_public_key"])
    head = None
    for e in v["entries"]:
        b = check_feed_entry(r, where, author, e, sha256(head) if head else None)
        err = validate_entry(author, head, b, unhex(e["payload"]), v["now_ms"])
        r.equal(where, f"entry {e['seq']}: accepted by the rules of 3.3", err[0], None)
        head = b


def check_boxed_entry(r: Report, where: str, v: dict) -> None:
    author = unhex(v["author"]["ed25519_public_key"])
    e = v["entry"]
    b = check_feed_entry(r, where, author, e, None)
    payload = unhex(e["payload"])
    r.equal(where, "accepted by the rules of 3.3", validate_entry(author, None, b, payload, v["now_ms"])[0], None)
    for rec in v["recipients"]:
        got = open_envelope(payload, unhex(rec["x25519_secret"]), author)
        r.equal(where, f"{rec['name']} opens the payload", got[0], "ok")
        if got[0] == "ok":
            r.equal(where, f"{rec['name']}: plaintext", got[1], unhex(v["plaintext"]))
    content = json.loads(unhex(v["plaintext"]))
    r.check(where, "plaintext is a private content", content.get("type") not in ("about", "contact"))


def check_entry_case(r: Report, where: str, v: dict) -> None:
    author = unhex(v["author"]["ed25519_public_key"])
    head = unhex(v["head"]) if v["head"] else None
    b = unhex(v["entry"])
    payload = unhex(v["payload"]) if v["payload"] is not None else None
    sig = entry_signature_ok(b) if len(b) == 182 else None
    r.equal(where, "signature_valid (libsodium, key from the entry's author field)", sig, v["signature_valid"])
    name, fields, proof = validate_entry(author, head, b, payload, v["now_ms"])
    want = v["expected_error"]
    r.equal(where, f"verdict {want or 'accepted'}", (name, fields),
            (want, v.get("expected_error_fields", {})))
    if "fork_proof" in v or proof is not None:
        r.equal(where, "fork proof: both headers, smaller id first", proof.hex() if proof else None, v.get("fork_proof"))


# --------------------------------------------------------------------------
# (4): envelopes. A re-implementation of PROTOCOL.md 5, "Opening".
# --------------------------------------------------------------------------


def open_envelope(env: bytes, x25519_secret: bytes, author_pk: bytes):
    """("ok", plaintext, slot, body_key) or (error name,)."""
    if len(env) < ENVELOPE_OVERHEAD or env[0] != 1:
        return ("Malformed",)
    nonce, epk = env[1:25], env[25:57]
    try:
        key = sodium.crypto_box_beforenm(epk, x25519_secret)
    except Exception:  # libsodium refuses a small-order ephemeral key
        return ("NotForMe",)
    for slot in range(8):
        ct = env[57 + 48 * slot: 57 + 48 * (slot + 1)]
        try:
            body_key = sodium.crypto_box_open_afternm(ct, nonce, key)
        except CryptoError:
            continue
        try:
            body = sodium.crypto_secretbox_open(env[ENVELOPE_PREFIX_LEN:], nonce, body_key)
        except CryptoError:
            return ("BadBody",)
        binding = sha256(author_pk, env[:ENVELOPE_PREFIX_LEN])
        if body[:32] != binding:
            return ("NotBound",)
        return ("ok", body[32:], slot, body_key)
    return ("NotForMe",)


def check_envelope(r: Report, where: str, v: dict) -> None:
    env = unhex(v["envelope"])
    author = unhex(v["author"]["ed25519_public_key"])
    plaintext = unhex(v["plaintext"])
    r.equal(where, "length = 489 + plaintext", len(env), ENVELOPE_OVERHEAD + len(plaintext))
    r.equal(where, "nonce = bytes 1..25", env[1:25], unhex(v["nonce"]))
    r.equal(where, "ephemeral key = bytes 25..57", env[25:57], unhex(v["ephemeral_public"]))
    r.equal(where, "binding = SHA-256(author || bytes 0..441)", sha256(author, env[:ENVELOPE_PREFIX_LEN]),
            unhex(v["binding"]))
    for slot, rec in enumerate(v["recipients"]):
        got = open_envelope(env, unhex(rec["x25519_secret"]), author)
        if not r.equal(where, f"{rec['name']} opens", got[0], "ok"):
            continue
        r.equal(where, f"{rec['name']}: plaintext", got[1], plaintext)
        r.equal(where, f"{rec['name']}: opens slot {slot}", got[2], slot)
        r.equal(where, f"{rec['name']}: body key", got[3], unhex(v["body_key"]))
    r.equal(where, "the author does not open", open_envelope(env, unhex(v["author"]["x25519_secret"]), author)[0],
            "NotForMe")


def check_envelope_fail(r: Report, where: str, v: dict) -> None:
    got = open_envelope(unhex(v["envelope"]), unhex(v["reader"]["x25519_secret"]),
                        unhex(v["author"]["ed25519_public_key"]))
    r.equal(where, f"{v['reader']['name']} gets {v['expected_error']}", got[0], v["expected_error"])


# --------------------------------------------------------------------------
# (3): sealed shards. PROTOCOL.md 6 and 8.3.
# --------------------------------------------------------------------------


class Malformed(Exception):
    pass


def parse_shard(signed: bytes) -> dict:
    """Decodes a signed inner shard (8.3); raises Malformed(field)."""
    if len(signed) < 64:
        raise Malformed("too short")
    body, pos = signed[:-64], 0

    def take(n: int, field: str) -> bytes:
        nonlocal pos
        if pos + n > len(body):
            raise Malformed(field)
        out = body[pos:pos + n]
        pos += n
        return out

    def u(n: int, field: str) -> int:
        return int.from_bytes(take(n, field), "big")

    def keys(field: str, most: int) -> list[bytes]:
        n = u(1, field)
        if n > most:
            raise Malformed(field)
        return [take(32, field) for _ in range(n)]

    if u(1, "version") != 1:
        raise Malformed("version")
    s = {
        "created_ms": u(8, "created_ms"),
        "backup": take(32, "backup"),
        "owner": take(32, "owner"),
        "custodian": take(32, "custodian"),
        "threshold": u(1, "threshold"),
        "share_id": u(1, "share_id"),
        "share": take(32, "share"),
        "custodians": keys("custodians", 32),
        "trustees": keys("trustees", 8),
        "veto_delay_secs": u(4, "veto_delay_secs"),
    }
    one_time = u(1, "one_time")
    if one_time not in (0, 1):
        raise Malformed("one_time")
    release = u(1, "release")
    if release not in (0, 1):
        raise Malformed("release")
    s["one_time"] = one_time == 1
    s["release"] = ["approve", "auto"][release]
    s["check_key"] = take(32, "check_key")
    s["ciphertext"] = take(u(4, "ciphertext"), "ciphertext")
    if pos != len(body):
        raise Malformed("trailing bytes")
    if not 1 <= len(s["custodians"]) <= 32:
        raise Malformed("custodians")
    if not 1 <= s["threshold"] <= len(s["custodians"]):
        raise Malformed("threshold")
    if s["share_id"] == 0:
        raise Malformed("share_id")
    if len(set(s["custodians"])) != len(s["custodians"]):
        raise Malformed("custodians")
    if s["custodian"] not in s["custodians"]:
        raise Malformed("custodian")
    if s["owner"] in s["custodians"]:
        raise Malformed("custodians")
    if len(set(s["trustees"])) != len(s["trustees"]):
        raise Malformed("trustees")
    if s["veto_delay_secs"] > 365 * 24 * 3600:
        raise Malformed("veto_delay_secs")
    if not 24 + 16 + 256 <= len(s["ciphertext"]) <= 24 + 16 + padded_len(1 + 2 + 256 + 2 + 1024 + 4 + 16384):
        raise Malformed("ciphertext")
    for k in [s["owner"], s["custodian"], *s["custodians"], *s["trustees"]]:
        try:
            sodium.crypto_sign_ed25519_pk_to_curve25519(k)  # refuses weak keys (section 2)
        except Exception:
            raise Malformed("key") from None
    s["body"] = body
    s["signature"] = signed[-64:]
    return s


def seal_open(sealed: bytes, x25519_secret: bytes) -> bytes | None:
    try:
        return sodium.crypto_box_seal_open(sealed, sodium.crypto_scalarmult_base(x25519_secret), x25519_secret)
    except CryptoError:
        return None


def open_shard(sealed: bytes, reader: dict):
    """(error name, detail) or ("ok", parsed shard, signed bytes), as VerifiedShard::open."""
    signed = seal_open(sealed, unhex(reader["x25519_secret"]))
    if signed is None:
        return ("CannotOpen", None)
    try:
        s = parse_shard(signed)
    except Malformed as e:
        return ("Malformed", str(e))
    if not ed25519_verify(s["owner"], SHARD_DOMAIN + s["body"], s["signature"]):
        return ("BadSignature", None)
    if s["custodian"] != unhex(reader["ed25519_public_key"]):
        return ("WrongCustodian", None)
    return ("ok", s, signed)


def check_sealed_shard(r: Report, where: str, v: dict) -> None:
    sealed = unhex(v["sealed"])
    signed = unhex(v["signed_shard"])
    r.equal(where, "ephemeral key = first 32 bytes", sealed[:32], unhex(v["ephemeral_public"]))
    r.equal(where, "crypto_box_seal_open with the custodian's converted key", seal_open(sealed, unhex(
        v["custodian"]["x25519_secret"])), signed)
    owner = unhex(v["owner"]["ed25519_public_key"])
    r.check(where, "owner's ed25519 signature over \"sherd/shard/v1\\0\" || body",
            ed25519_verify(owner, SHARD_DOMAIN + signed[:-64], signed[-64:]))
    got = open_shard(sealed, v["custodian"])
    if not r.equal(where, "opens as a valid shard for the custodian", got[0], "ok"):
        return
    s = got[1]
    fields = {
        "created_ms": s["created_ms"],
        "backup": s["backup"].hex(),
        "owner": s["owner"].hex(),
        "custodian": s["custodian"].hex(),
        "threshold": s["threshold"],
        "share_id": s["share_id"],
        "share": s["share"].hex(),
        "custodians": [c.hex() for c in s["custodians"]],
        "trustees": [t.hex() for t in s["trustees"]],
        "veto_delay_secs": s["veto_delay_secs"],
        "one_time": s["one_time"],
        "release": s["release"],
        "check_key": s["check_key"].hex(),
        "ciphertext": s["ciphertext"].hex(),
    }
    for k, want in v["shard"].items():
        r.equal(where, f"field {k}", fields.get(k), want)
    r.equal(where, "owner field = owner's key", s["owner"], owner)


def check_sealed_fail(r: Report, where: str, v: dict) -> None:
    got = open_shard(unhex(v["sealed"]), v["reader"])
    want = v["expected_error"]
    r.equal(where, f"{v['reader']['name']} gets {want}", got[0], want)
    if want == "Malformed" and got[0] == "Malformed":
        detail = v.get("expected_error_detail", "")
        r.check(where, f"malformed field {got[1]!r} is the one named ({detail!r})", detail.startswith(got[1]))


# --------------------------------------------------------------------------
# Backup and recovery: PROTOCOL.md 8.1, 8.2 and 9, with Shamir over GF(2^8).
# --------------------------------------------------------------------------


def gf_mul(a: int, b: int) -> int:
    r = 0
    while b:
        if b & 1:
            r ^= a
        a <<= 1
        if a & 0x100:
            a ^= 0x11B
        b >>= 1
    return r


def gf_inv(a: int) -> int:
    r, e = 1, 254  # a^254 = a^-1 in GF(2^8)
    while e:
        if e & 1:
            r = gf_mul(r, a)
        a = gf_mul(a, a)
        e >>= 1
    return r


def combine(shares: list[tuple[int, bytes]]) -> bytes:
    """Lagrange interpolation at 0, bytewise."""
    if len(shares) == 1:
        return shares[0][1]
    coefficients = []
    for i, (xi, _) in enumerate(shares):
        c = 1
        for m, (xm, _) in enumerate(shares):
            if m != i:
                c = gf_mul(c, gf_mul(xm, gf_inv(xm ^ xi)))
        coefficients.append(c)
    out = bytearray(32)
    for c, (_, y) in zip(coefficients, shares):
        for j in range(32):
            out[j] ^= gf_mul(c, y[j])
    return bytes(out)


def padded_len(n: int) -> int:
    n = max(n, 256)
    e = n.bit_length() - 1
    s = e.bit_length()
    mask = (1 << (e - s)) - 1
    return (n + mask) & ~mask


def unpack(packed: bytes) -> tuple[bytes, str, bytes]:
    """(secret, label, metadata) of a packed plaintext (8.1); raises ValueError."""
    if packed[0] != 1:
        raise ValueError("version")
    pos = 1
    label_len = int.from_bytes(packed[pos:pos + 2], "big")
    label = packed[pos + 2:pos + 2 + label_len]
    pos += 2 + label_len
    meta_len = int.from_bytes(packed[pos:pos + 2], "big")
    metadata = packed[pos + 2:pos + 2 + meta_len]
    pos += 2 + meta_len
    secret_len = int.from_bytes(packed[pos:pos + 4], "big")
    secret = packed[pos + 4:pos + 4 + secret_len]
    pos += 4 + secret_len
    if pos > len(packed) or len(packed) != padded_len(pos) or any(packed[pos:]):
        raise ValueError("padding")
    return secret, label.decode("utf-8"), metadata


class Recovery:
    """PROTOCOL.md 9, for one backup of one owner."""

    def __init__(self, owner: dict, backup: bytes) -> None:
        self.owner = owner
        self.backup = backup
        self.reference = None
        self.shares: dict[bytes, tuple[int, bytes]] = {}
        self.state = "collecting"
        self.recovered = None

    def add(self, sender: bytes, sealed: bytes) -> str:
        if self.state != "collecting":
            return "rejected Finished"
        signed = seal_open(sealed, unhex(self.owner["x25519_secret"]))
        if signed is None:
            return "rejected CannotOpen"
        try:
            s = parse_shard(signed)
        except Malformed:
            return "rejected Malformed"
        if not ed25519_verify(s["owner"], SHARD_DOMAIN + s["body"], s["signature"]):
            return "rejected BadSignature"
        if s["owner"] != unhex(self.owner["ed25519_public_key"]):
            return "rejected WrongOwner"
        if s["backup"] != self.backup:
            return "rejected ForeignBackup"
        if s["custodian"] != sender:
            return "rejected NotFromCustodian"
        if sender in self.shares:
            return "rejected Duplicate"
        policy = ("threshold", "custodians", "trustees", "veto_delay_secs", "one_time", "release",
                  "ciphertext", "created_ms")
        if self.reference is None:
            self.reference = s
        elif any(self.reference[k] != s[k] for k in policy) or any(
                i == s["share_id"] for i, _ in self.shares.values()):
            return "rejected Inconsistent"
        self.shares[sender] = (s["share_id"], s["share"])
        t = s["threshold"]
        if len(self.shares) < t:
            return f"collecting {len(self.shares)}/{t}"
        key = combine(list(self.shares.values()))
        ct = self.reference["ciphertext"]
        try:
            self.recovered = unpack(sodium.crypto_secretbox_open(ct[24:], ct[:24], key))
            self.state = "complete"
        except (CryptoError, ValueError, IndexError):
            self.state = "failed"
        return self.state


def check_backup(r: Report, where: str, v: dict) -> None:
    owner = v["owner"]
    owner_pk = unhex(owner["ed25519_public_key"])
    backup = unhex(v["backup_id"])
    custodian_keys = [unhex(c["custodian"]["ed25519_public_key"]) for c in v["custodians"]]
    for c in v["custodians"]:
        name = c["custodian"]["name"]
        sealed = unhex(c["sealed_shard"])
        content = json.loads(c["shard_content"])
        r.equal(where, f"{name}: shard content", (content.get("type"), content.get("version"), content.get(
            "backup"), base64.b64decode(content.get("sealed", ""), validate=True)), ("shard", 1, v["backup_id"], sealed))
        got = open_shard(sealed, c["custodian"])
        if not r.equal(where, f"{name}: opens and verifies the owner's signature", got[0], "ok"):
            continue
        s, signed = got[1], got[2]
        r.equal(where, f"{name}: signed shard", signed, unhex(c["signed_shard"]))
        r.equal(where, f"{name}: owner, backup, threshold, share id",
                (s["owner"], s["backup"], s["threshold"], s["share_id"], s["created_ms"]),
                (owner_pk, backup, v["threshold"], c["share_id"], v["created_ms"]))
        r.equal(where, f"{name}: custodians in order", s["custodians"], custodian_keys)
        r.check(where, f"{name}: the owner cannot open it", seal_open(sealed, unhex(owner["x25519_secret"])) is None)
    root = json.loads(v["root_content"])
    r.equal(where, "root content", (root.get("type"), root.get("backup"), root.get("label"), root.get("threshold"),
                                    [c.get("feed") for c in root.get("custodians", [])]),
            ("root", v["backup_id"], v["label"], v["threshold"], [c["custodian"]["feed_id"] for c in v["custodians"]]))

    rec = Recovery(owner, backup)
    for i, step in enumerate(v["replies"]):
        sender = feed_id_key(step["sender"])
        got = rec.add(sender, unhex(step["sealed"]))
        r.equal(where, f"reply {i} ({step['description']})", got, step["expected"])
    if v["expected_error"] is None:
        if r.equal(where, "recovered", rec.state, "complete"):
            r.equal(where, "secret, label, metadata", rec.recovered,
                    (unhex(v["secret"]), v["label"], unhex(v["metadata"])))
    else:
        r.equal(where, f"not recovered ({v['expected_error']})", (rec.state, rec.recovered), ("collecting", None))
        if len(rec.shares) >= 2:
            # Too few shares interpolate to a wrong key, which the tag refuses.
            key = combine(list(rec.shares.values()))
            ct = rec.reference["ciphertext"]
            try:
                sodium.crypto_secretbox_open(ct[24:], ct[:24], key)
                wrong_key_refused = False
            except CryptoError:
                wrong_key_refused = True
            r.check(where, f"{len(rec.shares)} of {v['threshold']} shares give a key the tag refuses",
                    wrong_key_refused)


# --------------------------------------------------------------------------
# Health checks: PROTOCOL.md 8.5, with the standard library's hmac.
# --------------------------------------------------------------------------


def health_proof(check_key: bytes, backup: bytes, custodian_pk: bytes, nonce: bytes, shard_payload: bytes) -> bytes:
    """HMAC-SHA-256(check_key, domain || backup || custodian key || nonce || shard payload)."""
    message = PROOF_DOMAIN + backup + custodian_pk + nonce + shard_payload
    return hmac.new(check_key, message, hashlib.sha256).digest()


def proof_verifies(v: dict, custodian: dict) -> bool:
    """The owner's check of a received proof, compared in constant time."""
    expected = health_proof(unhex(v["check_key"]), unhex(v["backup_id"]), unhex(custodian["ed25519_public_key"]),
                            unhex(v["nonce"]), unhex(v["shard_payload"]))
    return hmac.compare_digest(expected, unhex(v["proof"]))


def check_health(r: Report, where: str, v: dict) -> None:
    owner_pk = unhex(v["owner"]["ed25519_public_key"])
    backup = unhex(v["backup_id"])
    root = json.loads(v["root_content"])
    r.equal(where, "root content: type and backup", (root.get("type"), root.get("backup")), ("root", v["backup_id"]))
    root_keys = {c.get("feed"): c.get("check_key") for c in root.get("custodians", [])}
    r.check(where, "several proof cases", len(v["cases"]) >= 3)
    for i, c in enumerate(v["cases"]):
        cust = c["custodian"]
        at = f"case {i} ({cust['name']})"
        custodian_pk = unhex(cust["ed25519_public_key"])
        check_key, nonce, payload = unhex(c["check_key"]), unhex(c["nonce"]), unhex(c["shard_payload"])
        r.equal(where, f"{at}: the feed id names the 32-byte key", feed_id_key(cust["feed_id"]), custodian_pk)
        # The owner's side: the check key is in its root.
        r.equal(where, f"{at}: check key in the owner's root", root_keys.get(cust["feed_id"]), c["check_key"])
        # The custodian's side: the payload is the owner's envelope holding its
        # `shard`, whose signed inner shard holds the same check key.
        got = open_envelope(payload, unhex(cust["x25519_secret"]), owner_pk)
        if r.equal(where, f"{at}: the shard payload opens for the custodian", got[0], "ok"):
            content = json.loads(got[1])
            r.equal(where, f"{at}: it holds a shard of the backup", (content.get("type"), content.get("backup")),
                    ("shard", v["backup_id"]))
            shard = open_shard(base64.b64decode(content["sealed"], validate=True), cust)
            if r.equal(where, f"{at}: its sealed shard opens and verifies", shard[0], "ok"):
                s = shard[1]
                r.equal(where, f"{at}: inner shard owner and backup", (s["owner"], s["backup"]), (owner_pk, backup))
                r.equal(where, f"{at}: check key in the inner shard", s["check_key"], check_key)
        r.equal(where, f"{at}: challenge content", json.loads(c["challenge_content"]),
                {"type": "challenge", "version": 1, "backup": v["backup_id"], "nonce": c["nonce"]})
        r.equal(where, f"{at}: message prefix = domain || backup || custodian key || nonce",
                PROOF_DOMAIN + backup + custodian_pk + nonce, unhex(c["message_prefix"]))
        r.equal(where, f"{at}: proof = HMAC-SHA-256 (hmac, hashlib)",
                health_proof(check_key, backup, custodian_pk, nonce, payload), unhex(c["proof"]))
        r.check(where, f"{at}: the owner verifies it (hmac.compare_digest)",
                proof_verifies({**c, "backup_id": v["backup_id"]}, cust))


def check_health_fail(r: Report, where: str, v: dict) -> None:
    cust = v["custodian"]
    got = "verified" if proof_verifies(v, cust) else "BadProof"
    r.equal(where, f"{cust['name']}'s proof: {v['expected_error']}", got, v["expected_error"])


# --------------------------------------------------------------------------


def dispatch(rel: str, v: dict):
    category, _, file = rel.partition("/")
    stem = file.removesuffix(".json")
    fail = stem.startswith("fail_")
    table = {
        "identity": lambda: None if stem == "keys" else check_identity_fail if fail else None,
        "entry": lambda: (check_feed if stem.startswith("feed_") else check_boxed_entry if stem.startswith(
            "boxed_") else check_entry_case),
        "envelope": lambda: check_envelope_fail if fail else check_envelope,
        "sealed": lambda: check_sealed_fail if fail else check_sealed_shard,
        "backup": lambda: check_backup,
        "health": lambda: check_health_fail if fail else check_health,
    }
    if category not in table:
        return None
    return table[category]()


def main() -> int:
    directory = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DIR
    files = sorted(p for p in directory.rglob("*.json"))
    r = Report()
    if not files:
        print(f"no vectors in {directory}")
        return 1
    seen_parties: set[tuple[str, str]] = set()
    for path in files:
        rel = path.relative_to(directory).as_posix()
        try:
            v = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            r.check(rel, "readable JSON", False, str(e))
            continue
        parties: list[dict] = []
        parties_in(v, parties)
        for p in parties:
            key = (p["seed"], json.dumps(p, sort_keys=True))
            if key not in seen_parties:
                seen_parties.add(key)
                check_party(r, rel, p)
        if rel == "identity/keys.json":
            continue  # its keys are parties, checked above
        check = dispatch(rel, v)
        if check is None:
            r.check(rel, "a check exists for this file", False, "add one to interop/check_vectors.py")
            continue
        try:
            check(r, rel, v)
        except Exception as e:  # a malformed vector is a failure, not a crash
            r.check(rel, "checked without error", False, f"{type(e).__name__}: {e}")
    print()
    print(f"{len(files)} vector files, {r.checks} checks, {len(r.failures)} failed (PyNaCl {nacl.__version__})")
    for f in r.failures:
        print(f"  FAIL {f}")
    return 1 if r.failures else 0


if __name__ == "__main__":
    sys.exit(main())
