package apiserver

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/nanokube/nanokube/internal/storage"
)

// continueToken is the opaque "continue" of a paginated list: the revision of the first page
// and the key to resume at.
type continueToken struct {
	Version  string `json:"v"`
	Revision int64  `json:"rv"`
	Start    string `json:"start"`
}

func encodeContinue(rev int64, start string) string {
	b, _ := json.Marshal(continueToken{Version: "meta.k8s.io/v1", Revision: rev, Start: start})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeContinue(s string) (continueToken, error) {
	var t continueToken
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &t)
	}
	if err != nil || t.Version != "meta.k8s.io/v1" || t.Revision <= 0 {
		return t, badRequest("continue key is not valid: %s", s)
	}
	return t, nil
}

// list serves a collection GET. Lists are read from the watch cache (after it has caught up
// with etcd unless resourceVersion=0 allows any age); continuations and exact
// resourceVersions are read from etcd at the first page's revision.
func (s *Server) list(ctx context.Context, r *http.Request, rs *resourceStore, req request, out output) (runtime.Object, error) {
	q := r.URL.Query()
	sel, err := rs.parseSelection(q.Get("labelSelector"), q.Get("fieldSelector"))
	if err != nil {
		return nil, err
	}
	var limit int64
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.ParseInt(v, 10, 64); err != nil || limit < 0 {
			return nil, badRequest("limit must be a non-negative integer, not %q", v)
		}
	}
	rvStr, match := q.Get("resourceVersion"), q.Get("resourceVersionMatch")
	rev, err := parseRV(rvStr)
	if err != nil {
		return nil, err
	}
	switch match {
	case "", string(metav1.ResourceVersionMatchNotOlderThan), string(metav1.ResourceVersionMatchExact):
	default:
		return nil, badRequest("resourceVersionMatch: unsupported value %q", match)
	}
	if match != "" && rvStr == "" {
		return nil, badRequest("resourceVersionMatch is forbidden unless resourceVersion is provided")
	}
	filter := rs.filter(sel)
	prefix := rs.listPrefix(req.namespace)
	if name := nameFromFieldSelector(sel.fields); name != "" && (!rs.res.Namespaced || req.namespace != "") {
		prefix = rs.key(req.namespace, name)
	}

	list := rs.newList()
	lm, _ := meta.ListAccessor(list)
	var items []runtime.Object
	switch {
	case q.Get("continue") != "":
		tok, err := decodeContinue(q.Get("continue"))
		if err != nil {
			return nil, err
		}
		var next string
		items, next, err = s.listEtcd(ctx, rs, prefix, tok.Revision, tok.Start, limit, filter)
		if errors.Is(err, storage.ErrExpired) {
			return nil, apierrors.NewResourceExpired("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.")
		}
		if err != nil {
			return nil, toStatus(err, rs.gr, "")
		}
		lm.SetResourceVersion(strconv.FormatInt(tok.Revision, 10))
		if next != "" {
			lm.SetContinue(encodeContinue(tok.Revision, next))
		}
	case match == string(metav1.ResourceVersionMatchExact):
		var next string
		items, next, err = s.listEtcd(ctx, rs, prefix, rev, "", limit, filter)
		if err != nil {
			return nil, toStatus(err, rs.gr, "")
		}
		lm.SetResourceVersion(rvStr)
		if next != "" {
			lm.SetContinue(encodeContinue(rev, next))
		}
	default:
		if rvStr == "" {
			// A consistent read: the cache must have caught up with etcd's current revision.
			if rev, err = s.cfg.Store.Revision(ctx); err != nil {
				return nil, toStatus(err, rs.gr, "")
			}
		}
		var cacheRev int64
		items, cacheRev, err = rs.cacheList(ctx, prefix, rev, filter)
		if err != nil {
			return nil, toStatus(err, rs.gr, "")
		}
		lm.SetResourceVersion(strconv.FormatInt(cacheRev, 10))
		if rvStr != "0" && limit > 0 && int64(len(items)) > limit {
			remaining := int64(len(items)) - limit
			items = items[:limit]
			m, _ := meta.Accessor(items[limit-1])
			lm.SetContinue(encodeContinue(cacheRev, rs.key(m.GetNamespace(), m.GetName())+"\x00"))
			lm.SetRemainingItemCount(&remaining)
		}
	}
	if out.as == "Table" || out.as == "PartialObjectMetadataList" {
		return &listResult{list: list, items: items}, nil
	}
	if err := meta.SetList(list, items); err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	return list, nil
}

// listResult carries a list's items to transform without building the typed list first.
type listResult struct {
	runtime.Object
	list  runtime.Object
	items []runtime.Object
}

// listEtcd reads up to limit matching objects from etcd at rev, starting at start; next is
// the key to continue at, "" at the end.
func (s *Server) listEtcd(ctx context.Context, rs *resourceStore, prefix string, rev int64, start string, limit int64, filter func(runtime.Object) bool) (items []runtime.Object, next string, err error) {
	if len(prefix) > 0 && prefix[len(prefix)-1] != '/' { // a single key
		obj, err := rs.get(ctx, prefix, rev)
		if errors.Is(err, storage.ErrNotFound) {
			return nil, "", nil
		}
		if err != nil {
			return nil, "", err
		}
		if filter == nil || filter(obj) {
			items = append(items, obj)
		}
		return items, "", nil
	}
	for {
		page, err := rs.listPage(ctx, prefix, storage.ListOptions{Revision: rev, StartKey: start, Limit: max(limit, 0)})
		if err != nil {
			return nil, "", err
		}
		rev = page.Revision
		for i, obj := range page.Items {
			if filter != nil && !filter(obj) {
				continue
			}
			items = append(items, obj)
			if limit > 0 && int64(len(items)) == limit {
				if i < len(page.Items)-1 || page.More {
					return items, page.Keys[i] + "\x00", nil
				}
				return items, "", nil
			}
		}
		if !page.More {
			return items, "", nil
		}
		start = page.Keys[len(page.Keys)-1] + "\x00"
	}
}
