{{/*
"true" when the render sees a cluster. `lookup` answers only then (helm install/upgrade, and
--dry-run=server); helm template, helm install --dry-run(=client), helm lint and the renderers of
Argo CD and Flux get an empty answer. kube-system exists in every cluster; the release namespace
is asked first because it is the one the release can certainly read.
*/}}
{{- define "accel-metrics-adapter.clusterVisible" -}}
{{- if or (lookup "v1" "Namespace" "" .Release.Namespace) (lookup "v1" "Namespace" "" "kube-system") }}true{{ end }}
{{- end }}

{{/*
tls.mode=generate: the serving Secret's content and the caBundle, as JSON
{live, crt, key, ca, previous, notAfter, caBundle} (crt/key/ca/previous base64 PEM).

- The Secret in the cluster is reused while its certificate is valid for more than
  tls.generate.renewBeforeDays (expiry kept in the annotation accel-metrics.io/tls-not-after), so an
  upgrade renders it byte for byte again.
- Otherwise a new CA and certificate are issued and the CA they replace stays in the Secret as
  ca-previous.crt. The caBundle carries both CAs: pods still serving the old certificate (until the
  kubelet refreshes the mounted Secret and the server reloads it) and pods serving the new one are
  both trusted. The previous CA leaves the bundle at the next rotation.
*/}}
{{- define "accel-metrics-adapter.generatedTLS" -}}
{{- $gen := .Values.tls.generate }}
{{- $live := eq (include "accel-metrics-adapter.clusterVisible" .) "true" }}
{{- if and (not $live) (not $gen.allowTemplate) }}
{{- fail "tls.mode=generate needs the cluster at render time, and none is visible (helm template, helm install --dry-run, Argo CD, any offline render): every such render would make a new CA and certificate, so a GitOps tool would never be in sync. For GitOps use tls.mode=certManager (cert-manager issues and renews the certificate) or tls.mode=existingSecret (a Secret you provide). To preview an install use helm install --dry-run=server; to render a throw-away certificate anyway set tls.generate.allowTemplate=true." }}
{{- end }}
{{- $validity := int $gen.validityDays }}
{{- $renewBefore := int $gen.renewBeforeDays }}
{{- if ge $renewBefore $validity }}
{{- fail (printf "tls.generate.renewBeforeDays (%d) must be less than tls.generate.validityDays (%d), or every upgrade would rotate the certificate" $renewBefore $validity) }}
{{- end }}
{{- $existing := dict }}
{{- if $live }}
{{- $existing = lookup "v1" "Secret" .Release.Namespace (include "accel-metrics-adapter.tlsSecretName" .) | default dict }}
{{- end }}
{{- $data := $existing.data | default dict }}
{{- $meta := $existing.metadata | default dict }}
{{- $notAfter := index ($meta.annotations | default dict) "accel-metrics.io/tls-not-after" | default "" }}
{{- $now := now | unixEpoch | int64 }}
{{- $complete := and (hasKey $data "ca.crt") (hasKey $data "tls.crt") (hasKey $data "tls.key") }}
{{- $fresh := true }}
{{- if $notAfter }}
{{- $end := toDate "2006-01-02T15:04:05Z07:00" $notAfter | unixEpoch | int64 }}
{{- $fresh = gt $end (add $now (mul $renewBefore 86400)) }}
{{- end }}
{{- $out := dict "live" $live }}
{{- if and $gen.reuseExisting $complete $fresh }}
{{- $_ := set $out "crt" (index $data "tls.crt") }}
{{- $_ = set $out "key" (index $data "tls.key") }}
{{- $_ = set $out "ca" (index $data "ca.crt") }}
{{- $_ = set $out "previous" (index $data "ca-previous.crt" | default "") }}
{{- $_ = set $out "notAfter" $notAfter }}
{{- else }}
{{- $fullname := include "accel-metrics-adapter.fullname" . }}
{{- $caPair := genCA (printf "%s-ca" $fullname) $validity }}
{{- $dnsNames := include "accel-metrics-adapter.dnsNames" . | fromJsonArray }}
{{- $cert := genSignedCert (printf "%s.%s.svc" $fullname .Release.Namespace) nil $dnsNames $validity $caPair }}
{{- $_ := set $out "crt" ($cert.Cert | b64enc) }}
{{- $_ = set $out "key" ($cert.Key | b64enc) }}
{{- $_ = set $out "ca" ($caPair.Cert | b64enc) }}
{{- $_ = set $out "previous" (index $data "ca.crt" | default "") }}
{{- $until := now | dateModify (printf "+%dh" (mul $validity 24)) }}
{{- $_ = set $out "notAfter" (dateInZone "2006-01-02T15:04:05Z07:00" $until "UTC") }}
{{- end }}
{{- $bundle := printf "%s\n" (b64dec $out.ca | trimSuffix "\n") }}
{{- with $out.previous }}
{{- $bundle = printf "%s%s\n" $bundle (b64dec . | trimSuffix "\n") }}
{{- end }}
{{- $_ := set $out "caBundle" ($bundle | b64enc) }}
{{- toJson $out }}
{{- end }}

{{/*
tls.mode=existingSecret: the caBundle from tls.existingSecret.caBundle, else (with cluster access)
the Secret's ca.crt.
*/}}
{{- define "accel-metrics-adapter.existingSecretCABundle" -}}
{{- $bundle := .Values.tls.existingSecret.caBundle }}
{{- if not $bundle }}
{{- $secret := lookup "v1" "Secret" .Release.Namespace (include "accel-metrics-adapter.tlsSecretName" .) | default dict }}
{{- $bundle = index ($secret.data | default dict) "ca.crt" | default "" }}
{{- end }}
{{- required "tls.existingSecret.caBundle (base64 PEM CA) is required when tls.mode=existingSecret (without it the chart reads ca.crt of the Secret, which needs cluster access at render time and a ca.crt key)" $bundle }}
{{- end }}
