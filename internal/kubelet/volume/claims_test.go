package volume

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// claimGetter serves claim "data" in namespace "ns", bound (or not) to volume pvc-1 whose
// hostPath is under base.
func claimGetter(base string, bound bool) *fakeGetter {
	g := newGetter()
	pvc := &v1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "data", Namespace: "ns", UID: "claim-uid"},
		Status: v1.PersistentVolumeClaimStatus{Phase: v1.ClaimPending}}
	if bound {
		pvc.Spec.VolumeName, pvc.Status.Phase = "pvc-1", v1.ClaimBound
	}
	g.claims = map[string]*v1.PersistentVolumeClaim{"data": pvc}
	g.volumes = map[string]*v1.PersistentVolume{"pvc-1": {ObjectMeta: metav1.ObjectMeta{Name: "pvc-1"}, Spec: v1.PersistentVolumeSpec{
		PersistentVolumeSource: v1.PersistentVolumeSource{HostPath: &v1.HostPathVolumeSource{
			Path: filepath.Join(base, "pvc-1"), Type: ptr(v1.HostPathDirectoryOrCreate)}},
		ClaimRef: &v1.ObjectReference{Namespace: "ns", Name: "data", UID: "claim-uid"}}}}
	return g
}

func claimPod(uid, claim string, readOnly bool) *v1.Pod {
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: types.UID(uid)}, Spec: v1.PodSpec{
		Volumes: []v1.Volume{{Name: "vol", VolumeSource: v1.VolumeSource{PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{
			ClaimName: claim, ReadOnly: readOnly}}}}}}
}

func TestClaimNotReady(t *testing.T) {
	base := t.TempDir()
	for _, tc := range []struct {
		name, claim string
		bound       bool
		want        string
	}{
		{name: "missing claim", claim: "other", want: `persistentvolumeclaim "other" not found`},
		{name: "unbound claim", claim: "data", want: `persistentvolumeclaim "data" is not bound yet (phase Pending)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newManager(t, claimGetter(base, tc.bound), nil)
			_, err := m.Setup(context.Background(), claimPod("u1", tc.claim, false), nil)
			if !errors.Is(err, ErrClaimNotBound) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q wrapping ErrClaimNotBound", err, tc.want)
			}
		})
	}
	g := claimGetter(base, true)
	g.volumes["pvc-1"].Spec.ClaimRef.UID = "someone-else"
	if _, err := newManager(t, g, nil).Setup(context.Background(), claimPod("u2", "data", false), nil); !errors.Is(err, ErrClaimNotBound) {
		t.Fatalf("volume bound elsewhere: %v", err)
	}
}

// TestClaimMountedAndKept mounts a bound claim into two pods in turn: what the first wrote,
// the second reads, and tearing a pod down leaves the data.
func TestClaimMountedAndKept(t *testing.T) {
	needMount(t)
	base := t.TempDir()
	m := newManager(t, claimGetter(base, true), nil)
	ctx := context.Background()
	paths, err := m.Setup(ctx, claimPod("first", "data", false), nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := paths["vol"]
	if want := filepath.Join(m.podsDir, "first", "volumes", pluginLocalVolume, "pvc-1"); dir != want {
		t.Fatalf("path %s, want %s", dir, want)
	}
	if mounted, err := isBindTarget(dir); err != nil || !mounted {
		t.Fatalf("not a mount point: %v %v", mounted, err)
	}
	if _, err := m.Setup(ctx, claimPod("first", "data", false), nil); err != nil { // idempotent
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "state"), []byte("42"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := m.Teardown(ctx, "first"); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(base, "pvc-1", "state")); err != nil || string(b) != "42" {
		t.Fatalf("data after teardown: %q %v", b, err)
	}
	paths, err = m.Setup(ctx, claimPod("second", "data", true), nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(paths["vol"], "state")); err != nil || string(b) != "42" {
		t.Fatalf("second pod reads %q %v", b, err)
	}
	if err := os.WriteFile(filepath.Join(paths["vol"], "x"), nil, 0o644); err == nil {
		t.Fatal("read-only claim is writable")
	}
}

func TestSweepLocalPaths(t *testing.T) {
	needMount(t)
	base := t.TempDir()
	m := newManager(t, claimGetter(base, true), nil)
	ctx := context.Background()
	for _, d := range []string{"pvc-1", "pvc-gone", "pvc-new", "not-ours", "pvc-elsewhere"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// This kubelet mounted pvc-gone and pvc-new once; pvc-elsewhere belongs to a kubelet
	// of another cluster sharing the directory, and is never touched.
	for _, d := range []string{"pvc-gone", "pvc-new"} {
		if err := m.recordLocalPath(d); err != nil {
			t.Fatal(err)
		}
	}
	// pvc-1 is mounted in a pod (its volume deleted under it): kept until the pod goes.
	if _, err := m.Setup(ctx, claimPod("user", "data", false), nil); err != nil {
		t.Fatal(err)
	}
	removed, err := m.SweepLocalPaths(ctx, base, func(context.Context) (map[string]bool, error) {
		return map[string]bool{"pvc-new": true}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(removed, []string{filepath.Join(base, "pvc-gone")}) {
		t.Fatalf("removed %v", removed)
	}
	for _, d := range []string{"pvc-1", "pvc-new", "not-ours", "pvc-elsewhere"} {
		if _, err := os.Stat(filepath.Join(base, d)); err != nil {
			t.Errorf("%s: %v", d, err)
		}
	}
	if err := m.Teardown(ctx, "user"); err != nil {
		t.Fatal(err)
	}
	removed, err = m.SweepLocalPaths(ctx, base, func(context.Context) (map[string]bool, error) { return nil, nil })
	if err != nil || len(removed) != 2 {
		t.Fatalf("second sweep removed %v, %v", removed, err)
	}
	if _, err := os.Stat(filepath.Join(base, "pvc-elsewhere")); err != nil {
		t.Errorf("a volume this kubelet never mounted was removed: %v", err)
	}
	if _, err := m.SweepLocalPaths(ctx, filepath.Join(base, "absent"), nil); err != nil {
		t.Fatalf("missing base dir: %v", err)
	}
}
