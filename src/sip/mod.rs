//! SIP location service semantics on top of the overlay: URIs and AOR
//! canonicalisation, registrar bindings, REGISTER processing and lookup.

pub mod auth;
pub mod binding;
pub mod bytes;
pub mod credentials;
pub mod digest;
pub mod flow;
pub mod registrar;
pub mod remote;
pub mod uri;
