{{- define "portal.name" -}}
{{- printf "portal-%s" .Values.tenant | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "portal.labels" -}}
app.kubernetes.io/name: tenant-portal
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
karmayogi.dev/tenant: {{ .Values.tenant }}
{{- end -}}

{{- define "portal.selector" -}}
app.kubernetes.io/name: tenant-portal
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "portal.image" -}}
{{- printf "%s:%s" .Values.image.repository .Values.image.tag -}}
{{- end -}}

{{/* The data folder of this tenant (settings KARMAYOGI_DATA_DIR), a writable emptyDir. */}}
{{- define "portal.dataDir" -}}
{{- required "settings.KARMAYOGI_DATA_DIR is required" (index .Values.settings "KARMAYOGI_DATA_DIR") -}}
{{- end -}}

{{- define "portal.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurity.runAsUser }}
runAsGroup: {{ .Values.podSecurity.runAsGroup }}
fsGroup: {{ .Values.podSecurity.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "portal.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The settings file and each secret by reference: what every portal container reads. */}}
{{- define "portal.env" -}}
- name: KARMAYOGI_ENV_FILE
  value: /etc/karmayogi/settings.json
{{- range $name, $key := .Values.secretEnv }}
{{- if hasKey $.Values.secretFiles $name }}
{{- fail (printf "secretEnv.%s: also in secretFiles; give it one way" $name) }}
{{- end }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $.Values.existingSecret }}
      key: {{ $key }}
{{- end }}
{{- /* A secret read from a file follows the Secret when it changes (a rotated password). */}}
{{- range $name, $key := .Values.secretFiles }}
- name: {{ $name }}_FILE
  value: /run/karmayogi/secrets/{{ $key }}
{{- end }}
{{- end -}}

{{- define "portal.volumeMounts" -}}
- name: settings
  mountPath: /etc/karmayogi
  readOnly: true
- name: data
  mountPath: {{ include "portal.dataDir" . }}
- name: logo
  mountPath: {{ include "portal.dataDir" . }}/branding
  readOnly: true
{{- if .Values.media.persistentVolume.enabled }}
- name: media
  mountPath: {{ include "portal.dataDir" . }}/media
{{- end }}
- name: tmp
  mountPath: /tmp
{{- if .Values.secretFiles }}
- name: secret-files
  mountPath: /run/karmayogi/secrets
  readOnly: true
{{- end }}
{{- end -}}

{{- define "portal.volumes" -}}
- name: settings
  configMap:
    name: {{ include "portal.name" . }}-settings
- name: logo
  configMap:
    name: {{ include "portal.name" . }}-logo
- name: data
  emptyDir: {}
- name: tmp
  emptyDir: {}
{{- if .Values.media.persistentVolume.enabled }}
- name: media
  persistentVolumeClaim:
    claimName: {{ include "portal.name" . }}-media
{{- end }}
{{- include "portal.secretFilesVolume" . }}
{{- end -}}

{{/* The Secret's keys read as files (secretFiles); the migration Job has volumes of its own. */}}
{{- define "portal.secretFilesVolume" -}}
{{- if .Values.secretFiles }}
- name: secret-files
  secret:
    secretName: {{ .Values.existingSecret }}
    defaultMode: 288  # 0440: read by the owner and the pod's fsGroup
    items:
      {{- range $name, $key := .Values.secretFiles }}
      - {key: {{ $key }}, path: {{ $key }}}
      {{- end }}
{{- end }}
{{- end -}}
