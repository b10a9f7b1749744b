//! Abilities (logical overlays): what a peer offers (`relay`, `pstn-gateway`,
//! `voicemail`, ...) and how peers find each other by it. Pure logic, no I/O.
//!
//! Design (docs/ABILITIES.md): every peer that has an ability keeps one
//! entry in the dictionary stored under `H("chordsip-ability-1:" + name)`,
//! in the slot `node public key | name`, signed with its **node key**, so an
//! announcement names the node that made it: a reader keeps an entry only if
//! the id it claims is the id of the key that signed it. An entry lives
//! `ability_ttl_s` (30 s by default) and its node rewrites it every third of
//! that, with its current load; a node that leaves withdraws it (a
//! tombstone), one that dies is forgotten when the entry expires.
//!
//! Cost: finding peers is one lookup and one read of one key (a datagram or
//! a few pages), whatever the overlay's size; keeping an ability is one
//! write per ttl/3 per node. One ability holds at most the key's foreign
//! places of announcers (`max_entries_per_key` minus the reserve, 48 by
//! default); a further announcer's write fails with `Full`.

use crate::error::{Error, Result};
use crate::id::Id;
use crate::identity::node_id;
use crate::types::Value;
use std::net::SocketAddr;
use std::time::Duration;

/// The longest ability name, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// The most attributes one ability carries besides capacity and load.
pub const MAX_ATTRS: usize = 16;
/// The longest attribute name or value, in bytes.
pub const MAX_ATTR_LEN: usize = 128;
/// The first line of a stored announcement.
const RECORD_MAGIC: &str = "chordsip-ability 1";

/// One ability of a peer: a name and small attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ability {
    /// Lower-case letters, digits, `-`, `_` and `.`; 1 to 64 bytes.
    pub name: String,
    /// How much the peer can take (the unit is the ability's: calls,
    /// allocations, ...); 0 when not stated.
    pub capacity: u32,
    /// How much of it is in use now.
    pub load: u32,
    /// Other attributes (`turn=10.0.0.5:3478`), in the order given.
    pub attrs: Vec<(String, String)>,
}

/// A peer found by ability.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// The announcing node's id (the id of the key that signed the entry).
    pub id: Id,
    /// Its overlay address.
    pub addr: SocketAddr,
    pub ability: Ability,
    /// How long the announcement still lives unless refreshed.
    pub lifetime: Duration,
}

impl Ability {
    /// An ability with no capacity, load or attributes; the name is checked.
    pub fn new(name: &str) -> Result<Ability> {
        check_name(name)?;
        Ok(Ability {
            name: name.to_string(),
            capacity: 0,
            load: 0,
            attrs: Vec::new(),
        })
    }

    /// The value of attribute `name` (`capacity` and `load` included).
    pub fn attr(&self, name: &str) -> Option<String> {
        match name {
            "capacity" => Some(self.capacity.to_string()),
            "load" => Some(self.load.to_string()),
            _ => self
                .attrs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone()),
        }
    }

    /// Parses `name[:attr=value,attr=value...]`, e.g.
    /// `relay:capacity=100,load=3,turn=10.0.0.5:3478`.
    pub fn parse(text: &str) -> Result<Ability> {
        let text = text.trim();
        let (name, rest) = text.split_once(':').unwrap_or((text, ""));
        let mut a = Ability::new(name)?;
        for pair in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                bad(format!(
                    "ability {name}: attribute {pair:?} is not NAME=VALUE"
                ))
            })?;
            a.set_attr(k.trim(), v.trim())?;
        }
        Ok(a)
    }

    /// Sets one attribute; `capacity` and `load` must be numbers.
    pub fn set_attr(&mut self, key: &str, value: &str) -> Result<()> {
        let name = &self.name;
        match key {
            "capacity" | "load" => {
                let n: u32 = value.parse().map_err(|_| {
                    bad(format!(
                        "ability {name}: {key} must be a number, not {value:?}"
                    ))
                })?;
                if key == "capacity" {
                    self.capacity = n;
                } else {
                    self.load = n;
                }
            }
            _ => {
                check_attr(name, key, value)?;
                if let Some(slot) = self.attrs.iter_mut().find(|(k, _)| k == key) {
                    slot.1 = value.to_string();
                } else if self.attrs.len() == MAX_ATTRS {
                    return Err(bad(format!(
                        "ability {name}: more than {MAX_ATTRS} attributes"
                    )));
                } else {
                    self.attrs.push((key.to_string(), value.to_string()));
                }
            }
        }
        Ok(())
    }

    /// The form [`Ability::parse`] reads.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "{}:capacity={},load={}",
            self.name, self.capacity, self.load
        );
        for (k, v) in &self.attrs {
            s.push_str(&format!(",{k}={v}"));
        }
        s
    }

    /// How full the peer is, for ordering: load per capacity, a peer with no
    /// stated capacity counting as full.
    fn fullness(&self) -> f64 {
        match self.capacity {
            0 => f64::INFINITY,
            c => self.load as f64 / c as f64,
        }
    }
}

/// Parses a list of abilities separated by `;` (the `abilities` setting).
pub fn parse_list(text: &str) -> Result<Vec<Ability>> {
    let mut out: Vec<Ability> = Vec::new();
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let a = Ability::parse(part)?;
        if out.iter().any(|o| o.name == a.name) {
            return Err(bad(format!("ability {} given twice", a.name)));
        }
        out.push(a);
    }
    Ok(out)
}

/// The key under which the peers with ability `name` announce themselves.
pub fn key(name: &str) -> Id {
    Id::from_name(&format!("chordsip-ability-1:{name}"))
}

/// The stored form of `ability` announced by node `id` at `addr`.
pub fn encode(ability: &Ability, id: &Id, addr: SocketAddr) -> Vec<u8> {
    let mut s = format!(
        "{RECORD_MAGIC}\nname={}\nid={}\naddr={addr}\ncapacity={}\nload={}\n",
        ability.name,
        id.to_hex(),
        ability.capacity,
        ability.load
    );
    for (k, v) in &ability.attrs {
        s.push_str(&format!("{k}={v}\n"));
    }
    s.into_bytes()
}

/// Reads a stored announcement; None for anything malformed.
fn decode(data: &[u8]) -> Option<(Id, SocketAddr, Ability)> {
    let text = std::str::from_utf8(data).ok()?;
    let mut lines = text.lines();
    if lines.next()? != RECORD_MAGIC {
        return None;
    }
    let (mut id, mut addr, mut ability) = (None, None, None::<Ability>);
    for line in lines {
        let (k, v) = line.split_once('=')?;
        match (k, ability.as_mut()) {
            ("name", None) => ability = Some(Ability::new(v).ok()?),
            ("id", _) => id = Some(Id::from_hex(v)?),
            ("addr", _) => addr = Some(v.parse().ok()?),
            (_, Some(a)) => a.set_attr(k, v).ok()?,
            (_, None) => return None,
        }
    }
    Some((id?, addr?, ability?))
}

/// The peers of ability `name` among the values read from its key: only
/// announcements signed by the node they name, one per node (the newest),
/// least full first (load per capacity; then the larger capacity; then
/// the id, so that equal peers keep one order), at most `n`.
pub fn select(values: &[Value], name: &str, n: usize) -> Vec<Peer> {
    let mut found: Vec<(u64, Peer)> = Vec::new();
    for v in values {
        if v.writer != name.as_bytes() {
            continue;
        }
        let Some((id, addr, ability)) = decode(&v.data) else {
            continue;
        };
        if ability.name != name || node_id(&v.owner) != id {
            continue;
        }
        let peer = Peer {
            id,
            addr,
            ability,
            lifetime: v.lifetime,
        };
        match found.iter_mut().find(|(_, p)| p.id == id) {
            Some(slot) if slot.0 < v.version => *slot = (v.version, peer),
            Some(_) => {}
            None => found.push((v.version, peer)),
        }
    }
    let mut peers: Vec<Peer> = found.into_iter().map(|(_, p)| p).collect();
    peers.sort_by(|a, b| {
        a.ability
            .fullness()
            .total_cmp(&b.ability.fullness())
            .then(b.ability.capacity.cmp(&a.ability.capacity))
            .then(a.id.cmp(&b.id))
    });
    peers.truncate(n);
    peers
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
    match ok {
        true => Ok(()),
        false => Err(bad(format!(
            "ability name {name:?}: 1 to {MAX_NAME_LEN} lower-case letters, digits, '-', '_' or '.'"
        ))),
    }
}

fn check_attr(ability: &str, key: &str, value: &str) -> Result<()> {
    let key_ok = !key.is_empty()
        && key.len() <= MAX_ATTR_LEN
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && !matches!(key, "name" | "id" | "addr");
    if !key_ok {
        return Err(bad(format!(
            "ability {ability}: attribute name {key:?}: letters, digits, '-', '_' or '.' (not name, id or addr)"
        )));
    }
    let value_ok = value.len() <= MAX_ATTR_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b",;=".contains(&b));
    match value_ok {
        true => Ok(()),
        false => Err(bad(format!(
            "ability {ability}: attribute {key}: at most {MAX_ATTR_LEN} printable bytes without spaces, ',', ';' or '='"
        ))),
    }
}

fn bad(msg: String) -> Error {
    Error::InvalidArgument(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::owner::WriterKey;

    fn announce(seed: u8, a: &str, version: u64) -> (Id, Value) {
        let key = WriterKey::from_secret(&[seed; 32]);
        let id = node_id(key.owner());
        let ability = Ability::parse(a).unwrap();
        let addr: SocketAddr = format!("10.0.0.{seed}:4000").parse().unwrap();
        let v = Value {
            writer: ability.name.as_bytes().to_vec(),
            owner: *key.owner(),
            data: encode(&ability, &id, addr),
            version,
            lifetime: Duration::from_secs(30),
        };
        (id, v)
    }

    #[test]
    fn parses_the_setting_and_round_trips() {
        let list = parse_list("relay:capacity=100,load=3,turn=10.0.0.5:3478; voicemail").unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].capacity, 100);
        assert_eq!(list[0].load, 3);
        assert_eq!(list[0].attr("turn").as_deref(), Some("10.0.0.5:3478"));
        assert_eq!(Ability::parse(&list[0].to_text()).unwrap(), list[0]);
        assert_eq!(list[1], Ability::new("voicemail").unwrap());
    }

    #[test]
    fn refuses_bad_names_and_attributes() {
        assert!(Ability::parse("").is_err());
        assert_eq!(parse_list(" ; ").unwrap(), vec![]);
        for bad in [
            "Relay",
            "re lay",
            "relay:capacity=x",
            "relay:load=-1",
            "relay:turn",
            "relay:id=5",
            "relay:x=a b",
            "relay;relay",
            &"r".repeat(65),
        ] {
            assert!(parse_list(bad).is_err(), "{bad:?} accepted");
        }
        let many: Vec<String> = (0..=MAX_ATTRS).map(|i| format!("a{i}=1")).collect();
        assert!(Ability::parse(&format!("relay:{}", many.join(","))).is_err());
    }

    #[test]
    fn selects_least_full_first_and_only_self_signed() {
        let (busy, v1) = announce(1, "relay:capacity=100,load=90", 1);
        let (idle, v2) = announce(2, "relay:capacity=100,load=5", 1);
        let (big, v3) = announce(3, "relay:capacity=1000,load=50", 1);
        let (_, v4) = announce(4, "relay", 1); // no capacity: last
        let mut forged = announce(5, "relay:capacity=100,load=0", 1).1;
        forged.owner = *WriterKey::from_secret(&[6; 32]).owner(); // someone else's key
        let (_, other) = announce(7, "voicemail:capacity=9", 1);
        let values = vec![v1, v2, v3, v4, forged, other];
        let got = select(&values, "relay", 10);
        let ids: Vec<Id> = got.iter().map(|p| p.id).collect();
        assert_eq!(ids.len(), 4);
        assert_eq!(&ids[..3], &[big, idle, busy]);
        assert_eq!(got[0].addr, "10.0.0.3:4000".parse().unwrap());
        assert_eq!(select(&values, "relay", 2).len(), 2);
        assert!(select(&values, "pstn", 5).is_empty());
    }

    #[test]
    fn keeps_the_newest_announcement_of_a_node() {
        let (_, old) = announce(1, "relay:capacity=10,load=9", 1);
        let (_, new) = announce(1, "relay:capacity=10,load=1", 2);
        let got = select(&[new, old], "relay", 5);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].ability.load, 1);
    }

    #[test]
    fn ignores_malformed_records() {
        let (_, mut v) = announce(1, "relay", 1);
        for data in [
            &b"garbage"[..],
            b"chordsip-ability 1\nname=relay\n",
            b"chordsip-ability 1\nname=relay\nid=zz\naddr=1.2.3.4:5\n",
            b"\xff\xfe",
        ] {
            v.data = data.to_vec();
            assert!(select(std::slice::from_ref(&v), "relay", 5).is_empty());
        }
    }
}
