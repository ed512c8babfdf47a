//! The taxi job (`taxiflow run taxi`, the default; `docs/jobs/taxi.md`): the AWS reference architecture
//! "real-time taxi hot spots with Apache Flink, Kinesis/Kafka, Elasticsearch and Kibana", in its three
//! published variants (profiles KDA, refarch and MSF).
//!
//! | module | what |
//! |---|---|
//! | [`trip`] | the trip record (event time = dropoff time) |
//! | [`formats`] | TLC, DEBS and TaxiRide CSV, JSON trip and watermark events, format detection |
//! | [`profile`] | the three profiles' settings |
//! | [`geo`], [`geohash`] | the NYC and airport areas, geohash cells |
//! | [`nyc_filter`], [`hot_spots`], [`airport_durations`] | the dataflow |
//! | [`documents`] | the `pickup_count` and `trip_duration` rows |

pub mod airport_durations;
pub mod documents;
pub mod formats;
pub mod geo;
pub mod geohash;
pub mod hot_spots;
pub mod nyc_filter;
pub mod profile;
pub mod trip;

use timely::dataflow::operators::Concat;
use timely::dataflow::StreamVec;

use crate::epoch::{Recovery, Time};
use crate::job::{Counters, EventTime, Job, JobInfo, JobStreams, Lateness, WatermarkStrategy};
use crate::output::OutputSchema;
use formats::{Format, FormatChoice};
pub use profile::{Profile, TaxiSettings};
pub use trip::{Point, Trip};

/// Flags of the taxi job.
#[derive(Clone, Debug, clap::Args)]
pub struct TaxiArgs {
    /// Reference job to reproduce (docs/jobs/taxi.md §3): kda, refarch or msf.
    #[arg(long, default_value = "kda")]
    pub profile: Profile,
    /// Geohash precision of the hot-spot key (1–12); default from the profile.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=12))]
    pub hot_spot_precision: Option<u8>,
    /// Geohash precision of the duration key's pickup cell (1–12); default 6.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=12))]
    pub duration_precision: Option<u8>,
    /// Input file format; `auto` detects it from each file's first line (stream records are JSON events).
    #[arg(long, value_enum, default_value = "auto")]
    pub format: FormatChoice,
}

/// The taxi job: the profile's settings after the flags' overrides, and the input format choice.
#[derive(Clone, Debug, PartialEq)]
pub struct TaxiJob {
    /// The resolved settings.
    pub settings: TaxiSettings,
    /// `--format`.
    pub format: FormatChoice,
}

impl TaxiJob {
    /// The job of `profile` with no overrides, reading files of any detected format.
    pub fn for_profile(profile: Profile) -> TaxiJob {
        TaxiJob { settings: TaxiSettings::for_profile(profile), format: FormatChoice::Auto }
    }

    /// The job of the flags.
    ///
    /// # Errors
    /// A bad `--window` or `--max-out-of-orderness` (named).
    pub fn from_args(args: &TaxiArgs, window: &super::WindowArgs) -> Result<TaxiJob, String> {
        let mut s = TaxiSettings::for_profile(args.profile);
        if let Some(w) = window.window()? {
            s.window = w;
        }
        if let Some(p) = args.hot_spot_precision {
            s.hot_spot_precision = p as usize;
        }
        if let Some(p) = args.duration_precision {
            s.duration_precision = p as usize;
        }
        if let Some(bound_ms) = window.bound_ms()? {
            s.watermarks = WatermarkStrategy::BoundedOutOfOrderness { bound_ms };
        }
        Ok(TaxiJob { settings: s, format: args.format })
    }
}

impl EventTime for Trip {
    #[inline]
    fn event_time(&self) -> u64 {
        self.dropoff_ms
    }
}

impl Job for TaxiJob {
    type Record = Trip;
    type Format = Format;

    fn info() -> JobInfo {
        JobInfo {
            name: "taxi",
            summary: "NYC taxi pickup hot spots and airport trip durations in event-time windows (AWS reference architecture: Flink, Kinesis/Kafka, Elasticsearch, Kibana)",
            inputs: "TLC, DEBS or TaxiRide CSV files; JSON trip and watermark events (files, Kafka, Kinesis)",
            defaults: "--profile kda: 1h windows, watermarks from watermark records, record-level lateness, geohash 7 hot spots",
            docs: "docs/jobs/taxi.md",
        }
    }

    fn watermarks(&self) -> WatermarkStrategy {
        self.settings.watermarks
    }

    fn lateness(&self) -> Lateness {
        Lateness::Record
    }

    fn stream_format(&self) -> Result<Format, String> {
        match self.format {
            FormatChoice::Auto | FormatChoice::Jsonl => Ok(Format::JsonLines),
            other => Err(format!("--format {}: stream records are JSON trip events (docs/jobs/taxi.md §1); --format applies to --input files", clap::ValueEnum::to_possible_value(&other).map_or_else(String::new, |v| v.get_name().to_string()))),
        }
    }

    fn file_format(&self, first_line: Option<&[u8]>) -> Result<Format, String> {
        formats::detect(first_line, self.format)
    }

    fn outputs(&self) -> Vec<OutputSchema> {
        documents::schemas()
    }

    fn record_noun(&self) -> &'static str {
        "trips"
    }

    fn counters(&self) -> &'static [&'static str] {
        &["filtered"]
    }

    fn build<'s>(&self, trips: StreamVec<'s, Time, Trip>, recovery: &Recovery, counters: &Counters) -> JobStreams<'s> {
        let s = &self.settings;
        let nyc = nyc_filter::filter_nyc(trips, s.nyc.clone(), counters.clone(), 0);
        let (pickup_counts, hot_spot_parts) = hot_spots::hot_spots(nyc.clone(), s, recovery);
        let (trip_durations, duration_parts) = airport_durations::airport_durations(nyc, s, recovery);
        JobStreams { rows: pickup_counts.concat(trip_durations), checkpoint_parts: hot_spot_parts.concat(duration_parts) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_records_are_json_events_whatever_the_file_format() {
        let mut job = TaxiJob::for_profile(Profile::Kda);
        assert_eq!(job.stream_format(), Ok(Format::JsonLines));
        job.format = FormatChoice::Tlc;
        assert!(job.stream_format().unwrap_err().starts_with("--format tlc: stream records are JSON trip events"));
        assert_eq!(job.lateness(), Lateness::Record, "the taxi job's lateness is per record");
        assert_eq!(job.lateness().due(1_000), 1_000);
    }
}
