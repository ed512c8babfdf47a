//! The page's assets, embedded in the binary at build time (the dashboard works offline): the page itself
//! (`index.html`, `app.js`, `style.css`), Apache ECharts 6.1.0 (Apache-2.0), the NYC borough outlines (NYC Open
//! Data's nybb) and the world's country outlines (world-atlas 2.0.2 from Natural Earth), with their licences in
//! `LICENSES.txt`. The vendored files are built by `scripts/build-dashboard-assets.py` and stored gzip'd (about
//! 450 KB in the binary instead of 1.4 MB); they are sent as they are to a browser that accepts gzip.

use std::borrow::Cow;
use std::io::Read;

/// One embedded asset.
#[derive(Clone, Copy, Debug)]
pub struct Asset {
    /// Its name under `/assets/`.
    pub name: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes, gzip'd when [`Self::gzipped`].
    pub bytes: &'static [u8],
    /// The bytes are a gzip stream.
    pub gzipped: bool,
}

impl Asset {
    /// The asset's content, unzipped when it is stored gzip'd.
    pub fn plain(&self) -> Cow<'static, [u8]> {
        if !self.gzipped {
            return Cow::Borrowed(self.bytes);
        }
        let mut out = Vec::new();
        // The embedded stream was checked by the unit test below; a failure here would be a build defect.
        flate2::read::GzDecoder::new(self.bytes).read_to_end(&mut out).expect("an embedded asset is valid gzip");
        Cow::Owned(out)
    }
}

const JS: &str = "text/javascript; charset=utf-8";
const JSON: &str = "application/json";

/// Every asset.
pub const ASSETS: &[Asset] = &[
    Asset { name: "index.html", content_type: "text/html; charset=utf-8", bytes: include_bytes!("assets/index.html"), gzipped: false },
    Asset { name: "app.js", content_type: JS, bytes: include_bytes!("assets/app.js"), gzipped: false },
    Asset { name: "style.css", content_type: "text/css; charset=utf-8", bytes: include_bytes!("assets/style.css"), gzipped: false },
    Asset { name: "echarts.min.js", content_type: JS, bytes: include_bytes!("assets/echarts.min.js.gz"), gzipped: true },
    Asset { name: "nyc.geo.json", content_type: JSON, bytes: include_bytes!("assets/nyc.geo.json.gz"), gzipped: true },
    Asset { name: "world.geo.json", content_type: JSON, bytes: include_bytes!("assets/world.geo.json.gz"), gzipped: true },
    Asset { name: "LICENSES.txt", content_type: "text/plain; charset=utf-8", bytes: include_bytes!("assets/LICENSES.txt"), gzipped: false },
];

/// The asset named `name`, if there is one.
pub fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// The assets' names.
pub fn names() -> Vec<&'static str> {
    ASSETS.iter().map(|a| a.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_unzips_and_the_outlines_are_geojson() {
        for a in ASSETS {
            assert!(!a.plain().is_empty(), "{}", a.name);
        }
        for name in ["nyc.geo.json", "world.geo.json"] {
            let geo: serde_json::Value = serde_json::from_slice(&find(name).unwrap().plain()).unwrap();
            assert_eq!(geo["type"], "FeatureCollection", "{name}");
        }
        let nyc: serde_json::Value = serde_json::from_slice(&find("nyc.geo.json").unwrap().plain()).unwrap();
        let boroughs: Vec<&str> = nyc["features"].as_array().unwrap().iter().map(|f| f["properties"]["name"].as_str().unwrap()).collect();
        assert_eq!(boroughs.len(), 5, "{boroughs:?}");
    }
}
