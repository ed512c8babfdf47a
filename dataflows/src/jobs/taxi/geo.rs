//! Areas of the reference job: the NYC filter and the two airports (taxi docs §3), as bounding boxes (KDA and
//! MSF profiles) or as sets of geohash cells (refarch profile).

use super::geohash::Geohash;
use super::trip::Point;

/// An inclusive latitude/longitude box in degrees WGS84.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BoundingBox {
    /// Southern edge, degrees latitude (inclusive).
    pub min_lat: f64,
    /// Northern edge, degrees latitude (inclusive).
    pub max_lat: f64,
    /// Western edge, degrees longitude (inclusive).
    pub min_lon: f64,
    /// Eastern edge, degrees longitude (inclusive).
    pub max_lon: f64,
}

impl BoundingBox {
    /// Whether `p` is inside the box, edges included. NaN coordinates are outside.
    #[inline]
    pub fn contains(&self, p: Point) -> bool {
        p.lat >= self.min_lat && p.lat <= self.max_lat && p.lon >= self.min_lon && p.lon <= self.max_lon
    }
}

/// An area: a bounding box or a union of geohash cells (of any precisions).
#[derive(Clone, Debug, PartialEq)]
pub enum Area {
    /// Inclusive box (KDA/MSF profiles).
    Box(BoundingBox),
    /// Union of cells; a point is inside when its geohash at a cell's precision equals that cell
    /// (refarch profile).
    Cells(Vec<Geohash>),
}

impl Area {
    /// Union of the 8 neighbours of `centre`, without `centre` itself (the refarch's sets).
    pub fn neighbours_of(centre: &str) -> Area {
        let c = Geohash::parse(centre).expect("a valid geohash literal");
        Area::Cells(c.neighbours().to_vec())
    }

    /// Whether `p` lies in the area. For cells, the point is encoded once at the finest precision of the
    /// set and compared by prefix.
    #[inline]
    pub fn contains(&self, p: Point) -> bool {
        match self {
            Area::Box(b) => b.contains(p),
            Area::Cells(cells) => {
                let finest = cells.iter().map(|c| c.precision()).max().unwrap_or(1);
                match Geohash::encode(p.lat, p.lon, finest) {
                    Some(h) => cells.iter().any(|c| h.within(c)),
                    None => false,
                }
            }
        }
    }

    /// The union of two areas of cells (`Cells` only).
    pub fn union(self, other: Area) -> Area {
        match (self, other) {
            (Area::Cells(mut a), Area::Cells(b)) => {
                a.extend(b);
                Area::Cells(a)
            }
            _ => panic!("only geohash cell sets can be united"),
        }
    }
}

/// The airport a trip's dropoff is at, if any (taxi docs §3 "airport test on dropoff"; JFK is tested first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum Airport {
    /// John F. Kennedy International, `airport_code` "JFK".
    Jfk,
    /// LaGuardia, `airport_code` "LGA".
    Lga,
}

impl Airport {
    /// The `airport_code` of the `trip_duration` document (taxi docs §4).
    pub fn code(self) -> &'static str {
        match self {
            Airport::Jfk => "JFK",
            Airport::Lga => "LGA",
        }
    }
}
