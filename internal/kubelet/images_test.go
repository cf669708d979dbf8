package kubelet

import (
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestImagesToRemove(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	img := func(id string, size uint64, tags ...string) *runtimeapi.Image {
		return &runtimeapi.Image{Id: id, Size: size, RepoTags: tags}
	}
	imgs := []*runtimeapi.Image{
		img("old-big", 300, "r/old-big:1"),
		img("old-small", 100, "r/old-small:1"),
		img("used-by-tag", 500, "r/app:1"),
		img("new", 400, "r/new:1"),
		img("recently-used", 400, "r/recent:1"),
		{Id: "pinned", Size: 900, Pinned: true},
	}
	records := map[string]imageRecord{
		"old-big":       {firstSeen: ago(time.Hour), lastUsed: ago(30 * time.Minute)},
		"old-small":     {firstSeen: ago(time.Hour), lastUsed: ago(50 * time.Minute)},
		"used-by-tag":   {firstSeen: ago(time.Hour)},
		"new":           {firstSeen: ago(time.Minute)},
		"recently-used": {firstSeen: ago(time.Hour), lastUsed: ago(time.Minute)},
		"pinned":        {firstSeen: ago(time.Hour)},
	}
	inUse := map[string]bool{"r/app:1": true}
	for _, tc := range []struct {
		goal uint64
		want string
	}{
		{0, ""},
		{50, "old-small"},             // least recently used first
		{150, "old-small,old-big"},    // then the next
		{10_000, "old-small,old-big"}, // never in use, pinned, new or recently used
	} {
		var got []string
		for _, i := range imagesToRemove(imgs, records, inUse, now, tc.goal) {
			got = append(got, i.Id)
		}
		if strings.Join(got, ",") != tc.want {
			t.Errorf("goal %d: removes %v, want %s", tc.goal, got, tc.want)
		}
	}
}

// An image seen for the first time is protected for minImageAge, even on a full disk: the
// images a node imports at start must survive until its pods use them.
func TestTrackImagesProtectsNewImages(t *testing.T) {
	now := time.Now()
	imgs := []*runtimeapi.Image{{Id: "a", Size: 10}, {Id: "b", Size: 10, RepoDigests: []string{"r/b@sha256:1"}}}
	records := trackImages(nil, imgs, map[string]bool{"r/b@sha256:1": true}, now)
	if got := imagesToRemove(imgs, records, nil, now.Add(time.Minute), 100); len(got) != 0 {
		t.Errorf("a minute after first sight, removes %v", got)
	}
	if got := imagesToRemove(imgs, records, nil, now.Add(3*time.Minute), 100); len(got) != 2 {
		t.Errorf("three minutes later, removes %d images, want both", len(got))
	}
	records = trackImages(records, imgs[:1], nil, now.Add(time.Minute))
	if _, ok := records["b"]; ok || !records["a"].firstSeen.Equal(now) {
		t.Errorf("records after b went away: %v", records)
	}
}
