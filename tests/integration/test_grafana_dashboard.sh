#!/usr/bin/env bash
#
# test_grafana_dashboard.sh: conf/grafana-dashboard.json (issue 9 item 7) queries only metrics
# that tsad and ocspd export.
#   - the file is a Grafana dashboard: title, uid, schemaVersion, a Prometheus data source
#     variable that every panel and target uses, panels with a type, title, gridPos and
#     (rows excepted) PromQL targets; unique panel ids;
#   - tsad and ocspd are started (real SoftHSM2 token, chronyd, LMDB) and their /metrics
#     fetched; every metric name each target's expr (and each variable's label_values())
#     queries is extracted (jq for the JSON; the PromQL is stripped of strings, label matchers,
#     ranges, grouping lists, numbers, $variables, function names and the label of
#     label_values(METRIC, LABEL)) and must be a sample
#     name of the daemon the expr selects ($tsa_instance: tsad, $ocsp_instance: ocspd, both or
#     neither: either): a histogram is queried as NAME_bucket/_sum/_count, which are its sample
#     names, and a NAME_bucket must belong to a family of TYPE histogram;
#   - the check itself fails on a copy of the dashboard with one metric misspelt.
# DASHBOARD=FILE checks another file.
set -uo pipefail

# shellcheck source=tests/lib/itest.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/itest.sh"
itest_setup test_grafana_dashboard

DASHBOARD=${DASHBOARD:-conf/grafana-dashboard.json}
command -v jq >/dev/null 2>&1 || fatal jq "jq is not installed (tests/lib/deps.sh)"
jq -e . "$DASHBOARD" >/dev/null 2>&1 || fatal "$DASHBOARD is JSON" "$(jq . "$DASHBOARD" 2>&1 | head -n 2)"

# ---- the dashboard's shape ----
shape=$(jq -r '
  def panels: .panels[]? | (., (.panels[]?));
  [ (if (.title | type) == "string" and (.title | length) > 0 then empty else "no title" end),
    (if (.uid | type) == "string" and (.uid | test("^[A-Za-z0-9_-]{1,40}$")) then empty
     else "no uid (1..40 of A-Za-z0-9_-)" end),
    (if (.schemaVersion | type) == "number" then empty else "no schemaVersion" end),
    (if ([.templating.list[]? | select(.type == "datasource" and .query == "prometheus"
          and .name == "datasource")] | length) == 1 then empty
     else "no Prometheus data source variable named datasource" end),
    (if ([panels] | length) > 0 then empty else "no panels" end),
    (if ([panels | .id] | length) == ([panels | .id] | unique | length) then empty
     else "panel ids repeat" end),
    (panels | select(.type != "row") |
      (if (.title | type) == "string" and (.title | length) > 0 then empty
       else "panel \(.id): no title" end),
      (if (.gridPos | (.h and .w and (.x != null) and (.y != null))) then empty
       else "panel \(.id): no gridPos" end),
      (if (.targets | length) > 0 then empty else "panel \(.id): no targets" end),
      (if .datasource.uid == "${datasource}" then empty
       else "panel \(.id): datasource is not ${datasource}" end),
      (.targets[]? | select((.expr | type) != "string" or (.expr | length) == 0 or
                            .datasource.uid != "${datasource}" or (.refId | not))
       | "panel target without expr, refId or ${datasource}")),
    (panels | select(.type == "row") | select(.title == null) | "row \(.id): no title")
  ] | .[]' "$DASHBOARD")
if [[ -z $shape ]]; then
    t_ok "$DASHBOARD is a dashboard: title, uid, schemaVersion, \$datasource variable, $(jq '[.panels[]?|(.,(.panels[]?))|select(.type!="row")]|length' "$DASHBOARD") panels with targets"
else
    t_fail "$DASHBOARD is a dashboard" "$(tr '\n' ';' <<<"$shape")"
fi

# ---- the metrics of both daemons ----
itest_tsa_setup local
itest_tsad_start
itest_tsad_healthy
TSA_BASE=$BASE
curl -s --max-time 5 "$TSA_BASE/metrics" >"$TMP/tsad.metrics" || fatal "tsad /metrics" "curl failed"
itest_ocsp_setup
curl -s --max-time 5 "$URL/metrics" >"$TMP/ocspd.metrics" || fatal "ocspd /metrics" "curl failed"
for d in tsad ocspd; do
    # sample names (NAME, NAME_bucket, ...) and "NAME TYPE" of each family
    grep -v '^#' "$TMP/$d.metrics" | sed -E 's/[{ ].*//' | sed '/^$/d' | sort -u >"$TMP/$d.names"
    sed -n 's/^# TYPE \([^ ]*\) \([a-z]*\)$/\1 \2/p' "$TMP/$d.metrics" >"$TMP/$d.types"
    n=$(wc -l <"$TMP/$d.names")
    ((n > 10)) || fatal "$d /metrics" "only $n sample names"
done
t_ok "tsad and ocspd /metrics: $(wc -l <"$TMP/tsad.names") and $(wc -l <"$TMP/ocspd.names") sample names"

# promql_metrics EXPR: the metric names EXPR selects, one a line
promql_metrics() {
    sed -E '
        s/label_values\(([^,)]*),[^)]*\)/\1/g
        s/"([^"\\]|\\.)*"//g
        s/\$\{[A-Za-z0-9_:]+\}|\$[A-Za-z0-9_]+//g
        s/\[[^]]*\]//g
        s/\{[^}]*\}//g
        s/(by|without|on|ignoring|group_left|group_right)[[:space:]]*\([^)]*\)//g
        s/(^|[^A-Za-z0-9_:])[0-9][0-9.eE]*([+-][0-9]+)?(ms|[smhdwy])?/\1/g
        s/[A-Za-z_:][A-Za-z0-9_:]*[[:space:]]*\(/(/g
    ' <<<"$1" | grep -oE '[A-Za-z_:][A-Za-z0-9_:]*' |
        grep -vxE 'by|without|on|ignoring|group_left|group_right|bool|and|or|unless|offset|Inf|NaN|inf|nan' |
        sort -u
}

# check_dashboard FILE: prints one line per problem; non-zero when there is one
check_dashboard() {
    local file=$1 problems="" expr title daemons d m found ok_any
    local -i n_expr=0 n_metrics=0
    while IFS=$'\t' read -r title expr; do
        n_expr+=1
        daemons="tsad ocspd"
        if [[ $expr == *'$tsa_instance'* && $expr != *'$ocsp_instance'* ]]; then daemons=tsad; fi
        if [[ $expr == *'$ocsp_instance'* && $expr != *'$tsa_instance'* ]]; then daemons=ocspd; fi
        mapfile -t ms < <(promql_metrics "$expr")
        if ((${#ms[@]} == 0)); then
            problems+="[$title] no metric found in: $expr"$'\n'
            continue
        fi
        if [[ $expr == *histogram_quantile* ]] && ! printf '%s\n' "${ms[@]}" | grep -q '_bucket$'; then
            problems+="[$title] histogram_quantile over no _bucket series: $expr"$'\n'
        fi
        for m in "${ms[@]}"; do
            n_metrics+=1
            ok_any=0
            for d in $daemons; do
                grep -qxF "$m" "$TMP/$d.names" || continue
                if [[ $m == *_bucket ]] && ! grep -qxF "${m%_bucket} histogram" "$TMP/$d.types"; then
                    continue
                fi
                ok_any=1
            done
            ((ok_any)) || problems+="[$title] $m: not in the /metrics of ${daemons// / or }"$'\n'
        done
    done < <(jq -r '
        def panels: .panels[]? | (., (.panels[]?));
        (panels | .title as $t | .targets[]? | [$t, .expr] | @tsv),
        (.templating.list[]? | select(.type == "query") | .name as $n
         | (.query | if type == "object" then .query else . end) | ["variable " + $n, .] | @tsv)
        ' "$file")
    printf '%s' "$problems"
    echo "($n_expr queries, $n_metrics metric references)" >&2
    [[ -z $problems ]]
}

if problems=$(check_dashboard "$DASHBOARD" 2>"$TMP/counts"); then
    t_ok "every metric the dashboard queries is exported $(cat "$TMP/counts")"
else
    t_fail "every metric the dashboard queries is exported $(cat "$TMP/counts")" "$(tr '\n' ';' <<<"$problems")"
fi

# the check fails when a panel queries a metric that does not exist: a misspelt counter, a
# histogram queried without its _bucket suffix, an ocspd metric under the tsad selector
jq '(.panels[] | select(.targets != null) | .targets[0].expr) |= sub("tsa_tokens_total"; "tsa_tokens_issued_total")
    | (.panels[] | select(.title == "Request latency") | .targets[0].expr) |= sub("_bucket"; "")
    | .panels += [{"id": 999, "type": "timeseries", "title": "wrong daemon", "gridPos": {"h": 1, "w": 1, "x": 0, "y": 99},
                   "datasource": {"type": "prometheus", "uid": "${datasource}"},
                   "targets": [{"refId": "A", "expr": "rate(ocsp_resigned_total{instance=~\"$tsa_instance\"}[5m])"}]}]' \
    "$DASHBOARD" >"$TMP/broken.json"
if problems=$(check_dashboard "$TMP/broken.json" 2>/dev/null); then
    t_fail "the check fails on a dashboard with wrong metric names" "it passed"
elif grep -q 'tsa_tokens_issued_total: not in' <<<"$problems" &&
    grep -q 'http_request_duration_seconds: not in\|histogram_quantile over no _bucket' <<<"$problems" &&
    grep -q 'ocsp_resigned_total: not in the /metrics of tsad$' <<<"$problems"; then
    t_ok "the check fails on wrong names: $(tr '\n' ';' <<<"$problems" | cut -c1-200)..."
else
    t_fail "the check names each wrong metric" "$(tr '\n' ';' <<<"$problems")"
fi

tsad_stop
itest_ocspd_stop_clean
t_summary "$NAME"
