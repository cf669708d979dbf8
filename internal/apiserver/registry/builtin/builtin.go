// Package builtin lists every resource nanokube serves: the API server registers exactly these.
package builtin

import (
	"github.com/nanokube/nanokube/internal/apiserver/registry"
	"github.com/nanokube/nanokube/internal/apiserver/registry/apps"
	"github.com/nanokube/nanokube/internal/apiserver/registry/autoscaling"
	"github.com/nanokube/nanokube/internal/apiserver/registry/batch"
	"github.com/nanokube/nanokube/internal/apiserver/registry/certificates"
	"github.com/nanokube/nanokube/internal/apiserver/registry/coordination"
	"github.com/nanokube/nanokube/internal/apiserver/registry/core"
	"github.com/nanokube/nanokube/internal/apiserver/registry/discovery"
	"github.com/nanokube/nanokube/internal/apiserver/registry/events"
	"github.com/nanokube/nanokube/internal/apiserver/registry/policy"
	"github.com/nanokube/nanokube/internal/apiserver/registry/rbac"
	"github.com/nanokube/nanokube/internal/apiserver/registry/scheduling"
	"github.com/nanokube/nanokube/internal/apiserver/registry/storage"
)

// Resources returns every served resource, grouped by group-version in discovery order
// (core first, then the named groups as kube-apiserver lists them).
func Resources() []*registry.Resource {
	var out []*registry.Resource
	for _, group := range [][]*registry.Resource{
		core.Resources(),
		apps.Resources(),
		events.Resources(),
		autoscaling.Resources(),
		batch.Resources(),
		certificates.Resources(),
		policy.Resources(),
		scheduling.Resources(),
		storage.Resources(),
		coordination.Resources(),
		discovery.Resources(),
		rbac.Resources(),
	} {
		out = append(out, group...)
	}
	return out
}
