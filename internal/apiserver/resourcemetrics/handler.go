package resourcemetrics

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
)

// Prefix is the path the handler serves under.
const Prefix = "/apis/metrics.k8s.io/v1beta1/"

// APIResources are the resources of metrics.k8s.io/v1beta1, for discovery.
func APIResources() (schema.GroupVersion, []metav1.APIResource) {
	verbs := metav1.Verbs{"get", "list"}
	return metricsv1beta1.SchemeGroupVersion, []metav1.APIResource{
		{Name: "nodes", SingularName: "", Namespaced: false, Kind: "NodeMetrics", Verbs: verbs},
		{Name: "pods", SingularName: "", Namespaced: true, Kind: "PodMetrics", Verbs: verbs},
	}
}

type format int

const (
	formatJSON format = iota
	formatProtobuf
	formatTable
)

const protobufType = "application/vnd.kubernetes.protobuf"

// negotiate picks the response format from the Accept header, in the client's order.
func negotiate(accept string) (format, bool) {
	if strings.TrimSpace(accept) == "" {
		return formatJSON, true
	}
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch {
		case mt == "application/json" && params["as"] == "Table" && params["g"] == "meta.k8s.io" && (params["v"] == "v1" || params["v"] == "v1beta1"):
			return formatTable, true
		case params["as"] != "":
			continue // other transformations (PartialObjectMetadata) are not offered
		case mt == "application/json", mt == "*/*", mt == "application/*":
			return formatJSON, true
		case mt == protobufType:
			return formatProtobuf, true
		}
	}
	return formatJSON, false
}

// ServeHTTP answers GET requests under Prefix.
func (m *Metrics) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	gr := schema.GroupResource{Group: metricsv1beta1.GroupName}
	rest := strings.Trim(strings.TrimPrefix(r.URL.Path, Prefix), "/")
	parts := strings.Split(rest, "/")
	var namespace, name string
	switch {
	case len(parts) >= 1 && parts[0] == "nodes" && len(parts) <= 2:
		gr.Resource = "nodes"
		if len(parts) == 2 {
			name = parts[1]
		}
	case len(parts) == 1 && parts[0] == "pods":
		gr.Resource = "pods"
	case len(parts) >= 3 && parts[0] == "namespaces" && parts[2] == "pods" && len(parts) <= 4 && parts[1] != "":
		gr.Resource, namespace = "pods", parts[1]
		if len(parts) == 4 {
			name = parts[3]
		}
	default:
		writeError(w, apierrors.NewNotFound(schema.GroupResource{}, ""))
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeError(w, apierrors.NewMethodNotSupported(gr, strings.ToLower(r.Method)))
		return
	}
	q := r.URL.Query()
	if q.Get("watch") == "true" || q.Get("watch") == "1" {
		writeError(w, apierrors.NewMethodNotSupported(gr, "watch"))
		return
	}
	f, ok := negotiate(r.Header.Get("Accept"))
	if !ok {
		writeError(w, apierrors.NewGenericServerResponse(http.StatusNotAcceptable, "get", gr, name,
			"only application/json, "+protobufType+" and meta.k8s.io Tables are served", 0, false))
		return
	}
	sel, err := parseSelectors(q.Get("labelSelector"), q.Get("fieldSelector"))
	if err != nil {
		writeError(w, err)
		return
	}
	ctx := r.Context()
	var items []runtime.Object
	if gr.Resource == "nodes" {
		nodes, err := m.cfg.Source.Nodes(ctx)
		if err != nil {
			writeError(w, apierrors.NewInternalError(err))
			return
		}
		for _, n := range nodes {
			if (name != "" && n.Name != name) || !sel.matches(n.ObjectMeta) {
				continue
			}
			if nm := m.nodeMetrics(n); nm != nil {
				items = append(items, nm)
			}
		}
	} else {
		pods, err := m.cfg.Source.Pods(ctx, namespace)
		if err != nil {
			writeError(w, apierrors.NewInternalError(err))
			return
		}
		for _, p := range pods {
			if (name != "" && p.Name != name) || !sel.matches(p.ObjectMeta) {
				continue
			}
			if pm := m.podMetrics(p); pm != nil {
				items = append(items, pm)
			}
		}
	}
	if name != "" {
		if len(items) == 0 {
			// No metrics yet and no such object look alike to clients, as with metrics-server.
			writeError(w, apierrors.NewNotFound(gr, name))
			return
		}
		write(w, f, items[0], items)
		return
	}
	var list runtime.Object
	if gr.Resource == "nodes" {
		l := &metricsv1beta1.NodeMetricsList{TypeMeta: metav1.TypeMeta{Kind: "NodeMetricsList", APIVersion: metricsv1beta1.SchemeGroupVersion.String()}}
		l.Items = []metricsv1beta1.NodeMetrics{}
		for _, it := range items {
			l.Items = append(l.Items, *it.(*metricsv1beta1.NodeMetrics))
		}
		list = l
	} else {
		l := &metricsv1beta1.PodMetricsList{TypeMeta: metav1.TypeMeta{Kind: "PodMetricsList", APIVersion: metricsv1beta1.SchemeGroupVersion.String()}}
		l.Items = []metricsv1beta1.PodMetrics{}
		for _, it := range items {
			l.Items = append(l.Items, *it.(*metricsv1beta1.PodMetrics))
		}
		list = l
	}
	write(w, f, list, items)
}

func (m *Metrics) nodeMetrics(n *corev1.Node) *metricsv1beta1.NodeMetrics {
	u, ok := m.store.Node(n.Name)
	if !ok {
		return nil
	}
	return &metricsv1beta1.NodeMetrics{
		TypeMeta: metav1.TypeMeta{Kind: "NodeMetrics", APIVersion: metricsv1beta1.SchemeGroupVersion.String()},
		// As metrics-server: the object is made now, it has no resourceVersion.
		ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: n.Labels, CreationTimestamp: metav1.Now()},
		Timestamp:  metav1.NewTime(u.Timestamp),
		Window:     metav1.Duration{Duration: u.Window},
		Usage:      resourceList(u),
	}
}

func (m *Metrics) podMetrics(p *corev1.Pod) *metricsv1beta1.PodMetrics {
	cs, ts, window, ok := m.store.Pod(p.Namespace, p.Name, p.UID)
	if !ok {
		return nil
	}
	pm := &metricsv1beta1.PodMetrics{
		TypeMeta:   metav1.TypeMeta{Kind: "PodMetrics", APIVersion: metricsv1beta1.SchemeGroupVersion.String()},
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, Labels: p.Labels, CreationTimestamp: metav1.Now()},
		Timestamp:  metav1.NewTime(ts),
		Window:     metav1.Duration{Duration: window},
	}
	for _, c := range cs {
		pm.Containers = append(pm.Containers, metricsv1beta1.ContainerMetrics{Name: c.Name, Usage: resourceList(c.Usage)})
	}
	return pm
}

func resourceList(u Usage) corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewScaledQuantity(int64(u.NanoCores), resource.Nano),
		corev1.ResourceMemory: *resource.NewQuantity(int64(u.MemoryBytes), resource.BinarySI),
	}
}

type selection struct {
	labels labels.Selector
	fields fields.Selector
}

func parseSelectors(labelSel, fieldSel string) (selection, error) {
	var s selection
	var err error
	if s.labels, err = labels.Parse(labelSel); err != nil {
		return s, apierrors.NewBadRequest(fmt.Sprintf("unable to parse labelSelector %q: %v", labelSel, err))
	}
	if s.fields, err = fields.ParseSelector(fieldSel); err != nil {
		return s, apierrors.NewBadRequest(fmt.Sprintf("unable to parse fieldSelector %q: %v", fieldSel, err))
	}
	for _, req := range s.fields.Requirements() {
		if req.Field != "metadata.name" && req.Field != "metadata.namespace" {
			return s, apierrors.NewBadRequest(fmt.Sprintf("field label not supported: %s", req.Field))
		}
	}
	return s, nil
}

func (s selection) matches(om metav1.ObjectMeta) bool {
	return s.labels.Matches(labels.Set(om.Labels)) &&
		s.fields.Matches(fields.Set{"metadata.name": om.Name, "metadata.namespace": om.Namespace})
}

var protobufEncoder = protobuf.NewSerializer(nil, nil)

func write(w http.ResponseWriter, f format, obj runtime.Object, items []runtime.Object) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	switch f {
	case formatProtobuf:
		w.Header().Set("Content-Type", protobufType)
		w.WriteHeader(http.StatusOK)
		_ = protobufEncoder.Encode(obj, w)
		return
	case formatTable:
		obj = table(items)
	}
	body, err := json.Marshal(obj)
	if err != nil {
		writeError(w, apierrors.NewInternalError(err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// table is the server-side table metrics-server prints: NAME, CPU, MEMORY, WINDOW.
func table(items []runtime.Object) *metav1.Table {
	t := &metav1.Table{
		TypeMeta: metav1.TypeMeta{Kind: "Table", APIVersion: "meta.k8s.io/v1"},
		ColumnDefinitions: []metav1.TableColumnDefinition{
			{Name: "Name", Type: "string", Format: "name", Description: "Name of the resource"},
			{Name: "CPU", Type: "string", Description: "CPU usage"},
			{Name: "Memory", Type: "string", Description: "Memory usage"},
			{Name: "Window", Type: "string", Description: "Interval the usage was measured over"},
		},
		Rows: []metav1.TableRow{},
	}
	for _, it := range items {
		var om metav1.ObjectMeta
		var usage corev1.ResourceList
		var window time.Duration
		switch o := it.(type) {
		case *metricsv1beta1.NodeMetrics:
			om, usage, window = o.ObjectMeta, o.Usage, o.Window.Duration
		case *metricsv1beta1.PodMetrics:
			om, window = o.ObjectMeta, o.Window.Duration
			cpu, mem := resource.Quantity{}, resource.Quantity{}
			for _, c := range o.Containers {
				cpu.Add(c.Usage[corev1.ResourceCPU])
				mem.Add(c.Usage[corev1.ResourceMemory])
			}
			usage = corev1.ResourceList{corev1.ResourceCPU: cpu, corev1.ResourceMemory: mem}
		}
		cpu, mem := usage[corev1.ResourceCPU], usage[corev1.ResourceMemory]
		partial := &metav1.PartialObjectMetadata{
			TypeMeta:   metav1.TypeMeta{Kind: "PartialObjectMetadata", APIVersion: "meta.k8s.io/v1"},
			ObjectMeta: om,
		}
		t.Rows = append(t.Rows, metav1.TableRow{
			Cells:  []interface{}{om.Name, fmt.Sprintf("%dm", cpu.MilliValue()), fmt.Sprintf("%dMi", mem.Value()/(1<<20)), window.String()},
			Object: runtime.RawExtension{Object: partial},
		})
	}
	return t
}

func writeError(w http.ResponseWriter, err error) {
	st, ok := err.(apierrors.APIStatus)
	if !ok {
		st = apierrors.NewInternalError(err)
	}
	status := st.Status()
	status.TypeMeta = metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}
	body, _ := json.Marshal(&status)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(int(status.Code))
	_, _ = w.Write(body)
}
