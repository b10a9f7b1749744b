//! `chordsip user`: the administrator's side of SIP credentials in the
//! overlay. The CLI joins the ring for the command as a short-lived node
//! that signs with the admin's writer key (only that key's records count
//! at the registrars), writes or reads, and leaves.

use super::{apply_sets, read_key, resolve, OverlayArgs};
use chordsip::sip::credentials::{self, Credential, CredentialTrust};
use chordsip::{Config, LogLevel, Node};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Subcommand)]
pub enum UserCmd {
    /// Add a user (or change its password): prompts for the password, or
    /// takes the HA1s with --ha1.
    Add(AddArgs),
    /// Remove a user.
    Remove(NameArgs),
    /// List a realm's users.
    List(RealmArgs),
    /// Store every user of a realm again with a new lifetime (records live
    /// at most the overlay's max_lifetime_s, 7 days: run this daily).
    Refresh(RealmArgs),
}

#[derive(Args)]
pub struct AdminArgs {
    /// A node of the overlay to join through (comma-separated or repeated).
    #[arg(long, value_delimiter = ',', required = true)]
    bootstrap: Vec<String>,
    /// The UDP address of the command's short-lived node.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    #[command(flatten)]
    overlay: OverlayArgs,
    /// The administrator's writer key (`chordsip keygen`); its public half is
    /// what the registrars list in `credential_admins`.
    #[arg(long)]
    admin_key_file: PathBuf,
    /// The credentials key (`chordsip keygen`), the registrars' `credentials_key_file`.
    #[arg(long)]
    credentials_key_file: PathBuf,
    /// Any node option as NAME=VALUE (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    options: Vec<String>,
}

#[derive(Args)]
pub struct AddArgs {
    /// USER@REALM, e.g. alice@example.com (the realm is the AOR's domain).
    #[arg(required_unless_present = "from_file")]
    user: Option<String>,
    /// Add many users in one session: a file of `USER@REALM PASSWORD`
    /// lines (the password is the rest of the line; `#` lines and empty
    /// lines are skipped).
    #[arg(long, conflicts_with_all = ["user", "ha1"])]
    from_file: Option<PathBuf>,
    /// An HA1 in hex instead of a password: 32 digits for MD5, 64 for
    /// SHA-256 (repeat for both). UAs that answer with the other algorithm
    /// then fail.
    #[arg(long)]
    ha1: Vec<String>,
    /// Days the record lives before `user refresh` must store it again.
    #[arg(long, default_value_t = 7)]
    lifetime_days: u64,
    #[command(flatten)]
    admin: AdminArgs,
}

#[derive(Args)]
pub struct NameArgs {
    /// USER@REALM.
    user: String,
    #[command(flatten)]
    admin: AdminArgs,
}

#[derive(Args)]
pub struct RealmArgs {
    /// The realm (a SIP domain), e.g. example.com.
    realm: String,
    /// Days the records live (refresh).
    #[arg(long, default_value_t = 7)]
    lifetime_days: u64,
    #[command(flatten)]
    admin: AdminArgs,
}

pub fn run(cmd: UserCmd) -> Result<(), String> {
    match cmd {
        UserCmd::Add(a) if a.from_file.is_some() => {
            let path = a.from_file.as_ref().expect("checked");
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let mut creds = Vec::new();
            for (i, line) in text.lines().enumerate() {
                let line = line.trim_start();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let at = |e: String| format!("{}:{}: {e}", path.display(), i + 1);
                let (who, password) = line
                    .split_once(char::is_whitespace)
                    .ok_or_else(|| at("USER@REALM PASSWORD expected".into()))?;
                let (user, realm) = split_user(who).map_err(at)?;
                let password = password.trim_start();
                if password.is_empty() {
                    return Err(at("empty password".into()));
                }
                creds.push(
                    Credential::from_password(user, realm, password)
                        .map_err(|e| at(e.to_string()))?,
                );
            }
            let lifetime = days(a.lifetime_days)?;
            with_admin_node(&a.admin, |node, key| {
                for c in &creds {
                    credentials::store(&mut &*node, key, c, lifetime)?;
                }
                Ok(())
            })?;
            eprintln!("{} users stored", creds.len());
            Ok(())
        }
        UserCmd::Add(a) => {
            let who = a
                .user
                .as_deref()
                .expect("clap requires it without --from-file");
            let (user, realm) = split_user(who)?;
            let cred = if a.ha1.is_empty() {
                let password = read_password(who)?;
                Credential::from_password(user, realm, &password)
            } else {
                let ha1s: Vec<&str> = a.ha1.iter().map(String::as_str).collect();
                Credential::from_ha1s(user, realm, &ha1s)
            }
            .map_err(|e| e.to_string())?;
            let lifetime = days(a.lifetime_days)?;
            with_admin_node(&a.admin, |node, key| {
                credentials::store(&mut &*node, key, &cred, lifetime)
            })?;
            eprintln!("user {user}@{realm} stored");
            Ok(())
        }
        UserCmd::Remove(a) => {
            let (user, realm) = split_user(&a.user)?;
            let had = with_admin_node(&a.admin, |node, key| {
                credentials::remove(&mut &*node, key, user, realm, days(7).expect("7 days"))
            })?;
            if !had {
                return Err(format!("no user {user}@{realm} written by this admin key"));
            }
            eprintln!("user {user}@{realm} removed");
            Ok(())
        }
        UserCmd::List(a) => {
            let users = with_admin_node(&a.admin, |node, key| {
                let trust = CredentialTrust {
                    key: *key,
                    admins: vec![node.owner()?],
                };
                credentials::list(&mut &*node, &trust, &a.realm)
            })?;
            for u in users {
                println!("{u}");
            }
            Ok(())
        }
        UserCmd::Refresh(a) => {
            let lifetime = days(a.lifetime_days)?;
            let n = with_admin_node(&a.admin, |node, key| {
                let trust = CredentialTrust {
                    key: *key,
                    admins: vec![node.owner()?],
                };
                let users = credentials::list(&mut &*node, &trust, &a.realm)?;
                let mut stored = 0;
                for u in &users {
                    if let Some(c) = credentials::fetch(&mut &*node, &trust, u, &a.realm)? {
                        credentials::store(&mut &*node, key, &c, lifetime)?;
                        stored += 1;
                    }
                }
                Ok(stored)
            })?;
            eprintln!("{n} users of {} stored again", a.realm);
            Ok(())
        }
    }
}

fn split_user(s: &str) -> Result<(&str, &str), String> {
    s.rsplit_once('@')
        .filter(|(u, r)| !u.is_empty() && !r.is_empty())
        .ok_or_else(|| format!("{s:?}: USER@REALM expected"))
}

fn days(d: u64) -> Result<Duration, String> {
    if d == 0 || d > 49 {
        return Err("--lifetime-days: 1 to 49".into());
    }
    Ok(Duration::from_secs(d * 86_400))
}

/// The password: asked twice on a terminal, else one line of standard input
/// (for scripts: `echo "$PW" | chordsip user add ...`).
fn read_password(user: &str) -> Result<String, String> {
    use std::io::{BufRead, IsTerminal};
    let pw = if std::io::stdin().is_terminal() {
        let a = rpassword::prompt_password(format!("Password for {user}: "))
            .map_err(|e| e.to_string())?;
        let b = rpassword::prompt_password("Again: ").map_err(|e| e.to_string())?;
        if a != b {
            return Err("the passwords differ".into());
        }
        a
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("reading the password: {e}"))?;
        line.trim_end_matches(['\n', '\r']).to_string()
    };
    if pw.is_empty() {
        return Err("empty password".into());
    }
    Ok(pw)
}

/// Runs `f` on a node that joined through `a.bootstrap` and signs with the
/// admin key, then leaves (its keys go back to the ring).
fn with_admin_node<T>(
    a: &AdminArgs,
    f: impl FnOnce(&Node, &[u8; 32]) -> chordsip::Result<T>,
) -> Result<T, String> {
    let secret = |p: &PathBuf| -> Result<[u8; 32], String> {
        let text = read_key(p)?;
        chordsip::owner::parse_secret(&String::from_utf8_lossy(&text))
            .ok_or_else(|| format!("{}: 64 hex digits expected (chordsip keygen)", p.display()))
    };
    let admin = secret(&a.admin_key_file)?;
    let key = secret(&a.credentials_key_file)?;
    let mut cfg = Config {
        listen: resolve(&a.listen)?,
        overlay: a.overlay.overlay.clone(),
        overlay_key: a.overlay.key()?,
        writer_key: Some(admin),
        log_level: LogLevel::Off,
        ..Config::default()
    };
    apply_sets(&mut cfg, &a.options)?;
    let bootstrap = a
        .bootstrap
        .iter()
        .map(|b| resolve(b))
        .collect::<Result<Vec<_>, _>>()?;
    let node = Node::start(cfg).map_err(|e| e.to_string())?;
    let give_up = Instant::now() + Duration::from_secs(10);
    while let Err(e) = node.join(&bootstrap) {
        if Instant::now() > give_up {
            return Err(format!("join failed: {e}"));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let r = f(&node, &key).map_err(|e| e.to_string());
    if let Err(e) = node.leave(Duration::from_secs(5)) {
        eprintln!("chordsip: leaving the ring: {e}");
    }
    r
}
