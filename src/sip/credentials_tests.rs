use super::*;
use crate::owner::Owner;
use crate::types::{StoreReceipt, Value};
use std::collections::HashMap;

/// A dictionary in memory, shared by several writers (each a view with its
/// own owner), as the overlay is: the real ring is tested in tests/credentials.rs.
#[derive(Default)]
struct Shared {
    entries: HashMap<(Id, Owner, Vec<u8>), Value>,
    version: u64,
}

struct Writer<'a> {
    shared: &'a mut Shared,
    owner: Owner,
}

impl Shared {
    fn writer(&mut self, owner: Owner) -> Writer<'_> {
        Writer {
            shared: self,
            owner,
        }
    }
}

impl DictStore for Writer<'_> {
    fn dict_get(&mut self, key: Id) -> Result<Vec<Value>, Error> {
        Ok(self
            .shared
            .entries
            .iter()
            .filter(|((k, _, _), _)| *k == key)
            .map(|(_, v)| v.clone())
            .collect())
    }
    fn dict_put(
        &mut self,
        key: Id,
        writer: &[u8],
        data: &[u8],
        lifetime: Duration,
    ) -> Result<StoreReceipt, Error> {
        if data.len() > 4096 {
            return Err(Error::TooLarge);
        }
        self.shared.version += 1;
        let v = Value {
            writer: writer.to_vec(),
            owner: self.owner,
            data: data.to_vec(),
            version: self.shared.version,
            lifetime,
        };
        self.shared
            .entries
            .insert((key, self.owner, writer.to_vec()), v);
        Ok(StoreReceipt { copies: 1 })
    }
    fn dict_remove(&mut self, key: Id, writer: &[u8]) -> Result<StoreReceipt, Error> {
        self.shared
            .entries
            .remove(&(key, self.owner, writer.to_vec()));
        Ok(StoreReceipt { copies: 1 })
    }
    fn owner(&mut self) -> Result<Owner, Error> {
        Ok(self.owner)
    }
    fn value_limit(&self) -> Option<usize> {
        Some(4096)
    }
}

const ADMIN: Owner = [1; 32];
const STRANGER: Owner = [2; 32];
const KEY: [u8; 32] = [9; 32];
const DAY: Duration = Duration::from_secs(86_400);

fn trust() -> CredentialTrust {
    CredentialTrust {
        key: KEY,
        admins: vec![ADMIN],
    }
}

#[test]
fn a_registrar_reads_what_the_admin_stored() {
    let mut s = Shared::default();
    let alice = Credential::from_password("alice", "example.com", "secret").unwrap();
    store(&mut s.writer(ADMIN), &KEY, &alice, DAY).unwrap();
    let got = fetch(&mut s.writer([3; 32]), &trust(), "alice", "example.com")
        .unwrap()
        .unwrap();
    assert_eq!(got, alice);
    assert_eq!(
        got.ha1_hex(Algorithm::Md5).unwrap(),
        crate::sip::digest::ha1(Algorithm::Md5, "alice", "example.com", "secret")
    );
    assert_eq!(got.ha1_hex(Algorithm::Sha256).unwrap().len(), 64);
    let mut r = s.writer([3; 32]);
    assert_eq!(fetch(&mut r, &trust(), "bob", "example.com").unwrap(), None);
    assert_eq!(
        fetch(&mut r, &trust(), "alice", "example.org").unwrap(),
        None
    );
    // the stored bytes do not show the HA1
    let raw: Vec<u8> = s.entries.values().flat_map(|v| v.data.clone()).collect();
    let md5 = alice.ha1_md5.unwrap();
    assert!(!raw.windows(16).any(|w| w == md5));
}

#[test]
fn records_of_non_admins_and_foreign_keys_are_not_used() {
    let mut s = Shared::default();
    let fake = Credential::from_password("alice", "example.com", "mallory's").unwrap();
    store(&mut s.writer(STRANGER), &KEY, &fake, DAY).unwrap();
    let mut r = s.writer([3; 32]);
    assert_eq!(
        fetch(&mut r, &trust(), "alice", "example.com").unwrap(),
        None,
        "a stranger's record"
    );
    assert!(list(&mut r, &trust(), "example.com").unwrap().is_empty());
    // an admin record sealed with another key: a clear error, not "no user"
    let real = Credential::from_password("alice", "example.com", "secret").unwrap();
    store(&mut s.writer(ADMIN), &[8; 32], &real, DAY).unwrap();
    let mut r = s.writer([3; 32]);
    assert!(matches!(
        fetch(&mut r, &trust(), "alice", "example.com"),
        Err(Error::Unauthorized(_))
    ));
}

#[test]
fn a_sealed_record_cannot_be_moved_to_another_user() {
    let mut s = Shared::default();
    let alice = Credential::from_password("alice", "example.com", "secret").unwrap();
    store(&mut s.writer(ADMIN), &KEY, &alice, DAY).unwrap();
    let (k, o, l) = s
        .entries
        .keys()
        .find(|(k, _, _)| *k == record_key("alice", "example.com"))
        .unwrap()
        .clone();
    let v = s.entries[&(k, o, l.clone())].clone();
    s.entries
        .insert((record_key("bob", "example.com"), o, l), v);
    let mut r = s.writer([3; 32]);
    assert!(fetch(&mut r, &trust(), "bob", "example.com").is_err());
}

#[test]
fn users_are_listed_added_and_removed() {
    let mut s = Shared::default();
    let mut admin = s.writer(ADMIN);
    for i in 0..300 {
        let c = Credential::from_password(&format!("user{i}"), "example.com", "pw").unwrap();
        store(&mut admin, &KEY, &c, DAY).unwrap();
    }
    let other = Credential::from_ha1s(
        "carol",
        "example.org",
        &["0123456789abcdef0123456789abcdef"],
    )
    .unwrap();
    store(&mut admin, &KEY, &other, DAY).unwrap();
    // storing again (a new password) lists the user once
    store(
        &mut admin,
        &KEY,
        &Credential::from_password("user7", "example.com", "new").unwrap(),
        DAY,
    )
    .unwrap();
    let users = list(&mut admin, &trust(), "example.com").unwrap();
    assert_eq!(users.len(), 300);
    assert!(users.contains(&"user299".to_string()));
    assert!(remove(&mut admin, &KEY, "user7", "example.com", DAY).unwrap());
    assert!(!remove(&mut admin, &KEY, "user7", "example.com", DAY).unwrap());
    assert_eq!(
        fetch(&mut admin, &trust(), "user7", "example.com").unwrap(),
        None
    );
    assert_eq!(
        list(&mut admin, &trust(), "example.com").unwrap().len(),
        299
    );
    assert_eq!(
        list(&mut admin, &trust(), "example.org").unwrap(),
        vec!["carol".to_string()]
    );
    let c = fetch(&mut admin, &trust(), "carol", "example.org")
        .unwrap()
        .unwrap();
    assert_eq!(c.ha1_hex(Algorithm::Sha256), None);
    assert_eq!(
        c.ha1_hex(Algorithm::Md5).unwrap(),
        "0123456789abcdef0123456789abcdef"
    );
}

#[test]
fn bad_names_and_ha1s_are_refused() {
    assert!(Credential::from_password("", "example.com", "x").is_err());
    assert!(Credential::from_password("a\nb", "example.com", "x").is_err());
    assert!(Credential::from_password("a", "ex@mple.com", "x").is_err());
    assert!(Credential::from_password(&"a".repeat(256), "example.com", "x").is_err());
    assert!(Credential::from_ha1s("a", "r", &["abc"]).is_err());
    assert!(Credential::from_ha1s("a", "r", &["zz".repeat(16).as_str()]).is_err());
    assert!(Credential::from_ha1s("a", "r", &[]).is_err());
    let both = Credential::from_ha1s("a@b", "r", &[&"ab".repeat(16), &"cd".repeat(32)]).unwrap();
    assert_eq!(Credential::decode(&both.encode()), Some(both));
}
