#!/usr/bin/env bash
# Imports the taxiflow dashboard (dashboards/*.ndjson) through the saved objects import API:
#   POST URL/api/saved_objects/_import?overwrite=true, multipart field "file",
#   header "kbn-xsrf: true" (Kibana 8) or "osd-xsrf: true" (OpenSearch Dashboards).
# See dashboards/README.md.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: scripts/import-dashboards.sh URL [--opensearch-dashboards] [--index-prefix P] [--user USER:PASSWORD]

Imports the taxiflow dashboard into Kibana 8 (dashboards/kibana-8.ndjson) or, with
--opensearch-dashboards, into OpenSearch Dashboards 2.x (dashboards/opensearch-dashboards.ndjson),
overwriting objects with the same ids.

  URL                      Kibana / OpenSearch Dashboards base URL, e.g. http://localhost:5601
                           (a Kibana space: http://localhost:5601/s/SPACE)
  --opensearch-dashboards  import the OpenSearch Dashboards file (header osd-xsrf instead of kbn-xsrf)
  --index-prefix P         the --index-prefix the pipeline was run with: the data views become
                           Ppickup_count* and Ptrip_duration*
  --user USER:PASSWORD     basic authentication

Prints the server's answer; exits non-zero unless its "success" is true.
EOF
}

die() {
    echo "import-dashboards: $*" >&2
    exit 1
}

url=""
osd=0
prefix=""
user=""
while [ $# -gt 0 ]; do
    case "$1" in
        -h | --help) usage; exit 0 ;;
        --opensearch-dashboards) osd=1 ;;
        --index-prefix)
            [ $# -ge 2 ] || die "--index-prefix needs a value"
            prefix=$2
            shift
            ;;
        --index-prefix=*) prefix=${1#*=} ;;
        --user)
            [ $# -ge 2 ] || die "--user needs a value"
            user=$2
            shift
            ;;
        --user=*) user=${1#*=} ;;
        -*) usage >&2; die "unknown option $1" ;;
        *)
            [ -z "$url" ] || die "more than one URL: $url and $1"
            url=$1
            ;;
    esac
    shift
done

if [ -z "$url" ]; then
    usage >&2
    exit 2
fi
case "$url" in
    http://* | https://*) ;;
    *) die "URL must start with http:// or https://, got $url" ;;
esac
url=${url%/}

# The same rule as the pipeline's --index-prefix (src/elasticsearch/mod.rs, check_index_prefix).
if [ -n "$prefix" ]; then
    case "$prefix" in
        *[[:upper:]]* | *[[:space:]]* | *[\\/*?\"\<\>\|,\#:]*) die "--index-prefix '$prefix': index names must be lower case without \\ / * ? \" < > | , # : or spaces" ;;
        [-_+]*) die "--index-prefix '$prefix': index names cannot start with -, _ or +" ;;
    esac
fi
if [ -n "$user" ]; then
    case "$user" in
        *:*) ;;
        *) die "--user must be USER:PASSWORD" ;;
    esac
fi
command -v curl >/dev/null || die "curl is required"

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ "$osd" = 1 ]; then
    name=opensearch-dashboards.ndjson
    xsrf='osd-xsrf: true'
else
    name=kibana-8.ndjson
    xsrf='kbn-xsrf: true'
fi
src=$root/dashboards/$name
[ -f "$src" ] || die "missing $src"

# The upload is a copy with the same file name (the import API expects an .ndjson file).
tmpdir=$(mktemp -d "${TMPDIR:-/tmp}/taxiflow-dashboards.XXXXXX")
trap 'rm -rf "$tmpdir"' EXIT
file=$tmpdir/$name
if [ -n "$prefix" ]; then
    # Only the data view titles change; the ids (and so every reference) stay the same.
    esc=$(printf '%s' "$prefix" | sed -e 's/[&|]/\\&/g')
    sed -e "s|\"title\":\"pickup_count\\*\"|\"title\":\"${esc}pickup_count*\"|" \
        -e "s|\"title\":\"trip_duration\\*\"|\"title\":\"${esc}trip_duration*\"|" "$src" >"$file"
    for pattern in pickup_count trip_duration; do
        grep -qF "\"title\":\"${prefix}${pattern}*\"" "$file" || die "could not set the data view title ${prefix}${pattern}* in $name"
    done
else
    cp "$src" "$file"
fi

args=(--silent --show-error --connect-timeout 10 -X POST "$url/api/saved_objects/_import?overwrite=true"
    -H "$xsrf" -H 'Expect:' -F "file=@$file;type=application/ndjson")
if [ -n "$user" ]; then
    # Through a config on stdin, so that the password is not in the process list.
    quoted=$(printf '%s' "$user" | sed -e 's/[\\"]/\\&/g')
    if ! answer=$(printf 'user = "%s"\n' "$quoted" | curl --config - "${args[@]}"); then
        die "the request to $url failed"
    fi
elif ! answer=$(curl "${args[@]}"); then
    die "the request to $url failed"
fi

printf '%s\n' "$answer"
if printf '%s' "$answer" | grep -Eq '"success"[[:space:]]*:[[:space:]]*true'; then
    exit 0
fi
die "import of $name failed: the answer's \"success\" is not true"
