package openapi

import (
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

const extPreserveUnknownFields = "x-kubernetes-preserve-unknown-fields"

// UnknownFields returns the paths of the fields of obj (an object of kind gvk decoded from
// JSON or YAML into maps, slices and scalars) that the kind's schema does not declare, in the
// form kube-apiserver's strict decoding reports them: "spec.foo",
// "spec.containers[0].bar", "metadata.labels" never (maps take any key). The paths are
// sorted. A kind this Spec does not serve, or a Spec whose Build failed, has no unknown
// fields. Values of the wrong type
// are not reported: that is validation's business, not field pruning's.
func (s *Spec) UnknownFields(gvk schema.GroupVersionKind, obj map[string]interface{}) []string {
	def, ok := s.Schema(gvk)
	if !ok {
		return nil
	}
	var out []string
	s.unknown(def, obj, "", &out)
	sort.Strings(out)
	return out
}

// resolve follows a schema's $ref chain to the definition it names.
func (s *Spec) resolve(sch *spec.Schema) *spec.Schema {
	for i := 0; sch != nil && i < 16; i++ {
		ref := sch.Ref.String()
		if ref == "" {
			return sch
		}
		def, ok := s.docs.v2.Definitions[strings.TrimPrefix(ref, "#/definitions/")]
		if !ok {
			return nil
		}
		sch = &def
	}
	return sch
}

func (s *Spec) unknown(sch *spec.Schema, v interface{}, path string, out *[]string) {
	sch = s.resolve(sch)
	if sch == nil || v == nil {
		return
	}
	if preserve, _ := sch.Extensions.GetBool(extPreserveUnknownFields); preserve {
		return
	}
	switch v := v.(type) {
	case map[string]interface{}:
		var additional *spec.Schema
		if ap := sch.AdditionalProperties; ap != nil {
			if ap.Schema == nil && ap.Allows {
				return // any key, any value
			}
			additional = ap.Schema
		}
		if len(sch.Properties) == 0 && additional == nil {
			return // a free-form object: runtime.RawExtension, FieldsV1, ...
		}
		for key, val := range v {
			p := key
			if path != "" {
				p = path + "." + key
			}
			if prop, ok := sch.Properties[key]; ok {
				s.unknown(&prop, val, p, out)
			} else if additional != nil {
				s.unknown(additional, val, p, out)
			} else {
				*out = append(*out, p)
			}
		}
	case []interface{}:
		if sch.Items == nil || sch.Items.Schema == nil {
			return
		}
		for i, elem := range v {
			s.unknown(sch.Items.Schema, elem, path+"["+strconv.Itoa(i)+"]", out)
		}
	}
}
