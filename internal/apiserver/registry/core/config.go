package core

import (
	"encoding/json"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/nanokube/nanokube/internal/apiserver/registry"
)

// ConfigMapStrategy is the strategy of configmaps.
var ConfigMapStrategy = registry.Strategy{
	Validate: func(obj runtime.Object) field.ErrorList {
		cm := obj.(*corev1.ConfigMap)
		return validateData(cm.Data, cm.BinaryData, "binaryData")
	},
	ValidateUpdate: func(obj, old runtime.Object) field.ErrorList {
		cm, o := obj.(*corev1.ConfigMap), old.(*corev1.ConfigMap)
		errs := validateData(cm.Data, cm.BinaryData, "binaryData")
		if o.Immutable != nil && *o.Immutable {
			errs = append(errs, validateImmutableData(cm.Immutable, cm.Data, o.Data, cm.BinaryData, o.BinaryData, "binaryData")...)
		}
		return errs
	},
	Columns: []metav1.TableColumnDefinition{
		registry.NameColumn,
		{Name: "Data", Type: "string", Description: "Data contains the configuration data."},
		registry.AgeColumn,
	},
	Row: func(obj runtime.Object) []interface{} {
		cm := obj.(*corev1.ConfigMap)
		return []interface{}{cm.Name, int64(len(cm.Data) + len(cm.BinaryData)), registry.Age(cm.CreationTimestamp)}
	},
}

// SecretStrategy is the strategy of secrets.
var SecretStrategy = registry.Strategy{
	Default: func(obj runtime.Object) {
		s := obj.(*corev1.Secret)
		if s.Type == "" {
			s.Type = corev1.SecretTypeOpaque
		}
		// stringData is write-only: Kubernetes merges it into data (winning over data) on decode.
		for k, v := range s.StringData {
			if s.Data == nil {
				s.Data = map[string][]byte{}
			}
			s.Data[k] = []byte(v)
		}
		s.StringData = nil
	},
	Validate: func(obj runtime.Object) field.ErrorList { return validateSecret(obj.(*corev1.Secret)) },
	ValidateUpdate: func(obj, old runtime.Object) field.ErrorList {
		s, o := obj.(*corev1.Secret), old.(*corev1.Secret)
		errs := validateSecret(s)
		if s.Type != o.Type {
			errs = append(errs, field.Invalid(field.NewPath("type"), s.Type, "field is immutable"))
		}
		if o.Immutable != nil && *o.Immutable {
			errs = append(errs, validateImmutableData(s.Immutable, nil, nil, s.Data, o.Data, "data")...)
		}
		return errs
	},
	Columns: []metav1.TableColumnDefinition{
		registry.NameColumn,
		{Name: "Type", Type: "string", Description: "Used to facilitate programmatic handling of secret data."},
		{Name: "Data", Type: "string", Description: "Data contains the secret data."},
		registry.AgeColumn,
	},
	Row: func(obj runtime.Object) []interface{} {
		s := obj.(*corev1.Secret)
		return []interface{}{s.Name, string(s.Type), int64(len(s.Data)), registry.Age(s.CreationTimestamp)}
	},
	Fields: func(obj runtime.Object) fields.Set {
		return fields.Set{"type": string(obj.(*corev1.Secret).Type)}
	},
}

// validateData checks keys and the 1 MiB total of a configmap (data and binaryData) or of a
// secret (binary is its data, binaryField "data").
func validateData(data map[string]string, binary map[string][]byte, binaryField string) field.ErrorList {
	var errs field.ErrorList
	binaryPath := field.NewPath(binaryField)
	size := 0
	for k, v := range data {
		for _, msg := range utilvalidation.IsConfigMapKey(k) {
			errs = append(errs, field.Invalid(field.NewPath("data").Key(k), k, msg))
		}
		size += len(v)
	}
	for k, v := range binary {
		for _, msg := range utilvalidation.IsConfigMapKey(k) {
			errs = append(errs, field.Invalid(binaryPath.Key(k), k, msg))
		}
		if _, dup := data[k]; dup {
			errs = append(errs, field.Invalid(binaryPath.Key(k), k, "duplicate of key present in data"))
		}
		size += len(v)
	}
	if size > corev1.MaxSecretSize {
		errs = append(errs, field.TooLong(field.NewPath(""), "", corev1.MaxSecretSize))
	}
	return errs
}

func validateImmutableData(immutable *bool, data, oldData map[string]string, binary, oldBinary map[string][]byte, binaryField string) field.ErrorList {
	var errs field.ErrorList
	const msg = "field is immutable when `immutable` is set"
	if immutable == nil || !*immutable {
		errs = append(errs, field.Forbidden(field.NewPath("immutable"), msg))
	}
	if !equalMaps(data, oldData, func(a, b string) bool { return a == b }) {
		errs = append(errs, field.Forbidden(field.NewPath("data"), msg))
	}
	if !equalMaps(binary, oldBinary, func(a, b []byte) bool { return string(a) == string(b) }) {
		errs = append(errs, field.Forbidden(field.NewPath(binaryField), msg))
	}
	return errs
}

func equalMaps[V any](a, b map[string]V, eq func(V, V) bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || !eq(v, w) {
			return false
		}
	}
	return true
}

func validateSecret(s *corev1.Secret) field.ErrorList {
	errs := validateData(nil, s.Data, "data")
	data := field.NewPath("data")
	require := func(keys ...string) {
		for _, k := range keys {
			if _, ok := s.Data[k]; !ok {
				errs = append(errs, field.Required(data.Key(k), ""))
			}
		}
	}
	switch s.Type {
	case corev1.SecretTypeServiceAccountToken:
		if s.Annotations[corev1.ServiceAccountNameKey] == "" {
			errs = append(errs, field.Required(field.NewPath("metadata", "annotations").Key(corev1.ServiceAccountNameKey), ""))
		}
	case corev1.SecretTypeDockercfg:
		require(corev1.DockerConfigKey)
		if v, ok := s.Data[corev1.DockerConfigKey]; ok && !json.Valid(v) {
			errs = append(errs, field.Invalid(data.Key(corev1.DockerConfigKey), "<secret contents redacted>", "invalid JSON"))
		}
	case corev1.SecretTypeDockerConfigJson:
		require(corev1.DockerConfigJsonKey)
		if v, ok := s.Data[corev1.DockerConfigJsonKey]; ok && !json.Valid(v) {
			errs = append(errs, field.Invalid(data.Key(corev1.DockerConfigJsonKey), "<secret contents redacted>", "invalid JSON"))
		}
	case corev1.SecretTypeBasicAuth:
		_, user := s.Data[corev1.BasicAuthUsernameKey]
		_, pass := s.Data[corev1.BasicAuthPasswordKey]
		if !user && !pass {
			errs = append(errs, field.Required(data.Key(corev1.BasicAuthUsernameKey), ""))
			errs = append(errs, field.Required(data.Key(corev1.BasicAuthPasswordKey), ""))
		}
	case corev1.SecretTypeSSHAuth:
		require(corev1.SSHAuthPrivateKey)
	case corev1.SecretTypeTLS:
		require(corev1.TLSCertKey, corev1.TLSPrivateKeyKey)
	case "":
		errs = append(errs, field.Required(field.NewPath("type"), ""))
	default:
		for _, msg := range utilvalidation.IsQualifiedName(string(s.Type)) {
			errs = append(errs, field.Invalid(field.NewPath("type"), s.Type, msg))
		}
	}
	return errs
}

// ServiceAccountStrategy is the strategy of serviceaccounts.
var ServiceAccountStrategy = registry.Strategy{
	Columns: []metav1.TableColumnDefinition{
		registry.NameColumn,
		{Name: "Secrets", Type: "string", Description: "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."},
		registry.AgeColumn,
	},
	Row: func(obj runtime.Object) []interface{} {
		sa := obj.(*corev1.ServiceAccount)
		return []interface{}{sa.Name, int64(len(sa.Secrets)), registry.Age(sa.CreationTimestamp)}
	},
}
