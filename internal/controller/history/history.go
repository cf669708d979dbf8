// Package history holds what the controllers that keep ControllerRevisions (DaemonSet,
// StatefulSet) share, after Kubernetes' pkg/controller/history: the data a revision records.
package history

import (
	"encoding/json"
	"fmt"

	utiljson "k8s.io/apimachinery/pkg/util/json"
)

// TemplatePatch is the data a ControllerRevision of obj (a DaemonSet or StatefulSet) holds:
// {"spec":{"template":{...,"$patch":"replace"}}}. kubectl rollout history and undo apply it
// as a strategic merge patch and compare it byte for byte with the same encoding of the live
// object, so it is built as Kubernetes builds it: a JSON round trip through maps (sorted
// keys, integers kept integers).
func TemplatePatch(obj any) ([]byte, error) {
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var raw map[string]any
	if err := utiljson.Unmarshal(b, &raw); err != nil {
		return nil, err
	}
	spec, ok := raw["spec"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("history: %T has no spec", obj)
	}
	template, _ := spec["template"].(map[string]any)
	if template == nil {
		template = map[string]any{}
	}
	template["$patch"] = "replace"
	return json.Marshal(map[string]any{"spec": map[string]any{"template": template}})
}
