//! Validates the saved objects of `dashboards/` (Kibana 8 and OpenSearch Dashboards) against the documented
//! saved-object formats, and `scripts/import-dashboards.sh` against a fake Kibana. Real Kibana cannot be
//! installed where this project is built, so these checks stand in for an import.
//!
//! The formats come from (see also `dashboards/README.md`):
//! * [KIBANA_IMPORT]: the import objects API (NDJSON of `{type, id, attributes, references}`, multipart field
//!   `file`, header `kbn-xsrf`, answer `{success, successCount, errors}`).
//! * elastic/kibana sources: `src/plugins/dashboard/common/persistable_state/dashboard_container_references.ts`
//!   (8.x panels: `panelRefName` `panel_<panelIndex>`, reference `<panelIndex>:panel_<panelIndex>`),
//!   `src/plugins/home/server/services/sample_data/data_sets/logs/saved_objects.ts` (an 8.0 dashboard with a
//!   `map` panel), `x-pack/plugins/maps/common/migrations/references.ts` (`layer_<i>_source_index_pattern`),
//!   `x-pack/plugins/maps/common/descriptor_types/source_descriptor_types.ts` (`ESGeoGridSourceDescriptor`),
//!   `x-pack/plugins/maps/server/sample_data/web_logs_saved_objects.js` (an `ES_GEO_GRID` layer with a `sum`
//!   metric), `x-pack/plugins/maps/server/saved_objects/saved_object_migrations.ts` and
//!   `x-pack/plugins/maps/common/migrations/rename_layer_types.ts` (layer types renamed in 8.1),
//!   `src/plugins/vis_types/xy/public/vis_types/line.ts` (line: schemas `metric`, `segment`, `group`).
//! * opensearch-project/OpenSearch-Dashboards sources: `src/plugins/dashboard/public/saved_dashboards/
//!   saved_dashboard_references.ts` (`panelRefName` `panel_<i>`), the migrations of `dashboard`
//!   (`src/plugins/dashboard/server/saved_objects/dashboard_migrations.ts`, last 7.9.3), `visualization`
//!   (`src/plugins/visualizations/server/saved_objects/visualization_migrations.ts`, last 7.10.0) and
//!   `index-pattern` (`src/plugins/data/server/saved_objects/index_pattern_migrations.ts`, last 7.6.0),
//!   `src/plugins/tile_map/public/tile_map_type.js` (coordinate map: `metric` + `segment` `geohash_grid`),
//!   `src/core/server/http/lifecycle_handlers.ts` (header `osd-xsrf`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};

/// The Kibana 8 import objects API documentation.
const KIBANA_IMPORT: &str = "https://www.elastic.co/guide/en/kibana/8.5/saved-objects-api-import.html";

/// One index template of the pipeline: the data view title pattern (indices may carry a date suffix), the time
/// field and the mapping as (field, Elasticsearch type).
struct IndexMapping {
    pattern: &'static str,
    time_field: &'static str,
    fields: &'static [(&'static str, &'static str)],
}

/// The source of truth: the index templates the pipeline creates (spec §4).
const MAPPINGS: &[IndexMapping] = &[
    IndexMapping {
        pattern: "pickup_count*",
        time_field: "timestamp",
        fields: &[("location", "geo_point"), ("pickup_count", "long"), ("timestamp", "date")],
    },
    IndexMapping {
        pattern: "trip_duration*",
        time_field: "timestamp",
        fields: &[
            ("location", "geo_point"),
            ("location.raw", "keyword"),
            ("airport_code", "keyword"),
            ("sum_trip_duration", "long"),
            ("avg_trip_duration", "double"),
            ("timestamp", "date"),
        ],
    },
];

/// The query of the reference's hot-spot map (Lucene syntax).
const HOT_SPOT_QUERY: &str = "pickup_count:[3 TO *]";

/// Dashboards are 48 grid columns wide (Kibana and OpenSearch Dashboards).
const GRID_COLUMNS: i64 = 48;

/// The last migration version of each type in OpenSearch Dashboards 2.x (see the module docs).
const OSD_MIGRATION_VERSIONS: &[(&str, &str)] =
    &[("index-pattern", "7.6.0"), ("visualization", "7.10.0"), ("dashboard", "7.9.3")];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Product {
    Kibana8,
    Osd,
}

/// One NDJSON file of saved objects, parsed.
#[derive(Clone)]
struct SavedObjects {
    product: Product,
    /// The `--index-prefix` the data view titles carry.
    prefix: String,
    objects: Vec<Value>,
}

type Check = Result<(), String>;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn file_name(product: Product) -> &'static str {
    match product {
        Product::Kibana8 => "kibana-8.ndjson",
        Product::Osd => "opensearch-dashboards.ndjson",
    }
}

/// Parses NDJSON text: one JSON object per line (the export format); an empty last line is allowed.
fn parse_ndjson(text: &str) -> Result<Vec<Value>, String> {
    let body = text.strip_suffix('\n').ok_or("the file does not end with a newline")?;
    body.split('\n')
        .enumerate()
        .map(|(i, line)| {
            let v: Value = serde_json::from_str(line).map_err(|e| format!("line {}: not JSON: {e}", i + 1))?;
            if v.is_object() {
                Ok(v)
            } else {
                Err(format!("line {}: not a JSON object", i + 1))
            }
        })
        .collect()
}

fn load(product: Product) -> SavedObjects {
    let path = root().join("dashboards").join(file_name(product));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let objects = parse_ndjson(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    SavedObjects { product, prefix: String::new(), objects }
}

fn kibana() -> SavedObjects {
    load(Product::Kibana8)
}

fn osd() -> SavedObjects {
    load(Product::Osd)
}

fn both() -> [SavedObjects; 2] {
    [kibana(), osd()]
}

/// Asserts that a check passes, naming the file.
fn pass(f: &SavedObjects, check: fn(&SavedObjects) -> Check) {
    if let Err(e) = check(f) {
        panic!("{}: {e}", file_name(f.product));
    }
}

/// Asserts that a check fails on a file changed by `mutate`, and that the message mentions `expected`.
fn fails_after(
    mut f: SavedObjects,
    check: fn(&SavedObjects) -> Check,
    expected: &str,
    mutate: impl FnOnce(&mut SavedObjects),
) {
    pass(&f, check);
    mutate(&mut f);
    match check(&f) {
        Ok(()) => {
            panic!("{}: the check passed on a broken file (expected an error about {expected:?})", file_name(f.product))
        }
        Err(e) => {
            assert!(e.contains(expected), "{}: expected an error about {expected:?}, got: {e}", file_name(f.product))
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Access helpers

fn str_at<'a>(v: &'a Value, key: &str) -> Result<&'a str, String> {
    v.get(key).and_then(Value::as_str).ok_or_else(|| format!("missing string {key:?} in {}", short(v)))
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 160 {
        format!("{}…", &s[..s.char_indices().nth(160).map_or(s.len(), |(i, _)| i)])
    } else {
        s
    }
}

fn describe(o: &Value) -> String {
    format!("{} {:?}", o["type"].as_str().unwrap_or("?"), o["id"].as_str().unwrap_or("?"))
}

/// The attribute at `path` inside `attributes`, which holds JSON text; parsed.
fn json_attr(o: &Value, path: &[&str]) -> Result<Value, String> {
    let mut v = &o["attributes"];
    for key in path {
        v = v.get(key).ok_or_else(|| format!("{}: missing attribute {}", describe(o), path.join(".")))?;
    }
    let text = v.as_str().ok_or_else(|| format!("{}: attribute {} is not a string", describe(o), path.join(".")))?;
    serde_json::from_str(text)
        .map_err(|e| format!("{}: attribute {} is not JSON text: {e}", describe(o), path.join(".")))
}

/// Replaces the JSON-text attribute at `path` of object `id` by `edit` applied to its parsed value.
fn edit_json_attr(f: &mut SavedObjects, id: &str, path: &[&str], edit: impl FnOnce(&mut Value)) {
    let o = f.objects.iter_mut().find(|o| o["id"] == id).expect("object exists");
    let mut parsed = json_attr(o, path).unwrap();
    edit(&mut parsed);
    let mut slot = &mut o["attributes"];
    for key in path {
        slot = &mut slot[*key];
    }
    *slot = Value::String(parsed.to_string());
}

fn object_mut<'a>(f: &'a mut SavedObjects, id: &str) -> &'a mut Value {
    f.objects.iter_mut().find(|o| o["id"] == id).expect("object exists")
}

fn objects_of<'a>(f: &'a SavedObjects, type_: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    f.objects.iter().filter(move |o| o["type"] == type_)
}

fn find<'a>(f: &'a SavedObjects, type_: &str, id: &str) -> Option<&'a Value> {
    f.objects.iter().find(|o| o["type"] == type_ && o["id"] == id)
}

/// The reference of `o` named `name`, as (type, id).
fn reference<'a>(o: &'a Value, name: &str) -> Result<(&'a str, &'a str), String> {
    let refs = o["references"].as_array().ok_or_else(|| format!("{}: no references", describe(o)))?;
    let r = refs
        .iter()
        .find(|r| r["name"] == name)
        .ok_or_else(|| format!("{}: no reference named {name:?}", describe(o)))?;
    Ok((str_at(r, "type")?, str_at(r, "id")?))
}

/// The mapping entry of a data view title (with the file's prefix).
fn mapping_of(f: &SavedObjects, title: &str) -> Result<&'static IndexMapping, String> {
    MAPPINGS
        .iter()
        .find(|m| format!("{}{}", f.prefix, m.pattern) == title)
        .ok_or_else(|| format!("data view {title:?} is none of the pipeline's indices"))
}

/// The index-pattern object `o` points to through its reference `ref_name`, and its title.
fn data_view_title<'a>(f: &'a SavedObjects, o: &Value, ref_name: &str) -> Result<&'a str, String> {
    let (type_, id) = reference(o, ref_name)?;
    if type_ != "index-pattern" {
        return Err(format!("{}: reference {ref_name:?} is a {type_}, not an index-pattern", describe(o)));
    }
    let view = find(f, "index-pattern", id)
        .ok_or_else(|| format!("{}: index-pattern {id:?} is not in the file", describe(o)))?;
    str_at(&view["attributes"], "title")
}

const NUMERIC: &[&str] =
    &["long", "integer", "short", "byte", "double", "float", "half_float", "scaled_float", "unsigned_long"];

/// The Elasticsearch field types an aggregation accepts (Kibana's aggregation editors filter fields the same way).
fn accepted_types(agg: &str) -> Option<&'static [&'static str]> {
    match agg {
        "geohash_grid" | "geotile_grid" | "geo_grid" => Some(&["geo_point"]),
        "sum" | "avg" | "min" | "max" => Some(NUMERIC),
        "terms" => Some(&["keyword"]),
        "date_histogram" => Some(&["date"]),
        _ => None,
    }
}

/// Checks that aggregation `agg` can run on `field` of data view `title`.
fn check_field(f: &SavedObjects, title: &str, agg: &str, field: &str) -> Check {
    let es_type = mapping_of(f, title)?
        .fields
        .iter()
        .find(|(name, _)| *name == field)
        .map(|(_, t)| *t)
        .ok_or_else(|| format!("{agg} on field {field:?}, which {title} does not have"))?;
    let accepted = accepted_types(agg).ok_or_else(|| format!("unknown aggregation {agg:?}"))?;
    if accepted.contains(&es_type) {
        Ok(())
    } else {
        Err(format!("{agg} on field {field:?} of {title}, a {es_type}; {agg} needs one of {accepted:?}"))
    }
}

/// The fields a visualization or map uses, as (data view title, aggregation, field).
fn field_uses(f: &SavedObjects, o: &Value) -> Result<Vec<(String, String, String)>, String> {
    let mut uses = Vec::new();
    match o["type"].as_str() {
        Some("visualization") => {
            let source = json_attr(o, &["kibanaSavedObjectMeta", "searchSourceJSON"])?;
            let title = data_view_title(f, o, str_at(&source, "indexRefName")?)?;
            let vis = json_attr(o, &["visState"])?;
            for agg in vis["aggs"].as_array().ok_or_else(|| format!("{}: visState has no aggs", describe(o)))? {
                let type_ = str_at(agg, "type")?;
                match agg["params"].get("field") {
                    Some(field) => {
                        let field =
                            field.as_str().ok_or_else(|| format!("{}: agg field is not a string", describe(o)))?;
                        uses.push((title.to_string(), type_.to_string(), field.to_string()));
                    }
                    None if type_ == "count" => {}
                    None => return Err(format!("{}: {type_} aggregation without a field", describe(o))),
                }
            }
        }
        Some("map") => {
            for (_, layer) in geo_grid_layers(o)? {
                let source = &layer["sourceDescriptor"];
                let title = data_view_title(f, o, str_at(source, "indexPatternRefName")?)?;
                uses.push((title.to_string(), "geo_grid".to_string(), str_at(source, "geoField")?.to_string()));
                for metric in
                    source["metrics"].as_array().ok_or_else(|| format!("{}: layer without metrics", describe(o)))?
                {
                    let type_ = str_at(metric, "type")?;
                    if type_ != "count" {
                        uses.push((title.to_string(), type_.to_string(), str_at(metric, "field")?.to_string()));
                    }
                }
            }
        }
        _ => {}
    }
    Ok(uses)
}

/// The layers of a `map` object whose source is an Elasticsearch geo grid aggregation, with their index.
fn geo_grid_layers(o: &Value) -> Result<Vec<(usize, Value)>, String> {
    let layers = json_attr(o, &["layerListJSON"])?;
    let layers = layers.as_array().ok_or_else(|| format!("{}: layerListJSON is not an array", describe(o)))?;
    Ok(layers
        .iter()
        .enumerate()
        .filter(|(_, l)| l["sourceDescriptor"]["type"] == "ES_GEO_GRID")
        .map(|(i, l)| (i, l.clone()))
        .collect())
}

/// The reference names an object's attributes use (`indexRefName`, `indexPatternRefName`, `panelRefName`), as
/// the product resolves them.
fn used_reference_names(f: &SavedObjects, o: &Value) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    if o["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"].is_string() {
        let source = json_attr(o, &["kibanaSavedObjectMeta", "searchSourceJSON"])?;
        if let Some(name) = source.get("indexRefName") {
            names.push(name.as_str().ok_or("indexRefName is not a string")?.to_string());
        }
        for filter in source["filter"].as_array().into_iter().flatten() {
            if let Some(name) = filter["meta"]["indexRefName"].as_str() {
                names.push(name.to_string());
            }
        }
    }
    if o["type"] == "map" {
        let layers = json_attr(o, &["layerListJSON"])?;
        for layer in layers.as_array().into_iter().flatten() {
            if let Some(name) = layer["sourceDescriptor"]["indexPatternRefName"].as_str() {
                names.push(name.to_string());
            }
            for join in layer["joins"].as_array().into_iter().flatten() {
                if let Some(name) = join["right"]["indexPatternRefName"].as_str() {
                    names.push(name.to_string());
                }
            }
        }
    }
    if o["type"] == "dashboard" {
        for panel in json_attr(o, &["panelsJSON"])?.as_array().into_iter().flatten() {
            if let Some(name) = panel["panelRefName"].as_str() {
                names.push(panel_reference_name(f.product, panel, name)?);
            }
        }
    }
    Ok(names)
}

/// The name of the dashboard reference a panel's `panelRefName` resolves to: Kibana 8 prefixes it with the
/// panel index (`<panelIndex>:panel_<panelIndex>`), OpenSearch Dashboards uses it as it is.
fn panel_reference_name(product: Product, panel: &Value, panel_ref_name: &str) -> Result<String, String> {
    Ok(match product {
        Product::Kibana8 => format!("{}:{panel_ref_name}", str_at(panel, "panelIndex")?),
        Product::Osd => panel_ref_name.to_string(),
    })
}

// ---------------------------------------------------------------------------------------------------------
// Checks (each returns the first problem found)

/// Every line is `{id, type, attributes, references}` with references `[{name, type, id}]`; ids are unique per
/// type and reference names unique per object.
fn check_envelopes(f: &SavedObjects) -> Check {
    let mut seen = BTreeSet::new();
    for o in &f.objects {
        let id = str_at(o, "id")?;
        let type_ = str_at(o, "type")?;
        if id.is_empty() || type_.is_empty() {
            return Err(format!("empty id or type in {}", short(o)));
        }
        if !seen.insert((type_.to_string(), id.to_string())) {
            return Err(format!("{type_} {id:?} appears twice"));
        }
        if !o["attributes"].is_object() {
            return Err(format!("{}: attributes is not an object", describe(o)));
        }
        let refs = o["references"].as_array().ok_or_else(|| format!("{}: references is not an array", describe(o)))?;
        let mut names = BTreeSet::new();
        for r in refs {
            let keys: BTreeSet<&str> =
                r.as_object().map(|m| m.keys().map(String::as_str).collect()).unwrap_or_default();
            if keys != BTreeSet::from(["name", "type", "id"]) {
                return Err(format!("{}: reference {} is not {{name, type, id}}", describe(o), short(r)));
            }
            for key in ["name", "type", "id"] {
                if str_at(r, key)?.is_empty() {
                    return Err(format!("{}: reference with an empty {key}", describe(o)));
                }
            }
            if !names.insert(str_at(r, "name")?) {
                return Err(format!("{}: two references named {:?}", describe(o), r["name"]));
            }
        }
    }
    Ok(())
}

/// Kibana 8: `coreMigrationVersion` 8.x and the type's version in `migrationVersion` (or `typeMigrationVersion`)
/// 8.x, so that import runs the later migrations. OpenSearch Dashboards: `migrationVersion` of the type at most
/// the last OSD migration, no Kibana-only fields. And no type the product lacks.
fn check_migration_versions(f: &SavedObjects) -> Check {
    for o in &f.objects {
        let type_ = str_at(o, "type")?;
        let m = o.get("migrationVersion");
        let declared = match (o.get("typeMigrationVersion").and_then(Value::as_str), m) {
            (Some(v), _) => v.to_string(),
            (None, Some(m)) => {
                let m = m.as_object().ok_or_else(|| format!("{}: migrationVersion is not an object", describe(o)))?;
                if m.keys().any(|k| k != type_) {
                    return Err(format!("{}: migrationVersion names another type: {m:?}", describe(o)));
                }
                str_at(&o["migrationVersion"], type_)?.to_string()
            }
            (None, None) => return Err(format!("{}: no migrationVersion", describe(o))),
        };
        let version = parse_version(&declared).ok_or_else(|| format!("{}: bad version {declared:?}", describe(o)))?;
        match f.product {
            Product::Kibana8 => {
                let core = o.get("coreMigrationVersion").and_then(Value::as_str).unwrap_or("");
                if parse_version(core).map(|v| v.0) != Some(8) {
                    return Err(format!("{}: coreMigrationVersion {core:?} is not 8.x", describe(o)));
                }
                if version.0 != 8 {
                    return Err(format!("{}: migration version {declared} is not 8.x", describe(o)));
                }
                if ["tile_map", "region_map"].iter().any(|t| {
                    o["attributes"]["visState"].as_str().is_some_and(|s| s.contains(&format!("\"type\":\"{t}\"")))
                }) {
                    return Err(format!(
                        "{}: coordinate and region map visualizations were removed in Kibana 8",
                        describe(o)
                    ));
                }
            }
            Product::Osd => {
                for key in ["coreMigrationVersion", "typeMigrationVersion"] {
                    if o.get(key).is_some() {
                        return Err(format!("{}: {key} is not part of the OpenSearch Dashboards format", describe(o)));
                    }
                }
                let last = OSD_MIGRATION_VERSIONS
                    .iter()
                    .find(|(t, _)| *t == type_)
                    .map(|(_, v)| parse_version(v).unwrap())
                    .ok_or_else(|| {
                        format!("{}: type {type_} is not one OpenSearch Dashboards core has", describe(o))
                    })?;
                if version > last {
                    return Err(format!(
                        "{}: migration version {declared} is newer than OpenSearch Dashboards knows",
                        describe(o)
                    ));
                }
            }
        }
    }
    Ok(())
}

fn parse_version(v: &str) -> Option<(u32, u32, u32)> {
    let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
    let version = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(version)
}

/// The attributes stored as JSON text parse, as the right kind of JSON value.
fn check_json_attributes(f: &SavedObjects) -> Check {
    // (type, path, array?) of the attributes each type must have.
    const REQUIRED: &[(&str, &[&str], bool)] = &[
        ("visualization", &["visState"], false),
        ("visualization", &["uiStateJSON"], false),
        ("visualization", &["kibanaSavedObjectMeta", "searchSourceJSON"], false),
        ("map", &["layerListJSON"], true),
        ("map", &["mapStateJSON"], false),
        ("map", &["uiStateJSON"], false),
        ("dashboard", &["panelsJSON"], true),
        ("dashboard", &["optionsJSON"], false),
        ("dashboard", &["kibanaSavedObjectMeta", "searchSourceJSON"], false),
    ];
    // Optional JSON-text attributes of index patterns.
    const INDEX_PATTERN: &[(&str, bool)] = &[
        ("fields", true),
        ("sourceFilters", true),
        ("fieldFormatMap", false),
        ("fieldAttrs", false),
        ("runtimeFieldMap", false),
        ("typeMeta", false),
    ];
    for o in &f.objects {
        let type_ = str_at(o, "type")?;
        let mut checks: Vec<(Vec<&str>, bool)> =
            REQUIRED.iter().filter(|(t, _, _)| *t == type_).map(|(_, p, a)| (p.to_vec(), *a)).collect();
        if type_ == "index-pattern" {
            checks.extend(
                INDEX_PATTERN.iter().filter(|(k, _)| o["attributes"].get(k).is_some()).map(|(k, a)| (vec![*k], *a)),
            );
        }
        if checks.is_empty() && type_ != "index-pattern" {
            return Err(format!("{}: unexpected type", describe(o)));
        }
        for (path, array) in checks {
            let v = json_attr(o, &path)?;
            if v.is_array() != array || !(v.is_array() || v.is_object()) {
                return Err(format!(
                    "{}: {} is not a JSON {}",
                    describe(o),
                    path.join("."),
                    if array { "array" } else { "object" }
                ));
            }
        }
    }
    Ok(())
}

/// Every reference points to an object of that type and id in the same file, every reference name the attributes
/// use exists, and every reference is used.
fn check_references_resolve(f: &SavedObjects) -> Check {
    for o in &f.objects {
        let refs = o["references"].as_array().ok_or("references is not an array")?;
        for r in refs {
            let (type_, id) = (str_at(r, "type")?, str_at(r, "id")?);
            if find(f, type_, id).is_none() {
                return Err(format!(
                    "{}: reference {:?} to {type_} {id:?}, which is not in the file",
                    describe(o),
                    r["name"]
                ));
            }
        }
        let used = used_reference_names(f, o)?;
        for name in &used {
            reference(o, name)?;
        }
        for r in refs {
            let name = str_at(r, "name")?;
            if !used.iter().any(|u| u == name) {
                return Err(format!("{}: reference {name:?} is not used by the attributes", describe(o)));
            }
        }
    }
    Ok(())
}

/// One index-pattern (data view) per pipeline index, titled with its `*` pattern and with the index's time
/// field; fields it lists match the mappings.
fn check_index_patterns(f: &SavedObjects) -> Check {
    let titles: BTreeSet<String> = objects_of(f, "index-pattern")
        .map(|o| str_at(&o["attributes"], "title").map(str::to_string))
        .collect::<Result<_, _>>()?;
    let expected: BTreeSet<String> = MAPPINGS.iter().map(|m| format!("{}{}", f.prefix, m.pattern)).collect();
    if titles != expected || objects_of(f, "index-pattern").count() != MAPPINGS.len() {
        return Err(format!("index-pattern titles {titles:?}, expected {expected:?}"));
    }
    for o in objects_of(f, "index-pattern") {
        let title = str_at(&o["attributes"], "title")?;
        let IndexMapping { time_field, fields, .. } = mapping_of(f, title)?;
        let tf = str_at(&o["attributes"], "timeFieldName")?;
        if tf != *time_field || !fields.contains(&(tf, "date")) {
            return Err(format!("{}: timeFieldName {tf:?}, expected the date field {time_field:?}", describe(o)));
        }
        let listed = match o["attributes"].get("fields") {
            Some(_) => json_attr(o, &["fields"])?,
            None => json!([]),
        };
        let listed: Vec<&Value> = listed
            .as_array()
            .ok_or("fields is not an array")?
            .iter()
            .filter(|x| !x["name"].as_str().unwrap_or("").starts_with('_'))
            .collect();
        if listed.is_empty() {
            continue; // Kibana 8 (and an index pattern without fields) reads the fields from the cluster.
        }
        let names: BTreeSet<&str> = listed.iter().map(|x| x["name"].as_str().unwrap_or("")).collect();
        let wanted: BTreeSet<&str> = fields.iter().map(|(n, _)| *n).collect();
        if names != wanted {
            return Err(format!("{}: fields {names:?}, the mapping has {wanted:?}", describe(o)));
        }
        for field in listed {
            let name = str_at(field, "name")?;
            let es_type = fields.iter().find(|(n, _)| *n == name).unwrap().1;
            let kbn_type = match es_type {
                "geo_point" => "geo_point",
                "keyword" => "string",
                "date" => "date",
                t if NUMERIC.contains(&t) => "number",
                t => return Err(format!("no Kibana field type for {t}")),
            };
            if field["esTypes"] != json!([es_type]) || field["type"] != kbn_type {
                return Err(format!(
                    "{}: field {name:?} listed as {} {}, the mapping says {es_type} ({kbn_type})",
                    describe(o),
                    field["type"],
                    field["esTypes"]
                ));
            }
            if field["aggregatable"] != true || field["searchable"] != true {
                return Err(format!("{}: field {name:?} is not searchable and aggregatable", describe(o)));
            }
        }
    }
    Ok(())
}

/// Every field a map layer or visualization aggregation uses exists in its data view's mapping with a type the
/// aggregation accepts.
fn check_field_types(f: &SavedObjects) -> Check {
    let mut n = 0;
    for o in &f.objects {
        for (title, agg, field) in field_uses(f, o)? {
            check_field(f, &title, &agg, &field).map_err(|e| format!("{}: {e}", describe(o)))?;
            n += 1;
        }
    }
    if n == 0 {
        return Err("no field is used".into());
    }
    Ok(())
}

/// Parses `FIELD:[FROM TO *]`, the Lucene range of the hot-spot query, into the field.
fn lucene_range_field(query: &str) -> Option<&str> {
    let (field, range) = query.split_once(':')?;
    (range.starts_with('[') && range.ends_with(']') && range.contains(" TO ")).then_some(field)
}

/// The query object is the hot-spot query in Lucene syntax, on a numeric field of the data view.
fn check_hot_spot_query(f: &SavedObjects, query: &Value, title: &str, what: &str) -> Check {
    if query["query"] != HOT_SPOT_QUERY || query["language"] != "lucene" {
        return Err(format!(
            "{what}: query {}, expected {{\"query\":{HOT_SPOT_QUERY:?},\"language\":\"lucene\"}}",
            short(query)
        ));
    }
    let field = lucene_range_field(HOT_SPOT_QUERY).unwrap();
    check_field(f, title, "sum", field).map_err(|e| format!("{what}: the query's field: {e}"))
}

/// The hot-spot map: Kibana 8 `map` with an `ES_GEO_GRID` layer (grid, sum of `pickup_count` on `location`,
/// the hot-spot query as layer query); OpenSearch Dashboards `tile_map` (sum + geohash_grid, query in the
/// search source).
fn check_hot_spot_map(f: &SavedObjects) -> Check {
    match f.product {
        Product::Kibana8 => {
            let maps: Vec<&Value> = objects_of(f, "map").collect();
            let [map] = maps[..] else { return Err(format!("{} map objects, expected 1", maps.len())) };
            let map_version = match map.get("typeMigrationVersion").and_then(Value::as_str) {
                Some(v) => v,
                None => map["migrationVersion"]["map"].as_str().unwrap_or(""),
            };
            // Layer types were renamed by the 8.1.0 map migration (rename_layer_types.ts).
            let renamed = parse_version(map_version).ok_or("map without a migration version")? >= (8, 1, 0);
            let layer_types: &[&str] = if renamed {
                &[
                    "GEOJSON_VECTOR",
                    "MVT_VECTOR",
                    "EMS_VECTOR_TILE",
                    "RASTER_TILE",
                    "HEATMAP",
                    "BLENDED_VECTOR",
                    "LAYER_GROUP",
                ]
            } else {
                &["VECTOR", "TILED_VECTOR", "VECTOR_TILE", "TILE", "HEATMAP", "BLENDED_VECTOR"]
            };
            let all = json_attr(map, &["layerListJSON"])?;
            for layer in all.as_array().unwrap() {
                let t = str_at(layer, "type")?;
                if !layer_types.contains(&t) {
                    return Err(format!(
                        "{}: layer type {t} does not exist at map migration version {map_version}",
                        describe(map)
                    ));
                }
                str_at(layer, "id")?;
            }
            let layers = geo_grid_layers(map)?;
            let [(index, layer)] = &layers[..] else {
                return Err(format!("{}: {} ES_GEO_GRID layers, expected 1", describe(map), layers.len()));
            };
            let source = &layer["sourceDescriptor"];
            let ref_name = str_at(source, "indexPatternRefName")?;
            if ref_name != format!("layer_{index}_source_index_pattern") {
                return Err(format!("{}: indexPatternRefName {ref_name:?} of layer {index}", describe(map)));
            }
            let title = data_view_title(f, map, ref_name)?;
            if title != format!("{}pickup_count*", f.prefix) {
                return Err(format!("{}: the grid layer reads {title}", describe(map)));
            }
            if source["requestType"] != "grid" || source["geoField"] != "location" {
                return Err(format!("{}: the layer is not a grid on location: {}", describe(map), short(source)));
            }
            if !["COARSE", "FINE", "MOST_FINE", "SUPER_FINE"].contains(&source["resolution"].as_str().unwrap_or("")) {
                return Err(format!("{}: resolution {}", describe(map), source["resolution"]));
            }
            if source["metrics"] != json!([{"type": "sum", "field": "pickup_count"}]) {
                return Err(format!(
                    "{}: metrics {}, expected the sum of pickup_count",
                    describe(map),
                    source["metrics"]
                ));
            }
            check_hot_spot_query(f, &layer["query"], title, &format!("{} layer query", describe(map)))?;
            let state = json_attr(map, &["mapStateJSON"])?;
            let (zoom, lat, lon) = (&state["zoom"], &state["center"]["lat"], &state["center"]["lon"]);
            if !(zoom.is_number()
                && lat.as_f64().is_some_and(|x| (40.4..41.0).contains(&x))
                && lon.as_f64().is_some_and(|x| (-74.3..-73.6).contains(&x)))
            {
                return Err(format!("{}: mapStateJSON does not center on New York: {}", describe(map), short(&state)));
            }
        }
        Product::Osd => {
            if objects_of(f, "map").next().is_some() || objects_of(f, "lens").next().is_some() {
                return Err("map and lens saved objects do not exist in OpenSearch Dashboards core".into());
            }
            let tile_maps: Vec<&Value> = objects_of(f, "visualization")
                .filter(|o| json_attr(o, &["visState"]).is_ok_and(|v| v["type"] == "tile_map"))
                .collect();
            let [vis] = tile_maps[..] else {
                return Err(format!("{} tile_map visualizations, expected 1", tile_maps.len()));
            };
            let state = json_attr(vis, &["visState"])?;
            let aggs: Vec<(String, String, String)> = state["aggs"]
                .as_array()
                .ok_or("tile_map without aggs")?
                .iter()
                .map(|a| {
                    (
                        a["schema"].as_str().unwrap_or("").into(),
                        a["type"].as_str().unwrap_or("").into(),
                        a["params"]["field"].as_str().unwrap_or("").into(),
                    )
                })
                .collect();
            let expected = [("metric", "sum", "pickup_count"), ("segment", "geohash_grid", "location")];
            if aggs.len() != 2
                || !expected.iter().all(|(s, t, fl)| aggs.contains(&(s.to_string(), t.to_string(), fl.to_string())))
            {
                return Err(format!("{}: aggs {aggs:?}, expected {expected:?}", describe(vis)));
            }
            let source = json_attr(vis, &["kibanaSavedObjectMeta", "searchSourceJSON"])?;
            let title = data_view_title(f, vis, str_at(&source, "indexRefName")?)?;
            if title != format!("{}pickup_count*", f.prefix) {
                return Err(format!("{}: reads {title}", describe(vis)));
            }
            check_hot_spot_query(f, &source["query"], title, &format!("{} search source", describe(vis)))?;
            if !state["params"]["wms"].is_object() || state["params"]["mapCenter"].as_array().map_or(0, Vec::len) != 2 {
                return Err(format!("{}: params need wms (an object) and mapCenter [lat, lon]", describe(vis)));
            }
        }
    }
    Ok(())
}

/// The line chart: aggregation-based `line` with the average of `avg_trip_duration` (schema `metric`), a date
/// histogram on `timestamp` (`segment`) and terms of `airport_code` (`group`, split series) on `trip_duration*`.
fn check_line_chart(f: &SavedObjects) -> Check {
    let lines: Vec<&Value> = objects_of(f, "visualization")
        .filter(|o| json_attr(o, &["visState"]).is_ok_and(|v| v["type"] == "line"))
        .collect();
    let [vis] = lines[..] else { return Err(format!("{} line visualizations, expected 1", lines.len())) };
    let state = json_attr(vis, &["visState"])?;
    if state["title"] != vis["attributes"]["title"] {
        return Err(format!("{}: visState.title differs from the title", describe(vis)));
    }
    let source = json_attr(vis, &["kibanaSavedObjectMeta", "searchSourceJSON"])?;
    let title = data_view_title(f, vis, str_at(&source, "indexRefName")?)?;
    if title != format!("{}trip_duration*", f.prefix) {
        return Err(format!("{}: reads {title}", describe(vis)));
    }
    let aggs = state["aggs"].as_array().ok_or("line without aggs")?;
    let find_agg = |schema: &str, type_: &str, field: &str| {
        aggs.iter()
            .find(|a| {
                a["schema"] == schema && a["type"] == type_ && a["params"]["field"] == field && a["enabled"] != false
            })
            .ok_or_else(|| format!("{}: no enabled {type_} of {field} with schema {schema}", describe(vis)))
    };
    let metric = find_agg("metric", "avg", "avg_trip_duration")?;
    find_agg("segment", "date_histogram", "timestamp")?;
    find_agg("group", "terms", "airport_code")?;
    if aggs.len() != 3 {
        return Err(format!("{}: {} aggs, expected 3", describe(vis), aggs.len()));
    }
    let ids: BTreeSet<&str> = aggs.iter().map(|a| a["id"].as_str().unwrap_or("")).collect();
    if ids.len() != 3 || ids.contains("") {
        return Err(format!("{}: agg ids {ids:?} are not unique", describe(vis)));
    }
    let params = &state["params"];
    let axes: BTreeSet<&str> =
        params["valueAxes"].as_array().into_iter().flatten().filter_map(|a| a["id"].as_str()).collect();
    let series = params["seriesParams"].as_array().ok_or("line without seriesParams")?;
    let [s] = &series[..] else { return Err(format!("{}: {} series, expected 1", describe(vis), series.len())) };
    if s["data"]["id"] != metric["id"] || !axes.contains(s["valueAxis"].as_str().unwrap_or("")) || s["type"] != "line" {
        return Err(format!(
            "{}: seriesParams {} do not draw the metric agg as a line on a value axis",
            describe(vis),
            short(s)
        ));
    }
    if params["type"] != "line" || params["categoryAxes"].as_array().map_or(0, Vec::len) != 1 {
        return Err(format!("{}: params are not those of a line chart", describe(vis)));
    }
    Ok(())
}

/// The dashboard: two panels side by side (gridData `{x, y, w, h, i}` on the 48-column grid, `i` = `panelIndex`,
/// no overlap), each resolving through `panelRefName` to a reference: Kibana 8 names it
/// `<panelIndex>:panel_<panelIndex>` and keeps the panel `type`; OpenSearch Dashboards names it `panel_<i>` and
/// drops `type`/`id` from the panel. The panels are the hot-spot map and the line chart.
fn check_dashboard(f: &SavedObjects) -> Check {
    let dashboards: Vec<&Value> = objects_of(f, "dashboard").collect();
    let [dash] = dashboards[..] else { return Err(format!("{} dashboards, expected 1", dashboards.len())) };
    let panels = json_attr(dash, &["panelsJSON"])?;
    let panels = panels.as_array().ok_or("panelsJSON is not an array")?;
    if panels.len() != 2 {
        return Err(format!("{}: {} panels, expected 2", describe(dash), panels.len()));
    }
    let mut rects = Vec::new();
    let mut targets = BTreeMap::new();
    for (i, panel) in panels.iter().enumerate() {
        let what = format!("{} panel {i}", describe(dash));
        let panel_index = str_at(panel, "panelIndex")?;
        str_at(panel, "version")?;
        if !panel["embeddableConfig"].is_object() {
            return Err(format!("{what}: embeddableConfig is not an object"));
        }
        let g = &panel["gridData"];
        let keys: BTreeSet<&str> = g.as_object().map(|m| m.keys().map(String::as_str).collect()).unwrap_or_default();
        if keys != BTreeSet::from(["x", "y", "w", "h", "i"]) {
            return Err(format!("{what}: gridData {} is not {{x, y, w, h, i}}", short(g)));
        }
        if g["i"] != panel_index {
            return Err(format!("{what}: gridData.i {} differs from panelIndex {panel_index:?}", g["i"]));
        }
        let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| g[k].as_i64().unwrap_or(-1));
        if x < 0 || y < 0 || w <= 0 || h <= 0 || x + w > GRID_COLUMNS {
            return Err(format!("{what}: gridData {} is outside the {GRID_COLUMNS}-column grid", short(g)));
        }
        rects.push((x, y, w, h));
        let ref_name = str_at(panel, "panelRefName")?;
        let expected_ref = match f.product {
            Product::Kibana8 => format!("panel_{panel_index}"),
            Product::Osd => format!("panel_{i}"),
        };
        if ref_name != expected_ref {
            return Err(format!("{what}: panelRefName {ref_name:?}, expected {expected_ref:?}"));
        }
        let (type_, id) = reference(dash, &panel_reference_name(f.product, panel, ref_name)?)?;
        match f.product {
            Product::Kibana8 => {
                if panel["type"] != type_ {
                    return Err(format!("{what}: panel type {} but its reference is a {type_}", panel["type"]));
                }
            }
            Product::Osd => {
                if panel.get("type").is_some() || panel.get("id").is_some() {
                    return Err(format!("{what}: type and id belong in the references"));
                }
            }
        }
        let target = find(f, type_, id).ok_or_else(|| format!("{what}: {type_} {id:?} is not in the file"))?;
        let kind = match type_ {
            "map" => "map".to_string(),
            _ => json_attr(target, &["visState"])?["type"].as_str().unwrap_or("?").to_string(),
        };
        targets.insert(kind, x);
    }
    let map_kind = if f.product == Product::Kibana8 { "map" } else { "tile_map" };
    let kinds: BTreeSet<&str> = targets.keys().map(String::as_str).collect();
    if kinds != BTreeSet::from([map_kind, "line"]) {
        return Err(format!(
            "{}: panels show {:?}, expected the {map_kind} and the line chart",
            describe(dash),
            targets.keys()
        ));
    }
    let (a, b) = (rects[0], rects[1]);
    let overlap = a.0 < b.0 + b.2 && b.0 < a.0 + a.2 && a.1 < b.1 + b.3 && b.1 < a.1 + a.3;
    if overlap {
        return Err(format!("{}: the panels overlap: {a:?} and {b:?}", describe(dash)));
    }
    if a.1 != b.1 || targets[map_kind] > targets["line"] {
        return Err(format!(
            "{}: the map and the line chart are not side by side (map left): {a:?}, {b:?}",
            describe(dash)
        ));
    }
    let options = json_attr(dash, &["optionsJSON"])?;
    if !options["useMargins"].is_boolean() || !options["hidePanelTitles"].is_boolean() {
        return Err(format!("{}: optionsJSON needs useMargins and hidePanelTitles", describe(dash)));
    }
    Ok(())
}

/// All checks, in order.
const ALL_CHECKS: &[fn(&SavedObjects) -> Check] = &[
    check_envelopes,
    check_migration_versions,
    check_json_attributes,
    check_references_resolve,
    check_index_patterns,
    check_field_types,
    check_hot_spot_map,
    check_line_chart,
    check_dashboard,
];

// ---------------------------------------------------------------------------------------------------------
// The files

/// NDJSON, as the import API reads it ([KIBANA_IMPORT]: "file.ndjson", one saved object per line): every line of
/// both files is a JSON object `{id, type, attributes, references}` whose references are `{name, type, id}`.
#[test]
fn every_line_is_a_saved_object() {
    assert!(KIBANA_IMPORT.starts_with("https://"));
    for f in both() {
        pass(&f, check_envelopes);
        assert_eq!(
            f.objects.len(),
            5,
            "{}: 2 data views, the map, the line chart, the dashboard",
            file_name(f.product)
        );
    }
    assert!(parse_ndjson("{\"id\":\"a\"}\n[1]\n").is_err(), "a line that is not an object is refused");
    assert!(parse_ndjson("{\"id\":\"a\"}\n\n").is_err(), "an empty line is refused");
    fails_after(kibana(), check_envelopes, "is not {name, type, id}", |f| {
        object_mut(f, "taxiflow-dashboard")["references"][0] =
            json!({"name": "1:panel_1", "id": "taxiflow-pickup-hot-spots"});
    });
}

/// Import runs the migrations newer than the version an object declares ([KIBANA_IMPORT], "Compatibility across
/// versions"; `coreMigrationVersion`/`migrationVersion` as in the 8.x sample data). Kibana 8 objects declare 8.x;
/// OpenSearch Dashboards objects declare versions its migrations know (7.6.0 / 7.10.0 / 7.9.3), else the import
/// refuses them as "from a more recent version".
#[test]
fn migration_versions_match_the_product() {
    for f in both() {
        pass(&f, check_migration_versions);
    }
    fails_after(osd(), check_migration_versions, "newer than OpenSearch Dashboards knows", |f| {
        object_mut(f, "taxiflow-dashboard")["migrationVersion"] = json!({"dashboard": "8.0.0"});
    });
    fails_after(kibana(), check_migration_versions, "is not 8.x", |f| {
        object_mut(f, "taxiflow-dashboard")["coreMigrationVersion"] = json!("7.17.0");
    });
}

/// Saved objects store `visState`, `uiStateJSON`, `panelsJSON`, `optionsJSON`, `layerListJSON`, `mapStateJSON`,
/// `kibanaSavedObjectMeta.searchSourceJSON` and the index pattern's `fields` as JSON *text* (sample data of
/// elastic/kibana and OpenSearch-Dashboards): each one parses, as an array or object as the format has it.
#[test]
fn json_text_attributes_parse() {
    for f in both() {
        pass(&f, check_json_attributes);
    }
    fails_after(osd(), check_json_attributes, "visState is not JSON text", |f| {
        object_mut(f, "taxiflow-airport-trip-duration")["attributes"]["visState"] = json!("{\"type\":\"line\",");
    });
    fails_after(kibana(), check_json_attributes, "layerListJSON is not a JSON array", |f| {
        object_mut(f, "taxiflow-pickup-hot-spots")["attributes"]["layerListJSON"] = json!("{}");
    });
}

/// References ([KIBANA_IMPORT]: import fails with `missing_references` when a referenced object is absent):
/// every reference points to an object of that type and id in the same file; every `indexRefName`,
/// `indexPatternRefName` (`layer_<i>_source_index_pattern`, maps `references.ts`) and `panelRefName` names one
/// of the object's references; no reference is unused.
#[test]
fn references_resolve_within_each_file() {
    for f in both() {
        pass(&f, check_references_resolve);
    }
    fails_after(kibana(), check_references_resolve, "which is not in the file", |f| {
        object_mut(f, "taxiflow-pickup-hot-spots")["references"][0]["id"] = json!("pickup-count");
    });
    fails_after(osd(), check_references_resolve, "no reference named", |f| {
        edit_json_attr(f, "taxiflow-airport-trip-duration", &["kibanaSavedObjectMeta", "searchSourceJSON"], |s| {
            s["indexRefName"] = json!("index");
        });
    });
}

/// Data views (`index-pattern` saved objects, title = the index pattern, `timeFieldName` = the time field, as in
/// the import API example of [KIBANA_IMPORT] and the sample data): one per pipeline index, `pickup_count*` and
/// `trip_duration*` on `timestamp`; the OpenSearch Dashboards field list (export format of its sample data) is
/// the mapping of the index templates.
#[test]
fn data_views_match_the_index_templates() {
    for f in both() {
        pass(&f, check_index_patterns);
    }
    fails_after(kibana(), check_index_patterns, "timeFieldName", |f| {
        object_mut(f, "taxiflow-trip-duration")["attributes"]["timeFieldName"] = json!("@timestamp");
    });
    fails_after(osd(), check_index_patterns, "the mapping says long", |f| {
        edit_json_attr(f, "taxiflow-pickup-count", &["fields"], |fields| {
            let field = fields.as_array_mut().unwrap().iter_mut().find(|x| x["name"] == "pickup_count").unwrap();
            field["esTypes"] = json!(["keyword"]);
        });
    });
    fails_after(kibana(), check_index_patterns, "index-pattern titles", |f| {
        object_mut(f, "taxiflow-pickup-count")["attributes"]["title"] = json!("pickup_count");
    });
}

/// Field types: the aggregation editors offer only fields of the types an aggregation accepts (geo grid →
/// `geo_point`, sum/avg → numeric, terms → keyword, date_histogram → date; `line.ts`, `tile_map_type.js`,
/// `ESGeoGridSourceDescriptor`): every field the map, tile map and line chart use exists in the index template
/// with such a type.
#[test]
fn used_fields_exist_with_accepted_types() {
    for f in both() {
        pass(&f, check_field_types);
    }
    fails_after(kibana(), check_field_types, "does not have", |f| {
        edit_json_attr(f, "taxiflow-pickup-hot-spots", &["layerListJSON"], |layers| {
            layers[1]["sourceDescriptor"]["metrics"][0]["field"] = json!("pickup_counts");
        });
    });
    fails_after(osd(), check_field_types, "terms needs one of", |f| {
        edit_json_attr(f, "taxiflow-airport-trip-duration", &["visState"], |vis| {
            vis["aggs"][2]["params"]["field"] = json!("avg_trip_duration");
        });
    });
    fails_after(osd(), check_field_types, "geohash_grid on field \"pickup_count\"", |f| {
        edit_json_attr(f, "taxiflow-pickup-hot-spots", &["visState"], |vis| {
            vis["aggs"][1]["params"]["field"] = json!("pickup_count");
        });
    });
}

/// The hot-spot map of the reference (spec §4): Kibana 8 has no coordinate map (removed in 8.0,
/// elastic/integrations#2617), so a `map` saved object with an `ES_GEO_GRID` source (`requestType` grid, `sum`
/// of `pickup_count` on `location`, `indexPatternRefName` `layer_<i>_source_index_pattern`, layer types of its
/// migration version) and the query `pickup_count:[3 TO *]` on the layer; OpenSearch Dashboards: a `tile_map`
/// visualization (`metric` sum + `segment` geohash_grid) with the query in its search source.
#[test]
fn hot_spot_map_is_the_reference_map() {
    for f in both() {
        pass(&f, check_hot_spot_map);
    }
    fails_after(kibana(), check_hot_spot_map, "layer query", |f| {
        edit_json_attr(f, "taxiflow-pickup-hot-spots", &["layerListJSON"], |layers| {
            layers[1].as_object_mut().unwrap().remove("query");
        });
    });
    fails_after(kibana(), check_hot_spot_map, "does not exist at map migration version", |f| {
        edit_json_attr(f, "taxiflow-pickup-hot-spots", &["layerListJSON"], |layers| {
            layers[1]["type"] = json!("GEOJSON_VECTOR");
        });
    });
    fails_after(osd(), check_hot_spot_map, "search source", |f| {
        edit_json_attr(f, "taxiflow-pickup-hot-spots", &["kibanaSavedObjectMeta", "searchSourceJSON"], |s| {
            s["query"] = json!({"query": "pickup_count:[3 TO *]", "language": "kuery"});
        });
    });
}

/// The line chart of the reference (spec §4): an aggregation-based `line` visualization (schemas of `line.ts`:
/// `metric` = Y-axis, `segment` = X-axis, `group` = split series) with the average of `avg_trip_duration` over
/// a date histogram on `timestamp`, split by terms of `airport_code`, on `trip_duration*`.
#[test]
fn line_chart_is_the_reference_chart() {
    for f in both() {
        pass(&f, check_line_chart);
    }
    fails_after(kibana(), check_line_chart, "no enabled terms of airport_code with schema group", |f| {
        edit_json_attr(f, "taxiflow-airport-trip-duration", &["visState"], |vis| {
            vis["aggs"][2]["schema"] = json!("split");
        });
    });
    fails_after(osd(), check_line_chart, "do not draw the metric agg", |f| {
        edit_json_attr(f, "taxiflow-airport-trip-duration", &["visState"], |vis| {
            vis["params"]["seriesParams"][0]["data"]["id"] = json!("7");
        });
    });
}

/// Dashboard panels (`dashboard_container_references.ts` and the 8.0 sample dashboard for Kibana,
/// `saved_dashboard_references.ts` for OpenSearch Dashboards): each panel resolves through `panelRefName` to a
/// reference, its `gridData` `{x, y, w, h, i}` lies on the 48-column grid, and the map and the line chart sit
/// side by side without overlapping.
#[test]
fn dashboard_panels_resolve_and_do_not_overlap() {
    for f in both() {
        pass(&f, check_dashboard);
    }
    fails_after(kibana(), check_dashboard, "the panels overlap", |f| {
        edit_json_attr(f, "taxiflow-dashboard", &["panelsJSON"], |panels| {
            panels[1]["gridData"]["x"] = json!(12);
        });
    });
    fails_after(kibana(), check_dashboard, "no reference named \"2:panel_2\"", |f| {
        object_mut(f, "taxiflow-dashboard")["references"][1]["name"] = json!("panel_2");
    });
    fails_after(osd(), check_dashboard, "outside the 48-column grid", |f| {
        edit_json_attr(f, "taxiflow-dashboard", &["panelsJSON"], |panels| {
            panels[1]["gridData"]["w"] = json!(25);
        });
    });
    fails_after(osd(), check_dashboard, "type and id belong in the references", |f| {
        edit_json_attr(f, "taxiflow-dashboard", &["panelsJSON"], |panels| {
            panels[0]["type"] = json!("visualization");
        });
    });
}

// ---------------------------------------------------------------------------------------------------------
// scripts/import-dashboards.sh

fn script() -> PathBuf {
    root().join("scripts/import-dashboards.sh")
}

fn run_script(args: &[&str]) -> Output {
    Command::new(script()).args(args).output().expect("scripts/import-dashboards.sh runs (bash, curl)")
}

/// What the fake Kibana received.
struct Request {
    head: String,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    /// The multipart part named `name`: (its headers, its content).
    fn part(&self, name: &str) -> (String, String) {
        let ctype = self.header("content-type").expect("content-type");
        let boundary = ctype.split("boundary=").nth(1).expect("multipart boundary").trim_matches('"');
        let body = String::from_utf8_lossy(&self.body).into_owned();
        let delimiter = format!("--{boundary}");
        for part in body.split(&delimiter) {
            if let Some((head, content)) = part.split_once("\r\n\r\n") {
                if head.contains(&format!("name=\"{name}\"")) {
                    return (head.to_string(), content.strip_suffix("\r\n").unwrap_or(content).to_string());
                }
            }
        }
        panic!("no multipart part named {name:?}");
    }
}

/// A one-request HTTP server answering `answer` as JSON; returns its URL and the request it received.
fn fake_server(answer: &'static str) -> (String, mpsc::Receiver<Request>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut data = Vec::new();
        let mut buf = [0u8; 8192];
        let head_end = loop {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "connection closed before the end of the headers");
            data.extend_from_slice(&buf[..n]);
            if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
        let length: usize = head
            .lines()
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .map(|(_, v)| v.trim().parse().unwrap())
            })
            .expect("content-length");
        if head.to_ascii_lowercase().contains("expect: 100-continue") {
            stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").unwrap();
        }
        while data.len() < head_end + length {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "connection closed before the end of the body");
            data.extend_from_slice(&buf[..n]);
        }
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
            answer.len()
        );
        stream.write_all(response.as_bytes()).unwrap();
        tx.send(Request { head, body: data[head_end..head_end + length].to_vec() }).unwrap();
    });
    (url, rx)
}

/// The script's command line (task brief, and `set -euo pipefail`): without arguments it prints its usage and
/// exits non-zero; it is executable.
#[test]
fn import_script_without_arguments_prints_usage_and_fails() {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(script()).unwrap().permissions().mode();
    assert!(mode & 0o111 != 0, "scripts/import-dashboards.sh is not executable");
    let text = std::fs::read_to_string(script()).unwrap();
    assert!(text.starts_with("#!/usr/bin/env bash\n") && text.contains("set -euo pipefail"));
    let out = run_script(&[]);
    assert!(!out.status.success(), "no arguments must fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("usage: scripts/import-dashboards.sh URL"), "no usage message: {stderr}");
    assert!(
        stderr.contains("--opensearch-dashboards") && stderr.contains("--index-prefix") && stderr.contains("--user")
    );
    let out = run_script(&["http://127.0.0.1:1", "--index-prefix", "NYC"]);
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("lower case"),
        "an invalid prefix must fail"
    );
}

/// The import request ([KIBANA_IMPORT]): `POST /api/saved_objects/_import?overwrite=true`, header
/// `kbn-xsrf: true`, multipart/form-data with the NDJSON file in the field `file`; with `--index-prefix` the
/// uploaded data views are `Ppickup_count*` / `Ptrip_duration*` and the file still passes every check; the
/// answer is printed and `success: true` exits 0.
#[test]
fn import_script_posts_the_kibana_file_with_the_prefix() {
    let answer = r#"{"successCount":5,"success":true,"warnings":[]}"#;
    let (url, request) = fake_server(answer);
    let out = run_script(&[&url, "--index-prefix", "nyc-", "--user", "elastic:pa\"ss"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "import failed: {}{stdout}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(answer), "the answer is printed: {stdout}");
    let req = request.recv_timeout(Duration::from_secs(30)).expect("the script sent a request");
    assert!(req.head.starts_with("POST /api/saved_objects/_import?overwrite=true HTTP/1.1\r\n"), "{}", req.head);
    assert_eq!(req.header("kbn-xsrf").as_deref(), Some("true"));
    assert_eq!(req.header("osd-xsrf"), None);
    // base64("elastic:pa\"ss")
    assert_eq!(req.header("authorization").as_deref(), Some("Basic ZWxhc3RpYzpwYSJzcw=="));
    assert!(req.header("content-type").unwrap().starts_with("multipart/form-data; boundary="));
    let (head, content) = req.part("file");
    assert!(head.contains("filename=\"kibana-8.ndjson\""), "{head}");
    let objects = parse_ndjson(&content).unwrap();
    let f = SavedObjects { product: Product::Kibana8, prefix: "nyc-".into(), objects };
    for check in ALL_CHECKS {
        pass(&f, *check);
    }
    assert!(content.contains(r#""title":"nyc-pickup_count*""#) && content.contains(r#""title":"nyc-trip_duration*""#));
    // Everything but the two titles is the shipped file.
    let shipped = std::fs::read_to_string(root().join("dashboards/kibana-8.ndjson")).unwrap();
    assert_eq!(content.replace("\"title\":\"nyc-", "\"title\":\""), shipped);
}

/// OpenSearch Dashboards takes the same API with the header `osd-xsrf` (`lifecycle_handlers.ts`); a
/// `success: false` answer (errors, [KIBANA_IMPORT]) is printed and the script exits non-zero.
#[test]
fn import_script_posts_the_osd_file_and_fails_without_success() {
    let answer = r#"{"success":false,"successCount":4,"errors":[{"id":"taxiflow-dashboard","type":"dashboard","error":{"type":"unknown"}}]}"#;
    let (url, request) = fake_server(answer);
    let out = run_script(&[&format!("{url}/"), "--opensearch-dashboards"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "success false must fail");
    assert!(stdout.contains(answer), "the answer is printed: {stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("success"));
    let req = request.recv_timeout(Duration::from_secs(30)).expect("the script sent a request");
    assert!(req.head.starts_with("POST /api/saved_objects/_import?overwrite=true HTTP/1.1\r\n"), "{}", req.head);
    assert_eq!(req.header("osd-xsrf").as_deref(), Some("true"));
    assert_eq!(req.header("kbn-xsrf"), None);
    assert_eq!(req.header("authorization"), None);
    let (head, content) = req.part("file");
    assert!(head.contains("filename=\"opensearch-dashboards.ndjson\""), "{head}");
    assert_eq!(content, std::fs::read_to_string(root().join("dashboards/opensearch-dashboards.ndjson")).unwrap());
}

/// The mapping table of this test is the one the sink's index templates create (`templates::mappings`), so a
/// change of the templates that the dashboards do not follow fails here.
#[test]
fn the_mapping_table_is_the_sink_templates() {
    use taxiflow::dataflows::Job;
    let outputs = taxiflow::dataflows::output::Outputs::of_job(taxiflow::dataflows::jobs::taxi::TaxiJob::for_profile(taxiflow::dataflows::jobs::taxi::Profile::Kda).outputs());
    for m in MAPPINGS {
        let base = m.pattern.trim_end_matches('*');
        let schema = outputs.schemas.iter().find(|s| s.name == base).unwrap_or_else(|| panic!("no output {base}"));
        let mappings = taxiflow::connectors::elasticsearch::templates::mappings(schema);
        let mut from_template: Vec<(String, String)> = Vec::new();
        for (field, spec) in mappings["properties"].as_object().unwrap() {
            from_template.push((field.clone(), spec["type"].as_str().unwrap().to_string()));
            if let Some(sub) = spec.get("fields").and_then(Value::as_object) {
                for (name, s) in sub {
                    from_template.push((format!("{field}.{name}"), s["type"].as_str().unwrap().to_string()));
                }
            }
        }
        let mut table: Vec<(String, String)> = m.fields.iter().map(|(f, t)| (f.to_string(), t.to_string())).collect();
        from_template.sort();
        table.sort();
        assert_eq!(table, from_template, "{base}");
    }
}
