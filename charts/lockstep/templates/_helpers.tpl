{{/*
Labels of every object. The selector uses only app.kubernetes.io/name, as
the kustomize base does, so that the two install methods select the same
pods.
*/}}
{{- define "lockstep.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: lockstep-coordinator
app.kubernetes.io/component: coordinator
app.kubernetes.io/part-of: lockstep
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "lockstep.selectorLabels" -}}
app.kubernetes.io/name: lockstep-coordinator
{{- end }}

{{/*
lockstep.manifests parses a generated multi-document YAML file of the chart
(files/, copied from config/ by hack/chartgen) into a list of objects, and
fails the render on a document that does not parse.
*/}}
{{- define "lockstep.manifests" -}}
{{- $objs := list }}
{{- range $doc := regexSplit `(?m)^---[ \t]*$` (.root.Files.Get .path) -1 }}
{{- if trim $doc }}
{{- $obj := fromYaml $doc }}
{{- if hasKey $obj "Error" }}
{{- fail (printf "%s: %s" $.path $obj.Error) }}
{{- end }}
{{- $objs = append $objs $obj }}
{{- end }}
{{- end }}
{{- toYaml (dict "items" $objs) }}
{{- end }}
