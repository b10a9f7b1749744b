//! DNS message bytes: writing an UPDATE (RFC 2136), reading a response.
//! Names are written uncompressed and lowercased (DNS is case-insensitive and
//! TSIG wants canonical names); reading follows compression pointers, backwards only.

use super::DnsError;

pub const TYPE_A: u16 = 1;
pub const TYPE_SOA: u16 = 6;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_SRV: u16 = 33;
pub const TYPE_TSIG: u16 = 250;
pub const CLASS_IN: u16 = 1;
pub const CLASS_ANY: u16 = 255;
pub const OPCODE_UPDATE: u8 = 5;
/// A message must fit the 2-byte length prefix of DNS over TCP.
pub const MAX_MESSAGE: usize = 65535;

/// Checks a domain name as this module writes it: labels of 1..=63 letters,
/// digits, '-' or '_', at most 255 bytes on the wire. Stricter than DNS
/// itself, so nothing odd (spaces, escapes) reaches a zone.
pub fn check_name(name: &str) -> Result<(), String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Err("empty name".into());
    }
    if name.len() + 2 > 255 {
        return Err(format!("name '{name}' is longer than 255 bytes"));
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("label '{label}' of '{name}' must be 1 to 63 bytes"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "label '{label}' of '{name}' may hold only letters, digits, '-' and '_'"
            ));
        }
    }
    Ok(())
}

/// Appends `name` in wire form (lowercase, uncompressed). The root is "" or ".".
pub fn put_name(out: &mut Vec<u8>, name: &str) -> Result<(), DnsError> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if !name.is_empty() {
        check_name(name).map_err(DnsError::Invalid)?;
        for label in name.split('.') {
            out.push(label.len() as u8);
            out.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
        }
    }
    out.push(0);
    Ok(())
}

pub fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Appends a resource record; `rdata` writes the RDATA, whose length is filled in after.
pub fn put_rr(
    out: &mut Vec<u8>,
    name: &str,
    rtype: u16,
    class: u16,
    ttl: u32,
    rdata: impl FnOnce(&mut Vec<u8>) -> Result<(), DnsError>,
) -> Result<(), DnsError> {
    put_name(out, name)?;
    put_u16(out, rtype);
    put_u16(out, class);
    put_u32(out, ttl);
    let len_at = out.len();
    put_u16(out, 0);
    rdata(out)?;
    let len = out.len() - len_at - 2;
    let len = u16::try_from(len).map_err(|_| DnsError::TooLarge)?;
    out[len_at..len_at + 2].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// "Delete an RRset" of RFC 2136 §2.5.2: class ANY, TTL 0, no RDATA.
pub fn put_delete_rrset(out: &mut Vec<u8>, name: &str, rtype: u16) -> Result<(), DnsError> {
    put_rr(out, name, rtype, CLASS_ANY, 0, |_| Ok(()))
}

/// The 12-byte header fields this module reads or writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub id: u16,
    pub qr: bool,
    pub opcode: u8,
    pub rcode: u8,
    /// Zone/question, prerequisite/answer, update/authority, additional counts.
    pub counts: [u16; 4],
}

impl Header {
    pub fn write(&self, out: &mut Vec<u8>) {
        put_u16(out, self.id);
        let flags = (u16::from(self.qr) << 15)
            | (u16::from(self.opcode & 0xf) << 11)
            | u16::from(self.rcode & 0xf);
        put_u16(out, flags);
        for c in self.counts {
            put_u16(out, c);
        }
    }
}

/// A bounds-checked cursor over untrusted bytes: every read fails with
/// `Malformed` instead of panicking.
pub struct Reader<'a> {
    pub buf: &'a [u8],
    pub pos: usize,
}

fn short() -> DnsError {
    DnsError::Malformed("message ends early".into())
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DnsError> {
        let end = self.pos.checked_add(n).ok_or_else(short)?;
        let s = self.buf.get(self.pos..end).ok_or_else(short)?;
        self.pos = end;
        Ok(s)
    }

    pub fn u16(&mut self) -> Result<u16, DnsError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub fn u32(&mut self) -> Result<u32, DnsError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u48(&mut self) -> Result<u64, DnsError> {
        let b = self.take(6)?;
        Ok(b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
    }

    pub fn header(&mut self) -> Result<Header, DnsError> {
        let id = self.u16()?;
        let flags = self.u16()?;
        let mut counts = [0u16; 4];
        for c in &mut counts {
            *c = self.u16()?;
        }
        Ok(Header {
            id,
            qr: flags & 0x8000 != 0,
            opcode: ((flags >> 11) & 0xf) as u8,
            rcode: (flags & 0xf) as u8,
            counts,
        })
    }

    /// Reads a (possibly compressed) name and returns it in lowercase
    /// uncompressed wire form. Pointers must point backwards, which bounds the loop.
    pub fn name(&mut self) -> Result<Vec<u8>, DnsError> {
        let bad = |why: &str| DnsError::Malformed(format!("bad name: {why}"));
        let mut out = Vec::new();
        let mut at = self.pos;
        // Where the cursor continues: after the first pointer, or after the name.
        let mut resume = None;
        loop {
            let len = *self.buf.get(at).ok_or_else(short)?;
            match len {
                0 => {
                    out.push(0);
                    self.pos = resume.unwrap_or(at + 1);
                    return Ok(out);
                }
                1..=63 => {
                    let label = self
                        .buf
                        .get(at + 1..at + 1 + len as usize)
                        .ok_or_else(short)?;
                    out.push(len);
                    out.extend(label.iter().map(u8::to_ascii_lowercase));
                    if out.len() > 255 {
                        return Err(bad("longer than 255 bytes"));
                    }
                    at += 1 + len as usize;
                }
                0xc0..=0xff => {
                    let lo = *self.buf.get(at + 1).ok_or_else(short)?;
                    let target = (usize::from(len & 0x3f) << 8) | usize::from(lo);
                    if target >= at {
                        return Err(bad("compression pointer does not point backwards"));
                    }
                    resume.get_or_insert(at + 2);
                    at = target;
                }
                _ => return Err(bad("unknown label type")),
            }
        }
    }
}

/// One resource record of a parsed message, RDATA as a byte range of the message.
#[derive(Clone, Debug)]
pub struct Record {
    /// Offset of the record's first byte.
    pub start: usize,
    pub name: Vec<u8>,
    pub rtype: u16,
    pub class: u16,
    pub ttl: u32,
    /// Offset of the RDATA within the message, and its length.
    pub rdata: (usize, usize),
}

/// A message split into its header, the records of its last section and the
/// offset where the last record starts: what a TSIG check needs.
#[derive(Debug)]
pub struct Parsed {
    pub header: Header,
    /// The last record of the additional section, if any.
    pub last_additional: Option<Record>,
    /// True when a TSIG record appears anywhere but last (a malformed message).
    pub misplaced_tsig: bool,
}

/// Parses a whole message, checking every record lies within it and nothing follows.
pub fn parse(buf: &[u8]) -> Result<Parsed, DnsError> {
    let mut r = Reader::new(buf);
    let header = r.header()?;
    for _ in 0..header.counts[0] {
        r.name()?;
        r.take(4)?;
    }
    let records: u32 = header.counts[1..].iter().map(|&c| u32::from(c)).sum();
    let mut last = None;
    let mut misplaced_tsig = false;
    for i in 0..records {
        let start = r.pos;
        let name = r.name()?;
        let rtype = r.u16()?;
        let class = r.u16()?;
        let ttl = r.u32()?;
        let len = usize::from(r.u16()?);
        let at = r.pos;
        r.take(len)?;
        if rtype == TYPE_TSIG && i + 1 != records {
            misplaced_tsig = true;
        }
        last = Some(Record {
            start,
            name,
            rtype,
            class,
            ttl,
            rdata: (at, len),
        });
    }
    if r.pos != buf.len() {
        return Err(DnsError::Malformed("bytes after the last record".into()));
    }
    let last_additional = if header.counts[3] > 0 { last } else { None };
    Ok(Parsed {
        header,
        last_additional,
        misplaced_tsig,
    })
}

/// The RCODE's mnemonic (RFC 1035, 2136, 8945) for error messages.
pub fn rcode_name(rcode: u16) -> String {
    let name = match rcode {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        16 => "BADSIG",
        17 => "BADKEY",
        18 => "BADTIME",
        22 => "BADTRUNC",
        n => return format!("RCODE{n}"),
    };
    name.to_string()
}
