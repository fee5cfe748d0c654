//! The node's randomness: the operating system's CSPRNG, as the
//! `rand_core::CryptoRng` that `sherd-protocol` takes as a parameter.

use getrandom::SysRng;
use rand_core::UnwrapErr;

/// The OS CSPRNG. Panics only if the OS cannot supply randomness at all, in
/// which case no key or nonce could be made safely anyway.
pub fn os_rng() -> UnwrapErr<SysRng> {
    UnwrapErr(SysRng)
}
