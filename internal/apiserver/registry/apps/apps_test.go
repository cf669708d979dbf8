package apps

import (
	"sort"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

func paths(errs field.ErrorList) []string {
	out := make([]string, len(errs))
	for i, e := range errs {
		out[i] = string(e.Type) + ":" + e.Field
	}
	sort.Strings(out)
	return out
}

func template() corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx:1.27"}}}}
}

func deployment() *appsv1.Deployment {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: appsv1.DeploymentSpec{
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}, Template: template()}}
	DeploymentStrategy.Default(d)
	return d
}

func TestDeploymentDefaults(t *testing.T) {
	d := deployment()
	s := d.Spec
	if *s.Replicas != 1 || s.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType ||
		s.Strategy.RollingUpdate.MaxSurge.StrVal != "25%" || s.Strategy.RollingUpdate.MaxUnavailable.StrVal != "25%" ||
		*s.RevisionHistoryLimit != 10 || *s.ProgressDeadlineSeconds != 600 {
		t.Errorf("deployment defaults: %+v", s)
	}
	if s.Template.Spec.RestartPolicy != corev1.RestartPolicyAlways || s.Template.Spec.Containers[0].ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("template not defaulted: %+v", s.Template.Spec)
	}
	recreate := &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}}}
	DeploymentStrategy.Default(recreate)
	if recreate.Spec.Strategy.RollingUpdate != nil {
		t.Errorf("recreate got rollingUpdate")
	}
}

func TestDeploymentValidate(t *testing.T) {
	for name, tc := range map[string]struct {
		mutate func(*appsv1.Deployment)
		want   []string
	}{
		"valid":          {func(*appsv1.Deployment) {}, nil},
		"no selector":    {func(d *appsv1.Deployment) { d.Spec.Selector = nil }, []string{"FieldValueRequired:spec.selector"}},
		"empty selector": {func(d *appsv1.Deployment) { d.Spec.Selector = &metav1.LabelSelector{} }, []string{"FieldValueInvalid:spec.selector"}},
		"mismatch":       {func(d *appsv1.Deployment) { d.Spec.Template.Labels = map[string]string{"app": "db"} }, []string{"FieldValueInvalid:spec.template.metadata.labels"}},
		"negative":       {func(d *appsv1.Deployment) { d.Spec.Replicas = ptr.To(int32(-1)) }, []string{"FieldValueInvalid:spec.replicas"}},
		"restart policy": {func(d *appsv1.Deployment) { d.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyNever }, []string{"FieldValueNotSupported:spec.template.spec.restartPolicy"}},
		"no image":       {func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "" }, []string{"FieldValueRequired:spec.template.spec.containers[0].image"}},
		"zero surge": {func(d *appsv1.Deployment) {
			z := intstr.FromInt32(0)
			d.Spec.Strategy.RollingUpdate.MaxSurge, d.Spec.Strategy.RollingUpdate.MaxUnavailable = &z, &z
		}, []string{"FieldValueInvalid:spec.strategy.rollingUpdate.maxUnavailable"}},
		"bad percent": {func(d *appsv1.Deployment) {
			v := intstr.FromString("120%")
			d.Spec.Strategy.RollingUpdate.MaxSurge = &v
		}, []string{"FieldValueInvalid:spec.strategy.rollingUpdate.maxSurge"}},
		"recreate+rollng": {func(d *appsv1.Deployment) { d.Spec.Strategy.Type = appsv1.RecreateDeploymentStrategyType }, []string{"FieldValueForbidden:spec.strategy.rollingUpdate"}},
	} {
		d := deployment()
		tc.mutate(d)
		got := paths(DeploymentStrategy.Validate(d))
		if len(got) != len(tc.want) {
			t.Errorf("%s: got %v, want %v", name, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: got %v, want %v", name, got, tc.want)
			}
		}
	}
	old := deployment()
	d := deployment()
	d.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web", "tier": "front"}}
	d.Spec.Template.Labels["tier"] = "front"
	if got := paths(DeploymentStrategy.ValidateUpdate(d, old)); len(got) != 1 || got[0] != "FieldValueInvalid:spec.selector" {
		t.Errorf("selector change: %v", got)
	}
}

func TestDeploymentRow(t *testing.T) {
	d := deployment()
	d.Status = appsv1.DeploymentStatus{ReadyReplicas: 1, UpdatedReplicas: 1, AvailableReplicas: 1}
	row := DeploymentStrategy.Row(d)
	if row[1] != "1/1" || row[2] != int64(1) || row[3] != int64(1) || row[5] != "web" || row[6] != "nginx:1.27" || row[7] != "app=web" {
		t.Errorf("row %v", row)
	}
}

func TestStatefulSet(t *testing.T) {
	s := &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		Template: template(), ServiceName: "web"}}
	StatefulSetStrategy.Default(s)
	if *s.Spec.Replicas != 1 || s.Spec.PodManagementPolicy != appsv1.OrderedReadyPodManagement ||
		*s.Spec.UpdateStrategy.RollingUpdate.Partition != 0 || *s.Spec.RevisionHistoryLimit != 10 ||
		s.Spec.PersistentVolumeClaimRetentionPolicy.WhenDeleted != appsv1.RetainPersistentVolumeClaimRetentionPolicyType {
		t.Errorf("statefulset defaults: %+v", s.Spec)
	}
	if errs := StatefulSetStrategy.Validate(s); len(errs) != 0 {
		t.Errorf("valid statefulset: %v", errs)
	}
	changed := s.DeepCopy()
	changed.Spec.ServiceName = "other"
	if got := paths(StatefulSetStrategy.ValidateUpdate(changed, s)); len(got) != 1 || got[0] != "FieldValueForbidden:spec" {
		t.Errorf("serviceName change: %v", got)
	}
	scaled := s.DeepCopy()
	scaled.Spec.Replicas = ptr.To(int32(3))
	if errs := StatefulSetStrategy.ValidateUpdate(scaled, s); len(errs) != 0 {
		t.Errorf("scale: %v", errs)
	}
	scaled.Status.ReadyReplicas = 2
	if row := StatefulSetStrategy.Row(scaled); row[1] != "2/3" {
		t.Errorf("row %v", row)
	}
}

// TestStatefulSetMountsClaimTemplates: a volumeMount may name a volumeClaimTemplate, not
// anything else.
func TestStatefulSetMountsClaimTemplates(t *testing.T) {
	s := &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		Template: template(), ServiceName: "web"}}
	s.Spec.Template.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
	s.Spec.VolumeClaimTemplates = []corev1.PersistentVolumeClaim{{ObjectMeta: metav1.ObjectMeta{Name: "data"},
		Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}}}}
	StatefulSetStrategy.Default(s)
	if errs := StatefulSetStrategy.Validate(s); len(errs) != 0 {
		t.Errorf("mount of a claim template: %v", errs)
	}
	if len(s.Spec.Template.Spec.Volumes) != 0 {
		t.Errorf("validation changed the template: %v", s.Spec.Template.Spec.Volumes)
	}
	s.Spec.Template.Spec.Containers[0].VolumeMounts[0].Name = "other"
	if errs := StatefulSetStrategy.Validate(s); len(errs) != 1 {
		t.Errorf("mount of nothing: %v", errs)
	}
}

func TestDaemonSetAndReplicaSet(t *testing.T) {
	ds := &appsv1.DaemonSet{Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}, Template: template()}}
	DaemonSetStrategy.Default(ds)
	ru := ds.Spec.UpdateStrategy.RollingUpdate
	if ds.Spec.UpdateStrategy.Type != appsv1.RollingUpdateDaemonSetStrategyType || ru.MaxUnavailable.IntValue() != 1 || ru.MaxSurge.IntValue() != 0 || *ds.Spec.RevisionHistoryLimit != 10 {
		t.Errorf("daemonset defaults: %+v", ds.Spec)
	}
	if errs := DaemonSetStrategy.Validate(ds); len(errs) != 0 {
		t.Errorf("valid daemonset: %v", errs)
	}
	if row := DaemonSetStrategy.Row(ds); len(row) != len(DaemonSetStrategy.Columns) || row[6] != "<none>" {
		t.Errorf("daemonset row %v", row)
	}
	rs := &appsv1.ReplicaSet{Spec: appsv1.ReplicaSetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}, Template: template()}}
	ReplicaSetStrategy.Default(rs)
	if *rs.Spec.Replicas != 1 || len(ReplicaSetStrategy.Validate(rs)) != 0 {
		t.Errorf("replicaset: %+v", rs.Spec)
	}
	rs.Status.Replicas = 3
	if f := ReplicaSetStrategy.Fields(rs); f["status.replicas"] != "3" {
		t.Errorf("fields %v", f)
	}
	rs.Spec.Template.Spec.ActiveDeadlineSeconds = ptr.To(int64(10))
	if got := paths(ReplicaSetStrategy.Validate(rs)); len(got) != 1 || got[0] != "FieldValueForbidden:spec.template.spec.activeDeadlineSeconds" {
		t.Errorf("activeDeadlineSeconds: %v", got)
	}
}

func TestControllerRevisionRow(t *testing.T) {
	cr := &appsv1.ControllerRevision{ObjectMeta: metav1.ObjectMeta{Name: "web-7f", OwnerReferences: []metav1.OwnerReference{
		{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "web", Controller: ptr.To(true)}}}, Revision: 2}
	if row := ControllerRevisionStrategy.Row(cr); row[1] != "statefulset.apps/web" || row[2] != int64(2) {
		t.Errorf("row %v", row)
	}
}
