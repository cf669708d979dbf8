package apiserver

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/nanokube/nanokube/internal/apiserver/authz"
	"github.com/nanokube/nanokube/internal/storage"
)

// ensureDefaultPolicy creates the default ClusterRoles and ClusterRoleBindings and
// reconciles existing ones, as kube-apiserver's rbac/bootstrap-roles post-start hook does:
// missing permissions, subjects, labels and annotations are added, nothing is removed, and
// objects annotated rbac.authorization.kubernetes.io/autoupdate=false are left alone.
func (s *Server) ensureDefaultPolicy(ctx context.Context) error {
	roles, bindings := s.resources[clusterRolesGVR], s.resources[clusterRoleBindingsGVR]
	if roles == nil || bindings == nil {
		return nil
	}
	opts := writeOptions{manager: "kube-apiserver"}
	for _, want := range authz.DefaultClusterRoles() {
		err := s.reconcileDefault(ctx, roles, want, opts, func(cur runtime.Object) (runtime.Object, bool, bool) {
			out, changed := authz.ReconcileClusterRole(cur.(*rbacv1.ClusterRole), want)
			return out, changed, false
		})
		if err != nil {
			return fmt.Errorf("default ClusterRole %s: %w", want.Name, err)
		}
	}
	for _, want := range authz.DefaultClusterRoleBindings() {
		err := s.reconcileDefault(ctx, bindings, want, opts, func(cur runtime.Object) (runtime.Object, bool, bool) {
			return authz.ReconcileClusterRoleBinding(cur.(*rbacv1.ClusterRoleBinding), want)
		})
		if err != nil {
			return fmt.Errorf("default ClusterRoleBinding %s: %w", want.Name, err)
		}
	}
	if err := s.deleteRetiredBindings(ctx); err != nil {
		return err
	}
	// The authorizer reads the watch caches: the server is not ready before they hold the
	// policy just written, or its first requests would be judged without it.
	rev, err := s.cfg.Store.Revision(ctx)
	if err != nil {
		return err
	}
	for _, gvr := range []schema.GroupVersionResource{rolesGVR, clusterRolesGVR, roleBindingsGVR, clusterRoleBindingsGVR} {
		if rs := s.resources[gvr]; rs != nil {
			// A Get at rev returns once the cache has applied rev; the key need not exist.
			if _, err := rs.cacheGet(ctx, rs.prefix, rev); err != nil && !errors.Is(err, storage.ErrNotFound) {
				s.log.Warn("RBAC cache is slow to catch up; early requests may be denied", "resource", gvr.Resource, "err", err)
			}
		}
	}
	return nil
}

// reconcileDefault creates want, or updates the stored object with reconcile's result;
// recreate replaces it (a binding whose roleRef changed). Conflicts with concurrent writers
// (another API server starting) are retried.
func (s *Server) reconcileDefault(ctx context.Context, rs *resourceStore, want runtime.Object, opts writeOptions,
	reconcile func(cur runtime.Object) (out runtime.Object, changed, recreate bool)) error {
	m, _ := meta.Accessor(want)
	key := rs.key("", m.GetName())
	for attempt := 0; ; attempt++ {
		cur, err := rs.get(ctx, key, 0)
		if errors.Is(err, storage.ErrNotFound) {
			_, err = s.createObject(ctx, rs, want.DeepCopyObject(), opts)
		} else if err == nil {
			cm, _ := meta.Accessor(cur)
			if !authz.AutoUpdate(cm) {
				return nil
			}
			out, changed, recreate := reconcile(cur)
			if !changed {
				return nil
			}
			rev, _ := strconv.ParseInt(cm.GetResourceVersion(), 10, 64)
			if recreate {
				if _, err = rs.remove(ctx, key, rev); err == nil {
					om, _ := meta.Accessor(out)
					om.SetResourceVersion("")
					_, err = s.createObject(ctx, rs, out, opts)
				}
			} else {
				err = rs.update(ctx, key, out, rev)
			}
		}
		if err == nil {
			return nil
		}
		retry := errors.Is(err, storage.ErrConflict) || errors.Is(err, storage.ErrExists) || errors.Is(err, storage.ErrNotFound) ||
			apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) || apierrors.IsNotFound(err)
		if attempt >= 5 || !retry {
			return err
		}
	}
}
