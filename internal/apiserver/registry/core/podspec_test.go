package core

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// TestPodSpecValidation covers the pod-spec rules shared with workload templates.
func TestPodSpecValidation(t *testing.T) {
	for name, tc := range map[string]struct {
		mutate func(*corev1.PodSpec)
		want   []string
	}{
		"probe without handler": {func(s *corev1.PodSpec) {
			s.Containers[0].ReadinessProbe = &corev1.Probe{PeriodSeconds: 10, TimeoutSeconds: 1, SuccessThreshold: 1, FailureThreshold: 3}
		}, []string{"FieldValueRequired:spec.containers[0].readinessProbe"}},
		"liveness success threshold": {func(s *corev1.PodSpec) {
			s.Containers[0].LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(80)}},
				PeriodSeconds: 10, TimeoutSeconds: 1, SuccessThreshold: 2, FailureThreshold: 3}
		}, []string{"FieldValueInvalid:spec.containers[0].livenessProbe.successThreshold"}},
		"probe named port": {func(s *corev1.PodSpec) {
			s.Containers[0].ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromString("Bad_Name"), Scheme: "HTTP"}},
				PeriodSeconds: 10, TimeoutSeconds: 1, SuccessThreshold: 1, FailureThreshold: 3}
		}, []string{"FieldValueInvalid:spec.containers[0].readinessProbe.httpGet.port"}},
		"env": {func(s *corev1.PodSpec) {
			s.Containers[0].Env = []corev1.EnvVar{{Name: ""}, {Name: "A", Value: "x", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
				{Name: "B", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{}}}}
		}, []string{"FieldValueInvalid:spec.containers[0].env[1].valueFrom", "FieldValueRequired:spec.containers[0].env[0].name",
			"FieldValueRequired:spec.containers[0].env[2].valueFrom.secretKeyRef.key"}},
		"tolerations": {func(s *corev1.PodSpec) {
			s.Tolerations = []corev1.Toleration{{Operator: "Equal", Value: "x"}, {Key: "k", Operator: "Exists", Value: "v"},
				{Key: "k", Operator: "Exists", Effect: "NoSchedule", TolerationSeconds: ptr.To(int64(5))}, {Key: "k", Operator: "Maybe"}}
		}, []string{"FieldValueInvalid:spec.tolerations[0].operator", "FieldValueInvalid:spec.tolerations[1].operator",
			"FieldValueInvalid:spec.tolerations[2].effect", "FieldValueNotSupported:spec.tolerations[3].operator"}},
		"host ports": {func(s *corev1.PodSpec) {
			s.Containers = append(s.Containers, corev1.Container{Name: "b", Image: "x", ImagePullPolicy: "Always", TerminationMessagePolicy: "File"})
			s.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, HostPort: 8080, Protocol: "TCP"}}
			s.Containers[1].Ports = []corev1.ContainerPort{{ContainerPort: 81, HostPort: 8080, Protocol: "TCP"}}
		}, []string{"FieldValueDuplicate:spec.containers[1].ports[0].hostPort"}},
		"host network ports": {func(s *corev1.PodSpec) {
			s.HostNetwork = true
			s.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, HostPort: 8080, Protocol: "TCP"}}
		}, []string{"FieldValueInvalid:spec.containers[0].ports[0].containerPort"}},
		"node affinity": {func(s *corev1.PodSpec) {
			s.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: "In"}, {Key: "k", Operator: "Near"}}}}}}}
		}, []string{"FieldValueNotSupported:spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[1].operator",
			"FieldValueRequired:spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].values"}},
		"pod anti-affinity": {func(s *corev1.PodSpec) {
			s.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{}}}}
		}, []string{"FieldValueRequired:spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey"}},
		"topology spread": {func(s *corev1.PodSpec) {
			s.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 0, TopologyKey: "zone", WhenUnsatisfiable: "DoNotSchedule"},
				{MaxSkew: 1, TopologyKey: "zone", WhenUnsatisfiable: "DoNotSchedule"}}
		}, []string{"FieldValueDuplicate:spec.topologySpreadConstraints[1]", "FieldValueInvalid:spec.topologySpreadConstraints[0].maxSkew"}},
		"projected": {func(s *corev1.PodSpec) {
			s.Volumes = []corev1.Volume{{Name: "p", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{DefaultMode: ptr.To(int32(0o644)),
				Sources: []corev1.VolumeProjection{{}, {ServiceAccountToken: &corev1.ServiceAccountTokenProjection{ExpirationSeconds: ptr.To(int64(60))}}}}}}}
		}, []string{"FieldValueInvalid:spec.volumes[0].projected.sources[1].serviceAccountToken.expirationSeconds",
			"FieldValueRequired:spec.volumes[0].projected.sources[0]", "FieldValueRequired:spec.volumes[0].projected.sources[1].serviceAccountToken.path"}},
		"bad mode": {func(s *corev1.PodSpec) {
			s.Volumes = []corev1.Volume{{Name: "c", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{DefaultMode: ptr.To(int32(0o1777)),
				Items: []corev1.KeyToPath{{Key: "a", Path: "../x"}}}}}}
		}, []string{"FieldValueInvalid:spec.volumes[0].configMap.defaultMode", "FieldValueInvalid:spec.volumes[0].configMap.items[0].path",
			"FieldValueRequired:spec.volumes[0].configMap.name"}},
		"init containers": {func(s *corev1.PodSpec) {
			s.InitContainers = []corev1.Container{
				{Name: "init", Image: "x", ImagePullPolicy: "Always", TerminationMessagePolicy: "File",
					ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{}}, PeriodSeconds: 1, TimeoutSeconds: 1, SuccessThreshold: 1, FailureThreshold: 1}},
				{Name: "app", Image: "x", ImagePullPolicy: "Always", TerminationMessagePolicy: "File", RestartPolicy: ptr.To(corev1.ContainerRestartPolicy("Never"))},
			}
		}, []string{"FieldValueDuplicate:spec.containers[0].name", "FieldValueForbidden:spec.initContainers[0].readinessProbe",
			"FieldValueNotSupported:spec.initContainers[1].restartPolicy"}},
		"dns none": {func(s *corev1.PodSpec) { s.DNSPolicy = corev1.DNSNone }, []string{"FieldValueRequired:spec.dnsConfig"}},
		"deadline": {func(s *corev1.PodSpec) { s.ActiveDeadlineSeconds = ptr.To(int64(0)) }, []string{"FieldValueInvalid:spec.activeDeadlineSeconds"}},
	} {
		pod := validPod()
		tc.mutate(&pod.Spec)
		if got := paths(ValidatePodSpec(&pod.Spec, field.NewPath("spec"), AllRestartPolicies)); !equal(got, tc.want) {
			t.Errorf("%s:\n got  %v\n want %v", name, got, tc.want)
		}
	}
}

func TestStorageAndPolicyKinds(t *testing.T) {
	pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "data"}, Spec: corev1.PersistentVolumeClaimSpec{
		AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
		Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{"storage": resource.MustParse("1Gi")}}}}
	PersistentVolumeClaimStrategy.PrepareForCreate(pvc)
	PersistentVolumeClaimStrategy.Default(pvc)
	if *pvc.Spec.VolumeMode != corev1.PersistentVolumeFilesystem || pvc.Status.Phase != corev1.ClaimPending {
		t.Errorf("pvc defaults: %+v", pvc)
	}
	if errs := PersistentVolumeClaimStrategy.Validate(pvc); len(errs) != 0 {
		t.Errorf("valid pvc: %v", errs)
	}
	if row := PersistentVolumeClaimStrategy.Row(pvc); row[1] != "Pending" || row[7] == "" || row[8] != "Filesystem" {
		t.Errorf("pvc row %v", row)
	}
	pv := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pv1"}, Spec: corev1.PersistentVolumeSpec{
		Capacity:               corev1.ResourceList{"storage": resource.MustParse("5Gi")},
		AccessModes:            []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany, corev1.ReadWriteOnce},
		PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/data"}},
		ClaimRef:               &corev1.ObjectReference{Namespace: "default", Name: "data"}}}
	PersistentVolumeStrategy.Default(pv)
	if errs := PersistentVolumeStrategy.Validate(pv); len(errs) != 0 {
		t.Errorf("valid pv: %v", errs)
	}
	if row := PersistentVolumeStrategy.Row(pv); row[1] != "5Gi" || row[2] != "RWO,RWX" || row[3] != "Retain" || row[4] != "Pending" || row[5] != "default/data" {
		t.Errorf("pv row %v", row)
	}
	lr := &corev1.LimitRange{Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{Type: corev1.LimitTypeContainer,
		Max: corev1.ResourceList{"cpu": resource.MustParse("2")}, Min: corev1.ResourceList{"memory": resource.MustParse("64Mi")}}}}}
	LimitRangeStrategy.Default(lr)
	item := lr.Spec.Limits[0]
	if q := item.Default["cpu"]; q.String() != "2" {
		t.Errorf("default limit %v", item.Default)
	}
	if q := item.DefaultRequest["memory"]; q.String() != "64Mi" {
		t.Errorf("default request %v", item.DefaultRequest)
	}
	rq := &corev1.ResourceQuota{Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{"requests.cpu": resource.MustParse("1"), "limits.memory": resource.MustParse("1Gi"), "pods": resource.MustParse("10")}},
		Status: corev1.ResourceQuotaStatus{Used: corev1.ResourceList{"pods": resource.MustParse("3")}}}
	if row := ResourceQuotaStrategy.Row(rq); row[2] != "pods: 3/10, requests.cpu: 0/1" || row[3] != "limits.memory: 0/1Gi" {
		t.Errorf("quota row %v", row)
	}
}
