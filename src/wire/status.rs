//! Protocol statuses (numbers are part of the protocol) and their mapping to
//! and from the library's errors.

use super::DecodeError;
use crate::error::Error;

/// Outcome carried in replies. Numbers are part of the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    Ok = 0,
    /// The receiver is not responsible for the key (the ring moved): look up again.
    NotResponsible = 1,
    TooLarge = 2,
    /// A per-key or per-node limit is reached.
    Full = 3,
    /// A newer version of the entry is already stored.
    Stale = 4,
    BadRequest = 5,
    NotFound = 6,
    /// The receiver is shutting down.
    Leaving = 7,
    /// The operation run on the client's behalf timed out.
    Timeout = 8,
    /// No live node could be reached.
    NoRoute = 9,
    /// The receiver has not joined a ring.
    NotJoined = 10,
    /// A write arrived past its signed expiry, or with a version from the
    /// receiver's future: the clocks differ by more than the replay window.
    ClockSkew = 11,
    /// A client request without the credential it needs (or for a
    /// namespace its credential does not allow).
    Unauthorized = 12,
    /// The receiver routes in the other mode (one-hop against multi-hop):
    /// the two cannot share a ring.
    ModeMismatch = 13,
}

impl Status {
    pub(super) fn from_u8(v: u8) -> Result<Status, DecodeError> {
        Ok(match v {
            0 => Status::Ok,
            1 => Status::NotResponsible,
            2 => Status::TooLarge,
            3 => Status::Full,
            4 => Status::Stale,
            5 => Status::BadRequest,
            6 => Status::NotFound,
            7 => Status::Leaving,
            8 => Status::Timeout,
            9 => Status::NoRoute,
            10 => Status::NotJoined,
            11 => Status::ClockSkew,
            12 => Status::Unauthorized,
            13 => Status::ModeMismatch,
            _ => return Err(DecodeError::BadValue("status")),
        })
    }
}

/// Protocol status for an error reported to a client handle.
pub fn status_of(e: &Error) -> Status {
    match e {
        Error::Timeout => Status::Timeout,
        Error::NoRoute | Error::JoinFailed(_) => Status::NoRoute,
        Error::NotJoined => Status::NotJoined,
        Error::TooLarge => Status::TooLarge,
        Error::Full => Status::Full,
        Error::Stale => Status::Stale,
        Error::Shutdown => Status::Leaving,
        Error::ClockSkew => Status::ClockSkew,
        Error::Unauthorized(_) => Status::Unauthorized,
        Error::ModeMismatch(_) => Status::ModeMismatch,
        _ => Status::BadRequest,
    }
}

/// The error a client handle reports for a protocol status.
pub fn error_of(s: Status) -> Error {
    match s {
        Status::Timeout => Error::Timeout,
        Status::NoRoute | Status::NotResponsible => Error::NoRoute,
        Status::NotJoined => Error::NotJoined,
        Status::TooLarge => Error::TooLarge,
        Status::Full => Error::Full,
        Status::Stale => Error::Stale,
        Status::Leaving => Error::Shutdown,
        Status::ClockSkew => Error::ClockSkew,
        Status::Unauthorized => Error::Unauthorized("refused by the node".into()),
        Status::BadRequest => Error::InvalidArgument("request refused by the peer".into()),
        Status::ModeMismatch => Error::ModeMismatch("the overlay routes in another mode".into()),
        Status::NotFound | Status::Ok => Error::Refused(format!("{s:?}")),
    }
}
