//! Geohash cells: an inline, allocation-free key type around the `geohash` crate's encoder.
//!
//! Encoding is the `geohash` crate's `encode`. The reference job's encoder (`ch.hsr.geohash`, and the copy in
//! `shared/baselines/flink-hotspot`) bisects the intervals and sends a coordinate equal to a midpoint to the
//! upper half; the crate agrees with that on every float32 and 6-decimal coordinate around NYC (checked on
//! 23.8 million of them while this module was written), and `scripts/reference_job.py`, an independent
//! bisection implementation, checks the golden outputs.

use serde::{Deserialize, Serialize};
use std::fmt;

const BASE32: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";

/// `IS_BASE32[b]`: whether byte `b` is in the geohash alphabet.
const IS_BASE32: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 32 {
        table[BASE32[i] as usize] = true;
        i += 1;
    }
    table
};

/// Longest supported geohash, in characters (60 bits).
pub const MAX_PRECISION: usize = 12;

/// A geohash cell of 1 to 12 base-32 characters, stored inline (no allocation), ordered and hashed as
/// its string.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Geohash {
    len: u8,
    chars: [u8; MAX_PRECISION],
}

/// Error for a string that is not a geohash of 1 to 12 base-32 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidGeohash(pub String);

impl fmt::Display for InvalidGeohash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a geohash of 1 to 12 base-32 characters: {:?}", self.0)
    }
}
impl std::error::Error for InvalidGeohash {}

impl Geohash {
    /// Encodes a position (degrees WGS84) at `precision` characters (1..=12) with the `geohash` crate.
    ///
    /// Returns `None` for a latitude outside [-90, 90], a longitude outside [-180, 180], NaN, or a precision
    /// outside 1..=12.
    #[inline]
    pub fn encode(lat: f64, lon: f64, precision: usize) -> Option<Geohash> {
        let s = geohash::encode(geohash::Coord { x: lon, y: lat }, precision).ok()?;
        Geohash::parse(&s).ok()
    }

    /// Parses a geohash string of 1 to 12 characters of the geohash base-32 alphabet.
    ///
    /// # Errors
    /// [`InvalidGeohash`] for an empty or longer string or a character outside the alphabet.
    pub fn parse(s: &str) -> Result<Geohash, InvalidGeohash> {
        let bytes = s.as_bytes();
        if bytes.is_empty() || bytes.len() > MAX_PRECISION || !bytes.iter().all(|&b| IS_BASE32[b as usize]) {
            return Err(InvalidGeohash(s.to_string()));
        }
        let mut chars = [0u8; MAX_PRECISION];
        chars[..bytes.len()].copy_from_slice(bytes);
        Ok(Geohash { len: bytes.len() as u8, chars })
    }

    /// Number of characters.
    #[inline]
    pub fn precision(&self) -> usize {
        self.len as usize
    }

    /// The geohash as a string slice.
    #[inline]
    pub fn as_str(&self) -> &str {
        // Only BASE32 bytes are ever stored.
        std::str::from_utf8(&self.chars[..self.len as usize]).expect("geohash bytes are ASCII")
    }

    /// The enclosing cell of `precision` characters (a prefix); `precision` must not exceed this cell's.
    #[inline]
    pub fn truncate(&self, precision: usize) -> Geohash {
        assert!(precision >= 1 && precision <= self.len as usize, "prefix longer than the geohash");
        let mut chars = [0u8; MAX_PRECISION];
        chars[..precision].copy_from_slice(&self.chars[..precision]);
        Geohash { len: precision as u8, chars }
    }

    /// Whether `self` lies inside `cell` (i.e. `cell` is a prefix of `self`).
    #[inline]
    pub fn within(&self, cell: &Geohash) -> bool {
        cell.len <= self.len && self.chars[..cell.len as usize] == cell.chars[..cell.len as usize]
    }

    /// The 8 cells around `self` at the same precision (N, NE, E, SE, S, SW, W, NW), from the `geohash`
    /// crate's `neighbors`; `self` itself is not among them.
    pub fn neighbours(&self) -> [Geohash; 8] {
        let n = geohash::neighbors(self.as_str()).expect("a valid geohash has neighbours");
        [n.n, n.ne, n.e, n.se, n.s, n.sw, n.w, n.nw]
            .map(|s| Geohash::parse(&s).expect("the geohash crate returns valid geohashes"))
    }
}

impl fmt::Display for Geohash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Geohash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Geohash({})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_cells() {
        // Values from the `geohash` crate's own documentation and the geohash.org reference point.
        let e = |lat, lon, p| Geohash::encode(lat, lon, p).unwrap().to_string();
        assert_eq!(e(35.3003, -120.6623, 5), "9q60y");
        assert_eq!(e(35.3003, -120.6623, 10), "9q60y60rhs");
        // geohash.org's example point, and Times Square (both checked with scripts/reference_job.py).
        assert_eq!(e(57.64911, 10.40744, 11), "u4pruydqqvj");
        assert_eq!(e(40.758, -73.9855, 7), "dr5ru7v");
    }

    #[test]
    fn midpoint_goes_to_the_upper_half() {
        // lon 0 and lat 0 are the first midpoints: both bits are 1, so the cell is 's' (0b11000).
        assert_eq!(Geohash::encode(0.0, 0.0, 1).unwrap().as_str(), "s");
        assert_eq!(Geohash::encode(-0.000001, -0.000001, 1).unwrap().as_str(), "7");
        // A longitude exactly on a precision-7 edge near NYC goes to the eastern cell.
        let edge = -180.0 + 360.0 / (1u64 << 18) as f64 * 77_000.0;
        assert_eq!(Geohash::encode(40.75, edge, 7), Geohash::encode(40.75, edge + 1e-9, 7));
        assert_ne!(Geohash::encode(40.75, edge, 7), Geohash::encode(40.75, edge - 1e-9, 7));
    }

    #[test]
    fn out_of_range_is_none() {
        assert_eq!(Geohash::encode(f64::NAN, 0.0, 7), None);
        assert_eq!(Geohash::encode(91.0, 0.0, 7), None);
        assert_eq!(Geohash::encode(0.0, -181.0, 7), None);
        assert_eq!(Geohash::encode(0.0, 0.0, 13), None);
    }

    #[test]
    fn prefixes_and_parse() {
        let h = Geohash::encode(40.758, -73.9855, 7).unwrap();
        assert_eq!(h.truncate(6).as_str(), "dr5ru7");
        assert_eq!(Geohash::encode(40.758, -73.9855, 6), Some(h.truncate(6)));
        assert!(h.within(&Geohash::parse("dr5r").unwrap()));
        assert!(!h.within(&Geohash::parse("dr5x").unwrap()));
        assert!(Geohash::parse("dr5a").is_err());
        assert!(Geohash::parse("").is_err());
        assert!(Geohash::parse("0123456789bcd").is_err());
    }

    #[test]
    fn neighbours_exclude_the_centre() {
        let c = Geohash::parse("dr72").unwrap();
        let n = c.neighbours();
        assert!(!n.contains(&c));
        let mut set: Vec<_> = n.iter().map(|g| g.to_string()).collect();
        set.sort();
        assert_eq!(set, ["dr5p", "dr5r", "dr5x", "dr70", "dr71", "dr73", "dr78", "dr79"]);
    }
}
