//! The one error type of the library. Each variant maps to a stable C result code.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The operation did not finish before its deadline.
    Timeout,
    /// No live node could be reached to route the request.
    NoRoute,
    /// The node is not part of a ring yet (or any more).
    NotJoined,
    /// The join did not reach the ring: which step failed and why (no
    /// bootstrap peer answered, or the nodes one named stayed silent).
    JoinFailed(String),
    /// Another live node already uses this node id.
    IdCollision,
    /// A value, writer or message exceeds a configured limit.
    TooLarge,
    /// A per-key or per-node storage limit is reached.
    Full,
    /// A newer version of the entry is already stored.
    Stale,
    /// The node is shutting down or has stopped.
    Shutdown,
    /// Bad argument supplied by the caller.
    InvalidArgument(String),
    /// A remote peer refused the request.
    Refused(String),
    /// Socket or system error.
    Io(String),
    /// The object belongs to the parent process: it was used after `fork()`.
    Forked,
    /// A blocking call was made from a library callback, where it would deadlock.
    InCallback,
    /// The node was stopped or freed before the operation finished.
    Cancelled,
    /// The call does not fit the node's state (e.g. joining twice).
    BadState(String),
    /// The responsible node's clock and ours disagree by more than the
    /// replay window: our write arrived past its signed expiry there, or its
    /// version lies in that node's future.
    ClockSkew,
    /// The node refused a client request: no credential, a wrong one, or
    /// one that does not allow this namespace.
    Unauthorized(String),
    /// The overlay routes in the other mode (one-hop against multi-hop):
    /// every member of an overlay must be configured alike.
    ModeMismatch(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Timeout => f.write_str("timed out"),
            Error::NoRoute => f.write_str("no live node reachable for this key"),
            Error::NotJoined => f.write_str("node has not joined an overlay"),
            Error::JoinFailed(why) => f.write_str(why),
            Error::IdCollision => f.write_str("node id already in use by another live node"),
            Error::TooLarge => f.write_str("value, writer or message too large"),
            Error::Full => f.write_str("storage limit reached"),
            Error::Stale => f.write_str("a newer version is already stored"),
            Error::Shutdown => f.write_str("node is shutting down"),
            Error::InvalidArgument(s) => write!(f, "invalid argument: {s}"),
            Error::Refused(s) => write!(f, "refused by peer: {s}"),
            Error::Io(s) => write!(f, "I/O error: {s}"),
            Error::Forked => f.write_str("object belongs to the parent process (used after fork)"),
            Error::BadState(s) => write!(f, "bad state: {s}"),
            Error::ClockSkew => f.write_str(
                "the responsible node's clock differs from ours by more than the replay window",
            ),
            Error::Unauthorized(s) => write!(f, "not authorized: {s}"),
            Error::ModeMismatch(s) => write!(f, "routing mode mismatch: {s}"),
            Error::Cancelled => {
                f.write_str("cancelled: the node stopped before the operation finished")
            }
            Error::InCallback => {
                f.write_str("blocking call from a library callback would deadlock")
            }
        }
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Error>;
