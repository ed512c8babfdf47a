//! `--geoip FILE.mmdb` of the page-view job (pageviews spec §3.3): IP address → country code from MaxMind-format
//! databases, read whole into memory at start with the `maxminddb` crate. The code is `country.iso_code`
//! (GeoLite2/GeoIP2 Country and City layout) or `country_code` (the layout of the CC0 `ip-location-db`
//! databases). Several files (e.g. separate IPv4 and IPv6 databases) are asked in order; the first that knows
//! the address answers.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use compact_str::CompactString;
use maxminddb::{PathElement, Reader};
use taxiflow_dataflows::jobs::pageviews::CountryLookup;

/// The databases of `--geoip`, in the order given.
pub struct GeoIp {
    databases: Vec<(PathBuf, Reader<Vec<u8>>)>,
}

impl std::fmt::Debug for GeoIp {
    /// The files (part of the job's checkpoint identity).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.databases.iter().map(|(p, _)| p)).finish()
    }
}

impl GeoIp {
    /// Opens every file of `paths`.
    ///
    /// # Errors
    /// `--geoip FILE`: a file that cannot be read or is not a MaxMind database, naming it.
    pub fn open(paths: &[PathBuf]) -> anyhow::Result<GeoIp> {
        let mut databases = Vec::new();
        for path in paths {
            let reader = Reader::open_readfile(path).with_context(|| format!("--geoip {}: not a readable MaxMind database (.mmdb)", path.display()))?;
            tracing::info!(file = %path.display(), kind = %reader.metadata().database_type, ip_version = reader.metadata().ip_version, "geoip database opened");
            databases.push((path.clone(), reader));
        }
        Ok(GeoIp { databases })
    }

    /// The files.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.databases.iter().map(|(p, _)| p.as_path())
    }
}

const ISO_CODE: [PathElement<'static>; 2] = [PathElement::Key("country"), PathElement::Key("iso_code")];
const COUNTRY_CODE: [PathElement<'static>; 1] = [PathElement::Key("country_code")];

impl CountryLookup for GeoIp {
    fn country(&self, ip: IpAddr) -> Option<CompactString> {
        for (_, reader) in &self.databases {
            // An IPv6 address in an IPv4-only database is an error of the lookup, not of the line: not found.
            let Ok(found) = reader.lookup(ip) else { continue };
            for path in [&ISO_CODE[..], &COUNTRY_CODE[..]] {
                if let Ok(Some(code)) = found.decode_path::<&str>(path) {
                    return Some(CompactString::from(code));
                }
            }
        }
        None
    }
}
