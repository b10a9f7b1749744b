//! A REGISTER as a transaction on the AOR's key: the plan of RFC 3261 §10.3
//! and RFC 5626 (`binding::plan`) behind the engine's generic
//! read-plan-write ([`crate::types::Transaction`]). A client handle sends the
//! request to its node in one round trip (`ClientTransaction`), the node runs
//! it and answers with the outcome; [`super::registrar::register`] runs the
//! same transaction through any dictionary. The encodings of requests and
//! outcomes are here too.

use super::binding::{
    plan, Binding, Change, ContactSpec, Plan, RegisterError, RegisterRequest, RegistrarLimits,
};
use super::bytes::{Reader, Writer};
use super::registrar::{aor_key, stored};
use crate::id::Id;
use crate::types::{Decoded, SlotWrite, Transaction, TransactionDecoder, Value};
use std::sync::Arc;
use std::time::Duration;

/// Lists longer than this are not a REGISTER anyone sends (the C API refuses
/// more than 64 contacts and 32 Path values).
const MAX_LIST: usize = 255;

pub fn encode_request(r: &RegisterRequest) -> Vec<u8> {
    let mut w = Writer::default();
    w.bytes(r.to.as_bytes());
    w.bytes(r.call_id.as_bytes());
    w.u32(r.cseq);
    w.u8(r.star as u8);
    w.opt_u32(r.expires);
    w.opt_str(r.received.as_deref());
    w.u8(r.path.len().min(MAX_LIST) as u8);
    for p in r.path.iter().take(MAX_LIST) {
        w.bytes(p.as_bytes());
    }
    w.u8(r.contacts.len().min(MAX_LIST) as u8);
    for c in r.contacts.iter().take(MAX_LIST) {
        w.bytes(c.uri.as_bytes());
        w.opt_u32(c.expires);
        w.opt_str(c.q.as_deref());
        w.opt_str(c.instance.as_deref());
        w.opt_u32(c.reg_id);
    }
    w.into_inner()
}

/// None for bytes that are not an encoded request.
pub fn decode_request(data: &[u8]) -> Option<RegisterRequest> {
    let mut r = Reader::new(data);
    let to = r.string()?;
    let call_id = r.string()?;
    let cseq = r.u32()?;
    let star = r.u8()? != 0;
    let expires = r.opt_u32()?;
    let received = r.opt_str()?;
    let np = r.u8()? as usize;
    let path = (0..np).map(|_| r.string()).collect::<Option<Vec<_>>>()?;
    let nc = r.u8()? as usize;
    let mut contacts = Vec::with_capacity(nc);
    for _ in 0..nc {
        contacts.push(ContactSpec {
            uri: r.string()?,
            expires: r.opt_u32()?,
            q: r.opt_str()?,
            instance: r.opt_str()?,
            reg_id: r.opt_u32()?,
        });
    }
    if !r.is_empty() {
        return None;
    }
    Some(RegisterRequest {
        to,
        call_id,
        cseq,
        star,
        contacts,
        expires,
        path,
        received,
    })
}

/// What a node answers a ClientRegister with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Applied: the counts and, when they fit in the reply, the bindings.
    Done {
        plan: Plan,
        listed: bool,
    },
    Refused(RegisterError),
}

pub fn encode_outcome(o: &Outcome, budget: usize) -> Vec<u8> {
    let mut w = Writer::default();
    match o {
        Outcome::Refused(e) => {
            let (code, arg, text) = match e {
                RegisterError::Bad(s) => (1, 0, s.as_str()),
                RegisterError::OutOfOrder => (2, 0, ""),
                RegisterError::TooManyBindings(n) => (3, *n as u32, ""),
                RegisterError::IntervalTooBrief(m) => (4, *m, ""),
            };
            w.u8(code);
            w.u32(arg);
            w.bytes(text.as_bytes());
        }
        Outcome::Done { plan, .. } => {
            w.u8(0);
            for n in [plan.inserted, plan.updated, plan.deleted] {
                w.u32(n as u32);
            }
            let encoded: Vec<(Vec<u8>, u32)> =
                plan.result.iter().map(|(b, e)| (b.encode(), *e)).collect();
            let size: usize = encoded.iter().map(|(b, _)| b.len() + 6).sum();
            // Too many to fit: the client reads them with a (paged) lookup.
            let listed = w.len() + 2 + size <= budget && encoded.len() <= MAX_LIST;
            w.u8(listed as u8);
            if listed {
                w.u8(encoded.len() as u8);
                for (b, e) in &encoded {
                    w.u32(*e);
                    w.bytes(b);
                }
            }
        }
    }
    w.into_inner()
}

pub fn decode_outcome(data: &[u8]) -> Option<Outcome> {
    let mut r = Reader::new(data);
    let o = match r.u8()? {
        0 => {
            let inserted = r.u32()? as usize;
            let updated = r.u32()? as usize;
            let deleted = r.u32()? as usize;
            let listed = r.u8()? != 0;
            let mut result = Vec::new();
            if listed {
                for _ in 0..r.u8()? {
                    let e = r.u32()?;
                    result.push((Binding::decode(r.bytes()?)?, e));
                }
            }
            Outcome::Done {
                plan: Plan {
                    changes: Vec::new(),
                    result,
                    inserted,
                    updated,
                    deleted,
                },
                listed,
            }
        }
        code => {
            let arg = r.u32()?;
            let text = r.string()?;
            Outcome::Refused(match code {
                1 => RegisterError::Bad(text),
                2 => RegisterError::OutOfOrder,
                3 => RegisterError::TooManyBindings(arg as usize),
                4 => RegisterError::IntervalTooBrief(arg),
                _ => return None,
            })
        }
    };
    r.is_empty().then_some(o)
}

/// A REGISTER to run as a transaction on its AOR's key.
#[derive(Debug)]
pub struct RegisterTxn {
    key: Id,
    req: RegisterRequest,
    limits: RegistrarLimits,
    /// Set by `plan`: what the REGISTER did, or why it was refused.
    outcome: Option<Result<Plan, RegisterError>>,
}

impl RegisterTxn {
    /// Refuses a request whose AOR is not a SIP URI.
    pub fn new(
        req: RegisterRequest,
        limits: RegistrarLimits,
    ) -> Result<RegisterTxn, RegisterError> {
        let (_, key) = aor_key(&req.to)?;
        Ok(RegisterTxn {
            key,
            req,
            limits,
            outcome: None,
        })
    }

    /// What the REGISTER did (its `result` is what the 200 OK lists), once run.
    pub fn into_result(self) -> Result<Plan, RegisterError> {
        self.outcome
            .unwrap_or_else(|| Err(RegisterError::Bad("the REGISTER was not run".into())))
    }
}

impl Transaction for RegisterTxn {
    fn key(&self) -> Id {
        self.key
    }

    /// The writer's own bindings are the ones a REGISTER may refresh, replace
    /// or remove; other writers' bindings are theirs (crate::owner).
    fn plan(&mut self, mine: &[Value], value_limit: Option<usize>) -> Option<Vec<SlotWrite>> {
        let current = stored(mine.to_vec());
        let p = match plan(&self.req, &current, &self.limits) {
            Ok(p) => p,
            Err(e) => {
                self.outcome = Some(Err(e));
                return None;
            }
        };
        let mut writes = Vec::with_capacity(p.changes.len());
        for c in &p.changes {
            writes.push(match c {
                Change::Put {
                    writer,
                    binding,
                    expires,
                } => {
                    let data = binding.encode();
                    if let Some(limit) = value_limit.filter(|l| data.len() > *l) {
                        self.outcome = Some(Err(RegisterError::Bad(format!(
                            "a binding is larger than the overlay's {limit}-byte values"
                        ))));
                        return None;
                    }
                    let lifetime = Duration::from_secs(*expires as u64);
                    SlotWrite {
                        label: writer.clone(),
                        value: Some((data, lifetime)),
                    }
                }
                Change::Remove { writer } => SlotWrite {
                    label: writer.clone(),
                    value: None,
                },
            });
        }
        self.outcome = Some(Ok(p));
        Some(writes)
    }

    fn reply(&self, budget: usize) -> Vec<u8> {
        let outcome = match &self.outcome {
            Some(Ok(plan)) => Outcome::Done {
                plan: plan.clone(),
                listed: true,
            },
            Some(Err(e)) => Outcome::Refused(e.clone()),
            None => Outcome::Refused(RegisterError::Bad("the REGISTER was not run".into())),
        };
        encode_outcome(&outcome, budget)
    }
}

/// A client's REGISTER request as a transaction, with the default limits.
pub fn decode_transaction(data: &[u8]) -> Decoded {
    let Some(req) = decode_request(data) else {
        return Decoded::Malformed;
    };
    match RegisterTxn::new(req, RegistrarLimits::default()) {
        Ok(txn) => Decoded::Run(Box::new(txn)),
        // A refusal lists no bindings: the budget does not matter.
        Err(e) => Decoded::Answer(encode_outcome(&Outcome::Refused(e), 0)),
    }
}

/// The decoder a node that serves SIP registrars' client handles is built
/// with (`Config::transactions`).
pub fn transactions() -> TransactionDecoder {
    TransactionDecoder {
        decode: Arc::new(decode_transaction),
        reserves: crate::sip::binding::is_binding_label,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_outcomes_round_trip() {
        let req = RegisterRequest {
            to: "sip:alice@example.com".into(),
            call_id: "c1".into(),
            cseq: 9,
            star: false,
            contacts: vec![ContactSpec {
                uri: "sip:alice@192.0.2.1".into(),
                expires: Some(60),
                q: Some("0.5".into()),
                instance: Some("<urn:uuid:1>".into()),
                reg_id: Some(2),
            }],
            expires: None,
            path: vec!["<sip:edge;lr>".into()],
            received: Some("sip:198.51.100.1:5060".into()),
        };
        let back = decode_request(&encode_request(&req)).unwrap();
        assert_eq!(encode_request(&back), encode_request(&req));
        assert!(decode_request(b"\x00").is_none());
        let b = Binding {
            contact: "sip:alice@192.0.2.1".into(),
            q: 500,
            instance: None,
            reg_id: None,
            path: vec![],
            received: None,
            call_id: "c1".into(),
            cseq: 9,
            owner: None,
        };
        let done = Outcome::Done {
            plan: Plan {
                changes: vec![],
                result: vec![(b, 60)],
                inserted: 1,
                updated: 0,
                deleted: 0,
            },
            listed: true,
        };
        assert_eq!(
            decode_outcome(&encode_outcome(&done, 1000)),
            Some(done.clone())
        );
        let Some(Outcome::Done { listed, plan }) = decode_outcome(&encode_outcome(&done, 20))
        else {
            panic!("decodes")
        };
        assert!(!listed && plan.result.is_empty() && plan.inserted == 1);
        for e in [
            RegisterError::Bad("x".into()),
            RegisterError::OutOfOrder,
            RegisterError::TooManyBindings(16),
            RegisterError::IntervalTooBrief(60),
        ] {
            let o = Outcome::Refused(e);
            assert_eq!(decode_outcome(&encode_outcome(&o, 100)), Some(o));
        }
    }
}
