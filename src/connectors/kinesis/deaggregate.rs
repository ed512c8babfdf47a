//! KPL record aggregation (Kinesis Producer Library "KPL Key Concepts — Aggregation"; format in the KPL's
//! `aggregation-format.md`): a Kinesis record that starts with the magic bytes `F3 89 9A C2` holds a protobuf
//! `AggregatedRecord` followed by the 16-byte MD5 of the protobuf bytes.
//!
//! ```text
//! message AggregatedRecord { repeated string partition_key_table = 1; repeated string explicit_hash_key_table = 2;
//!                            repeated Record records = 3; }
//! message Record { required uint64 partition_key_index = 1; optional uint64 explicit_hash_key_index = 2;
//!                  required bytes data = 3; repeated Tag tags = 4; }
//! ```
//!
//! As in the Kinesis Client Library, a record with the magic bytes whose checksum does not match, or whose
//! protobuf does not parse, is passed on as one plain record (it then goes to the dead-letter output as
//! malformed if it is not a valid event).

use md5::{Digest, Md5};

/// The KPL magic bytes.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

/// The user records of one Kinesis record: the data of each sub-record of an aggregated record, in order, or
/// the record itself. Sub-record `i` is addressed as sub-sequence number `i` (as in the KCL).
pub fn user_records(data: &[u8]) -> Vec<&[u8]> {
    aggregated(data).unwrap_or_else(|| vec![data])
}

fn aggregated(data: &[u8]) -> Option<Vec<&[u8]>> {
    if data.len() < MAGIC.len() + 16 || data[..4] != MAGIC {
        return None;
    }
    let (body, checksum) = data[4..].split_at(data.len() - 4 - 16);
    if Md5::digest(body).as_slice() != checksum {
        return None;
    }
    let mut records = Vec::new();
    let mut r = Reader { buf: body };
    while !r.buf.is_empty() {
        let (field, wire) = r.key()?;
        if field == 3 && wire == 2 {
            records.push(record_data(r.bytes()?)?);
        } else {
            r.skip(wire)?;
        }
    }
    Some(records)
}

fn record_data(record: &[u8]) -> Option<&[u8]> {
    let mut r = Reader { buf: record };
    let mut data = None;
    while !r.buf.is_empty() {
        let (field, wire) = r.key()?;
        if field == 3 && wire == 2 {
            data = Some(r.bytes()?);
        } else {
            r.skip(wire)?;
        }
    }
    data
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for (i, &b) in self.buf.iter().enumerate().take(10) {
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                self.buf = &self.buf[i + 1..];
                return Some(value);
            }
        }
        None
    }

    fn key(&mut self) -> Option<(u64, u8)> {
        let k = self.varint()?;
        Some((k >> 3, (k & 7) as u8))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.varint()?).ok()?;
        if n > self.buf.len() {
            return None;
        }
        let (b, rest) = self.buf.split_at(n);
        self.buf = rest;
        Some(b)
    }

    fn skip(&mut self, wire: u8) -> Option<()> {
        let n = match wire {
            0 => return self.varint().map(|_| ()),
            1 => 8,
            2 => return self.bytes().map(|_| ()),
            5 => 4,
            _ => return None,
        };
        self.buf = self.buf.get(n..)?;
        Some(())
    }
}

/// Builds a KPL aggregated record of `(partition key, data)` pairs (the KPL's format), e.g. for tests of the
/// source against records a KPL producer would write.
pub fn aggregate(records: &[(&str, &[u8])]) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    fn field(out: &mut Vec<u8>, number: u64, bytes: &[u8]) {
        varint(out, number << 3 | 2);
        varint(out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }
    let mut keys: Vec<&str> = Vec::new();
    let mut body = Vec::new();
    let mut encoded = Vec::new();
    for (key, data) in records {
        let index = keys.iter().position(|k| k == key).unwrap_or_else(|| {
            keys.push(key);
            keys.len() - 1
        });
        let mut record = Vec::new();
        varint(&mut record, 1 << 3);
        varint(&mut record, index as u64);
        field(&mut record, 3, data);
        encoded.push(record);
    }
    for key in &keys {
        field(&mut body, 1, key.as_bytes());
    }
    for record in &encoded {
        field(&mut body, 3, record);
    }
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&body);
    out.extend_from_slice(&Md5::digest(&body));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_plain_records() {
        let a = aggregate(&[("k1", b"one"), ("k2", b"two"), ("k1", b"")]);
        assert_eq!(user_records(&a), vec![&b"one"[..], b"two", b""]);
        assert_eq!(user_records(b"{\"type\":\"trip\"}"), vec![&b"{\"type\":\"trip\"}"[..]]);
        // A wrong checksum: passed on whole, as the KCL does.
        let mut bad = a.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(user_records(&bad), vec![&bad[..]]);
    }

    #[test]
    fn a_record_of_the_kpl_reference_encoding() {
        // An AggregatedRecord with partition_key_table ["a"] and one record {partition_key_index: 0, data: "hi"},
        // encoded by hand from the .proto (field 1 string "a"; field 3 message {field 1 varint 0; field 3 bytes "hi"}).
        let body = [0x0a, 0x01, b'a', 0x1a, 0x06, 0x08, 0x00, 0x1a, 0x02, b'h', b'i'];
        let mut record = MAGIC.to_vec();
        record.extend_from_slice(&body);
        record.extend_from_slice(&Md5::digest(body));
        assert_eq!(user_records(&record), vec![&b"hi"[..]]);
        assert_eq!(aggregate(&[("a", b"hi")]), record);
    }
}
