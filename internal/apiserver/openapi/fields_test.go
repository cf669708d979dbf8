package openapi

import (
	"encoding/json"
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"
)

func TestUnknownFields(t *testing.T) {
	s := newTestSpec(t)
	for _, tc := range []struct {
		name string
		gvk  schema.GroupVersionKind
		obj  string // YAML
		want []string
	}{{
		name: "valid pod",
		gvk:  podGVK,
		obj: `
apiVersion: v1
kind: Pod
metadata:
  name: p
  labels: {app: web, "example.com/any-key": x}
  annotations: {a: b}
  ownerReferences: [{apiVersion: v1, kind: Node, name: n, uid: u, controller: true}]
  creationTimestamp: "2024-01-01T00:00:00Z"
  managedFields: [{manager: m, operation: Apply, fieldsType: FieldsV1, fieldsV1: {"f:spec": {"f:containers": {}}}}]
spec:
  containers:
  - name: c
    image: busybox
    command: [sh, -c, sleep 1]
    ports: [{containerPort: 80}]
    resources: {limits: {cpu: 500m, memory: 1Gi}, requests: {cpu: 1}}
    livenessProbe: {httpGet: {port: http, path: /}, periodSeconds: 3}
    readinessProbe: {tcpSocket: {port: 8080}}
    env: [{name: A, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]
  nodeSelector: {disk: ssd}
  overhead: {cpu: "1"}
  tolerations: [{operator: Exists}]
status:
  phase: Running
  startTime: "2024-01-01T00:00:00Z"
`,
	}, {
		name: "top level and spec",
		gvk:  podGVK,
		obj:  `{apiVersion: v1, kind: Pod, foo: 1, spec: {foo: {bar: 1}, containers: []}}`,
		want: []string{"foo", "spec.foo"},
	}, {
		name: "nested lists of containers",
		gvk:  podGVK,
		obj: `
spec:
  initContainers: [{name: i, image: x, bogus: true}]
  containers:
  - {name: a, image: x}
  - {name: b, image: x, ports: [{containerPort: 1, hostport: 2}], env: [{name: E, valueFrom: {secretKeyRef: {name: s, key: k, extra: 1}}}]}
`,
		want: []string{
			"spec.containers[1].env[0].valueFrom.secretKeyRef.extra",
			"spec.containers[1].ports[0].hostport",
			"spec.initContainers[0].bogus",
		},
	}, {
		name: "maps take any key but their values are checked",
		gvk:  deploymentGVK,
		obj: `
metadata: {labels: {anything: goes}}
spec:
  selector: {matchLabels: {app: web}, matchExpressions: [{key: k, operator: In, values: [a], weight: 1}]}
  template:
    metadata: {labels: {app: web}, annotaions: {}}
    spec: {containers: [{name: c, image: x, resources: {limits: {cpu: 1, memory: 64Mi}}}]}
  strategy: {rollingUpdate: {maxSurge: 25%, maxUnavailable: 1}}
`,
		want: []string{"spec.selector.matchExpressions[0].weight", "spec.template.metadata.annotaions"},
	}, {
		name: "intstr and quantity leaves hold objects without complaint",
		gvk:  deploymentGVK,
		obj:  `{spec: {strategy: {rollingUpdate: {maxSurge: {a: 1}}}, template: {spec: {containers: [{name: c, resources: {limits: {cpu: {b: 2}}}}]}}}}`,
	}, {
		name: "configmap data is a map",
		gvk:  schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"},
		obj:  `{data: {"a.conf": x, b: y}, binaryData: {c: Zm9v}, immutable: true, dat: {}}`,
		want: []string{"dat"},
	}, {
		name: "list kinds",
		gvk:  schema.GroupVersionKind{Version: "v1", Kind: "PodList"},
		obj:  `{metadata: {resourceVersion: "1", x: 1}, items: [{spec: {nodeName: n, nodename: n}}]}`,
		want: []string{"items[0].spec.nodename", "metadata.x"},
	}, {
		name: "a kind not served",
		gvk:  schema.GroupVersionKind{Group: "batch", Version: "v1", Kind: "Job"},
		obj:  `{foo: 1}`,
	}, {
		name: "wrong types are not unknown fields",
		gvk:  podGVK,
		obj:  `{metadata: "x", spec: {containers: {name: c}, nodeSelector: [1]}}`,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			j, err := yaml.YAMLToJSON([]byte(tc.obj))
			if err != nil {
				t.Fatal(err)
			}
			var obj map[string]interface{}
			if err := json.Unmarshal(j, &obj); err != nil {
				t.Fatal(err)
			}
			got := s.UnknownFields(tc.gvk, obj)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("UnknownFields = %q, want %q", got, tc.want)
			}
		})
	}
}
